package moraytest

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

func TestInvocationErrors(t *testing.T) {
	_, c := mantaServer(t)
	tests := []struct {
		method string
		args   []any
		msg    string
	}{
		{"getObject", []any{"manta"}, "getObject expects 3 arguments"},
		{"putObject", []any{"manta", "k", map[string]any{}}, "putObject expects 4 arguments"},
		{"ping", []any{}, "ping expects 1 argument"},
		{"ping", []any{opts(), opts()}, "ping expects 1 argument"},
		{"getBucket", []any{"manta"}, "getBucket expects 2 arguments"},
		{"getObject", []any{"manta", 5, opts()}, `getObject expects "key" (args[1]) to be a nonempty string: key should be string`},
		{"getObject", []any{"", "k", opts()}, `getObject expects "bucket" (args[0]) to be a nonempty string: bucket should NOT be shorter than 1 characters`},
		{"putObject", []any{"manta", "k", []any{1}, opts()}, `putObject expects "value" (args[2]) to be an object: value should be object`},
		{"putObject", []any{"manta", "k", nil, opts()}, `putObject expects "value" (args[2]) to be an object: value should be object`},
		{"sql", []any{"SELECT 1", map[string]any{}, opts()}, `sql expects "values" (args[1]) to be an array: values should be array`},
		// getBucket takes its options first.
		{"getBucket", []any{"manta", map[string]any{}}, `getBucket expects "options" (args[0]) to be a valid options object: options should be object`},
		{"getObject", []any{"manta", "k", map[string]any{"req_id": "not-a-uuid", "noCache": true}},
			`getObject expects "options" (args[2]) to be a valid options object: options.req_id should match format "uuid"`},
		{"getObject", []any{"manta", "k", map[string]any{"req_id": strings.Repeat("a", 37)}},
			`getObject expects "options" (args[2]) to be a valid options object: options.req_id should NOT be longer than 36 characters`},
		{"ping", []any{map[string]any{"timeout": -1}}, `ping expects "options" (args[0]) to be a valid options object: options.timeout should be >= 0`},
		{"ping", []any{map[string]any{"timeout": 1.5}}, `ping expects "options" (args[0]) to be a valid options object: options.timeout should be integer`},
		{"putObject", []any{"manta", "k", map[string]any{}, map[string]any{"etag": 5}},
			`putObject expects "options" (args[3]) to be a valid options object: options.etag should be null,string`},
		{"getObject", []any{"manta", "k", map[string]any{"noCache": "true"}},
			`getObject expects "options" (args[2]) to be a valid options object: options.noCache should be boolean`},
		{"findObjects", []any{"manta", "(a=1)", map[string]any{"limit": "ten"}},
			`findObjects expects "options" (args[2]) to be a valid options object: options.limit should match pattern "^[0-9]+$"`},
		{"findObjects", []any{"manta", "(a=1)", map[string]any{"limit": -1}},
			`findObjects expects "options" (args[2]) to be a valid options object: options.limit should be >= 0`},
		{"findObjects", []any{"manta", "(a=1)", map[string]any{"offset": "1"}},
			`findObjects expects "options" (args[2]) to be a valid options object: options.offset should be number`},
		{"findObjects", []any{"manta", "(a=1)", map[string]any{"sort": map[string]any{"attribute": "_id", "order": "up"}}},
			`findObjects expects "options" (args[2]) to be a valid options object: options.sort should be array, options.sort.order should be equal to one of the allowed values ("ASC", "DESC"), options.sort should match some schema in anyOf`},
		{"ping", []any{map[string]any{"headers": []any{}}}, `ping expects "options" (args[0]) to be a valid options object: options.headers should be object`},
		{"batch", []any{[]any{map[string]any{"key": "k"}}, opts()},
			`batch expects "requests" (args[0]) to be an array of valid request objects: requests[0] should have required property 'bucket'`},
		{"batch", []any{[]any{map[string]any{"bucket": "manta", "operation": "upsert"}}, opts()},
			`batch expects "requests" (args[0]) to be an array of valid request objects: requests[0].operation should be equal to one of the allowed values ("put", "delete", "update", "deleteMany")`},
		{"batch", []any{[]any{map[string]any{"bucket": "manta", "options": map[string]any{"etag": 1}}}, opts()},
			`batch expects "requests" (args[0]) to be an array of valid request objects: requests[0].options.etag should be null,string`},
		{"batch", []any{map[string]any{}, opts()}, `batch expects "requests" (args[0]) to be an array of valid request objects: requests should be array`},
	}
	for _, tt := range tests {
		e := c.fails(tt.method, tt.args...)
		if e.Name != "InvocationError" || e.Message != tt.msg {
			t.Errorf("%s%v: %s: %q\nwant InvocationError: %q", tt.method, tt.args, e.Name, e.Message, tt.msg)
		}
	}
	// Unknown option keys and upper-case UUIDs are fine.
	c.ok("ping", map[string]any{"deep": false, "req_id": "8B5A6A3E-0D53-4C1E-9A5E-2D8F7F3B6C11", "whatever": 1})
	c.ok("findObjects", "manta", "(type=x)", map[string]any{"limit": "10", "sort": []any{map[string]any{"attribute": "_id", "order": "desc"}}})
}

