package mdapitest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	owner  = "6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01"
	bucket = "b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05"
	reqID  = "8b5a6a3e-0d53-4c1e-9a5e-2d8f7f3b6c11"
)

var (
	stor1 = rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "1.stor.example.com"}
	stor2 = rebalancer.StorageNode{Datacenter: "dc2", MantaStorageID: "2.stor.example.com"}
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// rawClient sends hand-made frames, written on moray/fast so that the
// server is tested independently of package mdapi.
type rawClient struct {
	t   *testing.T
	nc  net.Conn
	dec *fast.Decoder
	id  uint32
}

func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(time.Minute))
	return &rawClient{t: t, nc: nc, dec: fast.NewDecoder(nc, 0)}
}

// call sends method with d = [payload] and returns the reply frames.
func (c *rawClient) call(method, payload string) []*fast.Message {
	c.t.Helper()
	c.id++
	frame, err := fast.AppendFrame(nil, &fast.Message{Status: fast.StatusData, ID: c.id, Method: method, UTS: 1700000000000000,
		Data: json.RawMessage("[" + payload + "]")})
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.nc.Write(frame); err != nil {
		c.t.Fatal(err)
	}
	var out []*fast.Message
	for {
		m, err := c.dec.Decode()
		if err != nil {
			c.t.Fatalf("%s: reading the reply: %v", method, err)
		}
		if m.ID != c.id || m.Method != method || m.Version != fast.Version2 {
			c.t.Fatalf("%s: reply %+v", method, m)
		}
		out = append(out, m)
		if m.Status != fast.StatusData {
			return out
		}
	}
}

// items returns the d[0] of each DATA frame of a successful reply.
func items(t *testing.T, ms []*fast.Message) []string {
	t.Helper()
	if last := ms[len(ms)-1]; last.Status != fast.StatusEnd || string(last.Data) != "[]" {
		t.Fatalf("reply ends with %s %s", last.Status, last.Data)
	}
	var out []string
	for _, m := range ms[:len(ms)-1] {
		var d []json.RawMessage
		if err := json.Unmarshal(m.Data, &d); err != nil || len(d) != 1 {
			t.Fatalf("DATA %s", m.Data)
		}
		out = append(out, string(d[0]))
	}
	return out
}

func start(t *testing.T, opts ...Options) *Server {
	t.Helper()
	return Start(t, opts...)
}

func getPayload(name string, vnode uint64, extra string) string {
	return fmt.Sprintf(`{"owner":%q,"bucket_id":%q,"name":%q,"vnode":%d,"request_id":%q%s}`, owner, bucket, name, vnode, reqID, extra)
}

