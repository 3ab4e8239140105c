package jobapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/sqlitestore"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

func TestAPICreateAndStatus(t *testing.T) {
	h := newHarness(t, 60)
	code, body, hdr := h.do("POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor","max_objects":null}}`)
	if code != 200 || !strings.HasSuffix(body, "\n") {
		t.Fatalf("create: %d %q", code, body)
	}
	id := strings.TrimSpace(body)
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("create returned %q", body)
	}
	if hdr.Get("Server") != "rebalancer-manager 9.9.9" || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", hdr)
	}
	j := h.wait(id)
	if j.From.MantaStorageID != "1.stor.test" {
		t.Errorf("short shark name not qualified: %q", j.From.MantaStorageID)
	}

	code, body, _ = h.do("GET", "/jobs/"+strings.ToUpper(id), "")
	if code != 200 {
		t.Fatalf("status: %d %s", code, body)
	}
	var doc struct {
		Config struct {
			Action    string            `json:"action"`
			FromShark map[string]string `json:"from_shark"`
		} `json:"config"`
		Results map[string]json.RawMessage `json:"results"`
		State   string                     `json:"state"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Config.Action != "Evacuate" || doc.State != "Complete" || doc.Config.FromShark["datacenter"] != "dc1" {
		t.Errorf("status document %s", body)
	}
	for _, k := range []string{"Unprocessed", "Assigned", "Skipped", "Error", "Post Processing", "Complete", "Duplicates", "Total"} {
		if _, ok := doc.Results[k]; !ok {
			t.Errorf("results lack %q: %s", k, body)
		}
	}
	if string(doc.Results["Complete"]) != "60" || string(doc.Results["Total"]) != "60" {
		t.Errorf("results %s", body)
	}

	code, body, _ = h.do("GET", "/jobs", "")
	var list []map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 ||
		list[0]["id"] != id || list[0]["action"] != "Evacuate" || list[0]["state"] != "Complete" {
		t.Errorf("list: %d %s", code, body)
	}

	code, body, _ = h.do("GET", "/jobs/"+id+"/objects?status=complete&limit=5", "")
	var objs []Object
	if code != 200 || json.Unmarshal([]byte(body), &objs) != nil || len(objs) != 5 || objs[0].DestShark == "" {
		t.Errorf("objects: %d %s", code, body)
	}

	code, body, _ = h.do("POST", "/jobs/"+id+"/retry", "")
	if code != 200 || len(strings.TrimSpace(body)) != 36 || strings.TrimSpace(body) == id {
		t.Errorf("retry: %d %q", code, body)
	}
	h.wait(strings.TrimSpace(body))
}

