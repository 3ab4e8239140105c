package moray

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// Each RPC sends the argument shapes of docs/protocols.md and decodes its reply.
func TestRPCShapes(t *testing.T) {
	testutil.CheckLeaks(t)
	const id = "11111111-2222-4333-8444-555555555555"
	reqs := make(chan *request, 1)
	var respond func(r *request)
	srv := newFakeServer(t, func(r *request) {
		reqs <- r
		respond(r)
	})
	c := testClient(t, srv.Addr(), Options{})
	c.newReqID = func() string { return id }
	ctx := context.Background()
	opts := `{"req_id":"` + id + `"}`
	defaults := `"headers":{},"no_count":false,"sql_only":false,"noCache":true}`

	tests := []struct {
		name     string
		respond  func(r *request)
		call     func() (any, error)
		wantArgs string
		want     any
	}{
		{
			name: "getBucket: options first, JSON columns decoded",
			respond: func(r *request) {
				r.Conn.reply(r, map[string]any{"name": "manta",
					"index":   `{"dirname":{"type":"string"},"owner":{"type":"string","unique":false}}`,
					"pre":     "[]",
					"post":    `["function recordDeleteLog(req, cb) {}"]`,
					"options": `{"version":2}`,
					"mtime":   "2026-11-28T08:50:29.951Z"})
			},
			call:     func() (any, error) { return c.GetBucket(ctx, "manta") },
			wantArgs: `[` + opts + `,"manta"]`,
			want: &Bucket{Name: "manta", BucketConfig: BucketConfig{
				Index:   map[string]IndexSpec{"dirname": {Type: "string"}, "owner": {Type: "string"}},
				Pre:     []string{},
				Post:    []string{"function recordDeleteLog(req, cb) {}"},
				Options: json.RawMessage(`{"version":2}`)},
				Version: 2, MTime: time.Date(2026, 11, 28, 8, 50, 29, 951e6, time.UTC)},
		},
		{
			name: "listBuckets: null options tolerated",
			respond: func(r *request) {
				r.Conn.reply(r,
					map[string]any{"name": "a", "index": "{}", "pre": "[]", "post": "[]", "options": nil, "mtime": "2026-01-01T00:00:00Z"},
					map[string]any{"name": "b", "index": "{}", "pre": "[]", "post": "[]", "options": `{"version":1}`, "mtime": "2026-01-01T00:00:00Z",
						"reindex_active": `{"2":["x"]}`})
			},
			call: func() (any, error) {
				bs, err := c.ListBuckets(ctx)
				var names []string
				for _, b := range bs {
					names = append(names, b.Name+":"+string(b.Options)+":"+string(b.ReindexActive))
				}
				return names, err
			},
			wantArgs: `[` + opts + `]`,
			want:     []string{"a::", `b:{"version":1}:{"2":["x"]}`},
		},
		{
			name:    "createBucket",
			respond: func(r *request) { r.Conn.end(r) },
			call: func() (any, error) {
				return nil, c.CreateBucket(ctx, "manta", BucketConfig{
					Index:   map[string]IndexSpec{"owner": {Type: "string"}},
					Options: json.RawMessage(`{"version":2}`)})
			},
			wantArgs: `["manta",{"index":{"owner":{"type":"string"}},"pre":[],"post":[],"options":{"version":2}},` + opts + `]`,
		},
		{
			name: "batch: per-op etags, none at the top",
			respond: func(r *request) {
				r.Conn.reply(r, map[string]any{"etags": []map[string]string{
					{"bucket": "manta", "etag": "AAAAAAAA", "key": "/a"}, {"bucket": "manta", "etag": "BBBBBBBB", "key": "/b"}, {"bucket": "manta", "key": "/c"}}})
			},
			call: func() (any, error) {
				return c.Batch(ctx, []BatchOp{
					{Bucket: "manta", Key: "/a", Value: json.RawMessage(`{"x":1}`), Etag: IfEtag("314BADAF")},
					{Bucket: "manta", Key: "/b", Value: json.RawMessage(`{"y":"<&>"}`), Etag: IfAbsent()},
					{Delete: true, Bucket: "manta", Key: "/c"},
				})
			},
			wantArgs: `[[{"operation":"put","bucket":"manta","options":{"etag":"314BADAF"},"key":"/a","value":{"x":1}},` +
				`{"operation":"put","bucket":"manta","options":{"etag":null},"key":"/b","value":{"y":"<&>"}},` +
				`{"operation":"delete","bucket":"manta","options":{},"key":"/c"}],` +
				`{"req_id":"` + id + `",` + defaults + `]`,
			want: []BatchResult{{"manta", "/a", "AAAAAAAA"}, {"manta", "/b", "BBBBBBBB"}, {"manta", "/c", ""}},
		},
		{
			name:    "putObject unconditional",
			respond: func(r *request) { r.Conn.reply(r, map[string]string{"etag": "CCCCCCCC"}) },
			call: func() (any, error) {
				return c.PutObject(ctx, "manta", "/a", json.RawMessage(`{"n":12345678901234567890}`), PutOptions{})
			},
			wantArgs: `["manta","/a",{"n":12345678901234567890},{"req_id":"` + id + `",` + defaults + `]`,
			want:     "CCCCCCCC",
		},
		{
			name:    "putObject if absent",
			respond: func(r *request) { r.Conn.reply(r, map[string]string{"etag": "CCCCCCCC"}) },
			call: func() (any, error) {
				return c.PutObject(ctx, "manta", "/a", json.RawMessage(`{}`), PutOptions{Etag: IfAbsent()})
			},
			wantArgs: `["manta","/a",{},{"req_id":"` + id + `","etag":null,` + defaults + `]`,
			want:     "CCCCCCCC",
		},
		{
			name:    "delObject with etag; electric-moray's trailing null ignored",
			respond: func(r *request) { r.Conn.reply(r, map[string]any{}, nil) },
			call: func() (any, error) {
				return nil, c.DeleteObject(ctx, "manta", "/a", DeleteOptions{Etag: IfEtag("DDDDDDDD")})
			},
			wantArgs: `["manta","/a",{"req_id":"` + id + `","etag":"DDDDDDDD",` + defaults + `]`,
		},
		{
			name: "findObjects: every option",
			respond: func(r *request) {
				r.Conn.reply(r, map[string]any{"bucket": "manta", "key": "/a", "value": map[string]any{}, "_id": "9007199254740993",
					"_etag": "E", "_mtime": 5, "_txn_snap": 7, "_count": 1})
			},
			call: func() (any, error) {
				var recs []Record
				err := c.FindObjects(ctx, "manta", "(&(_id>=0)(type=object))", FindOptions{
					Limit: 10, Offset: 20, Sort: []Sort{{Attribute: "_id"}, {Attribute: "_mtime", Descending: true}},
					NoLimit: true, NoCount: true, RequireIndexes: true, Timeout: 1500 * time.Millisecond},
					func(r *Record) error { recs = append(recs, *r); return nil })
				return recs, err
			},
			wantArgs: `["manta","(&(_id>=0)(type=object))",{"req_id":"` + id + `","limit":10,"offset":20,` +
				`"sort":[{"attribute":"_id","order":"ASC"},{"attribute":"_mtime","order":"DESC"}],"noLimit":true,` +
				`"no_count":true,"requireIndexes":true,"timeout":1500,"headers":{},"sql_only":false,"noCache":true}]`,
			want: []Record{{Bucket: "manta", Key: "/a", Value: json.RawMessage(`{}`), ID: 9007199254740993, Etag: "E", MTime: 5,
				TxnSnap: ptr[int64](7), Count: ptr[int64](1)}},
		},
		{
			name: "sql: rows streamed, nulls skipped",
			respond: func(r *request) {
				r.Conn.reply(r, map[string]any{"max": "1"}, nil, map[string]any{"max": 2})
			},
			call: func() (any, error) {
				var rows []string
				err := c.SQL(ctx, "SELECT MAX(_id) FROM manta WHERE _id > $1;", []any{5}, SQLOptions{Timeout: 10 * time.Second},
					func(row map[string]json.RawMessage) error { rows = append(rows, string(row["max"])); return nil })
				return rows, err
			},
			wantArgs: `["SELECT MAX(_id) FROM manta WHERE _id > $1;",[5],{"req_id":"` + id + `","timeout":10000}]`,
			want:     []string{`"1"`, "2"},
		},
		{
			name:     "version",
			respond:  func(r *request) { r.Conn.reply(r, map[string]int{"version": 2}) },
			call:     func() (any, error) { return c.Version(ctx) },
			wantArgs: `[` + opts + `]`,
			want:     2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			respond = tt.respond
			got, err := tt.call()
			if err != nil {
				t.Fatal(err)
			}
			r := <-reqs
			if string(r.Data) != tt.wantArgs {
				t.Errorf("args:\n got %s\nwant %s", r.Data, tt.wantArgs)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("result:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// Arguments the server would reject are refused before anything is sent.
func TestRejectedBeforeSending(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := newFakeServer(t, func(r *request) { t.Errorf("unexpected %s request", r.Method) })
	c := testClient(t, srv.Addr(), Options{})
	ctx := context.Background()
	for name, f := range map[string]func() error{
		"value not an object": func() error {
			_, err := c.PutObject(ctx, "b", "/k", json.RawMessage(`[1]`), PutOptions{})
			return err
		},
		"value not JSON": func() error {
			_, err := c.PutObject(ctx, "b", "/k", json.RawMessage(`{"a":`), PutOptions{})
			return err
		},
		"value not UTF-8": func() error {
			_, err := c.PutObject(ctx, "b", "/k", json.RawMessage("{\"a\":\"\xff\"}"), PutOptions{})
			return err
		},
		"batch value not UTF-8": func() error {
			_, err := c.Batch(ctx, []BatchOp{{Bucket: "b", Key: "/k", Value: json.RawMessage("{\"a\":\"\xed\xa0\x80\"}")}})
			return err
		},
		"empty IfEtag": func() error {
			_, err := c.PutObject(ctx, "b", "/k", json.RawMessage(`{}`), PutOptions{Etag: IfEtag("")})
			return err
		},
		"batch value": func() error {
			_, err := c.Batch(ctx, []BatchOp{{Bucket: "b", Key: "/k", Value: json.RawMessage(`"x"`)}})
			return err
		},
		"negative limit": func() error {
			return c.FindObjects(ctx, "b", "(a=1)", FindOptions{Limit: -1}, func(*Record) error { return nil })
		},
		"sql argument": func() error {
			return c.SQL(ctx, "SELECT 1", []any{make(chan int)}, SQLOptions{}, func(map[string]json.RawMessage) error { return nil })
		},
	} {
		if err := f(); err == nil || IsTransient(err) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if srv.Conns() != 0 {
		t.Errorf("%d connections made", srv.Conns())
	}
}

// A callback error stops a scan and comes back unchanged; the rest of the
// reply is dropped and the connection stays usable.
func TestCallbackErrorStopsScan(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := newFakeServer(t, func(r *request) {
		if r.Method == "ping" {
			r.Conn.end(r)
			return
		}
		for i := range 5 {
			r.Conn.data(r, record("/a", i))
		}
		r.Conn.end(r)
	})
	c := testClient(t, srv.Addr(), Options{Conns: 1})
	stop := &SharkNotFoundError{StorageID: "sentinel"}
	var seen int
	err := c.FindObjects(context.Background(), "b", "(x=1)", FindOptions{}, func(*Record) error {
		seen++
		if seen == 2 {
			return stop
		}
		return nil
	})
	if err != stop || seen != 2 {
		t.Fatalf("err = %v after %d records", err, seen)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNewClientDefaultPort(t *testing.T) {
	for in, want := range map[string]string{
		"1.moray.example.com":      "1.moray.example.com:2020",
		"127.0.0.1:2021":           "127.0.0.1:2021",
		"::1":                      "[::1]:2020",
		"1.moray.example.com:2020": "1.moray.example.com:2020",
	} {
		c := NewClient(in, Options{})
		if c.Addr() != want {
			t.Errorf("NewClient(%q).Addr() = %q, want %q", in, c.Addr(), want)
		}
		c.Close()
	}
}

func TestEtagConditionString(t *testing.T) {
	for c, want := range map[EtagCondition]string{
		{}:                 "unconditional",
		IfAbsent():         "if absent",
		IfEtag("314BADAF"): `if etag "314BADAF"`,
	} {
		if got := c.String(); got != want || c.IsZero() != strings.HasPrefix(want, "un") {
			t.Errorf("%#v: String %q IsZero %v", c, got, c.IsZero())
		}
	}
}