// The tables and column types buckets-mdapi's schema manager creates,
// which direct-database discovery reads.
func TestSchema(t *testing.T) {
	s := start(t, Options{Vnodes: []uint64{0, 7}})
	rows, err := s.DB().QueryContext(ctxT(t), `SELECT table_schema, table_name, column_name, udt_name, is_nullable
		FROM information_schema.columns WHERE table_schema LIKE 'manta\_bucket\_%'
		AND table_name = 'manta_bucket_object' ORDER BY table_schema, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var schema, table, col, typ, null string
		if err := rows.Scan(&schema, &table, &col, &typ, &null); err != nil {
			t.Fatal(err)
		}
		if schema == "manta_bucket_7" {
			got = append(got, col+" "+typ+" "+null)
		}
	}
	want := []string{"id uuid NO", "name text NO", "owner uuid NO", "bucket_id uuid NO", "created timestamptz NO",
		"modified timestamptz NO", "content_length int8 NO", "content_md5 bytea NO", "content_type text NO",
		"headers hstore YES", "sharks _text YES", "properties jsonb YES"}
	if !slices.Equal(got, want) {
		t.Errorf("manta_bucket_7.manta_bucket_object columns\n got %v\nwant %v", got, want)
	}
	var tables []string
	trows, err := s.DB().QueryContext(ctxT(t), `SELECT table_name FROM information_schema.tables WHERE table_schema = 'manta_bucket_0' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer trows.Close()
	for trows.Next() {
		var n string
		trows.Scan(&n)
		tables = append(tables, n)
	}
	if !slices.Equal(tables, []string{"manta_bucket", "manta_bucket_deleted_bucket", "manta_bucket_deleted_object", "manta_bucket_object", "migrations"}) {
		t.Errorf("tables %v", tables)
	}
}

func TestGetAndConditions(t *testing.T) {
	ctx := ctxT(t)
	s := start(t)
	o, err := s.PutObject(ctx, Object{Vnode: 1, Owner: owner, BucketID: bucket, Name: "o", ContentLength: 3,
		ContentMD5: "rL0Y20zC+Fzt72VPzMSk2A==", Headers: map[string]*string{"b": nil, "a": ptr("x\u2028")},
		Sharks: []rebalancer.StorageNode{stor1, stor2}, Properties: json.RawMessage(`{"z": 1, "a": [true, null]}`)})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addr())
	got := items(t, c.call("getobject", getPayload("o", 1, "")))
	want := fmt.Sprintf(`{"id":%q,"owner":%q,"bucket_id":%q,"name":"o","created":%q,"modified":%q,"content_length":3,`+
		`"content_md5":"rL0Y20zC+Fzt72VPzMSk2A==","content_type":"application/octet-stream","headers":{"a":"x`+"\u2028"+`","b":null},`+
		`"sharks":[{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"},{"datacenter":"dc2","manta_storage_id":"2.stor.example.com"}],`+
		`"properties":{"a":[true,null],"z":1}}`, o.ID, owner, bucket, serdeTime(o.Created), serdeTime(o.Modified))
	if len(got) != 1 || got[0] != want {
		t.Errorf("getobject\n got %v\nwant %s", got, want)
	}
	if !strings.Contains(serdeTime(o.Modified), ".") && o.Modified.Nanosecond() != 0 {
		t.Errorf("modified %s", serdeTime(o.Modified))
	}

	errItem := func(name, msg string) string {
		return fmt.Sprintf(`{"error":{"name":%q,"message":%q}}`, name, msg)
	}
	mod := serdeTime(o.Modified)
	for _, tc := range []struct {
		name, method, payload, want string
	}{
		{"missing", "getobject", getPayload("nope", 1, ""), errItem("ObjectNotFound", "requested object not found")},
		{"if-match other", "getobject", getPayload("o", 1, `,"conditions":{"if-match":["a","b"]}`),
			errItem("PreconditionFailedError", fmt.Sprintf(`if-match '"a", "b"' didn't match etag '%s'`, o.ID))},
		{"if-match star", "getobject", getPayload("o", 1, `,"conditions":{"if-match":["*"]}`), ""},
		{"if_match spelling", "getobject", getPayload("o", 1, fmt.Sprintf(`,"conditions":{"if_match":[%q]}`, o.ID)), ""},
		{"if-none-match", "getobject", getPayload("o", 1, fmt.Sprintf(`,"conditions":{"if-none-match":[%q]}`, o.ID)),
			errItem("PreconditionFailedError", fmt.Sprintf(`if-none-match '"%s"' matched etag '%s'`, o.ID, o.ID))},
		{"if-unmodified-since now", "getobject", getPayload("o", 1, fmt.Sprintf(`,"conditions":{"if-unmodified-since":%q}`, mod)), ""},
		{"if-unmodified-since before", "getobject", getPayload("o", 1, `,"conditions":{"if-unmodified-since":"2000-01-01T00:00:00Z"}`),
			errItem("PreconditionFailedError", fmt.Sprintf(`object was modified at '%s'; if-unmodified-since '2000-01-01T00:00:00+00:00'`, rfc3339(o.Modified)))},
		{"if-modified-since now", "getobject", getPayload("o", 1, fmt.Sprintf(`,"conditions":{"if-modified-since":%q}`, mod)),
			errItem("PreconditionFailedError", fmt.Sprintf(`object was modified at '%s'; if-modified-since '%s'`, rfc3339(o.Modified), rfc3339(o.Modified)))},
		{"missing vnode", "getobject", getPayload("o", 9, ""),
			errItem("PostgresError", `db error: ERROR: relation "manta_bucket_9.manta_bucket_object" does not exist`)},
		{"limit 0", "listobjects", fmt.Sprintf(`{"owner":%q,"bucket_id":%q,"vnode":1,"limit":0,"request_id":%q}`, owner, bucket, reqID),
			errItem("LimitConstraintError", "the listobjects limit option must be a value between 1 and 1024. the requested limit was 0")},
		{"listowners of a missing vnode", "listowners", fmt.Sprintf(`{"vnode":9,"request_id":%q}`, reqID),
			errItem("PostgresError", "vnode 9 does not exist on this mdapi instance")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := items(t, c.call(tc.method, tc.payload))
			if tc.want == "" {
				if len(got) != 1 || !strings.HasPrefix(got[0], `{"id":`) {
					t.Errorf("got %v, want the object", got)
				}
				return
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("got %v\nwant %s", got, tc.want)
			}
		})
	}
}

