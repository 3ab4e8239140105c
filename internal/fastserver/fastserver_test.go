package fastserver_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/fastserver"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

func TestMain(m *testing.M) { testutil.CheckMain(m) }

// echo is the smallest fake: every request is answered in order with a
// DATA frame holding its arguments' first element, then END; "huge"
// answers with size bytes of data, "drop" closes the connection, "bad"
// records a violation and "unencodable" answers with a DATA frame whose
// data is not an array.
type echo struct {
	srv  *fastserver.Server
	size int
}

func (e *echo) serve(c *fastserver.Conn) {
	dec := fast.NewDecoder(c, e.srv.MaxFrame())
	for {
		m, err := dec.Decode()
		if err != nil {
			c.ReadFailed(err)
			return
		}
		e.srv.CountCall(m.Method)
		r := c.NewReply(m)
		switch m.Method {
		case "drop":
			c.Drop()
			continue
		case "bad":
			c.Violation("asked for it")
			continue
		case "huge":
			r.Data(json.RawMessage(`"` + strings.Repeat("x", e.size) + `"`))
		case "unencodable":
			r.Frame(fast.StatusData, []byte(`{}`))
		default:
			var args []json.RawMessage
			_ = json.Unmarshal(m.Data, &args)
			r.Data(args[0])
		}
		r.Frame(fast.StatusEnd, []byte("[]"))
		r.Flush()
	}
}

func start(t *testing.T, cfg fastserver.Config) (*fastserver.Server, *echo) {
	t.Helper()
	e := &echo{}
	cfg.Name, cfg.Consequence, cfg.Truncated = "echotest", "a real echo would have crashed", "closed mid-frame"
	cfg.Serve = e.serve
	srv, err := fastserver.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, e
}

type client struct {
	t   *testing.T
	nc  net.Conn
	dec *fast.Decoder
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, dec: fast.NewDecoder(nc, 128<<20)}
}

func (c *client) send(version byte, id uint32, method, data string) {
	c.t.Helper()
	b, err := fast.AppendFrame(nil, &fast.Message{Version: version, Status: fast.StatusData, ID: id, Method: method, UTS: 1, Data: json.RawMessage(data)})
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() (*fast.Message, error) {
	c.nc.SetReadDeadline(time.Now().Add(testutil.Timeout))
	return c.dec.Decode()
}

func TestReplyEchoesTheRequest(t *testing.T) {
	srv, _ := start(t, fastserver.Config{})
	c := dial(t, srv.Addr())
	for _, v := range []byte{fast.Version1, fast.Version2} {
		c.send(v, 7, "ping", `[{"a":1}]`)
		for _, want := range []struct {
			status fast.Status
			data   string
		}{{fast.StatusData, `[{"a":1}]`}, {fast.StatusEnd, `[]`}} {
			m, err := c.read()
			if err != nil {
				t.Fatal(err)
			}
			if m.Version != v || m.ID != 7 || m.Method != "ping" || m.Status != want.status || string(m.Data) != want.data {
				t.Errorf("reply v%d %s msgid %d %q %s, want v%d %s msgid 7 \"ping\" %s",
					m.Version, m.Status, m.ID, m.Method, m.Data, v, want.status, want.data)
			}
		}
	}
	if got := srv.Calls("ping"); got != 2 {
		t.Errorf("Calls(ping) = %d, want 2", got)
	}
	if got := srv.CallCounts(); len(got) != 1 {
		t.Errorf("CallCounts() = %v", got)
	}
	srv.ResetCalls()
	if got := srv.Calls("ping"); got != 0 {
		t.Errorf("after ResetCalls, Calls(ping) = %d", got)
	}
}

func TestOfflineAndOnline(t *testing.T) {
	srv, _ := start(t, fastserver.Config{})
	addr := srv.Addr()
	c := dial(t, addr)
	c.send(fast.Version2, 1, "ping", `[1]`)
	if _, err := c.read(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the connection counted", func() bool { return srv.Conns() == 1 })

	srv.Offline()
	if _, err := c.dec.Decode(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		// The END of the first reply may still be buffered.
		if _, err = c.dec.Decode(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("after Offline, read %v, want the connection closed", err)
		}
	}
	if nc, err := net.Dial("tcp", addr); err == nil {
		nc.Close()
		t.Error("Offline server accepted a connection")
	}
	testutil.Eventually(t, "no connection left", func() bool { return srv.Conns() == 0 })

	if err := srv.Online(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Online(); err != nil {
		t.Fatalf("Online when online: %v", err)
	}
	if srv.Addr() != addr {
		t.Errorf("Addr() = %s after Online, want %s", srv.Addr(), addr)
	}
	c = dial(t, addr)
	c.send(fast.Version2, 1, "ping", `[2]`)
	if m, err := c.read(); err != nil || string(m.Data) != "[2]" {
		t.Fatalf("after Online: %v, %v", m, err)
	}
	if len(srv.Violations()) != 0 {
		t.Errorf("violations: %q", srv.Violations())
	}

	srv.Close()
	srv.Close() // a second Close is a no-op
	if err := srv.Online(); err == nil || !strings.Contains(err.Error(), "echotest: server closed") {
		t.Errorf("Online after Close: %v", err)
	}
}

func TestDropConnections(t *testing.T) {
	srv, _ := start(t, fastserver.Config{})
	c := dial(t, srv.Addr())
	c.send(fast.Version2, 1, "drop", `[]`)
	if _, err := c.read(); err == nil {
		t.Error("read a reply on a dropped connection")
	}
	c = dial(t, srv.Addr())
	c.send(fast.Version2, 1, "ping", `[1]`)
	if _, err := c.read(); err != nil {
		t.Fatal(err)
	}
	srv.DropConnections()
	testutil.Eventually(t, "no connection left", func() bool { return srv.Conns() == 0 })
	c = dial(t, srv.Addr())
	c.send(fast.Version2, 1, "ping", `[1]`)
	if _, err := c.read(); err != nil {
		t.Fatalf("the server stopped listening: %v", err)
	}
}

func TestViolations(t *testing.T) {
	const onConn = "connection 1 from 127.0.0.1:"
	tests := []struct {
		name         string
		send         func(c *client)
		prefix, want string
	}{
		{"closed mid-frame", func(c *client) {
			b, _ := fast.AppendFrame(nil, &fast.Message{Status: fast.StatusData, ID: 3, Method: "ping", Data: json.RawMessage(`[]`)})
			c.nc.Write(b[:len(b)-2])
			c.nc.(*net.TCPConn).CloseWrite()
		}, onConn, ": closed mid-frame"},
		{"malformed frame", func(c *client) {
			b, _ := fast.AppendFrame(nil, &fast.Message{Status: fast.StatusData, ID: 3, Method: "ping", Data: json.RawMessage(`[]`)})
			b[len(b)-2] = '}' // the checksum no longer matches
			c.nc.Write(b)
		}, onConn, ": malformed frame (msgid 3): checksum mismatch"},
		{"the fake's own", func(c *client) { c.send(fast.Version2, 4, "bad", `[]`) }, onConn, ": asked for it"},
		{"unencodable reply", func(c *client) { c.send(fast.Version2, 5, "unencodable", `[]`) }, "echotest internal error: cannot encode the DATA reply to unencodable: ", "must be a JSON array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := &testutil.Errors{TB: t}
			srv, _ := start(t, fastserver.Config{Strict: tb, Logger: testutil.Logger(t)})
			c := dial(t, srv.Addr())
			tt.send(c)
			// The test is failed last.
			testutil.Eventually(t, "a violation", func() bool { return len(tb.Messages()) > 0 })
			v := srv.Violations()
			if len(v) != 1 || !strings.HasPrefix(v[0], tt.prefix) || !strings.Contains(v[0], tt.want) {
				t.Errorf("Violations() = %q, want one starting %q and containing %q", v, tt.prefix, tt.want)
			}
			errs := tb.Messages()
			if len(errs) != 1 || !strings.HasPrefix(errs[0], "echotest: protocol violation (a real echo would have crashed): ") {
				t.Errorf("the strict test failed with %q", errs)
			}
			// The connection is closed.
			for {
				if _, err := c.read(); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatal("the connection is still open")
					}
					break
				}
			}
		})
	}
}

