package storinfo_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

func TestNodeUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    storinfo.Node
		wantErr string
	}{
		{
			name: "minnow record with unknown fields",
			in: `{"availableMB":51200,"percentUsed":12,"filesystem":"/manta","statvfs":{"bsize":4096,"blocks":1},` +
				`"timestamp":1700000000123,"hostname":"1.stor.example.com","datacenter":"dc0","server_uuid":"x",` +
				`"zone_uuid":"y","manta_compute_id":"1.cn.example.com","manta_storage_id":"1.stor.example.com"}`,
			want: storinfo.Node{MantaStorageID: "1.stor.example.com", Datacenter: "dc0", AvailableMB: 51200, PercentUsed: 12,
				Filesystem: "/manta", Timestamp: 1700000000123},
		},
		{
			name: "legacy snake case",
			in:   `{"available_mb":7,"percent_used":99,"filesystem":"/manta","timestamp":5,"datacenter":"dc1","manta_storage_id":"2.stor"}`,
			want: storinfo.Node{MantaStorageID: "2.stor", Datacenter: "dc1", AvailableMB: 7, PercentUsed: 99, Filesystem: "/manta", Timestamp: 5},
		},
		{
			name: "camel case wins over snake case",
			in:   `{"available_mb":7,"availableMB":8,"percent_used":1,"percentUsed":2,"datacenter":"dc1","manta_storage_id":"2.stor"}`,
			want: storinfo.Node{MantaStorageID: "2.stor", Datacenter: "dc1", AvailableMB: 8, PercentUsed: 2},
		},
		{
			name: "percent with decimals and float numbers",
			in:   `{"availableMB":1024.0,"percentUsed":41.75,"timestamp":1.7e12,"datacenter":"dc1","manta_storage_id":"3.stor"}`,
			want: storinfo.Node{MantaStorageID: "3.stor", Datacenter: "dc1", AvailableMB: 1024, PercentUsed: 41.75, Timestamp: 1700000000000},
		},
		{name: "missing storage id", in: `{"availableMB":1,"percentUsed":1,"datacenter":"dc1"}`, wantErr: "missing manta_storage_id"},
		{name: "missing datacenter", in: `{"availableMB":1,"percentUsed":1,"manta_storage_id":"1.stor"}`, wantErr: "1.stor: missing datacenter"},
		{name: "missing available", in: `{"percentUsed":1,"datacenter":"dc1","manta_storage_id":"1.stor"}`, wantErr: "missing availableMB"},
		{name: "missing percent", in: `{"availableMB":1,"datacenter":"dc1","manta_storage_id":"1.stor"}`, wantErr: "missing percentUsed"},
		{name: "negative available", in: `{"availableMB":-1,"percentUsed":1,"datacenter":"dc1","manta_storage_id":"1.stor"}`, wantErr: "negative"},
		{name: "negative percent", in: `{"availableMB":1,"percentUsed":-3,"datacenter":"dc1","manta_storage_id":"1.stor"}`, wantErr: "percentUsed"},
		{name: "non-numeric available", in: `{"availableMB":"lots","percentUsed":1,"datacenter":"dc1","manta_storage_id":"1.stor"}`, wantErr: "storage node record"},
		{name: "null", in: `null`, wantErr: "null"},
		{name: "not an object", in: `[1]`, wantErr: "storage node record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got storinfo.Node
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// A Node encodes in storinfo's own spelling and decodes back unchanged.
func TestNodeRoundTrip(t *testing.T) {
	n := storinfo.Node{MantaStorageID: "1.stor", Datacenter: "dc0", AvailableMB: 10, PercentUsed: 50.5, Filesystem: "/manta", Timestamp: 42}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"manta_storage_id":"1.stor","datacenter":"dc0","availableMB":10,"percentUsed":50.5,"filesystem":"/manta","timestamp":42}`
	if string(b) != want {
		t.Errorf("encoded %s\nwant    %s", b, want)
	}
	var back storinfo.Node
	if err := json.Unmarshal(b, &back); err != nil || back != n {
		t.Errorf("decoded %+v, %v", back, err)
	}
	if got := n.StorageNode(); got != (rebalancer.StorageNode{Datacenter: "dc0", MantaStorageID: "1.stor"}) {
		t.Errorf("StorageNode = %+v", got)
	}
	if got := n.Time(); !got.Equal(time.UnixMilli(42)) {
		t.Errorf("Time = %v", got)
	}
	if !(storinfo.Node{}).Time().IsZero() {
		t.Error("Time of a node without timestamp is not zero")
	}
}