func TestUnknownMethod(t *testing.T) {
	s, c := mantaServer(t)
	r := c.call("noSuchMethod", opts())
	wantError(t, r.err, "FastError", `unsupported RPC method: "noSuchMethod"`)
	id := r.frames[0].ID
	if string(r.err.Context) != "{}" || string(r.err.Info) != `{"fastReason":"bad_method","rpcMethod":"noSuchMethod","rpcMsgid":`+itoa(id)+`}` {
		t.Errorf("context %s, info %s", r.err.Context, r.err.Info)
	}
	if len(r.frames) != 1 || r.frames[0].Method != "noSuchMethod" {
		t.Errorf("frames %+v", r.frames)
	}
	// Registered methods that are not emulated say so.
	wantError(t, c.fails("updateObjects", "manta", map[string]any{}, "(a=1)", opts()), "InternalError", "moraytest: updateObjects is not implemented")
	wantError(t, c.fails("getTokens", opts()), "Error", "Operation not supported")
	if s.Calls("noSuchMethod") != 1 || s.Calls("getTokens") != 1 {
		t.Errorf("calls %v", s.CallCounts())
	}
}

func itoa(n uint32) string { b, _ := json.Marshal(n); return string(b) }

func TestPingVersion(t *testing.T) {
	_, c := mantaServer(t)
	r := c.call("ping", map[string]any{"deep": false, "req_id": "8b5a6a3e-0d53-4c1e-9a5e-2d8f7f3b6c11"})
	if r.err != nil || len(r.frames) != 1 || r.frames[0].Status != fast.StatusEnd || string(r.frames[0].Data) != "[]" {
		t.Errorf("ping: %+v", r)
	}
	if items := c.ok("version", opts()); len(items) != 1 || string(items[0]) != `{"version":2}` {
		t.Errorf("version: %s", items)
	}
}

// Replies echo the request's protocol version, msgid and method.
func TestReplyEchoesVersion(t *testing.T) {
	_, c := mantaServer(t)
	w := make(chan *fast.Message, 10)
	c.mu.Lock()
	c.waiters[77] = w
	c.mu.Unlock()
	frame, err := fast.AppendFrame(nil, &fast.Message{Version: fast.Version1, Status: fast.StatusData, ID: 77,
		Method: "version", UTS: 1, Data: json.RawMessage(`[{}]`)})
	if err != nil {
		t.Fatal(err)
	}
	c.write(frame)
	r := collect(t, w)
	if len(r.frames) != 2 {
		t.Fatalf("frames: %+v", r.frames)
	}
	for _, f := range r.frames {
		if f.Version != fast.Version1 || f.ID != 77 || f.Method != "version" || f.UTS == 0 {
			t.Errorf("frame %+v does not echo the request", f)
		}
	}
}

