package jobapi

import (
	"testing"

	"github.com/TritonDataCenter/rebalancer/evacuate"
)

// Objects skipped or in error with no recorded reason (only imported
// legacy jobs have them) are counted under Skipped and Error but are in
// no breakdown, as the legacy shows them: not under "other" with an empty
// name.
func TestReasonlessCountsInNoBreakdown(t *testing.T) {
	st := newJobStatus(evacuate.Status{Counts: []evacuate.Count{
		{Status: "error", N: 3}, {Status: "error", Reason: "moray_update_failed", N: 1},
		{Status: "skipped", N: 2}, {Status: "skipped", Reason: "agent_busy", N: 5},
	}})
	r := st.Results
	if r.Error != 4 || r.Skipped != 7 || r.Total != 11 {
		t.Errorf("counts %+v", r)
	}
	if len(r.ErrorBreakdown) != 1 || r.ErrorBreakdown["moray"]["update_failed"] != 1 {
		t.Errorf("error breakdown %v, want only moray update_failed", r.ErrorBreakdown)
	}
	if len(r.SkipBreakdown) != 1 || r.SkipBreakdown["agent_busy"] != 5 {
		t.Errorf("skip breakdown %v, want only agent_busy", r.SkipBreakdown)
	}
}
