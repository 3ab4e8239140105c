package evacuate

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// A job whose store fails while it runs says so in its status, /health
// answers 503 with the reason, and the job does nothing until the store
// works again; then it goes on to the end.
func TestStoreFailsMidJob(t *testing.T) {
	t.Run("sqlite file deleted", func(t *testing.T) {
		dir := t.TempDir()
		h := newHarness(t, filepath.Join(dir, "jobs.db"), 200, nil)
		h.agents.SetSlow(true)
		j, err := h.engine.CreateJob(t.Context(), h.from.MantaStorageID, fastOptions())
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "an assignment posted", func() bool { return h.agentPosts() > 0 })
		for _, f := range []string{"jobs.db", "jobs.db-wal", "jobs.db-shm"} {
			os.Remove(filepath.Join(dir, f))
		}
		h.expectTrouble(j.ID, "was deleted while in use")
		h.engine.Close()
		h.store.Close()
		// At the next start, the mark beside the store tells the empty
		// store from a fresh install.
		_, err = openStore(t.Context(), filepath.Join(dir, "jobs.db"), StoreOptions{MarkFile: filepath.Join(dir, "jobs.db.mark")})
		if !errors.Is(err, ErrStoreReplaced) {
			t.Fatalf("reopening the deleted store: %v, want ErrStoreReplaced", err)
		}
	})

	// A fault of the PostgreSQL store: break and repair take the
	// maintenance database and the store's own, and its name.
	type pgFault struct {
		name           string
		break_, repair func(t *testing.T, admin, db *sql.DB, name string)
	}
	for _, f := range []pgFault{
		{
			name: "postgres down",
			break_: func(t *testing.T, admin, db *sql.DB, name string) {
				pgExec(t, admin, `ALTER DATABASE "`+name+`" ALLOW_CONNECTIONS false`)
				pgTerminate(t, admin, name)
			},
			repair: func(t *testing.T, admin, db *sql.DB, name string) {
				pgExec(t, admin, `ALTER DATABASE "`+name+`" ALLOW_CONNECTIONS true`)
			},
		},
		{
			// Every write refused with the error of a read-only server (a
			// standby after a failover, say), reads still working.
			name: "postgres read-only",
			break_: func(t *testing.T, admin, db *sql.DB, name string) {
				pgExec(t, db, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
					RAISE EXCEPTION 'cannot execute % in a read-only transaction', TG_OP USING ERRCODE = '25006'; END $$`)
				pgExec(t, db, `DO $$ DECLARE t text; BEGIN
					FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
						EXECUTE format('CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON %I FOR EACH STATEMENT EXECUTE FUNCTION refuse()', t);
					END LOOP; END $$`)
			},
			repair: func(t *testing.T, admin, db *sql.DB, name string) {
				pgExec(t, db, `DROP FUNCTION refuse() CASCADE`)
			},
		},
	} {
		t.Run(f.name, func(t *testing.T) {
			dsn := pgtest.NewDatabase(t)
			h := newHarness(t, dsn, 300, nil)
			h.agents.SetSlow(true)
			j, err := h.engine.CreateJob(t.Context(), h.from.MantaStorageID, fastOptions())
			if err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, "an assignment posted", func() bool { return h.agentPosts() > 0 })
			admin := pgConnect(t, dsn, "postgres")
			name := strings.TrimPrefix(mustURL(t, dsn).Path, "/")
			db := pgConnect(t, dsn, name)
			f.break_(t, admin, db, name)
			h.expectTrouble(j.ID, "")
			posts := h.agentPosts()
			f.repair(t, admin, db, name)
			h.agents.SetSlow(false)
			j = h.wait(j.ID)
			if j.State != rebalancer.JobComplete {
				t.Fatalf("job ended %v %q after the store came back", j.State, j.Error)
			}
			if got := h.check(j.ID); got["complete"] != 300 || len(got) != 1 {
				t.Errorf("counts %v", got)
			}
			if h.agentPosts() <= posts {
				t.Errorf("no assignment posted after the store came back")
			}
			if err := h.engine.Health(t.Context()); err != nil {
				t.Errorf("Health after the store came back: %v", err)
			}
		})
	}
}

// expectTrouble waits until the engine's health and the job's status both
// report a store failure containing want.
func (h *harness) expectTrouble(id, want string) {
	h.t.Helper()
	testutil.Eventually(h.t, "the store failure reported", func() bool {
		err := h.engine.Health(context.Background())
		if err == nil || !strings.Contains(err.Error(), want) {
			return false
		}
		st, err := h.engine.JobStatus(context.Background(), id)
		return err == nil && strings.Contains(st.Job.Error, "job store") && strings.Contains(st.Job.Error, want)
	})
}

func (h *harness) agentPosts() int { return h.agents.Posts() }

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// pgConnect connects to the database name of dsn's server.
func pgConnect(t *testing.T, dsn, name string) *sql.DB {
	t.Helper()
	u, err := pgtest.WithDatabase(dsn, name)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func pgExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	// DDL on tables the running job is writing can lose a deadlock to
	// the job's transactions (SQLSTATE 40P01): PostgreSQL aborts the
	// statement, which then only has to be sent again.
	for attempt := 1; ; attempt++ {
		_, err := db.Exec(q)
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "40P01" && attempt < 20 {
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return
	}
}

// pgTerminate ends every session on a database, as a restart would.
func pgTerminate(t *testing.T, db *sql.DB, name string) {
	t.Helper()
	if _, err := db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name); err != nil {
		t.Fatal(err)
	}
}
