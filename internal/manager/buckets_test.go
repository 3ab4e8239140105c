package manager_test

import (
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
)

// The production wiring moves v1 and v2 objects in one job: the mdapi
// block of the legacy configuration (with mdapi_endpoints and
// mdapi_databases pointing at the fleet), v2 discovery from the buckets
// databases and through buckets-mdapi's listings, metadata through
// buckets-mdapi, and the upload records fixed with the vnodes listed
// afresh at the job's end.
func TestManagerEvacuatesBuckets(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(map[bool]string{true: "direct", false: "listing"}[direct], func(t *testing.T) {
			fc := testbed.Config{Sharks: 5, Datacenters: 2, Shards: 2,
				Objects: testbed.Objects{Count: 80, Pin: evacuated, PinFraction: 0.7},
				Buckets: testbed.Buckets{DSNs: testbed.BucketsDatabases(t, 2),
					Objects: testbed.BucketObjects{Objects: testbed.Objects{Count: 80, Seed: 3, Pin: evacuated, PinFraction: 0.7, MaxSize: 4096},
						Uploads: 5}}}
			r := start(t, fc, func(cfg map[string]any) {
				cfg["mdapi_direct_db"] = direct
				cfg["mdapi"].(map[string]any)["max_batch_size"] = 7
			})
			id := r.create(evacuated)
			d := r.waitFor(id, "the end", terminal)
			k := d.Kinds
			if d.State != rebalancer.JobComplete || k == nil || k.V2.Scanned == nil || !*k.V2.Scanned {
				t.Fatalf("job ended %s (%s): %+v %+v", d.State, d.Error, d.Results, k)
			}
			if k.V1.Complete == 0 || k.V2.Complete == 0 || k.V1.Complete+k.V2.Complete != d.Results.Complete || d.Results.Complete != d.Results.Total ||
				k.V2.Uploads["fixed"] == 0 || len(k.V2.Uploads) != 1 {
				t.Fatalf("results %+v, kinds %+v", d.Results, k)
			}
			r.verify()
			var calls int
			for _, srv := range r.fleet.Mdapis() {
				calls += srv.Calls("batchupdateobjects")
			}
			if calls == 0 {
				t.Error("no batchupdateobjects: use_batched_updates is on")
			}
		})
	}
}

// Without buckets-mdapi shards, jobs move v1 objects and say, in their
// status, that v2 objects were not looked for, and why.
func TestManagerWithoutBuckets(t *testing.T) {
	r := start(t, testbed.Config{Sharks: 4, Objects: testbed.Objects{Count: 20, Pin: evacuated, PinFraction: 1}}, nil)
	id := r.create(evacuated)
	d := r.waitFor(id, "the end", terminal)
	if d.State != rebalancer.JobComplete || d.Kinds == nil || d.Kinds.V2.Scanned == nil || *d.Kinds.V2.Scanned ||
		d.Kinds.V2.NotScanned != manager.NotScannedNoMdapi || d.Kinds.V1.Complete != 20 {
		t.Fatalf("job ended %s: %+v", d.State, d.Kinds)
	}
}

// Every mdapi key of the legacy configuration is honoured or refused with
// a message saying what to do.
func TestBucketsConfig(t *testing.T) {
	base := `{"domain_name":"d","shards":[{"host":"1.moray.d"}],`
	for _, tt := range []struct{ config, want string }{
		{`"mdapi":{"shards":[{"host":"x.buckets-mdapi.d"}]}}`, `"x.buckets-mdapi.d" does not start with a shard number`},
		{`"mdapi":{"max_batch_size":0}}`, "mdapi.max_batch_size must be in 1..1000"},
		{`"mdapi":{"max_batch_size":1001}}`, "mdapi.max_batch_size must be in 1..1000"},
		{`"mdapi":{"connection_timeout_ms":0}}`, "mdapi.connection_timeout_ms must be in 1..3600000"},
		{`"mdapi":{"operation_timeout_ms":0}}`, "mdapi.operation_timeout_ms must be in 1..3600000"},
		{`"mdapi":{"max_retries":5}}`, "mdapi.max_retries 5 is not supported"},
		{`"mdapi":{"initial_backoff_ms":10}}`, "mdapi.initial_backoff_ms 10 is not supported"},
		{`"mdapi":{"max_backoff_ms":60000}}`, "remove the key or set it to 5000"},
		{`"mdapi_databases":{"1":"postgres://h:port/x"}}`, "mdapi_databases: shard 1: not a PostgreSQL connection string"},
		{`"mdapi_endpoints":{"one":"h:2030"}}`, `mdapi_endpoints: key "one" is not a shard number`},
	} {
		if _, err := manager.ParseConfig([]byte(base + tt.config)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tt.config, err, tt.want)
		}
	}
	for _, tt := range []struct {
		config string
		direct bool
	}{
		{`"mdapi":{"shards":[{"host":"2.buckets-mdapi.d"},{"host":"1.buckets-mdapi.d"}],"max_retries":3,"initial_backoff_ms":100,"max_backoff_ms":5000}}`, true},
		{`"direct_db":false,"mdapi":{"shards":[{"host":"1.buckets-mdapi.d"}]}}`, false},
		{`"direct_db":false,"mdapi_direct_db":true,"mdapi":{"shards":[{"host":"1.buckets-mdapi.d"}]}}`, true},
		{`"mdapi_direct_db":false,"mdapi":{"shards":[{"host":"1.buckets-mdapi.d"}]},"mdapi_databases":{"1":"host=h dbname=buckets_metadata"}}`, false},
	} {
		c, err := manager.ParseConfig([]byte(base + tt.config))
		if err != nil {
			t.Errorf("%s: %v", tt.config, err)
			continue
		}
		if c.BucketsDirect() != tt.direct || !c.HasBuckets() {
			t.Errorf("%s: direct %v, want %v", tt.config, c.BucketsDirect(), tt.direct)
		}
	}
	c, err := manager.ParseConfig([]byte(base + `"mdapi":{"shards":[{"host":"2.buckets-mdapi.d"},{"host":"1.buckets-mdapi.d"},{"host":"2.buckets-mdapi.d"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.MdapiShardNumbers(); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("shard numbers %v", got)
	}
}
