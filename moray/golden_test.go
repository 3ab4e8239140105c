package moray

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// The golden vectors of docs/golden.md ("Fast frames"), built by node-fast with
// uts 1700000000000000 and this req_id.
const (
	goldenReqID = "8b5a6a3e-0d53-4c1e-9a5e-2d8f7f3b6c11"
	goldenUTS   = 1700000000000000

	goldenV1Ping      = `0201010000000100000c3b000000717b226d223a7b22757473223a313730303030303030303030303030302c226e616d65223a2270696e67227d2c2264223a5b7b2264656570223a66616c73652c227265715f6964223a2238623561366133652d306435332d346331652d396135652d326438663766336236633131227d5d7d`
	goldenV4Get       = `0201010000000700003003000000807b226d223a7b22757473223a313730303030303030303030303030302c226e616d65223a226765744f626a656374227d2c2264223a5b226d616e7461222c222f616363742f73746f722f61222c7b227265715f6964223a2238623561366133652d306435332d346331652d396135652d326438663766336236633131227d5d7d`
	goldenV5Put       = `02010100000008000075ce0000009a7b226d223a7b22757473223a313730303030303030303030303030302c226e616d65223a227075744f626a656374227d2c2264223a5b226d616e7461222c222f616363742f73746f722f61222c7b2261223a317d2c7b227265715f6964223a2238623561366133652d306435332d346331652d396135652d326438663766336236633131222c2265746167223a223331344241444146227d5d7d`
	goldenV8Find      = `020101000000090000da22000000bf7b226d223a7b22757473223a313730303030303030303030303030302c226e616d65223a2266696e644f626a65637473227d2c2264223a5b226d616e74615f73746f72616765222c22286d616e74615f73746f726167655f69643d312e73746f722e6578616d706c652e636f6d29222c7b227265715f6964223a2238623561366133652d306435332d346331652d396135652d326438663766336236633131222c226c696d6974223a3130302c226e6f5f636f756e74223a747275657d5d7d`
	goldenV9SQL       = `0201010000000a0000eb9a0000006e7b226d223a7b22757473223a313730303030303030303030303030302c226e616d65223a2273716c227d2c2264223a5b2253454c454354204d4158285f6964292046524f4d206d616e74613b222c5b5d2c7b226c696d6974223a312c226e6f5f636f756e74223a747275657d5d7d`
	goldenV3PingEnd   = `020102000000010000c345000000337b226d223a7b22757473223a313730303030303030303030303030312c226e616d65223a2270696e67227d2c2264223a5b5d7d`
	goldenRealPingEnd = `02010200000001000021c4000000337b226d223a7b22757473223a313739353835353832393838363134362c226e616d65223a2270696e67227d2c2264223a5b5d7d`
	goldenV6PutData   = `02010100000008000072d00000004b7b226d223a7b22757473223a313730303030303030303030303030322c226e616d65223a227075744f626a656374227d2c2264223a5b7b2265746167223a223737343036453235227d5d7d`
	goldenV7Conflict  = `0201030000000800008b78000001157b226d223a7b22757473223a313730303030303030303030303030332c226e616d65223a227075744f626a656374227d2c2264223a7b226e616d65223a2245746167436f6e666c6963744572726f72222c226d657373616765223a226d616e74613a3a2f616363742f73746f722f612077617320657870656374656420746f20686176652065746167205c2233313442414441465c222c2062757420776173205c2237373430364532355c22222c22636f6e74657874223a7b226275636b6574223a226d616e7461222c226b6579223a222f616363742f73746f722f61222c226578706563746564223a223331344241444146222c2261637475616c223a223737343036453235227d2c22696e666f223a7b7d7d7d`
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// captureFrames returns the two directions of the real getObject capture.
func captureFrames(t testing.TB) (request, reply []byte) {
	t.Helper()
	return testutil.Capture(t, "fast/testdata/moray-getobject-capture.txt")
}

// goldenClient returns a client whose requests carry a fixed uts and req_id
// and whose connection starts at message id msgid, talking to a server that
// hands every request to reply.
func goldenClient(t *testing.T, uts int64, reqID string, msgid uint32, reply func(*request)) (*Client, chan *request) {
	t.Helper()
	reqs := make(chan *request, 16)
	srv := newFakeServer(t, func(r *request) {
		reqs <- r
		reply(r)
	})
	c := testClient(t, srv.Addr(), Options{Conns: 1})
	c.now = func() time.Time { return time.UnixMicro(uts) }
	c.newReqID = func() string { return reqID }
	c.firstMsgID = msgid
	return c, reqs
}

// The getObject request is byte for byte what node-moray 4.x sent to a real
// Moray in the capture: same options, same order, noCache:true.
func TestGetObjectMatchesCapture(t *testing.T) {
	testutil.CheckLeaks(t)
	capReq, capReply := captureFrames(t)
	c, reqs := goldenClient(t, 1795856528807855, "6136ea54-c669-4c98-b8b3-1b62d54c85f6", 1,
		func(r *request) { r.Conn.sendRaw(capReply) })
	rec, err := c.GetObject(context.Background(), "manta", "/930896af-bf8c-48d4-885c-6573a94b1853/stor/x")
	if err != nil {
		t.Fatal(err)
	}
	if got := (<-reqs).Raw; !bytes.Equal(got, capReq) {
		t.Errorf("getObject frame differs from the capture:\n got %x\nwant %x", got, capReq)
	}
	// The reply decodes to the record the server sent.
	want := Record{Bucket: "manta", Key: "/930896af-bf8c-48d4-885c-6573a94b1853/stor/x", ID: 1, Etag: "9971A559", MTime: 1795856528103}
	if rec.Bucket != want.Bucket || rec.Key != want.Key || rec.ID != want.ID || rec.Etag != want.Etag ||
		rec.MTime != want.MTime || rec.TxnSnap != nil || rec.Count != nil {
		t.Errorf("record = %+v", rec)
	}
	if !bytes.Contains(capReply, rec.Value) || !bytes.HasPrefix(rec.Value, []byte(`{"dirname":`)) ||
		!bytes.HasSuffix(rec.Value, []byte(`"manta_storage_id":"2.stor.local"}]}`)) {
		t.Errorf("value not kept verbatim: %s", rec.Value)
	}
	obj, err := rebalancer.ParseObject(rec.Value)
	if err != nil || len(obj.Sharks) != 2 || obj.ContentLength != 12 {
		t.Errorf("ParseObject(value) = %+v, %v", obj, err)
	}
}

// Ping is node-moray's ping, byte for byte vector V1; V3 and the END captured
// from the real Moray complete it.
func TestPingGolden(t *testing.T) {
	testutil.CheckLeaks(t)
	for _, end := range []string{goldenV3PingEnd, goldenRealPingEnd} {
		c, reqs := goldenClient(t, goldenUTS, goldenReqID, 1, func(r *request) { r.Conn.sendRaw(unhex(t, end)) })
		if err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, want := (<-reqs).Raw, unhex(t, goldenV1Ping); !bytes.Equal(got, want) {
			t.Errorf("ping frame:\n got %x\nwant %x", got, want)
		}
	}
}

// The client's other requests add node-moray's default options to the
// golden ones. Key order is req_id first, then the RPC's own options, then
// the defaults, so each golden payload (less its closing "}]}") is a byte
// prefix of the client's, and the rest is exactly the defaults.
func TestRequestsExtendGolden(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		golden string
		rest   string // what follows the golden payload's options
		call   func(c *Client) error
	}{
		{"V5 putObject", goldenV5Put, `,"headers":{},"no_count":false,"sql_only":false,"noCache":true}]}`,
			func(c *Client) error {
				_, err := c.PutObject(ctx, "manta", "/acct/stor/a", json.RawMessage(`{"a":1}`), PutOptions{Etag: IfEtag("314BADAF")})
				return err
			}},
		{"V8 findObjects", goldenV8Find, `,"headers":{},"sql_only":false,"noCache":true}]}`,
			func(c *Client) error {
				return c.FindObjects(ctx, "manta_storage", "(manta_storage_id=1.stor.example.com)",
					FindOptions{Limit: 100, NoCount: true}, func(*Record) error { return nil })
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden := unhex(t, tt.golden)
			gm, err := fast.NewDecoder(bytes.NewReader(golden), 0).Decode()
			if err != nil {
				t.Fatal(err)
			}
			c, reqs := goldenClient(t, goldenUTS, goldenReqID, gm.ID, func(r *request) {
				if r.Method == "putObject" {
					r.Conn.reply(r, map[string]string{"etag": "77406E25"})
				} else {
					r.Conn.end(r)
				}
			})
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
			got := <-reqs
			if got.ID != gm.ID || got.Method != gm.Method || got.UTS != gm.UTS {
				t.Errorf("header/meta = %d %s %d", got.ID, got.Method, got.UTS)
			}
			goldenPayload := golden[fast.HeaderSize:]
			prefix := goldenPayload[:len(goldenPayload)-len("}]}")]
			payload := got.Raw[fast.HeaderSize:]
			if !bytes.HasPrefix(payload, prefix) || string(payload[len(prefix):]) != tt.rest {
				t.Errorf("payload:\n got %s\nwant %s%s", payload, prefix, tt.rest)
			}
		})
	}
}