func TestAPIErrors(t *testing.T) {
	h := newHarness(t, 5)
	unknown := uuid.NewString()
	tests := []struct {
		name, method, path, body string
		code                     int
		contains                 string
	}{
		{"bad json", "POST", "/jobs", `{"action":`, 422, "Could not parse"},
		{"unknown action", "POST", "/jobs", `{"action":"delete","params":{"from_shark":"1.stor"}}`, 422, "unknown action"},
		{"no shark", "POST", "/jobs", `{"action":"evacuate","params":{}}`, 422, "from_shark"},
		{"no params", "POST", "/jobs", `{"action":"evacuate"}`, 422, "from_shark"},
		{"negative max", "POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor","max_objects":-1}}`, 422, "max_objects"},
		{"huge max", "POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor","max_objects":4294967296}}`, 422, "max_objects"},
		{"bad options", "POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor","options":{"metadata_threads":300}}}`, 422, "metadata_threads 300 is out of range 1..250"},
		{"bad uuid", "GET", "/jobs/nope", "", 400, "Invalid UUID"},
		{"unknown job", "GET", "/jobs/" + unknown, "", 404, unknown},
		{"put bad uuid", "PUT", "/jobs/nope", `{}`, 400, `Invalid UUID "nope"`},
		{"put unknown", "PUT", "/jobs/" + unknown, `{"action":"set_metadata_threads","params":3}`, 400, "Could not find job " + unknown},
		{"retry bad uuid", "POST", "/jobs/nope/retry", "", 400, "Invalid UUID"},
		{"retry unknown", "POST", "/jobs/" + unknown + "/retry", "", 404, unknown},
		{"stop unknown", "POST", "/jobs/" + unknown + "/stop", "", 404, unknown},
		{"objects bad status", "GET", "/jobs/" + unknown + "/objects?status=bogus", "", 400, "status"},
		// No route: a message that says where the routes are, labelled
		// JSON as every reply (the legacy's body was empty).
		{"wrong method", "DELETE", "/jobs", "", 405, "Method DELETE is not allowed on /jobs: it takes GET, HEAD, POST (docs/api.md lists the routes)"},
		{"wrong method on a job", "POST", "/jobs/" + unknown, "", 405, "it takes GET, HEAD, PUT"},
		{"no route", "GET", "/nope", "", 404, "No route GET /nope: the job API's routes are under /jobs (docs/api.md); the status page is at /"},
		{"metrics on the API port", "GET", "/metrics", "", 404, "the manager's metrics are on its metrics port (metrics_port, 8878 by default; --metrics-listen)"},
		{"no route under a job", "GET", "/jobs/" + unknown + "/nope", "", 404, "No route GET /jobs/" + unknown + "/nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, hdr := h.do(tt.method, tt.path, tt.body)
			if code != tt.code || !strings.Contains(body, tt.contains) {
				t.Errorf("%s %s: %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.contains)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s %s: Content-Type %q", tt.method, tt.path, ct)
			}
			if strings.Count(body, "\n") > 0 || (code == 405) != (hdr.Get("Allow") != "") {
				t.Errorf("%s %s: body %q, Allow %q", tt.method, tt.path, body, hdr.Get("Allow"))
			}
		})
	}

	// The snaplink gate answers before the body is even read.
	h.snaplink.Store(true)
	if code, body, _ := h.do("POST", "/jobs", `garbage`); code != 500 || body != "Snaplink Cleanup Required" {
		t.Errorf("snaplink gate: %d %q", code, body)
	}
	h.snaplink.Store(false)
}

func TestAPIUpdateAndControl(t *testing.T) {
	h := newHarness(t, 200)
	h.agents.SetSlow(true)
	code, body, _ := h.do("POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor.test"}}`)
	if code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	id := strings.TrimSpace(body)
	// Claimed is not enough: PUT wants the job past its setup.
	h.running(id)
	for _, tt := range []struct {
		body, contains string
		code           int
	}{
		{`{"action":"set_metadata_threads","params":0}`, "below 1", 400},
		{`{"action":"set_metadata_threads","params":251}`, "above 250", 400},
		{`{"action":"set_metadata_threads","params":"x"}`, "Could not parse Evacuate Update Message", 422},
		{`{"action":"other","params":3}`, "Could not parse Evacuate Update Message", 422},
		{`{"action":"set_metadata_threads","params":30}`, "", 200},
	} {
		if code, body, _ := h.do("PUT", "/jobs/"+id, tt.body); code != tt.code || !strings.Contains(body, tt.contains) {
			t.Errorf("PUT %s: %d %q", tt.body, code, body)
		}
	}
	if j := h.job(id); j.Options.MetadataThreads != 30 {
		t.Errorf("metadata threads %d after PUT", j.Options.MetadataThreads)
	}
	// The refusals say which job and what to do about it.
	for _, tt := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor.test"}}`, 409,
			"Could not create job: shark 1.stor.test is being evacuated by job " + id + ": follow it with \"rebalancer-adm job watch " + id +
				"\", or stop it with \"rebalancer-adm job stop " + id + "\" first"},
		{"POST", "/jobs/" + id + "/resume", "", 409, "Cannot resume job " + id + ": it is not paused"},
		{"POST", "/jobs/" + id + "/retry", "", 409, "Could not retry job: job " + id + " is still running: wait for it to end, or stop it, then retry it"},
		{"POST", "/jobs/" + id + "/pause", "", 200, ""},
		{"POST", "/jobs/" + id + "/pause", "", 409, "Cannot pause job " + id + ": it is already paused"},
		{"POST", "/jobs/" + id + "/retry", "", 409, "Could not retry job: job " + id + " is paused, not ended: resume it, or stop it, and retry it once it has ended"},
		{"POST", "/jobs/" + id + "/resume", "", 200, ""},
		{"POST", "/jobs/" + id + "/resume", "", 409, "Cannot resume job " + id + ": it is not paused"},
		{"POST", "/jobs/" + id + "/stop", "", 200, ""},
		{"POST", "/jobs/" + id + "/stop", "", 200, ""}, // again: it is stopping already
		{"POST", "/jobs/" + id + "/pause", "", 409, "Cannot pause job " + id + ": it is stopping"},
		{"POST", "/jobs/" + id + "/retry", "", 409, "Could not retry job: job " + id + " is stopping: it can be retried once it has ended (Stopped)"},
	} {
		if code, body, _ := h.do(tt.method, tt.path, tt.body); code != tt.code || body != tt.want && tt.code != 200 {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, code, body, tt.code, tt.want)
		}
	}
	var list []Job
	if code, body, _ := h.do("GET", "/jobs", ""); code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || !list[0].Stopping {
		t.Errorf("list while stopping: %d %s", code, body)
	}
	if st, err := ParseJobStatus([]byte(h.get("/jobs/" + id))); err != nil || !st.Stopping || st.Progress.ETASeconds != nil {
		t.Errorf("status while stopping: %+v %v", st, err)
	}
	h.agents.SetSlow(false)
	h.wait(id)
	if code, body, _ := h.do("PUT", "/jobs/"+id, `{"action":"set_metadata_threads","params":3}`); code != 400 || body != "Attempt to update job that is not running" {
		t.Errorf("PUT on a stopped job: %d %q", code, body)
	}
	if code, _, _ := h.do("POST", "/jobs/"+id+"/pause", ""); code != 409 {
		t.Errorf("pause of a stopped job: %d", code)
	}
}

