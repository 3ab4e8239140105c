package moray

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// request is one request frame as the fake server received it.
type request struct {
	*fast.Message
	Raw  []byte // the whole frame, header included
	Conn *fakeConn
}

// args decodes the request's d array.
func (r *request) args(t testing.TB) []json.RawMessage {
	t.Helper()
	var a []json.RawMessage
	if err := json.Unmarshal(r.Data, &a); err != nil {
		t.Fatalf("request %s d: %v", r.Method, err)
	}
	return a
}

// fakeServer is a scripted Moray speaking real Fast on loopback. Each
// connection's requests are handed to handle in order, on the connection's
// reader goroutine; a handler that wants to answer later or out of order
// starts a goroutine with fakeServer.spawn.
type fakeServer struct {
	t      testing.TB
	ln     net.Listener
	handle func(req *request)
	// gate, when set, is called after each request header is read and
	// before the payload is: tests use it to hold a frame mid-write.
	gate func(header []byte)
	// readBuffer, when set, is the receive buffer of accepted connections.
	readBuffer int

	mu     sync.Mutex
	conns  map[*fakeConn]struct{}
	nconns int
	closed bool
	wg     sync.WaitGroup
}

type fakeConn struct {
	srv *fakeServer
	nc  net.Conn
	wmu sync.Mutex
}

func newFakeServer(t testing.TB, handle func(*request), configure ...func(*fakeServer)) *fakeServer {
	return newFakeServerAt(t, "127.0.0.1:0", handle, configure...)
}

// newFakeServerAt starts a server on addr; configure functions set its
// optional fields before it accepts connections.
func newFakeServerAt(t testing.TB, addr string, handle func(*request), configure ...func(*fakeServer)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, handle: handle, conns: make(map[*fakeConn]struct{})}
	for _, f := range configure {
		f(s)
	}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

func (s *fakeServer) Addr() string { return s.ln.Addr().String() }

// Conns is the number of connections accepted so far.
func (s *fakeServer) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nconns
}

func (s *fakeServer) spawn(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		if s.readBuffer > 0 {
			_ = nc.(*net.TCPConn).SetReadBuffer(s.readBuffer)
		}
		fc := &fakeConn{srv: s, nc: nc}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[fc] = struct{}{}
		s.nconns++
		s.mu.Unlock()
		s.wg.Add(1)
		go fc.serve()
	}
}