func TestBuckets(t *testing.T) {
	s, c := mantaServer(t)
	items := c.ok("getBucket", opts(), "manta")
	if len(items) != 1 {
		t.Fatalf("getBucket: %s", items)
	}
	row := regexp.MustCompile(`"mtime":"[^"]+"`).ReplaceAllString(string(items[0]), `"mtime":"X"`)
	want := `{"name":"manta","index":"{\"dirname\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},\"owner\":{\"type\":\"string\"},\"objectId\":{\"type\":\"string\"},\"type\":{\"type\":\"string\"}}","pre":"[]","post":"[]","options":"{\"version\":2}","mtime":"X"}`
	if row != want {
		t.Errorf("getBucket row\n %s\nwant\n %s", row, want)
	}
	mtime := decode[struct {
		Mtime string `json:"mtime"`
	}](t, items[0]).Mtime
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", mtime); err != nil {
		t.Errorf("mtime %q: %v", mtime, err)
	}

	// createBucket over the wire, then listBuckets in creation order.
	c.ok("createBucket", "things", map[string]any{"index": map[string]any{"size": map[string]any{"type": "number"}}, "pre": []any{}}, opts())
	r := c.call("createBucket", "plain", map[string]any{}, opts())
	if r.err != nil || len(r.frames) != 1 || r.frames[0].Status != fast.StatusEnd {
		t.Errorf("createBucket reply: %+v", r)
	}
	items = c.ok("listBuckets", opts())
	var names []string
	for _, it := range items {
		names = append(names, decode[struct {
			Name string `json:"name"`
		}](t, it).Name)
	}
	if strings.Join(names, ",") != "manta,things,plain" {
		t.Errorf("listBuckets: %v", names)
	}
	plain := decode[map[string]string](t, c.ok("getBucket", opts(), "plain")[0])
	if plain["index"] != "{}" || plain["options"] != `{"version":0}` || plain["pre"] != "[]" {
		t.Errorf("plain bucket row %v", plain)
	}

	errs := []struct {
		name   string
		config any
		ename  string
		msg    string
	}{
		{"manta", map[string]any{}, "BucketConflictError", "manta already exists"},
		{"bad-name", map[string]any{}, "InvalidBucketNameError", "bad-name is not a valid bucket name"},
		{"buckets_config", map[string]any{}, "InvalidBucketNameError", "buckets_config is not a valid bucket name"},
		{"x", map[string]any{"index": map[string]any{"a": map[string]any{"type": "float"}}}, "InvalidBucketConfigError", "bucket.index['a'].type should be equal to one of the allowed values"},
		{"x", map[string]any{"index": map[string]any{"a": map[string]any{}}}, "InvalidBucketConfigError", "bucket.index['a'] should have required property 'type'"},
		{"x", map[string]any{"index": map[string]any{"a": map[string]any{"type": "string", "x": 1}}}, "InvalidBucketConfigError", "bucket.index['a'] should NOT have additional properties"},
		{"x", map[string]any{"pre": "f"}, "InvalidBucketConfigError", "bucket.pre should be array"},
		{"x", map[string]any{"options": map[string]any{"version": -1}}, "InvalidBucketConfigError", "bucket.options.version should be integer >= 0"},
		{"x", map[string]any{"index": map[string]any{"a": map[string]any{"type": "ip"}}}, "InternalError", `moraytest: index type "ip" is not supported (a)`},
	}
	for _, e := range errs {
		wantError(t, c.fails("createBucket", e.name, e.config, opts()), e.ename, e.msg)
	}

	c.ok("delBucket", "plain", opts())
	wantError(t, c.fails("delBucket", "plain", opts()), "BucketNotFoundError", "plain does not exist")
	wantError(t, c.fails("getObject", "plain", "k", opts()), "BucketNotFoundError", "plain does not exist")
	wantError(t, c.fails("putObject", "plain", "k", map[string]any{}, opts()), "BucketNotFoundError", "plain does not exist")
	wantError(t, c.fails("findObjects", "plain", "(_id>=0)", opts()), "BucketNotFoundError", "plain does not exist")
	if s.Len("manta") != 0 {
		t.Error("manta not empty")
	}
}

