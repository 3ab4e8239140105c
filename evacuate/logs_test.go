package evacuate

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// logRecords returns the JSON log records in b whose msg is msg.
func logRecords(b *testutil.Buffer, msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.SplitSeq(b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// A job logs its end with its counts, the bytes it moved, its duration
// and whether the shark is empty; the copies that fail object after object
// from one cause are summed up, not logged once per object.
func TestJobLogLines(t *testing.T) {
	for _, tt := range []struct {
		name                       string
		fail                       bool
		complete, skipped, objects float64
		empty                      bool
	}{
		{name: "every copy moved", complete: 100, objects: 100, empty: true},
		{name: "a corrupt source", fail: true, skipped: 100, objects: 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 100, nil)
			var logs testutil.Buffer
			h.engine.Close()
			h.log = slog.New(slog.NewJSONHandler(&logs, nil))
			h.engine = h.newEngine()
			if tt.fail {
				h.agents.SetFailTask(func(rebalancer.Task) rebalancer.SkipReason { return rebalancer.SkipMD5Mismatch })
			}
			j, _ := h.run(fastOptions())
			if j.State != rebalancer.JobComplete {
				t.Fatalf("job ended %v", j.State)
			}
			ended := logRecords(&logs, "job ended")
			if len(ended) != 1 {
				t.Fatalf("%d job ended lines", len(ended))
			}
			e := ended[0]
			if e["job"] != j.ID || e["objects"] != tt.objects || e["complete"] != tt.complete || e["skipped"] != tt.skipped ||
				e["errors"] != 0.0 || e["not_final"] != 0.0 || e["shark_empty"] != tt.empty || e["duration"] == nil ||
				(e["bytes_moved"].(float64) > 0) != (tt.complete > 0) {
				t.Errorf("job ended: %v", e)
			}
			if len(logRecords(&logs, "job started")) != 1 {
				t.Errorf("no job started line")
			}
			for _, msg := range []string{"copies failed", "objects skipped"} {
				recs := logRecords(&logs, msg)
				if !tt.fail {
					if len(recs) != 0 {
						t.Errorf("%q logged for a job without failures: %v", msg, recs)
					}
					continue
				}
				total := 0
				for _, r := range recs {
					if c, ok := r["count"].(float64); ok {
						total += int(c)
						if r["cause"] != "md5_mismatch" {
							t.Errorf("%q summed up under cause %v", msg, r["cause"])
						}
					} else {
						total++
					}
				}
				if total != 100 || len(recs) > 4 {
					t.Errorf("%q: %d lines for %d objects, want a few lines for 100", msg, len(recs), total)
				}
			}
		})
	}
}
