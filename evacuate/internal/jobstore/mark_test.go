package jobstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/storetest"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// A store replaced under the manager, by an empty one or by an old copy,
// is refused at open: a manager must never silently forget its jobs.
func TestStoreMark(t *testing.T) {
	ctx := context.Background()
	createJobs := func(t *testing.T, st *Store, n int) {
		t.Helper()
		for range n {
			j := Job{ID: uuid.NewString(), Action: rebalancer.JobEvacuate, State: rebalancer.JobComplete,
				From: rebalancer.StorageNode{MantaStorageID: "1.stor.test"}, Options: []byte(`{}`)}
			if err := st.CreateJob(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
	}
	open := func(t *testing.T, dsn, mark string, accept bool) (*Store, error) {
		t.Helper()
		st, err := open(ctx, dsn, MarkOptions{File: mark, AcceptEmpty: accept, Logger: testutil.Discard()})
		if err == nil {
			t.Cleanup(func() { st.Close() })
		}
		return st, err
	}
	refused := func(t *testing.T, err error, why string) {
		t.Helper()
		if !errors.Is(err, ErrStoreReplaced) || !strings.Contains(err.Error(), why) {
			t.Fatalf("open = %v, want ErrStoreReplaced saying %q", err, why)
		}
	}

	t.Run("sqlite replaced by an empty file", func(t *testing.T) {
		dir := t.TempDir()
		db, mark := filepath.Join(dir, "jobs.db"), filepath.Join(dir, "jobs.db.mark")
		st, err := open(t, db, mark, false)
		if err != nil {
			t.Fatal(err)
		}
		createJobs(t, st, 3)
		st.Close()
		for _, f := range []string{"jobs.db", "jobs.db-wal", "jobs.db-shm"} {
			os.Remove(filepath.Join(dir, f))
		}
		_, err = open(t, db, mark, false)
		refused(t, err, "records store")
		// Refusing twice: the empty store created by the first attempt is
		// no more acceptable than the missing one.
		_, err = open(t, db, mark, false)
		refused(t, err, "with 3 jobs")
		if _, err := open(t, db, mark, true); err != nil {
			t.Fatalf("with AcceptEmpty: %v", err)
		}
		// Accepted once, the empty store is the store from now on.
		if _, err := open(t, db, mark, false); err != nil {
			t.Fatalf("after AcceptEmpty: %v", err)
		}
	})

	t.Run("sqlite restored from an old copy", func(t *testing.T) {
		dir := t.TempDir()
		db, mark := filepath.Join(dir, "jobs.db"), filepath.Join(dir, "jobs.db.mark")
		st, err := open(t, db, mark, false)
		if err != nil {
			t.Fatal(err)
		}
		createJobs(t, st, 1)
		st.Close()
		old, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		st, err = open(t, db, mark, false)
		if err != nil {
			t.Fatal(err)
		}
		createJobs(t, st, 2)
		st.Close()
		if err := os.WriteFile(db, old, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = open(t, db, mark, false)
		refused(t, err, "holds 1 jobs, but mark file")
	})

	t.Run("sqlite without a mark yet, and mark unreadable", func(t *testing.T) {
		dir := t.TempDir()
		db := filepath.Join(dir, "jobs.db")
		st, err := open(t, db, "", false) // an older manager: no mark
		if err != nil {
			t.Fatal(err)
		}
		createJobs(t, st, 2)
		st.Close()
		mark := filepath.Join(dir, "jobs.db.mark")
		if _, err := open(t, db, mark, false); err != nil {
			t.Fatalf("first open with a mark: %v", err)
		}
		rec, err := readMark(mark)
		if err != nil || rec.Jobs != 2 || rec.Database != db {
			t.Fatalf("mark %+v %v, want 2 jobs of %s", rec, err, db)
		}
		if err := os.WriteFile(mark, []byte("{garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = open(t, db, mark, false)
		refused(t, err, "unreadable")
	})

	t.Run("postgres recreated", func(t *testing.T) {
		dsn := pgtest.NewDatabase(t)
		mark := filepath.Join(t.TempDir(), "postgres.mark")
		st, err := open(t, dsn, mark, false)
		if err != nil {
			t.Fatal(err)
		}
		createJobs(t, st, 2)
		if rec, err := readMark(mark); err != nil || rec.Jobs != 2 || !strings.HasPrefix(rec.Database, "postgres") {
			t.Errorf("mark %+v %v", rec, err)
		}
		// Jobs deleted by hand: same store, fewer jobs.
		if _, err := st.db.ExecContext(ctx, `DELETE FROM jobs WHERE id = (SELECT MIN(id) FROM jobs)`); err != nil {
			t.Fatal(err)
		}
		st.Close()
		_, err = open(t, dsn, mark, false)
		refused(t, err, "holds 1 jobs")
		// The database dropped and created again: another store.
		db, err := storetest.Postgres(dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
			t.Fatal(err)
		}
		_, err = open(t, dsn, mark, false)
		refused(t, err, "records store")
	})
}