// Requests the server cannot decode or does not know get a FastError in
// an ERROR frame; the connection goes on.
func TestRequestErrors(t *testing.T) {
	servers := map[Version]*Server{}
	for _, v := range []Version{Fork, ForkWithoutDiscovery, Upstream} {
		servers[v] = start(t, Options{Version: v})
	}
	for _, tc := range []struct {
		version         Version
		method, payload string
		msg             string
	}{
		{Fork, "getobject", fmt.Sprintf(`{"owner":%q,"bucket_id":%q,"name":"o","request_id":%q}`, owner, bucket, reqID), "missing field `vnode`"},
		{Fork, "getobject", strings.Replace(getPayload("o", 1, ""), `"vnode":1`, `"vnode":-1`, 1), "expected u64"},
		{Fork, "getobject", strings.Replace(getPayload("o", 1, ""), owner, "nope", 1), "UUID parsing failed"},
		{Fork, "getobject", `"x"`, "expected struct GetObjectPayload"},
		{Fork, "getobject", getPayload("o", 1, "") + `,{}`, "missing field"}, // every element must decode
		{Fork, "nosuch", `{}`, "Unsupported functon: nosuch"},
		{Upstream, "listvnodes", `{}`, "Unsupported functon: listvnodes"},
		{ForkWithoutDiscovery, "listowners", `{}`, "Unsupported functon: listowners"},
		{Upstream, "batchupdateobjects", `{}`, "Unsupported functon: batchupdateobjects"},
		{Fork, "createobject", `{}`, "mdapitest: createobject is not implemented"},
	} {
		t.Run(tc.version.String()+"/"+tc.method+"/"+tc.msg, func(t *testing.T) {
			s := servers[tc.version]
			s.ResetCalls()
			c := dial(t, s.Addr())
			ms := c.call(tc.method, tc.payload)
			var e struct{ Name, Message string }
			if len(ms) != 1 || ms[0].Status != fast.StatusError || json.Unmarshal(ms[0].Data, &e) != nil ||
				e.Name != "FastError" || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("reply %+v (%s)", ms[len(ms)-1], ms[len(ms)-1].Data)
			}
			items(t, c.call("listbuckets", fmt.Sprintf(`{"owner":%q,"vnode":0,"limit":5,"request_id":%q}`, owner, reqID)))
			if s.Calls(tc.method) != 1 {
				t.Errorf("%d calls", s.Calls(tc.method))
			}
		})
	}
	// An empty d.
	c := dial(t, servers[Fork].Addr())
	frame, _ := fast.AppendFrame(nil, &fast.Message{Status: fast.StatusData, ID: 1, Method: "getobject", Data: json.RawMessage(`[]`)})
	c.nc.Write(frame)
	if m, err := c.dec.Decode(); err != nil || m.Status != fast.StatusError || !strings.Contains(string(m.Data), "Failed to parse JSON data as payload for getobject function") {
		t.Errorf("empty d: %+v, %v", m, err)
	}
}

