package evacuate

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
)

type apiHarness struct {
	*harness
	srv      *httptest.Server
	snaplink atomic.Bool
}

func newAPIHarness(t *testing.T, n int) *apiHarness {
	h := &apiHarness{harness: newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), n, nil)}
	api := &API{
		Engine: h.engine, Domain: "test", Version: "9.9.9", Metrics: h.engine.cfg.Metrics, Logger: quietLogger(),
		SnaplinkCleanupRequired: h.snaplink.Load,
	}
	h.srv = httptest.NewServer(api.Handler())
	t.Cleanup(h.srv.Close)
	return h
}

func (h *apiHarness) do(method, path, body string) (int, string, http.Header) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestAPICreateAndStatus(t *testing.T) {
	h := newAPIHarness(t, 60)
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
	var objs []objectEntry
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
	h := newAPIHarness(t, 5)
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
		{"bad options", "POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor","options":{"metadata_threads":300}}}`, 400, "metadata threads"},
		{"bad uuid", "GET", "/jobs/nope", "", 400, "Invalid UUID"},
		{"unknown job", "GET", "/jobs/" + unknown, "", 404, unknown},
		{"put bad uuid", "PUT", "/jobs/nope", `{}`, 400, `Invalid UUID "nope"`},
		{"put unknown", "PUT", "/jobs/" + unknown, `{"action":"set_metadata_threads","params":3}`, 400, "Could not find job " + unknown},
		{"retry bad uuid", "POST", "/jobs/nope/retry", "", 400, "Invalid UUID"},
		{"retry unknown", "POST", "/jobs/" + unknown + "/retry", "", 404, unknown},
		{"stop unknown", "POST", "/jobs/" + unknown + "/stop", "", 404, unknown},
		{"objects bad status", "GET", "/jobs/" + unknown + "/objects?status=bogus", "", 400, "status"},
		{"wrong method", "DELETE", "/jobs", "", 405, ""},
		{"no route", "GET", "/nope", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := h.do(tt.method, tt.path, tt.body)
			if code != tt.code || !strings.Contains(body, tt.contains) {
				t.Errorf("%s %s: %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.contains)
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
	h := newAPIHarness(t, 200)
	h.agents.slow = true
	code, body, _ := h.do("POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor.test"}}`)
	if code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	id := strings.TrimSpace(body)
	// Claimed is not enough: PUT wants the job past its setup.
	waitFor(t, func() bool {
		j, err := h.store.GetJob(t.Context(), id)
		return err == nil && j.State == rebalancer.JobRunning && h.engine.isRunning(id)
	})
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
	if j, _ := h.store.GetJob(t.Context(), id); j.Options.MetadataThreads != 30 {
		t.Errorf("metadata threads %d after PUT", j.Options.MetadataThreads)
	}
	if code, body, _ := h.do("POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor.test"}}`); code != 409 {
		t.Errorf("second job on the shark: %d %q", code, body)
	}
	if code, _, _ := h.do("POST", "/jobs/"+id+"/pause", ""); code != 200 {
		t.Errorf("pause: %d", code)
	}
	if code, _, _ := h.do("POST", "/jobs/"+id+"/resume", ""); code != 200 {
		t.Errorf("resume: %d", code)
	}
	if code, body, _ := h.do("POST", "/jobs/"+id+"/retry", ""); code != 409 {
		t.Errorf("retry of a running job: %d %q", code, body)
	}
	if code, _, _ := h.do("POST", "/jobs/"+id+"/stop", ""); code != 200 {
		t.Errorf("stop: %d", code)
	}
	h.agents.mu.Lock()
	h.agents.slow = false
	h.agents.mu.Unlock()
	h.wait(id)
	if code, body, _ := h.do("PUT", "/jobs/"+id, `{"action":"set_metadata_threads","params":3}`); code != 400 || body != "Attempt to update job that is not running" {
		t.Errorf("PUT on a stopped job: %d %q", code, body)
	}
	if code, _, _ := h.do("POST", "/jobs/"+id+"/pause", ""); code != 409 {
		t.Errorf("pause of a stopped job: %d", code)
	}
}