func TestObjects(t *testing.T) {
	s, c := mantaServer(t)
	wantError(t, c.fails("getObject", "manta", "/nope", opts()), "ObjectNotFoundError", "manta::/nope does not exist")
	wantError(t, c.fails("delObject", "manta", "/nope", opts()), "ObjectNotFoundError", "manta::/nope does not exist")
	// etag "x" on a missing object: the condition cannot hold.
	e := c.fails("putObject", "manta", "/a", map[string]any{"x": 1}, opts("etag", "ABCDEF01"))
	wantError(t, e, "EtagConflictError", `manta::/a was expected to have etag "ABCDEF01", but was "null"`)

	etag1 := etagOf(t, c.ok("putObject", "manta", "/a", map[string]any{"x": 1}, opts()))
	etag2 := etagOf(t, c.ok("putObject", "manta", "/b", map[string]any{"vnode": 7}, opts()))
	o, _ := s.Get("manta", "/b")
	if o.ID != 2 || o.Etag != etag2 {
		t.Errorf("second object %+v", o)
	}
	// An overwrite keeps the _id; a deleted key gets a new one.
	c.ok("putObject", "manta", "/a", map[string]any{"x": 2}, opts())
	if o, _ := s.Get("manta", "/a"); o.ID != 1 || o.Etag == etag1 {
		t.Errorf("overwrite: %+v", o)
	}
	wantError(t, c.fails("delObject", "manta", "/a", opts("etag", etag1)), "EtagConflictError", "")
	r := c.call("delObject", "manta", "/a", opts())
	if r.err != nil || len(r.items) != 1 || string(r.items[0]) != "{}" {
		t.Errorf("delObject reply %+v", r)
	}
	c.ok("putObject", "manta", "/a", map[string]any{"x": 1}, opts())
	if o, _ := s.Get("manta", "/a"); o.ID != 3 {
		t.Errorf("recreated object has _id %d, want 3", o.ID)
	}
	// A vnode that is not an integer is a PostgreSQL error.
	wantError(t, c.fails("putObject", "manta", "/v", map[string]any{"vnode": 1.5}, opts()), "error", `invalid input syntax for type bigint: "1.5"`)
	c.ok("putObject", "manta", "/v", map[string]any{"vnode": "12"}, opts())

	// Batch deletes check their own etag; the entry has no etag.
	e = c.fails("batch", []any{map[string]any{"operation": "delete", "bucket": "manta", "key": "/b", "options": map[string]any{"etag": "00000000"}}}, opts())
	wantError(t, e, "EtagConflictError", `manta::/b was expected to have etag "00000000", but was "`+etag2+`"`)
	items := c.ok("batch", []any{
		map[string]any{"bucket": "manta", "key": "/c", "value": map[string]any{"c": 1}},
		map[string]any{"operation": "delete", "bucket": "manta", "key": "/b", "options": map[string]any{"etag": etag2}},
	}, opts())
	if want := `{"etags":[{"bucket":"manta","etag":"` + Etag([]byte(`{"c":1}`)) + `","key":"/c"},{"bucket":"manta","key":"/b"}]}`; string(items[0]) != want {
		t.Errorf("batch reply %s, want %s", items[0], want)
	}
	if _, err := s.Get("manta", "/b"); err == nil {
		t.Error("/b not deleted")
	}
	// A failed batch consumed the sequence values of its inserts.
	before, _ := s.Get("manta", "/c")
	c.fails("batch", []any{
		map[string]any{"bucket": "manta", "key": "/d", "value": map[string]any{}},
		map[string]any{"bucket": "nosuch", "key": "/e", "value": map[string]any{}},
	}, opts())
	c.ok("putObject", "manta", "/f", map[string]any{}, opts())
	if o, _ := s.Get("manta", "/f"); o.ID != before.ID+2 {
		t.Errorf("after a rolled-back insert, next _id is %d, want %d", o.ID, before.ID+2)
	}
	wantError(t, c.fails("batch", []any{map[string]any{"operation": "update", "bucket": "manta", "filter": "(a=1)", "fields": map[string]any{}}}, opts()),
		"InternalError", `moraytest: batch operation "update" is not implemented`)
}
