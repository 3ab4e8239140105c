package legacydb

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"testing"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/TritonDataCenter/rebalancer/internal/legacydb/legacytest"
)

// TestReadOnly reads everything the reader can read from the standard set
// and checks that the legacy databases are unchanged afterwards, and that
// the reader's sessions refuse the writes the legacy itself would make.
func TestReadOnly(t *testing.T) {
	set, jobsURL, r := standard(t)
	ctx := testContext(t)
	before := fingerprint(t, jobsURL, set)

	// Everything, through every entry point.
	jobs, err := r.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.OrphanDatabases(ctx); err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		r.Status(ctx, j.ID)
		db, err := r.OpenJob(ctx, j.ID)
		if err != nil {
			continue // the missing database, and the action none
		}
		db.Objects(ctx, "", func(Object) error { return nil })
		db.Duplicates(ctx, func(Duplicate) error { return nil })
		db.FromShark(ctx)
		db.Results(ctx)
		db.Retried(ctx)
		db.Close()
	}
	if after := fingerprint(t, jobsURL, set); !reflect.DeepEqual(before, after) {
		t.Errorf("reading changed the legacy databases:\nbefore %v\nafter  %v", before, after)
	}

	// The writes the legacy makes: its restart's UPDATE, a new job, a
	// database created on a failed connection, the index a retry adds.
	missing := set.Job("missing").ID
	for _, stmt := range []string{
		`UPDATE jobs SET state = 'failed' WHERE state IN ('running', 'setup', 'init')`,
		`INSERT INTO jobs (id, action, state) VALUES ('x', 'evacuate', 'setup')`,
		`CREATE DATABASE "` + missing + `"`,
		`CREATE TABLE IF NOT EXISTS jobs2 (id TEXT)`,
	} {
		_, err := r.db.ExecContext(ctx, stmt)
		if pq.As(err, pqerror.ReadOnlySQLTransaction) == nil {
			t.Errorf("jobs database session: %s: %v, want a read-only error", stmt, err)
		}
	}
	for _, stmt := range []string{
		legacytest.RetryIndexDDL,
		`UPDATE evacuateobjects SET status = 'skipped'`,
		`DELETE FROM duplicates`,
		`DROP TABLE config`,
	} {
		db, err := r.OpenJob(ctx, set.Job("running").ID)
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.tx.ExecContext(ctx, stmt)
		if pq.As(err, pqerror.ReadOnlySQLTransaction) == nil {
			t.Errorf("job database transaction: %s: %v, want a read-only error", stmt, err)
		}
		db.Close()
	}
	if after := fingerprint(t, jobsURL, set); !reflect.DeepEqual(before, after) {
		t.Errorf("write attempts changed the legacy databases:\nbefore %v\nafter  %v", before, after)
	}
}

// fingerprint summarizes, through a separate session, what the set's
// databases hold: which exist, their tables and indexes, and a hash of
// every table's rows.
func fingerprint(t *testing.T, jobsURL string, set *legacytest.Set) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	query := func(db *sql.DB, key, q string) {
		var v sql.NullString
		if err := db.QueryRowContext(ctx, q).Scan(&v); err != nil {
			t.Fatalf("fingerprint %s: %v", key, err)
		}
		out[key] = v.String
	}
	jobs, err := sql.Open("postgres", jobsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	query(jobs, "jobs", `SELECT md5(string_agg(j::text, '|' ORDER BY id)) FROM jobs j`)
	query(jobs, "jobs tables", `SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'`)
	var ids []string
	for _, j := range set.Jobs {
		ids = append(ids, j.ID)
	}
	var n int
	if err := jobs.QueryRowContext(ctx, `SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, pq.Array(ids)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	out["databases"] = fmt.Sprint(n)
	for _, j := range set.Jobs {
		if j.NoDatabase {
			continue
		}
		db, err := sql.Open("postgres", legacytest.JobURL(t, jobsURL, j.ID))
		if err != nil {
			t.Fatal(err)
		}
		query(db, j.Name+" indexes", `SELECT string_agg(tablename || '.' || indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'`)
		for _, table := range []string{"evacuateobjects", "config", "duplicates"} {
			query(db, j.Name+" "+table, `SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) FROM `+table+` t`)
		}
		db.Close()
	}
	return out
}