// Close returns even while a reply is blocked on a client that does not
// read.
func TestCloseCutsABlockedWrite(t *testing.T) {
	srv, e := start(t, fastserver.Config{})
	// More than the server's send buffer (4 MiB at most on Linux) and the
	// client's receive buffer hold.
	e.size = 6 << 20
	c := dial(t, srv.Addr())
	if err := c.nc.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	c.send(fast.Version2, 1, "huge", `[]`)
	// The reply has begun: the server is in its one write of the frame.
	c.nc.SetReadDeadline(time.Now().Add(testutil.Timeout))
	if _, err := io.ReadFull(c.nc, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	testutil.Receive(t, "Close", closed)
}

func TestFaults(t *testing.T) {
	var f fastserver.Faults[string, int]
	if _, ok := f.Failure("m"); ok {
		t.Error("a failure from the zero Faults")
	}
	f.FailNext("m", 2, "first")
	f.FailNext("m", 1, "second")
	var got []string
	for {
		e, ok := f.Failure("m")
		if !ok {
			break
		}
		got = append(got, e)
	}
	if strings.Join(got, ",") != "first,first,second" {
		t.Errorf("failures %q, want first, first, second", got)
	}
	if _, ok := f.Failure("other"); ok {
		t.Error("a failure for another method")
	}

	f.ConflictNext(1)
	stop := f.Storm(func(k int) bool { return k == 7 })
	for i := range 2 {
		// A storm does not use up ConflictNext's one conflict.
		if !f.Conflict(7) {
			t.Errorf("write %d on the storm's object did not conflict", i+1)
		}
	}
	if !f.Conflict(1) {
		t.Error("ConflictNext(1) did not make the next write conflict")
	}
	if f.Conflict(1) {
		t.Error("ConflictNext(1) made two writes conflict")
	}
	stop()
	stop()
	if f.Conflict(7) {
		t.Error("the storm went on after stop")
	}
}
