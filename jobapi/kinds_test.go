package jobapi

import (
	"encoding/json"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
)

// The status splits a job's counts between v1 and v2 objects, and says
// plainly when v2 objects were not looked for.
func TestKinds(t *testing.T) {
	job := evacuate.JobRecord{ID: "j", Action: rebalancer.JobEvacuate, State: rebalancer.JobComplete}
	tests := []struct {
		name string
		st   evacuate.Status
		want string // the kinds member, "" for none
	}{
		{name: "not started", st: evacuate.Status{Job: job}},
		{
			name: "both kinds",
			st: evacuate.Status{Job: job, Counts: []evacuate.Count{{Status: "complete", N: 10, Bytes: 1000}, {Status: "error", Reason: "mdapi_etag_mismatch", N: 1, Bytes: 7},
				{Status: "skipped", Reason: "source_is_evac_shark", N: 2, Bytes: 20}, {Status: "unprocessed", N: 3, Bytes: 30}},
				Buckets: evacuate.BucketsStatus{Known: true, Scanned: true, Counts: []evacuate.Count{{Status: "complete", N: 4, Bytes: 400},
					{Status: "error", Reason: "mdapi_etag_mismatch", N: 1, Bytes: 7}, {Status: "unprocessed", N: 1, Bytes: 10}},
					Uploads: map[string]int64{"fixed": 2, "parts_left": 1}}},
			want: `{"v1":{"objects":10,"complete":6,"skipped":2,"error":0,"remaining":2,"bytes_complete":600},` +
				`"v2":{"objects":6,"complete":4,"skipped":0,"error":1,"remaining":1,"bytes_complete":400,"scanned":true,"uploads":{"fixed":2,"parts_left":1}}}`,
		},
		{
			name: "v2 not scanned",
			st: evacuate.Status{Job: job, Counts: []evacuate.Count{{Status: "complete", N: 3, Bytes: 30}},
				Buckets: evacuate.BucketsStatus{Known: true, NotScanned: "no buckets-mdapi shards are configured (mdapi.shards)"}},
			want: `{"v1":{"objects":3,"complete":3,"skipped":0,"error":0,"remaining":0,"bytes_complete":30},` +
				`"v2":{"objects":0,"complete":0,"skipped":0,"error":0,"remaining":0,"bytes_complete":0,"scanned":false,"not_scanned":"no buckets-mdapi shards are configured (mdapi.shards)"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := json.Marshal(newJobStatus(tt.st))
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Kinds json.RawMessage `json:"kinds"`
			}
			if err := json.Unmarshal(doc, &got); err != nil {
				t.Fatal(err)
			}
			if string(got.Kinds) != tt.want {
				t.Fatalf("kinds\n got %s\nwant %s", got.Kinds, tt.want)
			}
			back, err := ParseJobStatus(doc)
			if err != nil {
				t.Fatal(err)
			}
			if (back.Kinds == nil) != (tt.want == "") {
				t.Fatalf("the client read kinds %+v", back.Kinds)
			}
		})
	}
}
