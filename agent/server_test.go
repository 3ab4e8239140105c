package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// The legacy fixture: owner "rebalancer", object id = a file name.
const legacyOwner = "rebalancer"

// TestDownload is the legacy "download" test: an array-form POST whose
// reply is exactly the id as a JSON string, then Complete(None).
func TestDownload(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	body := content("area codes", 4662)
	task := src.put(legacyOwner, "area_codes_by_state.csv", body)
	id := newID()
	payload, _ := json.Marshal([]any{id, []rebalancer.Task{task}})
	code, reply := a.post(string(payload))
	if code != http.StatusOK || reply != `"`+id+`"` {
		t.Fatalf("POST: %d %q, want 200 %q", code, reply, `"`+id+`"`)
	}
	got := a.waitComplete(id)
	if len(got.Stats.State.Failed) != 0 || got.Stats.Complete != 1 || got.Stats.Total != 1 || got.Stats.Failed != 0 {
		t.Fatalf("got %+v, want Complete(None) 1/1", got.Stats)
	}
	a.checkFile(task, body)
	a.checkTempEmpty()
}

// TestReplaceHealthy is the legacy "replace_healthy" test: the same tasks
// under a second id complete without downloading again.
func TestReplaceHealthy(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	body := content("healthy", 10000)
	task := src.put(legacyOwner, "healthy.csv", body)
	for i := range 2 {
		id := newID()
		a.mustPost(id, task)
		if got := a.waitComplete(id); got.Stats.Failed != 0 {
			t.Fatalf("run %d: %+v", i, got.Stats)
		}
	}
	if n := src.hitCount(task); n != 1 {
		t.Fatalf("source asked %d times, want 1 (the second run finds the object in place)", n)
	}
	a.checkFile(task, body)
}

// TestObjectNotFound is the legacy "object_not_found" test: a 404 from the
// source is SourceObjectNotFound (the Dropshot port said HTTPStatusCode(404)).
func TestObjectNotFound(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	task := rebalancer.Task{ObjectID: "abc", Owner: legacyOwner, MD5Sum: "abc", Source: src.node()}
	id := newID()
	a.mustPost(id, task)
	got := a.waitComplete(id)
	want := map[string]rebalancer.SkipReason{"abc": rebalancer.SkipSourceObjectNotFound}
	if r := failedReasons(got); len(r) != 1 || r["abc"] != want["abc"] {
		t.Fatalf("failed tasks %v, want %v", r, want)
	}
	a.checkNoFile(task)
}

// TestFailedChecksum is the legacy "failed_checksum" test: a wrong md5sum
// fails with MD5Mismatch and leaves the good file in place untouched.
func TestFailedChecksum(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	body := content("good", 5000)
	good := src.put(legacyOwner, "good.csv", body)
	id := newID()
	a.mustPost(id, good)
	a.waitComplete(id)

	bad := good
	bad.MD5Sum = "abc"
	id = newID()
	a.mustPost(id, bad)
	got := a.waitComplete(id)
	if r := failedReasons(got); r[good.ObjectID] != rebalancer.SkipMD5Mismatch || got.Stats.Failed != 1 {
		t.Fatalf("got %+v, want MD5Mismatch", got.Stats)
	}
	a.checkFile(good, body)
	a.checkTempEmpty()
}

// TestCorruptSource: bytes that do not match the checksum never reach the
// destination.
func TestCorruptSource(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	task := src.put(newID(), newID(), content("corrupt", 70000))
	task.MD5Sum = md5b64(content("what it should be", 70000))
	id := newID()
	a.mustPost(id, task)
	got := a.waitComplete(id)
	if r := failedReasons(got); r[task.ObjectID] != rebalancer.SkipMD5Mismatch {
		t.Fatalf("failed tasks %v, want MD5Mismatch", r)
	}
	a.checkNoFile(task)
	a.checkTempEmpty()
}

