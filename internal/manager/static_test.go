package manager_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// With use_static_md_update_threads (the fleet's configuration sets it, as
// the README's example does), a job's metadata threads are fixed when it is
// created: PUT answers the legacy's 400, a reload that changes
// max_metadata_update_threads leaves them as they are, and the job runs to
// completion on them.
func TestStaticMetadataThreads(t *testing.T) {
	r := start(t, testbed.Config{Sharks: 4, Objects: testbed.Objects{Count: 200, Pin: evacuated, PinFraction: 1}}, func(cfg map[string]any) {
		cfg["options"].(map[string]any)["static_queue_depth"] = 4
	})
	id := r.create(evacuated)
	if err := r.client().PauseJob(context.Background(), id); err != nil {
		t.Fatalf("pause: %v", err)
	}
	d := r.waitFor(id, "paused", func(d *jobapi.JobStatus) bool { return d.State == rebalancer.JobPaused })
	if o := d.Options; !o.StaticMetadataThreads || o.StaticQueueDepth != 4 || o.MetadataThreads != 10 {
		t.Fatalf("job options: static %v, depth %d, threads %d", o.StaticMetadataThreads, o.StaticQueueDepth, o.MetadataThreads)
	}
	code, body := r.do("PUT", "/jobs/"+id, `{"action":"set_metadata_threads","params":3}`)
	if want := "Job (" + id + ") does not support dynamic configuration updates"; code != http.StatusBadRequest || body != want {
		t.Errorf("PUT: %d %q, want 400 %q", code, body, want)
	}

	next := r.fleet.ManagerConfig()
	next["options"].(map[string]any)["max_metadata_update_threads"] = 3
	applied, err := r.m.Reload(context.Background(), parse(t, next))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(applied, ","); got != "options,max_metadata_update_threads" {
		t.Errorf("applied %s", got)
	}
	if d := r.get(id); d.Options.MetadataThreads != 10 {
		t.Errorf("static job's metadata threads = %d after the reload, want 10", d.Options.MetadataThreads)
	}
	if err := r.client().ResumeJob(context.Background(), id); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if d := r.waitFor(id, "the end", terminal); d.State != rebalancer.JobComplete {
		t.Fatalf("job ended %s (%s): %v", d.State, d.Error, d.Results)
	}
	r.verify()
}