// Requests whose options differ from the golden ones in content, not just
// in the defaults: getObject adds noCache (V4 lacks it; a real Moray has
// crashed without it), sql adds req_id (V9 is sharkspotter's, which sends
// none). Their other arguments are exact.
func TestRequestsDifferingFromGolden(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	c, reqs := goldenClient(t, goldenUTS, goldenReqID, 7, func(r *request) {
		if r.Method == "getObject" {
			r.Conn.reply(r, map[string]any{"bucket": "manta", "key": "/acct/stor/a", "value": map[string]int{"a": 1},
				"_id": 1, "_etag": "314BADAF", "_mtime": 1, "_txn_snap": nil, "_count": nil})
			return
		}
		r.Conn.end(r)
	})
	if _, err := c.GetObject(ctx, "manta", "/acct/stor/a"); err != nil {
		t.Fatal(err)
	}
	if err := c.SQL(ctx, "SELECT MAX(_id) FROM manta;", nil, SQLOptions{}, func(map[string]json.RawMessage) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		golden   string
		wantOpts string
	}{
		{goldenV4Get, `{"requireOnlineReindexing":false,"req_id":"` + goldenReqID + `","headers":{},"no_count":false,"sql_only":false,"noCache":true}`},
		{goldenV9SQL, `{"req_id":"` + goldenReqID + `"}`},
	} {
		gm, err := fast.NewDecoder(bytes.NewReader(unhex(t, tt.golden)), 0).Decode()
		if err != nil {
			t.Fatal(err)
		}
		got := <-reqs
		if got.Method != gm.Method {
			t.Fatalf("got %s, want %s", got.Method, gm.Method)
		}
		ga, wa := got.args(t), (&request{Message: gm}).args(t)
		if len(ga) != len(wa) {
			t.Fatalf("%s: %d args, want %d", got.Method, len(ga), len(wa))
		}
		for i := range len(wa) - 1 {
			if !bytes.Equal(ga[i], wa[i]) {
				t.Errorf("%s arg %d = %s, want %s", got.Method, i, ga[i], wa[i])
			}
		}
		if opts := ga[len(ga)-1]; string(opts) != tt.wantOpts {
			t.Errorf("%s options = %s, want %s", got.Method, opts, tt.wantOpts)
		}
	}
}

