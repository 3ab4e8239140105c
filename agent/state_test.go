package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// TestMetrics: the legacy names, labels and "total" series are on the
// metrics handler.
func TestMetrics(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	cfg.Metrics = MetricLabels{Service: "svc", Server: "srv-uuid", Datacenter: "dc9", Zonename: "zone1"}
	a := startAgent(t, cfg)
	good := src.put(newID(), newID(), content("metrics", 1234))
	bad := good
	bad.ObjectID = newID()
	bad.MD5Sum = "nope"
	src.put(bad.Owner, bad.ObjectID, content("x", 1))
	id := newID()
	a.mustPost(id, good, bad)
	// Wait without GET requests, which would be counted.
	testutil.Eventually(t, "the assignment complete", func() bool {
		got, err := a.s.store.get(context.Background(), id)
		return err == nil && got.Stats.State.Phase == rebalancer.AssignmentComplete
	})
	a.post(rebalancer.AssignmentPayload{ID: id, Tasks: []rebalancer.Task{}}) // 409
	a.post("garbage")                                                        // 400
	a.get(id)
	a.get(newID())                                                // 404 counts too
	request(t, http.MethodDelete, a.url("/assignments/"+id), nil) // not counted, as in the legacy

	rec := httptest.NewRecorder()
	a.s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/any/path", nil))
	text := rec.Body.String()
	series := func(name, label, value string) string {
		ls := []string{`datacenter="dc9"`, `server="srv-uuid"`, `service="svc"`, `zonename="zone1"`}
		if label != "" {
			ls = append(ls, label+`="`+value+`"`)
		}
		sort.Strings(ls)
		if strings.HasSuffix(name, "_bucket") {
			ls = append(ls, `le="+Inf"`) // le always comes last
		}
		return name + "{" + strings.Join(ls, ",") + "}"
	}
	for _, want := range []string{
		series("request_count", "req", "total") + " 5",
		series("request_count", "req", "POST") + " 3",
		series("request_count", "req", "GET") + " 2",
		series("object_count", "type", "total") + " 2",
		series("object_count", "type", "complete") + " 1",
		series("object_count", "type", "failed") + " 1",
		series("error_count", "error", "total") + " 3",
		series("error_count", "error", "md5_mismatch") + " 1",
		series("error_count", "error", "conflict") + " 1",
		series("error_count", "error", "bad_request") + " 1",
		series("bytes_count", "", "") + " 1234",
		series("assignment_time_count", "", "") + " 1",
		series("assignment_time_bucket", "", "") + " 1",
		series("rebalancer_agent_assignments", "state", "running") + " 0",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

// TestPrune: completed assignments are removed after the retention time,
// others are kept.
func TestPrune(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retention = time.Hour
	a := startAgent(t, cfg)
	old, recent := newID(), newID()
	a.mustPost(old)
	a.waitComplete(old)
	base := time.Now()
	a.s.store.now = func() time.Time { return base.Add(2 * time.Hour) }
	a.mustPost(recent)
	a.waitComplete(recent)
	a.s.pruneOnce(context.Background())
	if code, _, _ := a.get(old); code != http.StatusNotFound {
		t.Fatalf("old assignment: GET %d, want 404", code)
	}
	if code, _, _ := a.get(recent); code != http.StatusOK {
		t.Fatalf("recent assignment: GET %d, want 200", code)
	}
}

// TestStoreGuards: the store refuses to count a task twice or to complete
// an assignment with a pending task, and reads an unknown stored reason as
// AssignmentError.
func TestStoreGuards(t *testing.T) {
	ctx := context.Background()
	st, err := openStore(ctx, t.TempDir(), testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	tasks := []rebalancer.Task{{ObjectID: "a", Owner: "o"}, {ObjectID: "b", Owner: "o"}}
	if err := st.insert(ctx, newAssignment{id: "x", tasks: tasks, state: stateScheduled}); err != nil {
		t.Fatal(err)
	}
	if err := st.insert(ctx, newAssignment{id: "x", tasks: tasks, state: stateScheduled}); err != errExists {
		t.Fatalf("second insert: %v, want errExists", err)
	}
	seq, pending, err := st.start(ctx, "x")
	if err != nil || len(pending) != 2 {
		t.Fatalf("start: %v %v", pending, err)
	}
	complete := rebalancer.TaskStatus{State: rebalancer.TaskComplete}
	if err := st.record(ctx, seq, 0, complete, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.record(ctx, seq, 0, complete, ""); err == nil {
		t.Fatal("recording a task twice succeeded")
	}
	if err := st.record(ctx, seq, 7, complete, ""); err == nil {
		t.Fatal("recording an unknown task succeeded")
	}
	if err := st.record(ctx, seq, 1, rebalancer.TaskStatus{}, ""); err == nil {
		t.Fatal("recording a pending status succeeded")
	}
	if _, err := st.complete(ctx, seq); err == nil {
		t.Fatal("completing with a pending task succeeded")
	}
	if _, pending, _ = st.start(ctx, "x"); len(pending) != 1 || pending[0].task.ObjectID != "b" {
		t.Fatalf("pending after one result: %+v", pending)
	}
	if err := st.record(ctx, seq, 1, rebalancer.TaskFailedWith(rebalancer.SkipMD5Mismatch), "bad"); err != nil {
		t.Fatal(err)
	}
	// A reason this agent cannot read.
	if _, err := st.db.Exec(`UPDATE tasks SET reason = '"SomethingNew"' WHERE idx = 1`); err != nil {
		t.Fatal(err)
	}
	stats, err := st.complete(ctx, seq)
	if err != nil || stats.Complete != 2 || stats.Failed != 1 {
		t.Fatalf("complete: %+v %v", stats, err)
	}
	got, err := st.get(ctx, "x")
	if err != nil || len(got.Stats.State.Failed) != 1 || got.Stats.State.Failed[0].Status.Reason != rebalancer.SkipAssignmentError {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, _, err := st.start(ctx, "x"); err == nil {
		t.Fatal("starting a complete assignment succeeded")
	}
	if err := st.remove(ctx, "nope"); err != errNotFound {
		t.Fatalf("remove unknown: %v", err)
	}
	if err := st.remove(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	var n int
	st.db.QueryRow("SELECT count(*) FROM tasks").Scan(&n)
	if n != 0 {
		t.Fatalf("%d tasks left after delete", n)
	}
}

// TestRecordAllAtomic: a batch of results is recorded whole or not at
// all: one task already recorded fails the batch, and leaves the others
// pending and uncounted; a batch that goes through numbers its tasks in
// order after those recorded before.
func TestRecordAllAtomic(t *testing.T) {
	ctx := context.Background()
	st, err := openStore(ctx, t.TempDir(), testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	var tasks []rebalancer.Task
	for _, id := range []string{"a", "b", "c", "d"} {
		tasks = append(tasks, rebalancer.Task{ObjectID: id, Owner: "o"})
	}
	if err := st.insert(ctx, newAssignment{id: "x", tasks: tasks, state: stateScheduled}); err != nil {
		t.Fatal(err)
	}
	seq, _, err := st.start(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	complete := rebalancer.TaskStatus{State: rebalancer.TaskComplete}
	failed := rebalancer.TaskFailedWith(rebalancer.SkipMD5Mismatch)
	if err := st.record(ctx, seq, 2, complete, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.recordAll(ctx, seq, []result{{idx: 0, status: complete}, {idx: 2, status: complete}}); err == nil {
		t.Fatal("a batch recording a task twice succeeded")
	}
	if err := st.recordAll(ctx, seq, []result{{idx: 1, status: complete}, {idx: 0, status: rebalancer.TaskStatus{}}}); err == nil {
		t.Fatal("a batch with a pending status succeeded")
	}
	if _, pending, _ := st.start(ctx, "x"); len(pending) != 3 {
		t.Fatalf("pending after failed batches: %+v, want a, b, d", pending)
	}
	if err := st.recordAll(ctx, seq, []result{{idx: 3, status: failed, detail: "bad"}, {idx: 0, status: complete}, {idx: 1, status: complete}}); err != nil {
		t.Fatal(err)
	}
	a, ok := storedAssignment(t, &Server{store: st}, "x")
	if !ok || a.done != 4 || a.failed != 1 {
		t.Fatalf("counters %+v", a)
	}
	for idx, want := range []int64{3, 4, 1, 2} {
		if got := a.tasks[idx].doneOrder; got.Int64 != want {
			t.Errorf("task %d: done_order %v, want %d", idx, got, want)
		}
	}
	if got := a.tasks[3]; got.state != taskFailed || got.detail.String != "bad" {
		t.Errorf("failed task stored as %+v", got)
	}
}

// legacySchema is the legacy agent's per-assignment file (docs/golden.md).
const legacySchema = `
CREATE TABLE tasks (object_id text primary key not null unique, owner text not null, md5sum text not null,
	datacenter text not null, manta_storage_id text not null, status text not null, bucket_id text, object_name_hash text);
CREATE TABLE stats (stats text not null);`

func writeLegacyFile(t *testing.T, path string, tasks []rebalancer.Task, stats string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(legacySchema); err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		status, _ := json.Marshal(task.Status)
		// Statuses are BLOBs, as the legacy agent writes them.
		if _, err := db.Exec(`INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, task.ObjectID, task.Owner, task.MD5Sum,
			task.Source.Datacenter, task.Source.MantaStorageID, status, nullable(task.BucketID), nullable(task.ObjectNameHash)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO stats VALUES (?)`, []byte(stats)); err != nil {
		t.Fatal(err)
	}
}

// TestLegacyImport: an upgraded agent picks up the legacy agent's queued
// work and still answers for its finished assignments.
func TestLegacyImport(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	owner := newID()
	body := content("legacy", 500)
	queued := src.put(owner, newID(), body)
	queuedID := newID()
	writeLegacyFile(t, filepath.Join(cfg.DataDir, "scheduled", queuedID), []rebalancer.Task{queued},
		`{"state":"Scheduled","failed":0,"complete":0,"total":1}`)

	ok := rebalancer.Task{ObjectID: newID(), Owner: owner, MD5Sum: "a", Source: src.node(), Status: rebalancer.TaskStatus{State: rebalancer.TaskComplete}}
	bad := rebalancer.Task{ObjectID: newID(), Owner: owner, MD5Sum: "b", Source: src.node(), Status: rebalancer.TaskFailedWith(rebalancer.SkipHTTPStatus(503))}
	lost := rebalancer.Task{ObjectID: newID(), Owner: owner, MD5Sum: "c", Source: src.node()} // pending in a completed file
	v2 := rebalancer.Task{ObjectID: newID(), Owner: owner, MD5Sum: "d", Source: src.node(), BucketID: newID(),
		ObjectNameHash: rebalancer.ObjectNameHash("n"), Status: rebalancer.TaskStatus{State: rebalancer.TaskComplete}}
	doneID := newID()
	writeLegacyFile(t, filepath.Join(cfg.DataDir, "completed", doneID), []rebalancer.Task{ok, bad, lost, v2},
		`{"state":{"Complete":null},"failed":1,"complete":4,"total":4}`)
	// Leftovers that are not assignments.
	os.WriteFile(filepath.Join(cfg.DataDir, "scheduled", queuedID+"-journal"), []byte("junk"), 0o644)
	os.MkdirAll(filepath.Join(cfg.DataDir, "temp"), 0o755)
	os.WriteFile(filepath.Join(cfg.DataDir, "temp", "partial"), []byte("junk"), 0o644)
	garbageID := newID()
	os.WriteFile(filepath.Join(cfg.DataDir, "scheduled", garbageID), []byte("not sqlite"), 0o644)

	a := startAgent(t, cfg)
	if got := a.waitComplete(queuedID); got.Stats.Failed != 0 || got.Stats.Total != 1 {
		t.Fatalf("imported queued assignment: %+v", got.Stats)
	}
	a.checkFile(queued, body)
	_, got, _ := a.get(doneID)
	st := got.Stats
	if st.State.Phase != rebalancer.AssignmentComplete || st.Total != 4 || st.Complete != 4 || st.Failed != 2 {
		t.Fatalf("imported completed assignment: %+v", st)
	}
	r := failedReasons(got)
	if r[bad.ObjectID] != rebalancer.SkipHTTPStatus(503) || r[lost.ObjectID] != rebalancer.SkipAssignmentError {
		t.Fatalf("failed tasks %v", r)
	}
	for _, p := range []string{
		filepath.Join(cfg.DataDir, LegacyImportedDir, "scheduled", queuedID),
		filepath.Join(cfg.DataDir, LegacyImportedDir, "completed", doneID),
		filepath.Join(cfg.DataDir, "scheduled", garbageID), // unreadable: left in place
	} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "temp")); !os.IsNotExist(err) {
		t.Errorf("legacy temp directory still there: %v", err)
	}
	if code, _, _ := a.get(garbageID); code != http.StatusNotFound {
		t.Errorf("unreadable legacy file: GET %d", code)
	}
	// A restart does not import twice.
	a.stop()
	b := startAgent(t, cfg)
	if code, _, _ := b.get(doneID); code != http.StatusOK {
		t.Fatalf("after restart: %d", code)
	}
}