// Frames a real buckets-mdapi would lose the connection over are
// violations.
func TestViolations(t *testing.T) {
	payload := func(data string) []byte {
		return []byte(`{"m":{"uts":1,"name":"getobject"},"d":` + data + `}`)
	}
	frameOf := func(version byte, p []byte) []byte {
		h := make([]byte, fast.HeaderSize)
		h[0], h[1], h[2] = version, fast.TypeJSON, byte(fast.StatusData)
		binary.BigEndian.PutUint32(h[3:], 1)
		crc := fast.CRC16(p)
		if version == fast.Version1 {
			crc = fast.CRC16V1(p)
		}
		binary.BigEndian.PutUint32(h[7:], uint32(crc))
		binary.BigEndian.PutUint32(h[11:], uint32(len(p)))
		return append(h, p...)
	}
	good := "[" + getPayload("o", 0, "") + "]"
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"whitespace", frameOf(2, payload("[ "+getPayload("o", 0, "")+"]")), "re-serializes to"},
		{"escaped non-ASCII", frameOf(2, payload(strings.Replace(good, `"name":"o"`, `"name":"\u00e9"`, 1))), "re-serializes to"},
		{"escaped U+2028, as Go writes it", frameOf(2, payload(strings.Replace(good, `"name":"o"`, `"name":"\u2028"`, 1))), "re-serializes to"},
		{"escaped slash", frameOf(2, payload(strings.Replace(good, `"name":"o"`, `"name":"\/"`, 1))), "re-serializes to"},
		{"a float", frameOf(2, payload(strings.Replace(good, `"vnode":0`, `"vnode":0.0`, 1))), "unpredictable"},
		{"an extra member", frameOf(2, []byte(`{"m":{"uts":1,"name":"getobject"},"d":`+good+`,"x":1}`)), "re-serializes to"},
		{"negative uts", frameOf(2, []byte(`{"m":{"uts":-1,"name":"getobject"},"d":`+good+`}`)), "not a u64"},
		{"version 1", frameOf(1, payload(good)), "version 1 frame"},
		{"bad checksum", func() []byte { f := frameOf(2, payload(good)); f[8] ^= 1; return f }(), "checksum"},
		{"END from the client", func() []byte { f := frameOf(2, payload(good)); f[2] = byte(fast.StatusEnd); return f }(), "END frame"},
		{"cut short", frameOf(2, payload(good))[:40], "in the middle of a frame"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := &testutil.Errors{TB: t}
			s, err := New(ctxT(t), Options{DSN: pgtest.NewDatabase(t), Strict: tb})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			nc, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			nc.Write(tc.frame)
			if tc.name == "cut short" {
				nc.Close()
			} else {
				defer nc.Close()
				// The server closes the connection without a reply.
				nc.SetReadDeadline(time.Now().Add(30 * time.Second))
				if n, err := nc.Read(make([]byte, 1)); n != 0 || err == nil {
					t.Errorf("read after the bad frame: %d, %v", n, err)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(s.Violations()) == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond) // the server notices the cut on its own goroutine
			}
			v := s.Violations()
			if len(v) != 1 || !strings.Contains(v[0], tc.want) {
				t.Errorf("violations %q, want one with %q", v, tc.want)
			}
			// In strict mode, the violation also failed the test.
			testutil.Eventually(t, "the strict test failed", func() bool { return len(tb.Messages()) > 0 })
			const prefix = "mdapitest: protocol violation (a real buckets-mdapi would have dropped the connection): "
			if m := tb.Messages(); len(m) != 1 || !strings.HasPrefix(m[0], prefix) || !strings.Contains(m[0], tc.want) {
				t.Errorf("the strict test failed with %q, want one message starting %q", m, prefix)
			}
		})
	}
}