// TestDuplicateAssignment is the legacy "duplicate_assignment" test.
func TestDuplicateAssignment(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	task := src.put(legacyOwner, "dup.csv", content("dup", 100))
	id := newID()
	a.mustPost(id, task)
	a.waitComplete(id)
	if code, body := a.post(rebalancer.AssignmentPayload{ID: id, Tasks: []rebalancer.Task{task}}); code != http.StatusConflict {
		t.Fatalf("second POST: %d %s, want 409", code, body)
	}
	// The id is the same in another spelling.
	if code, _ := a.post(rebalancer.AssignmentPayload{ID: strings.ToUpper(strings.ReplaceAll(id, "-", "")), Tasks: []rebalancer.Task{}}); code != http.StatusConflict {
		t.Fatalf("POST of the same id in another form: %d, want 409", code)
	}
}

// TestDeleteAssignment is the legacy "delete_assignment" test (200, not
// the port's 204), then GET 404 and a re-POST accepted.
func TestDeleteAssignment(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	task := src.put(legacyOwner, "del.csv", content("del", 100))
	id := newID()
	a.mustPost(id, task)
	a.waitComplete(id)
	if code, body := request(t, http.MethodDelete, a.url("/assignments/"+id), nil); code != http.StatusOK || body != "" {
		t.Fatalf("DELETE: %d %q, want 200 and no body", code, body)
	}
	if code, _, _ := a.get(id); code != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d, want 404", code)
	}
	a.mustPost(id, task)
	a.waitComplete(id)
}

// TestExistingFileChecksumMatch: an object already in place is not
// downloaded (the source would answer 500).
func TestExistingFileChecksumMatch(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	body := content("present", 3000)
	task := src.put(newID(), newID(), body)
	src.handle(task, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusInternalServerError) })
	if err := os.MkdirAll(filepath.Dir(a.dest(task)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.dest(task), body, 0o644); err != nil {
		t.Fatal(err)
	}
	id := newID()
	a.mustPost(id, task)
	if got := a.waitComplete(id); got.Stats.Failed != 0 {
		t.Fatalf("got %+v, want Complete(None)", got.Stats)
	}
	if n := src.hitCount(task); n != 0 {
		t.Fatalf("source asked %d times, want 0", n)
	}
}

