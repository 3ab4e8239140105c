package jobstore

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

// both runs a test on a SQLite and a PostgreSQL store.
func both(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "jobs.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, pgtest.NewDatabase(t)) })
}

func openT(t *testing.T, dsn string) *Store {
	t.Helper()
	st, err := open(context.Background(), dsn, MarkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func job(id, shark string, state rebalancer.JobState, dryRun bool) Job {
	opts := `{"max_tasks_per_assignment":50}`
	if dryRun {
		opts = `{"dry_run":true,"max_tasks_per_assignment":50}`
	}
	return Job{ID: id, Action: rebalancer.JobEvacuate, State: state, Options: json.RawMessage(opts),
		From: rebalancer.StorageNode{MantaStorageID: shark, Datacenter: "dc1"}}
}

func states(t *testing.T, st *Store) map[string]string {
	t.Helper()
	recs, err := st.Sharks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range recs {
		out[r.Shark] = r.State + "/" + r.ChangedBy + "/" + r.JobID
	}
	return out
}

func TestSharkStates(t *testing.T) {
	both(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := openT(t, dsn)
		if got := states(t, st); len(got) != 0 {
			t.Fatalf("a new store has shark states %v", got)
		}
		j := job("j1", "1.stor", rebalancer.JobSetup, false)
		if err := st.CreateJobWithShark(ctx, j, SharkRecord{Shark: "1.stor", State: SharkDraining, JobID: "j1", ChangedBy: ByJob}); err != nil {
			t.Fatal(err)
		}
		// A job that cannot be stored leaves the shark as it was.
		if err := st.CreateJobWithShark(ctx, job("j1", "2.stor", rebalancer.JobSetup, false),
			SharkRecord{Shark: "2.stor", State: SharkDraining, JobID: "j1", ChangedBy: ByJob}); err == nil {
			t.Fatal("a second job j1 was stored")
		}
		if err := st.SetJobStateWithShark(ctx, "j1", rebalancer.JobComplete, "", SharkRecord{Shark: "1.stor", State: SharkDrained, JobID: "j1", ChangedBy: ByJob}); err != nil {
			t.Fatal(err)
		}
		if err := st.SetShark(ctx, SharkRecord{Shark: "3.stor", State: SharkDrained, ChangedBy: ByOperator, Reason: "disk failing"}); err != nil {
			t.Fatal(err)
		}
		if err := st.SetShark(ctx, SharkRecord{Shark: "3.stor", State: "retired", ChangedBy: ByOperator}); err == nil {
			t.Error("an unknown state was stored")
		}
		want := map[string]string{"1.stor": "drained/job/j1", "3.stor": "drained/operator/"}
		if got := states(t, st); !reflect.DeepEqual(got, want) {
			t.Errorf("states %v, want %v", got, want)
		}
		if got, err := st.GetJob(ctx, "j1"); err != nil || got.State != rebalancer.JobComplete {
			t.Errorf("job j1 %v %v", got.State, err)
		}
		// Back in service.
		if err := st.SetShark(ctx, SharkRecord{Shark: "1.stor", State: SharkInService, ChangedBy: ByOperator}); err != nil {
			t.Fatal(err)
		}
		if got := states(t, st)["1.stor"]; got != "in_service/operator/" {
			t.Errorf("1.stor is %s", got)
		}
	})
}

// A store of a version that kept no shark states gets them from its jobs:
// each shark's latest real evacuation decides, and its skipped and errored
// objects count under an unknown source.
func TestSharkStatesFromEarlierJobs(t *testing.T) {
	both(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		first := -1
		for i, m := range migrations {
			if strings.Contains(m, "CREATE TABLE sharks") {
				first = i
			}
		}
		if first < 0 {
			t.Fatal("no sharks migration")
		}
		// The store as the version before wrote it.
		old := openT(t, dsn)
		if _, err := old.db.ExecContext(ctx, `DROP TABLE source_counts`); err != nil {
			t.Fatal(err)
		}
		if _, err := old.db.ExecContext(ctx, `DROP TABLE sharks`); err != nil {
			t.Fatal(err)
		}
		if _, err := old.db.ExecContext(ctx, `ALTER TABLE objects DROP COLUMN source_shark`); err != nil {
			t.Fatal(err)
		}
		if _, err := old.db.ExecContext(ctx, old.db.Rebind(`DELETE FROM schema_migrations WHERE version > ?`), first); err != nil {
			t.Fatal(err)
		}
		var pre []Job
		for _, j := range []Job{
			job("a", "a.stor", rebalancer.JobComplete, false),
			job("b", "b.stor", rebalancer.JobFailed, false), // its shark was never found
			job("c", "c.stor", rebalancer.JobComplete, true),
			job("d1", "d.stor", rebalancer.JobComplete, false),
			job("d2", "d.stor", rebalancer.JobStopped, false),
			job("d3", "d.stor", rebalancer.JobComplete, true), // a later dry run does not count
			job("e", "e.stor", rebalancer.JobRunning, false),
		} {
			if j.ID == "b" {
				j.From.Datacenter = ""
			}
			pre = append(pre, j)
		}
		for i, j := range pre {
			if _, err := old.db.ExecContext(ctx, old.db.Rebind(`INSERT INTO jobs
				(id, action, state, from_shark, from_datacenter, options, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
				j.ID, j.Action.String(), j.State.String(), j.From.MantaStorageID, j.From.Datacenter, string(j.Options), 1000+i, 1000+i); err != nil {
				t.Fatal(err)
			}
		}
		objs := []rebalancer.Object{{ID: "o1", Key: "/k1", Shard: 1, Metadata: json.RawMessage(`{}`)},
			{ID: "o2", Key: "/k2", Shard: 1, Metadata: json.RawMessage(`{}`)}, {ID: "o3", Key: "/k3", Shard: 1, Metadata: json.RawMessage(`{}`)}}
		for _, o := range objs {
			if _, err := old.db.ExecContext(ctx, old.db.Rebind(`INSERT INTO objects (job_id, id, seq, key, shard, etag, object, status, skipped_reason, error, updated_at)
				VALUES ('d2', ?, 1, ?, 1, '', '{}', ?, ?, ?, 0)`), o.ID, o.Key,
				map[string]string{"o1": "skipped", "o2": "skipped", "o3": "error"}[o.ID],
				map[string]any{"o1": "source_other_error", "o2": "source_other_error", "o3": nil}[o.ID],
				map[string]any{"o1": nil, "o2": nil, "o3": "moray_update_failed"}[o.ID]); err != nil {
				t.Fatal(err)
			}
		}
		old.Close()

		st := openT(t, dsn)
		want := map[string]string{"a.stor": "drained/job/a", "d.stor": "draining/job/d2", "e.stor": "draining/job/e"}
		if got := states(t, st); !reflect.DeepEqual(got, want) {
			t.Errorf("states %v, want %v", got, want)
		}
		got, err := st.SourceCounts(ctx, "d2")
		if err != nil {
			t.Fatal(err)
		}
		wantCounts := []SourceCount{{"", "error", "moray_update_failed", 1}, {"", "skipped", "source_other_error", 2}}
		if !reflect.DeepEqual(got, wantCounts) {
			t.Errorf("counts by source %v, want %v", got, wantCounts)
		}
	})
}

// Skips and errors are counted by source shark exactly, with the objects.
func TestSourceCounts(t *testing.T) {
	both(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := openT(t, dsn)
		if err := st.CreateJob(ctx, job("j", "1.stor", rebalancer.JobRunning, false)); err != nil {
			t.Fatal(err)
		}
		var objs []rebalancer.Object
		for _, id := range []string{"o1", "o2", "o3", "o4", "o5", "o6"} {
			objs = append(objs, rebalancer.Object{ID: id, Key: "/" + id, Shard: 1, Metadata: json.RawMessage(`{}`), ContentLength: 10})
		}
		if _, err := st.RecordDiscovered(ctx, "j", objs); err != nil {
			t.Fatal(err)
		}
		changes := []Change{
			{ID: "o1", Bytes: 10, To: rebalancer.ObjectSkipped, Skip: rebalancer.SkipSourceOtherError, Source: "2.stor", Detail: "connection refused"},
			{ID: "o2", Bytes: 10, To: rebalancer.ObjectSkipped, Skip: rebalancer.SkipSourceOtherError, Source: "2.stor", Detail: "connection refused"},
			{ID: "o3", Bytes: 10, To: rebalancer.ObjectSkipped, Skip: rebalancer.SkipSourceIsEvacShark},
			{ID: "o4", Bytes: 10, To: rebalancer.ObjectSkipped, Skip: rebalancer.SkipMD5Mismatch, Source: "3.stor", Refresh: &objs[3]},
			{ID: "o5", Bytes: 10, To: rebalancer.ObjectError, Error: rebalancer.ErrorBadMantaObject},
			{ID: "o6", Bytes: 10, To: rebalancer.ObjectUnprocessed, Source: "2.stor"}, // a requeue counts nowhere
		}
		if err := st.Transition(ctx, "j", rebalancer.ObjectUnprocessed, changes); err != nil {
			t.Fatal(err)
		}
		got, err := st.SourceCounts(ctx, "j")
		if err != nil {
			t.Fatal(err)
		}
		want := []SourceCount{{"", "error", "bad_manta_object", 1}, {"", "skipped", "source_is_evac_shark", 1},
			{"2.stor", "skipped", "source_other_error", 2}, {"3.stor", "skipped", "md5_mismatch", 1}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("counts by source %v, want %v", got, want)
		}
		if re, err := st.RecountSources(ctx, "j"); err != nil || !reflect.DeepEqual(re, want) {
			t.Errorf("recount %v (%v), want %v", re, err, want)
		}
		rows, err := st.ObjectsByID(ctx, "j", []string{"o1", "o4", "nope"})
		if err != nil || len(rows) != 2 {
			t.Fatalf("ObjectsByID = %d rows, %v", len(rows), err)
		}
		for _, r := range rows {
			if r.ID == "o1" && (r.SourceShark != "2.stor" || r.Detail != "connection refused") {
				t.Errorf("o1 stored as %+v", r)
			}
		}
	})
}