func TestFaultHooks(t *testing.T) {
	ctx := ctxT(t)
	s := start(t)
	if _, err := s.PutObject(ctx, Object{Vnode: 0, Owner: owner, BucketID: bucket, Name: "o", Sharks: []rebalancer.StorageNode{stor1}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addr())
	s.FailNext("getobject", 1, Overloaded)
	if got := items(t, c.call("getobject", getPayload("o", 0, ""))); len(got) != 1 || !strings.Contains(got[0], `"OverloadedError"`) {
		t.Errorf("FailNext: %v", got)
	}
	s.FailNext("getobject", 1, Fault{Name: "FastError", Message: "boom", Frame: true})
	if ms := c.call("getobject", getPayload("o", 0, "")); ms[0].Status != fast.StatusError || !strings.Contains(string(ms[0].Data), "boom") {
		t.Errorf("FailNext frame: %s", ms[0].Data)
	}
	var mu sync.Mutex
	var seen []Request
	s.SetHook(func(r Request) Action {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r)
		return Action{Fault: &PostgresDown}
	})
	if got := items(t, c.call("getobject", getPayload("o", 0, ""))); !strings.Contains(got[0], "PostgresError") {
		t.Errorf("hook: %v", got)
	}
	s.SetHook(nil)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0].Method != "getobject" || seen[0].Conn != 1 || !bytes.Contains(seen[0].Payload, []byte(`"name":"o"`)) {
		t.Errorf("hook saw %+v", seen)
	}
	if n := s.Calls("getobject"); n != 3 {
		t.Errorf("%d calls", n)
	}

	// Conditional updates fail while forced to; unconditional ones do not.
	upd := func(cond string) []string {
		o, _ := s.GetObject(ctx, 0, owner, bucket, "o")
		return items(t, c.call("updateobject", fmt.Sprintf(`{"owner":%q,"bucket_id":%q,"name":"o","id":%q,"vnode":0,`+
			`"content_type":"text/plain","headers":{},"properties":null,"request_id":%q%s}`, owner, bucket, o.ID, reqID, cond)))
	}
	s.ConflictNextUpdates(1)
	if got := upd(`,"conditions":{"if-match":["*"]}`); !strings.Contains(got[0], "PreconditionFailedError") {
		t.Errorf("ConflictNextUpdates: %v", got)
	}
	if got := upd(`,"conditions":{"if-match":["*"]}`); !strings.HasPrefix(got[0], `{"id"`) {
		t.Errorf("after ConflictNextUpdates: %v", got)
	}
	stop := s.ConflictStorm(func(_, _, name string) bool { return name == "o" })
	for range 3 {
		if got := upd(`,"conditions":{"if-match":["*"]}`); !strings.Contains(got[0], "PreconditionFailedError") {
			t.Errorf("storm: %v", got)
		}
	}
	if got := upd(""); !strings.HasPrefix(got[0], `{"id"`) {
		t.Errorf("unconditional in a storm: %v", got)
	}
	stop()
	if got := upd(`,"conditions":{"if-match":["*"]}`); !strings.HasPrefix(got[0], `{"id"`) {
		t.Errorf("after the storm: %v", got)
	}
}