// TestExistingFileWrongChecksum: a file in place with other content is
// replaced by the verified download.
func TestExistingFileWrongChecksum(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	body := content("replacement", 3000)
	task := src.put(newID(), newID(), body)
	os.MkdirAll(filepath.Dir(a.dest(task)), 0o755)
	if err := os.WriteFile(a.dest(task), []byte("truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := newID()
	a.mustPost(id, task)
	if got := a.waitComplete(id); got.Stats.Failed != 0 {
		t.Fatalf("got %+v", got.Stats)
	}
	a.checkFile(task, body)
}

// TestDestinationIsDirectory: a destination that cannot be read is
// downloaded again, and a rename that cannot replace it is AgentFSError.
func TestDestinationIsDirectory(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	task := src.put(newID(), newID(), content("dir", 100))
	if err := os.MkdirAll(filepath.Join(a.dest(task), "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	id := newID()
	a.mustPost(id, task)
	got := a.waitComplete(id)
	if r := failedReasons(got); r[task.ObjectID] != rebalancer.SkipAgentFSError {
		t.Fatalf("failed tasks %v, want AgentFSError", r)
	}
	if _, err := os.Stat(filepath.Join(a.dest(task), "child")); err != nil {
		t.Fatalf("existing destination disturbed: %v", err)
	}
	a.checkTempEmpty()
}

// TestPartialAssignmentFailure: 3 tasks, the middle one 404.
func TestPartialAssignmentFailure(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	owner := newID()
	t1 := src.put(owner, newID(), content("one", 100))
	t2 := rebalancer.Task{ObjectID: newID(), Owner: owner, MD5Sum: md5b64([]byte("x")), Source: src.node()}
	t3 := src.put(owner, newID(), content("three", 100))
	id := newID()
	a.mustPost(id, t1, t2, t3)
	got := a.waitComplete(id)
	st := got.Stats
	if st.Total != 3 || st.Complete != 3 || st.Failed != 1 || len(st.State.Failed) != 1 {
		t.Fatalf("stats %+v, want 3/3 with 1 failed", st)
	}
	f := st.State.Failed[0]
	if f.ObjectID != t2.ObjectID || f.Status != rebalancer.TaskFailedWith(rebalancer.SkipSourceObjectNotFound) ||
		f.Owner != owner || f.MD5Sum != t2.MD5Sum || f.Source != t2.Source {
		t.Fatalf("failed task %+v", f)
	}
}

// TestConcurrentDownloads: 8 tasks with 4 downloads at a time. The source
// holds requests until 4 are in flight, so the test proves the agent
// downloads in parallel, and never more than 4.
func TestConcurrentDownloads(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	cfg.Workers = 1
	cfg.WorkersPerAssignment = 4
	a := startAgent(t, cfg)
	g := newGate()
	var tasks []rebalancer.Task
	for i := range 8 {
		body := content(fmt.Sprint("c", i), 1000+i)
		task := src.put(newID(), newID(), body)
		src.handle(task, func(w http.ResponseWriter, r *http.Request) {
			g.wait(r.Context())
			w.Write(body)
		})
		tasks = append(tasks, task)
	}
	id := newID()
	a.mustPost(id, tasks...)
	g.arrivals(t, 4)
	g.release()
	got := a.waitComplete(id)
	if st := got.Stats; st.Total != 8 || st.Complete != 8 || st.Failed != 0 {
		t.Fatalf("stats %+v, want 8/8/0", st)
	}
	if m := src.maxInflight(); m != 4 {
		t.Fatalf("at most %d downloads in flight, want 4", m)
	}
}

// TestEmptyAssignment: no task, complete at once.
func TestEmptyAssignment(t *testing.T) {
	a := startAgent(t, testConfig(t))
	id := newID()
	a.mustPost(id)
	got := a.waitComplete(id)
	_, _, body := a.get(id)
	if got.Stats.Total != 0 || body != `{"uuid":"`+id+`","stats":{"state":{"Complete":null},"failed":0,"complete":0,"total":0}}` {
		t.Fatalf("GET: %s", body)
	}
}

// TestGetGoldenJSON: a completed assignment with a failure, byte for byte
// as the legacy agent writes it.
func TestGetGoldenJSON(t *testing.T) {
	a := startAgent(t, testConfig(t))
	src := newSource(t)
	id := "fd45e70b-5435-457e-a371-93fcb8215e0d"
	task := rebalancer.Task{ObjectID: "7f3ee78a-2e64-4f3d-829f-a31c7c2c2b03", Owner: "d50c4fc4-f408-492f-b8bc-a0dd7c73683f",
		MD5Sum: "QXBlX0QFcscVIwptkUaI8g==", Source: rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: src.host()}}
	src.put(task.Owner, task.ObjectID, content("not the right bytes", 10))
	a.mustPost(id, task)
	a.waitComplete(id)
	_, _, body := a.get(id)
	want := `{"uuid":"fd45e70b-5435-457e-a371-93fcb8215e0d","stats":{"state":{"Complete":[` +
		`{"object_id":"7f3ee78a-2e64-4f3d-829f-a31c7c2c2b03","owner":"d50c4fc4-f408-492f-b8bc-a0dd7c73683f",` +
		`"md5sum":"QXBlX0QFcscVIwptkUaI8g==","source":{"datacenter":"dc","manta_storage_id":"` + src.host() + `"},` +
		`"status":{"Failed":"MD5Mismatch"}}]},"failed":1,"complete":1,"total":1}}`
	if body != want {
		t.Fatalf("GET body\n got %s\nwant %s", body, want)
	}
}

// TestPayloadShapes: both payload shapes, a missing status, unknown fields,
// and v2 fields.
func TestPayloadShapes(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	body := content("shapes", 200)
	task := src.put(newID(), newID(), body)
	taskJSON := fmt.Sprintf(`{"object_id":%q,"owner":%q,"md5sum":%q,"source":{"datacenter":"dc","manta_storage_id":%q}`,
		task.ObjectID, task.Owner, task.MD5Sum, task.Source.MantaStorageID)
	v2 := rebalancer.Task{ObjectID: "ab" + newID()[2:], Owner: task.Owner, BucketID: newID(),
		ObjectNameHash: rebalancer.ObjectNameHash("photos/cat.jpg"), MD5Sum: md5b64(body), Source: src.node()}
	src.mu.Lock()
	src.objects["/"+relPath(v2)] = body
	src.mu.Unlock()
	v2JSON, _ := json.Marshal(v2)
	cases := []struct {
		name, payload string
	}{
		{"array", `["%s",[` + taskJSON + `,"status":"Pending"}]]`},
		{"object", `{"id":"%s","tasks":[` + taskJSON + `,"status":"Pending"}]}`},
		{"no status", `{"id":"%s","tasks":[` + taskJSON + `}]}`},
		{"unknown fields", `{"id":"%s","extra":1,"tasks":[` + taskJSON + `,"color":"blue"}]}`},
		{"dropshot status", `{"id":"%s","tasks":[` + taskJSON + `,"status":{"state":"Pending"}}]}`},
		{"v2", `{"id":"%s","tasks":[` + string(v2JSON) + `]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := newID()
			code, reply := a.post(fmt.Sprintf(c.payload, id))
			if code != http.StatusOK {
				t.Fatalf("POST: %d %s", code, reply)
			}
			if got := a.waitComplete(id); got.Stats.Failed != 0 || got.Stats.Total != 1 {
				t.Fatalf("stats %+v", got.Stats)
			}
		})
	}
	a.checkFile(v2, body)
}

// TestV2Layout: a buckets object is read from the v2 URL and written to the
// v2 path.
func TestV2Layout(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	body := content("bucket object", 999)
	task := rebalancer.Task{ObjectID: "abcd1234-0000-4000-8000-000000000001", Owner: "d50c4fc4-f408-492f-b8bc-a0dd7c73683f",
		BucketID: "9a0a6b3e-0d0e-4c1c-9a7e-3b9f6f7c1d22", ObjectNameHash: "5d41402abc4b2a76b9719d911017c592",
		MD5Sum: md5b64(body), Source: src.node()}
	path := "/v2/d50c4fc4-f408-492f-b8bc-a0dd7c73683f/9a0a6b3e-0d0e-4c1c-9a7e-3b9f6f7c1d22/ab/abcd1234-0000-4000-8000-000000000001,5d41402abc4b2a76b9719d911017c592"
	src.mu.Lock()
	src.objects[path] = body
	src.mu.Unlock()
	id := newID()
	a.mustPost(id, task)
	if got := a.waitComplete(id); got.Stats.Failed != 0 {
		t.Fatalf("stats %+v", got.Stats)
	}
	got, err := os.ReadFile(filepath.Join(a.root, filepath.FromSlash(path)))
	if err != nil || string(got) != string(body) {
		t.Fatalf("v2 file: %v", err)
	}
}

// TestConcurrentSameID: concurrent POSTs of one id give exactly one 200.
func TestConcurrentSameID(t *testing.T) {
	a := startAgent(t, testConfig(t))
	for range 5 {
		id := newID()
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			codes = map[int]int{}
		)
		for range 8 {
			wg.Go(func() {
				code, _ := a.post(rebalancer.AssignmentPayload{ID: id, Tasks: []rebalancer.Task{}})
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if codes[http.StatusOK] != 1 || codes[http.StatusConflict] != 7 {
			t.Fatalf("status codes %v, want one 200 and seven 409", codes)
		}
	}
}

// TestBackpressure: with one worker, 50 assignments are held and the 51st
// gets 503; a duplicate still gets 409; once the queue drains the refused
// id is accepted.
func TestBackpressure(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	cfg.Workers = 1
	a := startAgent(t, cfg)
	g := newGate()
	body := content("bp", 10)
	var ids []string
	for i := range 50 {
		task := src.put(newID(), newID(), body)
		src.handle(task, func(w http.ResponseWriter, r *http.Request) { g.wait(r.Context()); w.Write(body) })
		id := newID()
		a.mustPost(id, task)
		ids = append(ids, id)
		if i == 0 {
			g.arrivals(t, 1) // the first one is running
		}
	}
	late := newID()
	if code, reply := a.post(rebalancer.AssignmentPayload{ID: late, Tasks: []rebalancer.Task{}}); code != http.StatusServiceUnavailable {
		t.Fatalf("51st POST: %d %s, want 503", code, reply)
	}
	if code, _ := a.post(rebalancer.AssignmentPayload{ID: ids[10], Tasks: []rebalancer.Task{}}); code != http.StatusConflict {
		t.Fatalf("duplicate while full: %d, want 409", code)
	}
	if code, _, body := a.get(ids[10]); code != http.StatusOK || body != `{"uuid":"`+ids[10]+`","stats":{"state":"Scheduled","failed":0,"complete":0,"total":1}}` {
		t.Fatalf("GET of a queued assignment: %d %s", code, body)
	}
	var h Health
	_, hb := request(t, http.MethodGet, a.url("/health"), nil)
	if err := json.Unmarshal([]byte(hb), &h); err != nil || h.Running != 1 || h.Scheduled != 49 || h.MaxQueued != 50 {
		t.Fatalf("health %s (%v)", hb, err)
	}
	g.release()
	for _, id := range ids {
		a.waitComplete(id)
	}
	a.mustPost(late)
	a.waitComplete(late)
}

// TestGetStates: Scheduled with zero counters while queued, Running with
// live counters while processing.
func TestGetStates(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	cfg.Workers = 1
	cfg.WorkersPerAssignment = 1
	a := startAgent(t, cfg)
	g := newGate()
	owner := newID()
	first := src.put(owner, newID(), content("first", 10))
	blocked := src.put(owner, newID(), content("second", 10))
	src.handle(blocked, func(w http.ResponseWriter, r *http.Request) { g.wait(r.Context()); w.Write(content("second", 10)) })
	running, queued := newID(), newID()
	a.mustPost(running, first, blocked)
	a.mustPost(queued, src.put(owner, newID(), content("third", 10)))
	g.arrivals(t, 1)
	// The first task's result is recorded by the group commit while the
	// second downloads.
	a.waitUntil(running, "one task recorded", func(got rebalancer.Assignment) bool { return got.Stats.Complete == 1 })
	_, _, body := a.get(running)
	if want := `{"uuid":"` + running + `","stats":{"state":"Running","failed":0,"complete":1,"total":2}}`; body != want {
		t.Fatalf("running: %s, want %s", body, want)
	}
	_, _, body = a.get(queued)
	if want := `{"uuid":"` + queued + `","stats":{"state":"Scheduled","failed":0,"complete":0,"total":1}}`; body != want {
		t.Fatalf("queued: %s, want %s", body, want)
	}
	// Neither can be deleted yet.
	for _, id := range []string{running, queued} {
		if code, _ := request(t, http.MethodDelete, a.url("/assignments/"+id), nil); code != http.StatusForbidden {
			t.Fatalf("DELETE of unfinished %s: %d, want 403", id, code)
		}
	}
	g.release()
	a.waitComplete(running)
	a.waitComplete(queued)
}

// TestRoutesErrors covers the 400, 404 and 405 answers.
func TestRoutesErrors(t *testing.T) {
	a := startAgent(t, testConfig(t))
	cases := []struct {
		method, path string
		want         int
	}{
		{"GET", "/assignments/not-a-uuid", 400},
		{"GET", "/assignments/" + newID() + "x", 400},
		{"GET", "/assignments/" + newID(), 404},
		{"DELETE", "/assignments/nope", 400},
		{"DELETE", "/assignments/" + newID(), 404},
		{"PUT", "/assignments", 405},
		{"PATCH", "/assignments/" + newID(), 405},
		{"POST", "/assignments/" + newID(), 405},
		{"GET", "/assignments?limit=0", 400},
		{"GET", "/assignments?after=x", 400},
		{"GET", "/assignments?state=bogus", 400},
	}
	for _, c := range cases {
		if code, body := request(t, c.method, a.url(c.path), nil); code != c.want {
			t.Errorf("%s %s: %d %q, want %d", c.method, c.path, code, body, c.want)
		}
	}
}

// TestIDForms: ids are canonicalised on POST, GET and DELETE.
func TestIDForms(t *testing.T) {
	a := startAgent(t, testConfig(t))
	id := newID()
	upper := strings.ToUpper(id)
	code, reply := a.post(rebalancer.AssignmentPayload{ID: upper, Tasks: []rebalancer.Task{}})
	if code != http.StatusOK || reply != `"`+id+`"` {
		t.Fatalf("POST: %d %s, want the lowercase id", code, reply)
	}
	a.waitComplete(id)
	for _, form := range []string{upper, strings.ReplaceAll(id, "-", ""), strings.ToUpper(strings.ReplaceAll(id, "-", ""))} {
		code, got, _ := a.get(form)
		if code != http.StatusOK || got.UUID != id {
			t.Fatalf("GET %s: %d %+v", form, code, got)
		}
	}
	if code, _ := request(t, http.MethodDelete, a.url("/assignments/"+strings.ReplaceAll(upper, "-", "")), nil); code != http.StatusOK {
		t.Fatalf("DELETE by the simple form: %d", code)
	}
}

// TestInvalidPayloads: what is not an assignment, or could reach outside
// the root, gets 400, and nothing is written anywhere.
func TestInvalidPayloads(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	cfg.MaxBodyBytes = 4096
	a := startAgent(t, cfg)
	good := src.put(newID(), newID(), content("good", 10))
	with := func(f func(*rebalancer.Task)) rebalancer.Task { t := good; f(&t); return t }
	traversal := []rebalancer.Task{
		with(func(t *rebalancer.Task) { t.Owner = ".." }),
		with(func(t *rebalancer.Task) { t.Owner = "." }),
		with(func(t *rebalancer.Task) { t.Owner = "" }),
		with(func(t *rebalancer.Task) { t.Owner = "../../etc" }),
		with(func(t *rebalancer.Task) { t.Owner = "a/b" }),
		with(func(t *rebalancer.Task) { t.Owner = ".rebalancer-tmp" }),
		with(func(t *rebalancer.Task) { t.Owner = strings.Repeat("a", 256) }),
		with(func(t *rebalancer.Task) { t.Owner = "nul\x00byte" }),
		with(func(t *rebalancer.Task) { t.Owner = "üñí" }),
		with(func(t *rebalancer.Task) { t.ObjectID = "../../../tmp/evil" }),
		with(func(t *rebalancer.Task) { t.ObjectID = "/etc/passwd" }),
		with(func(t *rebalancer.Task) { t.ObjectID = `..\..\x` }),
		with(func(t *rebalancer.Task) { t.ObjectID = ".." }),
		with(func(t *rebalancer.Task) { t.BucketID = ".."; t.ObjectNameHash = "5d41402abc4b2a76b9719d911017c592" }),
		with(func(t *rebalancer.Task) { t.BucketID = newID(); t.ObjectNameHash = "../../../../etc/passwd" }),
		with(func(t *rebalancer.Task) { t.BucketID = newID(); t.ObjectNameHash = "5D41402ABC4B2A76B9719D911017C592" }),
		with(func(t *rebalancer.Task) { t.BucketID = newID() }),
		with(func(t *rebalancer.Task) { t.ObjectNameHash = "5d41402abc4b2a76b9719d911017c592" }),
		with(func(t *rebalancer.Task) {
			t.ObjectID = "a"
			t.BucketID = newID()
			t.ObjectNameHash = "5d41402abc4b2a76b9719d911017c592"
		}),
		with(func(t *rebalancer.Task) { t.Source.MantaStorageID = "evil.example.com/x?y=" }),
		with(func(t *rebalancer.Task) { t.Source.MantaStorageID = "user@host" }),
		with(func(t *rebalancer.Task) { t.Source.MantaStorageID = "host:80:80" }),
		with(func(t *rebalancer.Task) { t.Source.MantaStorageID = "host:99999" }),
		with(func(t *rebalancer.Task) { t.Source.MantaStorageID = "" }),
	}
	var payloads []string
	for _, task := range traversal {
		b, _ := json.Marshal(rebalancer.AssignmentPayload{ID: newID(), Tasks: []rebalancer.Task{good, task}})
		payloads = append(payloads, string(b))
	}
	dupID, _ := json.Marshal(rebalancer.AssignmentPayload{ID: newID(), Tasks: []rebalancer.Task{good, good}})
	payloads = append(payloads,
		string(dupID),
		`{"id":"../../x","tasks":[]}`,
		`{"id":"not-a-uuid","tasks":[]}`,
		`{"id":"{`+newID()+`}","tasks":[]}`,
		`{"id":"urn:uuid:`+newID()+`","tasks":[]}`,
		`{"id":"`+newID()+`"}`,
		`{"tasks":[]}`,
		`{"id":"`+newID()+`","tasks":null}`,
		`["`+newID()+`"]`,
		`not json`,
		``,
		`{"id":"`+newID()+`","tasks":[{"object_id":"x","owner":"y","md5sum":"z","source":{"datacenter":"d","manta_storage_id":"h"},"status":"Running"}]}`,
		`{"id":"`+newID()+`","tasks":[`+strings.Repeat(`{"object_id":"x"},`, 500)+`{}]}`,
	)
	for _, p := range payloads {
		if code, body := a.post(p); code != http.StatusBadRequest {
			t.Errorf("POST %.120s: %d %s, want 400", p, code, body)
		}
	}
	// Nothing was stored, queued or written.
	var l List
	_, lb := request(t, http.MethodGet, a.url("/assignments"), nil)
	if err := json.Unmarshal([]byte(lb), &l); err != nil || len(l.Assignments) != 0 {
		t.Fatalf("assignments after rejected posts: %s", lb)
	}
	var found []string
	filepath.WalkDir(filepath.Dir(a.root), func(p string, d os.DirEntry, err error) error {
		if p != filepath.Dir(a.root) && !strings.HasPrefix(p, a.dataDir) && p != a.root && p != filepath.Join(a.root, TempDirName) {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != 0 {
		t.Fatalf("files written: %v", found)
	}
	if n := src.hitCount(good); n != 0 {
		t.Fatalf("source contacted %d times", n)
	}
}

// TestToken: with a token, the assignment routes need it and /health does
// not.
func TestToken(t *testing.T) {
	cfg := testConfig(t)
	cfg.Token = "s3cret"
	a := startAgent(t, cfg)
	id := newID()
	body := `{"id":"` + id + `","tasks":[]}`
	if code, _ := request(t, http.MethodPost, a.url("/assignments"), strings.NewReader(body)); code != http.StatusUnauthorized {
		t.Fatalf("POST without token: %d", code)
	}
	if code, _ := request(t, http.MethodPost, a.url("/assignments"), strings.NewReader(body), "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
		t.Fatalf("POST with a wrong token: %d", code)
	}
	if code, _ := request(t, http.MethodPost, a.url("/assignments"), strings.NewReader(body), "Authorization", "Bearer s3cret"); code != http.StatusOK {
		t.Fatalf("POST with the token: %d", code)
	}
	if code, _ := request(t, http.MethodGet, a.url("/assignments/"+id), nil); code != http.StatusUnauthorized {
		t.Fatalf("GET without token: %d", code)
	}
	if code, _ := request(t, http.MethodGet, a.url("/health"), nil); code != http.StatusOK {
		t.Fatalf("health without token: %d", code)
	}
}

// TestList pages through assignments in accepted order.
func TestList(t *testing.T) {
	a := startAgent(t, testConfig(t))
	var ids []string
	for range 5 {
		id := newID()
		a.mustPost(id)
		ids = append(ids, id)
	}
	for _, id := range ids {
		a.waitComplete(id)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		url := a.url("/assignments?limit=2")
		if after != "" {
			url += "&after=" + after
		}
		code, body := request(t, http.MethodGet, url, nil)
		var l List
		if code != http.StatusOK || json.Unmarshal([]byte(body), &l) != nil {
			t.Fatalf("list: %d %s", code, body)
		}
		for _, s := range l.Assignments {
			if s.State != "Complete" || s.Completed == nil {
				t.Fatalf("summary %+v", s)
			}
			got = append(got, s.UUID)
		}
		if l.Next == "" {
			break
		}
		after = l.Next
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("listed %v, want %v", got, ids)
	}
	code, body := request(t, http.MethodGet, a.url("/assignments?state=running"), nil)
	if code != http.StatusOK || body != `{"assignments":[]}` {
		t.Fatalf("running list: %d %s", code, body)
	}
}

// TestBodyTooLarge: bodies over the limit are refused with 400.
func TestBodyTooLarge(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBodyBytes = 100
	a := startAgent(t, cfg)
	code, body := a.post(`{"id":"` + newID() + `","tasks":[],"pad":"` + strings.Repeat("x", 200) + `"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "larger than 100 bytes") {
		t.Fatalf("POST: %d %q", code, body)
	}
}

// TestTempCleanupOnStartup: the temp directory is emptied at startup, at
// any depth, and nothing else under the root is touched.
func TestTempCleanupOnStartup(t *testing.T) {
	cfg := testConfig(t)
	tmp := filepath.Join(cfg.Root, TempDirName)
	keep := filepath.Join(cfg.Root, "owner", "object.tmp")
	for _, p := range []string{
		filepath.Join(tmp, "a.tmp"),
		filepath.Join(tmp, "d1", "b.tmp"),
		filepath.Join(tmp, "d1", "d2", "d3", "c.tmp"),
		keep,
	} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := startAgent(t, cfg)
	a.checkTempEmpty()
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("file outside the temp directory removed: %v", err)
	}
}

// TestNewErrors: a missing root or a temp path that is not a directory
// stops the agent from starting.
func TestNewErrors(t *testing.T) {
	cfg := testConfig(t)
	missing := cfg
	missing.Root = filepath.Join(cfg.Root, "nope")
	if _, err := New(missing, nil); err == nil {
		t.Fatal("New with a missing root succeeded")
	}
	if err := os.WriteFile(filepath.Join(cfg.Root, TempDirName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("New with a file as temp dir: %v", err)
	}
	relative := testConfig(t)
	relative.Root = "manta"
	if _, err := New(relative, nil); err == nil {
		t.Fatal("New with a relative root succeeded")
	}
}

// TestRunTwice: Run may be called once.
func TestRunTwice(t *testing.T) {
	s, err := New(testConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if err := s.Run(ctx); err == nil {
		t.Fatal("second Run succeeded")
	}
}
