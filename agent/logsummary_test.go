package agent

import (
	"net"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// A dead source fails every task on it alike: the agent logs the first
// failure as it is and sums up the others per cause, for the task
// failures and for the attempts to reach the source, rather than a line
// per object (an evacuation's dead source made 12,174 warnings).
func TestDeadSourceSummedUp(t *testing.T) {
	var logs logBuffer
	a := startAgentLog(t, testConfig(t), logs.logger())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close()
	body := content("dead", 100)
	const n = 20
	var tasks []rebalancer.Task
	for range n {
		tasks = append(tasks, rebalancer.Task{ObjectID: newID(), Owner: newID(), MD5Sum: md5b64(body),
			Source: rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: host}})
	}
	id := newID()
	a.mustPost(id, tasks...)
	if got := a.waitComplete(id); got.Stats.Failed != n {
		t.Fatalf("stats %+v, want %d failed", got.Stats, n)
	}
	a.stop() // flushes the summaries

	for _, tt := range []struct {
		level, msg string
		want       int
	}{
		{"WARN", "task failed", n},
		{"DEBUG", "cannot reach source", n * 4}, // testConfig: 3 retries
	} {
		recs := logs.records(tt.level, tt.msg)
		if len(recs) < 2 || len(recs) > 4 {
			t.Errorf("%q: %d lines, want the first and a summary or few:\n%s", tt.msg, len(recs), logs.String())
			continue
		}
		if recs[0]["err"] == nil || recs[0]["count"] != nil {
			t.Errorf("%q: the first line is not the failure as it is: %v", tt.msg, recs[0])
		}
		total := 1
		for _, r := range recs[1:] {
			first, _ := r["first"].(map[string]any)
			if r["cause"] != "connection refused" || first == nil || first["err"] == nil {
				t.Errorf("%q: summary %v, want cause %q with the first example", tt.msg, r, "connection refused")
			}
			c, _ := r["count"].(float64)
			total += int(c)
		}
		if total != tt.want {
			t.Errorf("%q: %d occurrences logged and summed up, want %d", tt.msg, total, tt.want)
		}
	}
}