// Golden replies V6 (DATA then END) and V7 (EtagConflictError).
func TestPutObjectGoldenReplies(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	end := &fast.Message{Status: fast.StatusEnd, ID: 8, Method: "putObject", UTS: 1700000000000004, Data: json.RawMessage("[]")}
	endFrame, err := fast.AppendFrame(nil, end)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := goldenClient(t, goldenUTS, goldenReqID, 8, func(r *request) {
		r.Conn.sendRaw(append(unhex(t, goldenV6PutData), endFrame...))
	})
	etag, err := c.PutObject(ctx, "manta", "/acct/stor/a", json.RawMessage(`{"a":1}`), PutOptions{Etag: IfEtag("314BADAF")})
	if err != nil || etag != "77406E25" {
		t.Fatalf("PutObject = %q, %v", etag, err)
	}

	c, _ = goldenClient(t, goldenUTS, goldenReqID, 8, func(r *request) { r.Conn.sendRaw(unhex(t, goldenV7Conflict)) })
	_, err = c.PutObject(ctx, "manta", "/acct/stor/a", json.RawMessage(`{"a":1}`), PutOptions{Etag: IfEtag("314BADAF")})
	var ec *EtagConflictError
	if !errors.As(err, &ec) {
		t.Fatalf("err = %v, want *EtagConflictError", err)
	}
	if ec.Bucket != "manta" || ec.Key != "/acct/stor/a" || ec.Expected != "314BADAF" || ec.Actual != "77406E25" || ec.Missing() {
		t.Errorf("conflict = %+v", ec)
	}
	if !errors.Is(err, rebalancer.ErrEtagConflict) || errors.Is(err, rebalancer.ErrObjectNotFound) || IsTransient(err) {
		t.Errorf("errors.Is wrong for %v", err)
	}
	var se *ServerError
	if !errors.As(err, &se) || se.Name() != "EtagConflictError" || se.Method != "putObject" ||
		string(se.Err.Info) != "{}" || !strings.Contains(string(se.Err.Context), `"actual":"77406E25"`) {
		t.Errorf("server error = %+v", se)
	}
}