// Every option a create request gives is checked against its documented
// range, unknown keys are refused at any depth, and the errors name the
// option and its range; what is accepted is stored as given.
func TestAPIJobOptions(t *testing.T) {
	h := newHarness(t, 5)
	create := func(options string) (int, string) {
		code, body, _ := h.do("POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor","options":`+options+`}}`)
		return code, body
	}
	for _, tt := range []struct {
		options, want string
	}{
		{`{"assignment_timeout":"1ns"}`, "params.options.assignment_timeout 1ns is out of range 1m..720h (shorter than copying"},
		{`{"assignment_timeout":"59s"}`, "assignment_timeout 59s is out of range 1m..720h"},
		{`{"assignment_timeout":"0s"}`, "assignment_timeout 0s is out of range"},
		{`{"assignment_timeout":"-1h"}`, "assignment_timeout -1h is out of range 1m..720h"},
		{`{"assignment_timeout":1e300}`, "params.options.assignment_timeout: duration 1e+300 seconds is out of range"},
		{`{"assignment_timeout":"soon"}`, "params.options.assignment_timeout: time: invalid duration"},
		{`{"assignment_timeout":true}`, "params.options.assignment_timeout: duration must be a string"},
		{`{"poll_interval":"-1s"}`, "poll_interval -1s is out of range 10ms..10m"},
		{`{"poll_interval":"1ms"}`, "poll_interval 1ms is out of range 10ms..10m"},
		{`{"flush_age":"2h"}`, "flush_age 2h is out of range 1ms..1h"},
		{`{"agent_unreachable_timeout":"500ms"}`, "agent_unreachable_timeout 500ms is out of range 1s..24h"},
		{`{"metadata_retry_window":0}`, "metadata_retry_window 0s is out of range 1s..24h"},
		{`{"etag_retries":-1}`, "etag_retries -1 is out of range 1..100"},
		{`{"etag_retries":0}`, "etag_retries 0 is out of range 1..100"},
		{`{"etag_retries":1.5}`, "params.options.etag_retries: number 1.5 is not an integer"},
		{`{"max_attempts":0}`, "max_attempts 0 is out of range 1..100"},
		{`{"max_tasks_per_assignment":10001}`, "max_tasks_per_assignment 10001 is out of range 1..10000"},
		{`{"max_inflight_per_source":-1}`, "max_inflight_per_source -1 is out of range 0..100000"},
		{`{"poll_concurrency":"8"}`, "params.options.poll_concurrency: string is not an integer"},
		{`{"busy_backoff":{"tries":-1}}`, "params.options.busy_backoff.tries -1 is out of range 1..10000"},
		{`{"busy_backoff":{"initial":"0s"}}`, "busy_backoff.initial 0s is out of range 1ms..1h"},
		{`{"unreachable_backoff":{"max":"-1s"}}`, "unreachable_backoff.max -1s is out of range 0s..24h"},
		{`{"busy_backoff":{"tires":5}}`, "params.options.busy_backoff.tires is not an option (params.options.busy_backoff takes initial, max, step, tries)"},
		{`{"busy_backoff":5}`, "params.options.busy_backoff must be a JSON object"},
		{`{"assignment_timout":"2h"}`, "params.options.assignment_timout is not an option"},
		{`[]`, "params.options must be a JSON object"},
		{`{"exclude_key_prefixes":[""]}`, "exclude_key_prefixes entries must be 1..1024 bytes long"},
		{`{"metadata_threads":2,"poll_interval":"1ns","max_attempts":-3}`, "max_attempts -3 is out of range 1..100; params.options.poll_interval 1ns"},
	} {
		code, body := create(tt.options)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, tt.want) {
			t.Errorf("options %s: %d %q, want 422 containing %q", tt.options, code, body, tt.want)
		}
	}
	if n := h.jobs(); n != 0 {
		t.Fatalf("%d jobs stored by refused requests", n)
	}

	// Accepted values, at the edges of their ranges, are stored as given;
	// null leaves an option as it is.
	code, body := create(`{"assignment_timeout":"1m","poll_interval":"10ms","etag_retries":100,"max_inflight_per_source":0,
		"busy_backoff":{"tries":1,"initial":"1ms"},"metadata_threads":null,"unreachable_backoff":null,"exclude_key_prefixes":["/stor/logs/"]}`)
	if code != http.StatusOK {
		t.Fatalf("create at the edges: %d %s", code, body)
	}
	j := h.wait(strings.TrimSpace(body))
	want := testbed.FastJobOptions()
	want.AssignmentTimeout = evacuate.Duration(time.Minute)
	want.PollInterval = evacuate.Duration(10 * time.Millisecond)
	want.EtagRetries = 100
	want.BusyBackoff.Tries, want.BusyBackoff.Initial = 1, evacuate.Duration(time.Millisecond)
	want.ExcludeKeyPrefixes = []string{"/stor/logs/"}
	if !reflect.DeepEqual(j.Options, want) {
		t.Errorf("stored options\n%+v\nwant\n%+v", j.Options, want)
	}
}

// A request refused for any reason leaves no job behind (the legacy stored
// a Failed job for each refused create).
func TestRefusedRequestsStoreNothing(t *testing.T) {
	h := newHarness(t, 50)
	h.agents.SetSlow(true)
	code, body, _ := h.do("POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor"}}`)
	if code != http.StatusOK {
		t.Fatalf("create: %d %s", code, body)
	}
	id := strings.TrimSpace(body)
	h.running(id)
	_, before, _ := h.do("GET", "/jobs", "")
	refusals := []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor"}}`, 409},
		{"POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor.test","dry_run":true}}`, 409},
		{"POST", "/jobs/" + id + "/retry", "", 409},
		{"POST", "/jobs/" + uuid.NewString() + "/retry", "", 404},
		{"POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"2.stor","options":{"assignment_timeout":"1ns"}}}`, 422},
		{"POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"2.stor","options":{"bogus":1}}}`, 422},
		{"POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"2.stor","max_objects":-1}}`, 422},
		{"POST", "/jobs", `{"action":"evacuate"`, 422},
	}
	for i := range 200 {
		r := refusals[i%len(refusals)]
		if code, body, _ := h.do(r.method, r.path, r.body); code != r.code {
			t.Fatalf("%s %s %s: %d %q, want %d", r.method, r.path, r.body, code, body, r.code)
		}
	}
	if _, after, _ := h.do("GET", "/jobs", ""); after != before {
		t.Errorf("job list changed by 200 refused requests:\nbefore %s\nafter  %s", before, after)
	}
	if err := h.engine.StopJob(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	h.agents.SetSlow(false)
	h.wait(id)

	// A closing engine refuses too, and stores nothing either.
	h.engine.Close()
	code, body, _ = h.do("POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"2.stor"}}`)
	if code != http.StatusServiceUnavailable {
		t.Errorf("create on a closed engine: %d %q", code, body)
	}
	if n := h.jobs(); n != 1 {
		t.Errorf("%d jobs stored, want 1", n)
	}
}

// The documents are byte for byte what the manager wrote before they had
// types of their own (testdata/wire.jsonl was written by that code), with
// the changes made since on purpose (error and retry_of always present,
// stopping, eta_estimated: issue 21): a running job with errors, skips and
// duplicates, a finished dry run, a job that has not started, a job list
// and an object list.
func TestWireFormat(t *testing.T) {
	b, err := os.ReadFile("testdata/wire.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(string(b)), "\n")
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6000000, time.UTC)
	pct, proj := 41.0, 41.25
	statuses := []evacuate.Status{
		{Job: evacuate.JobRecord{ID: "1b4f0000-0000-4000-8000-000000000000", Action: rebalancer.JobEvacuate, State: rebalancer.JobRunning,
			From: rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "1.stor.x"}, Options: evacuate.DefaultOptions(), RetryOf: "r", Error: "e",
			DiscoveryDone: true, CreatedAt: t0, StartedAt: t0.Add(time.Second), UpdatedAt: t0.Add(2 * time.Second)},
			Counts: []evacuate.Count{{Status: "complete", N: 996, Bytes: 4079616}, {Status: "error", Reason: "moray_etag_mismatch", N: 1, Bytes: 10},
				{Status: "error", Reason: "bad_shard_number", N: 2}, {Status: "skipped", Reason: "source_is_evac_shark", N: 3, Bytes: 30},
				{Status: "unprocessed", N: 5, Bytes: 50}, {Status: "skipped", Reason: "{http_status_code:500}", N: 1}},
			Duplicates: 2, Running: true, ObjectsPerSecond: 3120.456, BytesPerSecond: 12781568.7, HasETA: true, ETA: 1500 * time.Millisecond},
		{Job: evacuate.JobRecord{ID: "2", Action: rebalancer.JobEvacuate, State: rebalancer.JobComplete, From: rebalancer.StorageNode{MantaStorageID: "1.stor.x"},
			Options: evacuate.Options{DryRun: true}, CreatedAt: t0, StartedAt: t0, FinishedAt: t0.Add(time.Minute)},
			Counts: []evacuate.Count{{Status: "unprocessed", N: 10, Bytes: 100}},
			DryRun: &evacuate.DryRunReport{Objects: 10, Bytes: 100, SingleCopy: 1, Destinations: map[string]evacuate.DryRunDestination{
				"2.stor": {Objects: 5, Bytes: 50, PercentUsed: &pct, ProjectedPercentUsed: &proj}, "3.stor": {Objects: 5, Bytes: 50}}}},
		{Job: evacuate.JobRecord{ID: "3", Action: rebalancer.JobEvacuate, State: rebalancer.JobSetup}},
	}
	var got []any
	for _, st := range statuses {
		got = append(got, newJobStatus(st))
	}
	got = append(got,
		[]Job{{ID: "a", Action: rebalancer.JobEvacuate, State: rebalancer.JobPaused, FromShark: rebalancer.StorageNode{MantaStorageID: "s"}, Created: "c"},
			{ID: "b", Action: rebalancer.JobEvacuate, State: rebalancer.JobSetup, RetryOf: "a"}},
		[]Object{{ID: "o", Key: "k", Shard: 1, Status: "skipped", SkippedReason: "x", Attempts: 2, ContentLength: 3, Seq: 4}, {ID: "p", Status: "complete"}})
	if len(got) != len(want) {
		t.Fatalf("%d documents, %d in testdata", len(got), len(want))
	}
	for i, v := range got {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want[i] {
			t.Errorf("document %d:\n got %s\nwant %s", i, b, want[i])
		}
		// And the Client reads back what the Server wrote.
		if st, ok := v.(JobStatus); ok {
			back, err := ParseJobStatus(b)
			if err != nil || !reflect.DeepEqual(*back, st) {
				t.Errorf("document %d read back as %+v, %v", i, back, err)
			}
		}
	}
}

// Every object status has its place in the legacy results.
func TestResultsCountEveryStatus(t *testing.T) {
	for _, st := range rebalancer.ObjectStatuses() {
		var r Results
		if p := r.count(st); p == nil {
			t.Errorf("no count for %v", st)
		} else {
			*p = 7
		}
		b, _ := json.Marshal(r)
		if !strings.Contains(string(b), `"`+st.Title()+`":7`) {
			t.Errorf("%v counted as %s", st, b)
		}
	}
}

// While the job store fails, /health answers 503 saying why, and a running
// job's status says it is held up; both through the Client too.
func TestStoreFailureShown(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlitestore.Open(t.Context(), filepath.Join(dir, "jobs.db"), evacuate.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := newFleet(50)
	f.agents.SetSlow(true)
	e := f.engine(t, st, nil)
	t.Cleanup(e.Close)
	srv := httptest.NewServer((&Server{Engine: e, Logger: testutil.Discard()}).Handler())
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(t.Context()); err != nil {
		t.Fatalf("Health of a working store: %v", err)
	}
	j, err := e.CreateJob(t.Context(), fakes.Shark(1).MantaStorageID, evacuate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "an assignment posted", func() bool { return f.agents.Posts() > 0 })
	for _, name := range []string{"jobs.db", "jobs.db-wal", "jobs.db-shm"} {
		os.Remove(filepath.Join(dir, name))
	}
	const why = "was deleted while in use"
	testutil.Poll(t, "the store failure reported", func() error {
		code, body, _ := do(t, srv.Client(), "GET", srv.URL+"/health", "")
		var h Health
		if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &h) != nil || h.Status != "error" || !strings.Contains(h.Error, why) {
			return fmt.Errorf("GET /health: %d %s", code, body)
		}
		if err := c.Health(t.Context()); !isStatus(err, http.StatusServiceUnavailable) || !strings.Contains(err.Error(), why) {
			return fmt.Errorf("Client.Health: %v", err)
		}
		// The job says it is held up, by the health check's finding or by
		// a failure of its own to read the store, whichever came first.
		st, err := c.JobStatus(t.Context(), j.ID)
		if err != nil || !strings.Contains(st.Error, "held up by the job store") {
			return fmt.Errorf("Client.JobStatus: %+v, %v", st, err)
		}
		return nil
	})
}

func isStatus(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