// Close stops the server and drops every connection.
func (s *fakeServer) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.ln.Close()
	for fc := range s.conns {
		fc.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (fc *fakeConn) serve() {
	defer fc.srv.wg.Done()
	defer func() {
		fc.nc.Close()
		fc.srv.mu.Lock()
		delete(fc.srv.conns, fc)
		fc.srv.mu.Unlock()
	}()
	// One decoder per connection, fed frame by frame, so that the raw bytes
	// of each request are known.
	src := new(bytes.Reader)
	dec := fast.NewDecoder(src, 0)
	header := make([]byte, fast.HeaderSize)
	for {
		if _, err := io.ReadFull(fc.nc, header); err != nil {
			return
		}
		if fc.srv.gate != nil {
			fc.srv.gate(header)
		}
		raw := make([]byte, fast.HeaderSize+binary.BigEndian.Uint32(header[11:]))
		copy(raw, header)
		if _, err := io.ReadFull(fc.nc, raw[fast.HeaderSize:]); err != nil {
			fc.srv.t.Errorf("fake moray: request frame cut short: %v", err)
			return
		}
		src.Reset(raw)
		m, err := dec.Decode()
		if err != nil {
			// A real Moray would crash here (docs/protocols.md, "The crash hazard").
			fc.srv.t.Errorf("fake moray: bad request frame: %v", err)
			return
		}
		if m.Status != fast.StatusData {
			fc.srv.t.Errorf("fake moray: request with status %s", m.Status)
			return
		}
		fc.srv.handle(&request{Message: m, Raw: raw, Conn: fc})
	}
}

// send writes one reply frame whole.
func (fc *fakeConn) send(m *fast.Message) {
	if m.UTS == 0 {
		m.UTS = time.Now().UnixMicro()
	}
	b, err := fast.AppendFrame(nil, m)
	if err != nil {
		panic(err)
	}
	fc.sendRaw(b)
}

func (fc *fakeConn) sendRaw(b []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_, _ = fc.nc.Write(b) // the client may be gone; the test checks what it saw
}

// data sends one DATA frame holding item.
func (fc *fakeConn) data(req *request, item any) {
	fc.send(&fast.Message{Status: fast.StatusData, ID: req.ID, Method: req.Method, Data: mustArray(item)})
}

func (fc *fakeConn) end(req *request) {
	fc.send(&fast.Message{Status: fast.StatusEnd, ID: req.ID, Method: req.Method, Data: json.RawMessage("[]")})
}

// reply sends one DATA per item, then END.
func (fc *fakeConn) reply(req *request, items ...any) {
	for _, it := range items {
		fc.data(req, it)
	}
	fc.end(req)
}

// fail sends an ERROR reply.
func (fc *fakeConn) fail(req *request, name, message string, context any) {
	e := map[string]any{"name": name, "message": message, "context": map[string]any{}, "info": map[string]any{}}
	if context != nil {
		e["context"] = context
	}
	d, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	fc.send(&fast.Message{Status: fast.StatusError, ID: req.ID, Method: req.Method, Data: d})
}

func mustArray(item any) json.RawMessage {
	var b []byte
	var err error
	if raw, ok := item.(json.RawMessage); ok {
		b = raw
	} else if b, err = json.Marshal(item); err != nil {
		panic(err)
	}
	return json.RawMessage("[" + string(b) + "]")
}

// memStore is a tiny Moray over a map, enough for the object RPCs: etags,
// conditional puts, atomic batches, equality filters. (moraytest is the
// faithful one; this one keeps the client's tests self-contained.)
type memStore struct {
	mu      sync.Mutex
	objects map[string]map[string]*Record // bucket -> key -> record
	nextID  int64
}

func newMemStore() *memStore { return &memStore{objects: make(map[string]map[string]*Record)} }

func memEtag(value json.RawMessage) string { return fmt.Sprintf("%08X", crc32.ChecksumIEEE(value)) }

func (ms *memStore) put(bucket, key string, value json.RawMessage) string {
	if ms.objects[bucket] == nil {
		ms.objects[bucket] = make(map[string]*Record)
	}
	ms.nextID++
	r := &Record{Bucket: bucket, Key: key, Value: append(json.RawMessage(nil), value...), ID: ms.nextID,
		Etag: memEtag(value), MTime: 1795855848229}
	ms.objects[bucket][key] = r
	return r.Etag
}

func (ms *memStore) get(bucket, key string) *Record { return ms.objects[bucket][key] }

// checkEtag applies a request's etag option as Moray does (docs/protocols.md, putObject).
func (ms *memStore) checkEtag(bucket, key string, opts map[string]json.RawMessage) (expected, actual string, ok bool) {
	raw, has := opts["etag"]
	if !has {
		return "", "", true
	}
	actual = "null"
	if r := ms.get(bucket, key); r != nil {
		actual = r.Etag
	}
	expected = "null"
	if string(raw) != "null" {
		_ = json.Unmarshal(raw, &expected)
	}
	return expected, actual, expected == actual
}

func wireRecord(r *Record, count bool) map[string]any {
	m := map[string]any{"bucket": r.Bucket, "key": r.Key, "value": r.Value, "_id": r.ID,
		"_etag": r.Etag, "_mtime": r.MTime, "_txn_snap": nil, "_count": nil}
	if count {
		m["_count"] = 1
	}
	return m
}

func decodeOpts(raw json.RawMessage) map[string]json.RawMessage {
	var o map[string]json.RawMessage
	_ = json.Unmarshal(raw, &o)
	return o
}

func unquote(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

func (ms *memStore) conflict(fc *fakeConn, req *request, bucket, key, expected, actual string) {
	fc.fail(req, "EtagConflictError",
		fmt.Sprintf("%s::%s was expected to have etag %q, but was %q", bucket, key, expected, actual),
		map[string]string{"bucket": bucket, "key": key, "expected": expected, "actual": actual})
}

// handle serves one request.
func (ms *memStore) handle(req *request) {
	fc := req.Conn
	var a []json.RawMessage
	_ = json.Unmarshal(req.Data, &a)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	switch req.Method {
	case "ping":
		fc.end(req)
	case "getObject":
		bucket, key := unquote(a[0]), unquote(a[1])
		r := ms.get(bucket, key)
		if r == nil {
			fc.fail(req, "ObjectNotFoundError", bucket+"::"+key+" does not exist", nil)
			return
		}
		fc.reply(req, wireRecord(r, false))
	case "putObject":
		bucket, key := unquote(a[0]), unquote(a[1])
		if exp, act, ok := ms.checkEtag(bucket, key, decodeOpts(a[3])); !ok {
			ms.conflict(fc, req, bucket, key, exp, act)
			return
		}
		fc.reply(req, map[string]string{"etag": ms.put(bucket, key, a[2])})
	case "delObject":
		bucket, key := unquote(a[0]), unquote(a[1])
		if ms.get(bucket, key) == nil {
			fc.fail(req, "ObjectNotFoundError", bucket+"::"+key+" does not exist", nil)
			return
		}
		delete(ms.objects[bucket], key)
		fc.reply(req, map[string]any{})
	case "batch":
		var ops []struct {
			Operation string                     `json:"operation"`
			Bucket    string                     `json:"bucket"`
			Key       string                     `json:"key"`
			Value     json.RawMessage            `json:"value"`
			Options   map[string]json.RawMessage `json:"options"`
		}
		_ = json.Unmarshal(a[0], &ops)
		top := decodeOpts(a[1])
		for _, op := range ops { // all or nothing: check every etag first
			opts := op.Options
			if e, ok := top["etag"]; ok { // the server's merge, pitfall included
				opts = map[string]json.RawMessage{"etag": e}
			}
			if exp, act, ok := ms.checkEtag(op.Bucket, op.Key, opts); !ok {
				ms.conflict(fc, req, op.Bucket, op.Key, exp, act)
				return
			}
		}
		var etags []map[string]string
		for _, op := range ops {
			etags = append(etags, map[string]string{"bucket": op.Bucket, "etag": ms.put(op.Bucket, op.Key, op.Value), "key": op.Key})
		}
		fc.reply(req, map[string]any{"etags": etags})
	case "findObjects":
		// Only "(attr=value)" filters on top-level value fields.
		bucket, f := unquote(a[0]), unquote(a[1])
		attr, val, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(f, "("), ")"), "=")
		val = strings.NewReplacer(`\(`, "(", `\)`, ")", `\*`, "*", `\=`, "=", `\\`, `\`).Replace(val)
		var hits []any
		for _, r := range ms.objects[bucket] {
			var v map[string]any
			_ = json.Unmarshal(r.Value, &v)
			if fmt.Sprint(v[attr]) == val {
				hits = append(hits, wireRecord(r, true))
			}
		}
		fc.reply(req, hits...)
	default:
		fc.fail(req, "FastError", fmt.Sprintf("unsupported RPC method: %q", req.Method), nil)
	}
}

// testClient returns a client of addr closed at the end of the test.
func testClient(t testing.TB, addr string, opts Options) *Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testutil.Discard()
	}
	c := NewClient(addr, opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// logRecorder is a slog handler keeping messages, to check what was logged.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// testConn returns the connection in pool slot i, if any.
func (c *Client) testConn(i int) *conn {
	s := c.slots[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
