package evacuate

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

// The first assignments to each destination are small, two tasks then
// twice as many each time up to MaxTasksPerAssignment, so that the first
// copies are done and recorded at once whatever the objects' size.
func TestAssignmentSlowStart(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 400, nil)
	o := fastOptions()
	o.MaxTasksPerAssignment = 20
	// Only size makes an assignment go, but for each destination's last.
	o.FlushAge = Duration(5 * time.Second)
	j, _ := h.run(o)
	if j.State != rebalancer.JobComplete {
		t.Fatalf("job ended %v %q", j.State, j.Error)
	}
	h.agents.mu.Lock()
	defer h.agents.mu.Unlock()
	if len(h.agents.sizes) == 0 {
		t.Fatal("nothing posted")
	}
	for dest, sizes := range h.agents.sizes {
		for i, n := range sizes[:len(sizes)-1] {
			if want := min(20, 2<<i); n != want {
				t.Fatalf("%s: assignment sizes %v, want 2, 4, 8, 16, then 20", dest, sizes)
			}
		}
	}
}