func TestAppendStringMatchesMarshalData(t *testing.T) {
	tests := []string{
		"", "plain", `quote " and \ backslash`, "tab\there\nnewline\r\b\f", "\x00\x01\x1f\x7f",
		"<html> & 'x'", "é€😀", "line\u2028sep\u2029", "bad \xff utf8 \xc3", "/acct/stor/a b/c*(d)=e",
	}
	for _, s := range tests {
		want, err := fast.MarshalData(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff", "\u2028", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := fast.MarshalData(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestSplitArray(t *testing.T) {
	for _, in := range []string{
		`[]`, ` [ ] `, `[1]`, `[null]`, `[{"a":[1,2,{"b":"]},["}]},"x\"y,",3.5e2, true ,null]`,
		`[{"key":"a\\"}","v":{}} , [[]] ]`,
	} {
		checkSplit(t, in)
	}
	for _, bad := range []string{`{}`, `[1,]`, ``, `1`} {
		if _, err := splitArray(json.RawMessage(bad)); err == nil {
			t.Errorf("splitArray(%s) succeeded", bad)
		}
	}
}

func checkSplit(t *testing.T, in string) {
	t.Helper()
	var want []json.RawMessage
	if err := json.Unmarshal([]byte(in), &want); err != nil {
		return // only valid JSON reaches splitArray
	}
	if want == nil {
		// null decodes into a nil slice without error, but it is not an
		// array: reply data must be one, as node-fast requires (found by
		// FuzzSplitArray, testdata/fuzz/FuzzSplitArray/5753781e9fb25470).
		if _, err := splitArray(json.RawMessage(in)); err == nil {
			t.Fatalf("splitArray(%s) succeeded", in)
		}
		return
	}
	got, err := splitArray(json.RawMessage(in))
	if err != nil || len(got) != len(want) {
		t.Fatalf("splitArray(%s) = %q, %v; want %q", in, got, err, want)
	}
	for i := range want {
		if !bytes.Equal(got[i], bytes.TrimSpace(want[i])) {
			t.Errorf("splitArray(%s)[%d] = %s, want %s", in, i, got[i], want[i])
		}
	}
}

func FuzzSplitArray(f *testing.F) {
	for _, s := range []string{`[]`, `[1,"a,b",{"c":[2]}]`, `["\\\"",null]`} {
		f.Add(s)
	}
	f.Fuzz(checkSplit)
}

// A server answering in protocol version 1 (old CRC), as a real Moray does
// to a version-1 request, is understood too.
func TestVersion1Reply(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := newFakeServer(t, func(r *request) {
		if r.Version != fast.Version2 {
			t.Errorf("request sent in version %d", r.Version)
		}
		r.Conn.send(&fast.Message{Version: fast.Version1, Status: fast.StatusData, ID: r.ID, Method: r.Method,
			Data: json.RawMessage(`[{"etag":"É77406E25"}]`)})
		r.Conn.send(&fast.Message{Version: fast.Version1, Status: fast.StatusEnd, ID: r.ID, Method: r.Method, Data: json.RawMessage(`[]`)})
	})
	c := testClient(t, srv.Addr(), Options{})
	etag, err := c.PutObject(context.Background(), "b", "/k", json.RawMessage(`{}`), PutOptions{})
	if err != nil || etag != "É77406E25" {
		t.Fatalf("PutObject = %q, %v", etag, err)
	}
}
