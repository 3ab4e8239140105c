package moraytest

import (
	"encoding/json"
	"strings"
	"testing"
)

const (
	owner    = "61368287-aa5b-6c0f-f3a9-931a228215e4"
	objectID = "2e08b069-d132-c25c-920c-945e3329e450"
	mantaKey = "/" + owner + "/stor/logs/07e023da.log"
)

// sampleValue is the sample object of docs/golden.md, with the test
// sharks, in the key order a real Moray stored it in.
var sampleValue = json.RawMessage(`{"contentLength":9099176,"contentMD5":"L9NrIZXTY37AYVZN9+gZ7w==","contentType":"text/plain",` +
	`"creator":"` + owner + `","dirname":"/` + owner + `/stor/logs","etag":"` + objectID + `","headers":{},` +
	`"key":"` + mantaKey + `","mtime":1570611723062,"name":"07e023da.log","objectId":"` + objectID + `",` +
	`"owner":"` + owner + `","roles":[],"sharks":[{"datacenter":"dc0","manta_storage_id":"3.stor.example.com"},` +
	`{"datacenter":"dc0","manta_storage_id":"1.stor.example.com"}],"type":"object","vnode":23352}`)

// movedValue is sampleValue with its second shark replaced, as the
// rebalancer rewrites it.
var movedValue = json.RawMessage(strings.Replace(string(sampleValue),
	`{"datacenter":"dc0","manta_storage_id":"1.stor.example.com"}`,
	`{"datacenter":"dc1","manta_storage_id":"2.stor.example.com"}`, 1))

type record struct {
	Bucket   string          `json:"bucket"`
	Key      string          `json:"key"`
	Value    json.RawMessage `json:"value"`
	ID       int64           `json:"_id"`
	Etag     string          `json:"_etag"`
	Mtime    int64           `json:"_mtime"`
	TxnSnap  *int64          `json:"_txn_snap"`
	Count    *int64          `json:"_count"`
	HasCount bool            `json:"-"`
}

func mantaServer(t *testing.T) (*Server, *testClient) {
	t.Helper()
	s := Start(t)
	if err := s.CreateMantaBucket(); err != nil {
		t.Fatal(err)
	}
	return s, dial(t, s.Addr())
}

func etagOf(t *testing.T, items []json.RawMessage) string {
	t.Helper()
	if len(items) != 1 {
		t.Fatalf("got %d items, want 1", len(items))
	}
	return decode[struct {
		Etag string `json:"etag"`
	}](t, items[0]).Etag
}

// The behaviour recorded from a real Moray (docs/golden.md), replayed.
func TestGoldenCases(t *testing.T) {
	s, c := mantaServer(t)

	// 1. putObject with etag null on an empty bucket, then again.
	items := c.ok("putObject", "manta", mantaKey, sampleValue, opts("etag", nil))
	if got := etagOf(t, items); got != "314BADAF" {
		t.Fatalf("case 1: etag %s, want 314BADAF", got)
	}
	if string(items[0]) != `{"etag":"314BADAF"}` {
		t.Errorf("case 1: reply %s", items[0])
	}
	e := c.fails("putObject", "manta", mantaKey, sampleValue, opts("etag", nil))
	wantError(t, e, "EtagConflictError", "manta::"+mantaKey+` was expected to have etag "null", but was "314BADAF"`)
	if string(e.Context) != `{"bucket":"manta","key":"`+mantaKey+`","expected":"null","actual":"314BADAF"}` {
		t.Errorf("case 1: context %s", e.Context)
	}
	if string(e.Info) != `{}` {
		t.Errorf("case 1: info %s", e.Info)
	}

	// 2. getObject.
	items = c.ok("getObject", "manta", mantaKey, opts())
	if len(items) != 1 {
		t.Fatalf("case 2: %d records", len(items))
	}
	raw := string(items[0])
	for _, want := range []string{`{"bucket":"manta","key":"` + mantaKey + `","value":` + string(sampleValue) + `,"_id":1,"_etag":"314BADAF","_mtime":`, `,"_txn_snap":null,"_count":null}`} {
		if !strings.Contains(raw, want) {
			t.Errorf("case 2: record %s lacks %s", raw, want)
		}
	}

	// 3. A stale etag, then the right one.
	e = c.fails("putObject", "manta", mantaKey, movedValue, opts("etag", "DEADBEEF"))
	wantError(t, e, "EtagConflictError", "manta::"+mantaKey+` was expected to have etag "DEADBEEF", but was "314BADAF"`)
	if got := etagOf(t, c.ok("putObject", "manta", mantaKey, movedValue, opts("etag", "314BADAF"))); got != "77406E25" {
		t.Fatalf("case 3: etag %s, want 77406E25", got)
	}
	o, err := s.Get("manta", mantaKey)
	if err != nil || o.ID != 1 || o.Etag != "77406E25" {
		t.Fatalf("case 3: stored %+v, %v", o, err)
	}

	// 4. A batch of two puts with the right etags, then one whose second
	// etag is stale: nothing of it is applied.
	key2 := "/" + owner + "/stor/logs/second.log"
	c.ok("putObject", "manta", key2, sampleValue, opts())
	put := func(key string, value json.RawMessage, etag string) map[string]any {
		return map[string]any{"operation": "put", "bucket": "manta", "key": key, "value": value,
			"options": map[string]any{"req_id": "8b5a6a3e-0d53-4c1e-9a5e-2d8f7f3b6c11", "etag": etag}}
	}
	items = c.ok("batch", []any{put(mantaKey, sampleValue, "77406E25"), put(key2, movedValue, "314BADAF")}, opts())
	if len(items) != 1 || string(items[0]) != `{"etags":[{"bucket":"manta","etag":"314BADAF","key":"`+mantaKey+`"},{"bucket":"manta","etag":"77406E25","key":"`+key2+`"}]}` {
		t.Fatalf("case 4: reply %s", items)
	}
	e = c.fails("batch", []any{put(mantaKey, movedValue, "314BADAF"), put(key2, sampleValue, "314BADAF")}, opts())
	wantError(t, e, "EtagConflictError", "manta::"+key2+` was expected to have etag "314BADAF", but was "77406E25"`)
	if o, _ := s.Get("manta", mantaKey); o.Etag != "314BADAF" {
		t.Errorf("case 4: the first op of the failed batch was applied: etag %s", o.Etag)
	}

	// 5. A top-level etag (even null) overrides every per-op etag.
	e = c.fails("batch", []any{put(mantaKey, movedValue, "314BADAF")}, opts("etag", nil))
	wantError(t, e, "EtagConflictError", "manta::"+mantaKey+` was expected to have etag "null", but was "314BADAF"`)

	// 6. sql MAX(_id) as a string; MAX(_idx) on a table without it.
	items = c.ok("sql", "SELECT MAX(_id) FROM manta;", []any{}, map[string]any{"limit": 1, "no_count": true})
	if len(items) != 1 || string(items[0]) != `{"max":"2"}` {
		t.Errorf("case 6: %s", items)
	}
	e = c.fails("sql", "SELECT MAX(_idx) FROM manta;", []any{}, map[string]any{"limit": 1, "no_count": true})
	wantError(t, e, "error", `column "_idx" does not exist`)

	// 7. getBucket of a missing bucket; getObject with one argument.
	e = c.fails("getBucket", map[string]any{}, "nosuchbucket")
	wantError(t, e, "BucketNotFoundError", "nosuchbucket does not exist")
	e = c.fails("getObject", "manta")
	wantError(t, e, "InvocationError", "getObject expects 3 arguments")

	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations: %q", v)
	}
}