func TestDirectAPI(t *testing.T) {
	ctx := ctxT(t)
	s := start(t)
	b, err := s.CreateBucket(ctx, Bucket{Vnode: 2, Owner: owner, Name: "photos"})
	if err != nil || b.ID == "" || b.Created.IsZero() {
		t.Fatalf("CreateBucket: %+v, %v", b, err)
	}
	if _, err := s.CreateBucket(ctx, Bucket{Vnode: 2, Owner: owner, Name: "photos"}); err == nil {
		t.Error("a second bucket of the same name")
	}
	o, err := s.PutObject(ctx, Object{Vnode: 2, Owner: owner, BucketID: b.ID, Name: "a", ContentLength: 5, Sharks: []rebalancer.StorageNode{stor1}})
	if err != nil {
		t.Fatal(err)
	}
	o2, err := s.PutObject(ctx, Object{Vnode: 2, Owner: owner, BucketID: b.ID, Name: "a", ContentLength: 6, Sharks: []rebalancer.StorageNode{stor2}})
	if err != nil || o2.ID == o.ID || o2.ContentLength != 6 {
		t.Errorf("overwrite: %+v, %v", o2, err)
	}
	if _, err := s.PutObject(ctx, Object{Vnode: 2, Owner: owner, BucketID: b.ID, Name: "b", ContentMD5: "%%"}); err == nil {
		t.Error("bad MD5 accepted")
	}
	m, err := s.Modify(ctx, 2, owner, b.ID, "a", func(o *Object) { o.ContentType = "text/csv" })
	if err != nil || m.ContentType != "text/csv" || !m.Modified.After(o2.Modified) || m.ID != o2.ID {
		t.Errorf("Modify: %+v, %v", m, err)
	}
	if _, err := s.GetObject(ctx, 2, owner, b.ID, "zz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetObject missing: %v", err)
	}
	rec, id, err := s.PutUpload(ctx, Upload{Vnode: 3, Owner: owner, BucketID: b.ID, BucketName: "photos", Key: "big.iso",
		PreAllocatedSharks: []rebalancer.StorageNode{stor1, stor2}})
	if err != nil {
		t.Fatal(err)
	}
	var record struct {
		UploadID   string `json:"uploadId"`
		Durability int    `json:"durabilityLevel"`
		Sharks     []struct {
			DC string `json:"datacenter"`
			ID string `json:"manta_storage_id"`
		} `json:"preAllocatedSharks"`
	}
	if rec.Name != UploadRecordName(id) || rec.ContentLength != 0 || len(rec.Sharks) != 0 || string(rec.Properties) != "{}" ||
		rec.Headers["x-upload-record"] == nil || json.Unmarshal([]byte(*rec.Headers["x-upload-record"]), &record) != nil ||
		record.UploadID != id || record.Durability != 2 || len(record.Sharks) != 2 || record.Sharks[1].ID != stor2.MantaStorageID ||
		*rec.Headers["x-upload-id"] != id || *rec.Headers["x-durability-level"] != "2" ||
		!strings.Contains(*rec.Headers["x-preallocated-sharks"], `"manta_storage_id":"1.stor.example.com"`) {
		t.Errorf("upload record %+v", rec)
	}
	if PartName(id, 3) != ".mpu-parts/"+id+"/3" {
		t.Errorf("PartName %s", PartName(id, 3))
	}
	all, err := s.Objects(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "a" || all[0].Vnode != 2 || all[1].Vnode != 3 {
		t.Errorf("Objects: %+v, %v", all, err)
	}
	if err := s.DeleteObject(ctx, 2, owner, b.ID, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteObject(ctx, 2, owner, b.ID, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if err := s.CreateVnodes(ctx, 40); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addr())
	if got := items(t, c.call("listvnodes", fmt.Sprintf(`{"request_id":%q}`, reqID))); len(got) != 1 || got[0] != `{"vnodes":[0,1,2,3,40]}` {
		t.Errorf("listvnodes %v", got)
	}
}

// Offline refuses connections; Online serves again on the same address.
func TestOfflineOnline(t *testing.T) {
	s := start(t)
	addr := s.Addr()
	c := dial(t, addr)
	items(t, c.call("listvnodes", fmt.Sprintf(`{"request_id":%q}`, reqID)))
	s.Offline()
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("dialed an offline server")
	}
	if n, err := c.nc.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("open connection survived: %d, %v", n, err)
	}
	if err := s.Online(); err != nil {
		t.Fatal(err)
	}
	c = dial(t, addr)
	items(t, c.call("listvnodes", fmt.Sprintf(`{"request_id":%q}`, reqID)))
	if s.Addr() != addr || s.Conns() != 1 {
		t.Errorf("addr %s, %d conns", s.Addr(), s.Conns())
	}
	s.DropConnections()
	if n, err := c.nc.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("dropped connection: %d, %v", n, err)
	}
}

func ptr(s string) *string { return &s }
