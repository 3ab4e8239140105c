package jobapi

import (
	"strings"
	"testing"
)

// PUT on a job with static metadata threads answers as the legacy does, in
// the legacy's order: the uuid, the job, whether it runs, then whether it
// takes updates at all, before its body is read.
func TestAPIUpdateStaticJob(t *testing.T) {
	h := newHarness(t, 50)
	h.agents.SetSlow(true)
	code, body, _ := h.do("POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor.test",`+
		`"options":{"static_metadata_threads":true,"static_queue_depth":3}}}`)
	if code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	id := strings.TrimSpace(body)
	h.running(id)
	static := "Job (" + id + ") does not support dynamic configuration updates"
	for _, tt := range []struct {
		path, body, want string
		code             int
	}{
		{"/jobs/nope", `{"action":"set_metadata_threads","params":3}`, `Invalid UUID "nope"`, 400},
		{"/jobs/" + strings.ToUpper(id), `{"action":"set_metadata_threads","params":3}`, static, 400},
		{"/jobs/" + id, `{"action":"set_metadata_threads","params":3}`, static, 400},
		// Refused before the body is read: a body that would be a 422 or a
		// 400 out of range does not change the answer.
		{"/jobs/" + id, `not json`, static, 400},
		{"/jobs/" + id, `{"action":"set_metadata_threads","params":0}`, static, 400},
	} {
		if code, body, _ := h.do("PUT", tt.path, tt.body); code != tt.code || !strings.HasPrefix(body, tt.want) {
			t.Errorf("PUT %s %s: %d %q, want %d %q", tt.path, tt.body, code, body, tt.code, tt.want)
		}
	}
	j := h.job(id)
	if !j.Options.StaticMetadataThreads || j.Options.StaticQueueDepth != 3 || j.Options.MetadataThreads != h.engine.Defaults().MetadataThreads {
		t.Errorf("options after the refused updates: %+v", j.Options)
	}
	if code, _, _ := h.do("POST", "/jobs/"+id+"/stop", ""); code != 200 {
		t.Fatalf("stop: %d", code)
	}
	h.agents.SetSlow(false)
	h.wait(id)
	// Not running comes first, as in the legacy.
	if code, body, _ := h.do("PUT", "/jobs/"+id, `{"action":"set_metadata_threads","params":3}`); code != 400 || body != "Attempt to update job that is not running" {
		t.Errorf("PUT on a stopped static job: %d %q", code, body)
	}
}
