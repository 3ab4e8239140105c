package moraytest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// lenientServer records violations without failing the test, so that the
// tests below can commit them on purpose.
func lenientServer(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.CreateMantaBucket(); err != nil {
		t.Fatal(err)
	}
	return s
}

func frame(t *testing.T, id uint32, method, data string) []byte {
	t.Helper()
	f, err := fast.AppendFrame(nil, &fast.Message{Status: fast.StatusData, ID: id, Method: method, UTS: 1, Data: json.RawMessage(data)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// rawFrame builds a frame around any payload, with a correct checksum.
func rawFrame(status fast.Status, id uint32, payload string) []byte {
	h := make([]byte, fast.HeaderSize, fast.HeaderSize+len(payload))
	h[0], h[1], h[2] = fast.Version2, fast.TypeJSON, byte(status)
	binary.BigEndian.PutUint32(h[3:], id)
	binary.BigEndian.PutUint32(h[7:], uint32(fast.CRC16([]byte(payload))))
	binary.BigEndian.PutUint32(h[11:], uint32(len(payload)))
	return append(h, payload...)
}

func TestViolations(t *testing.T) {
	pingFrame := func(t *testing.T) []byte { return frame(t, 1, "ping", `[{}]`) }
	tests := []struct {
		name string
		want string
		// send misbehaves on a raw connection.
		send func(t *testing.T, nc net.Conn)
	}{
		{"bad CRC", "checksum mismatch", func(t *testing.T, nc net.Conn) {
			f := pingFrame(t)
			f[10] ^= 0xFF
			nc.Write(f)
		}},
		{"CRC high bytes set", "checksum mismatch", func(t *testing.T, nc net.Conn) {
			f := pingFrame(t)
			f[7] = 1
			nc.Write(f)
		}},
		{"d not an array", "data is not an array", func(t *testing.T, nc net.Conn) {
			nc.Write(rawFrame(fast.StatusData, 1, `{"m":{"uts":1,"name":"ping"},"d":{}}`))
		}},
		{"payload not JSON", "not a JSON object", func(t *testing.T, nc net.Conn) {
			nc.Write(rawFrame(fast.StatusData, 1, `{"m":`))
		}},
		{"bad version", "unsupported version", func(t *testing.T, nc net.Conn) {
			f := pingFrame(t)
			f[0] = 3
			nc.Write(f)
		}},
		{"msgid out of range", "out of range", func(t *testing.T, nc net.Conn) {
			f := pingFrame(t)
			f[3] = 0x80
			nc.Write(f)
		}},
		{"closed mid-frame", "closed in the middle of a frame", func(t *testing.T, nc net.Conn) {
			f := pingFrame(t)
			nc.Write(f[:len(f)-5])
			nc.(*net.TCPConn).CloseWrite()
		}},
		{"closed mid-header", "closed in the middle of a frame", func(t *testing.T, nc net.Conn) {
			nc.Write(pingFrame(t)[:7])
			nc.(*net.TCPConn).CloseWrite()
		}},
		{"getObject without noCache", "without options.noCache=true", func(t *testing.T, nc net.Conn) {
			nc.Write(frame(t, 1, "getObject", `["manta","/k",{"req_id":"8b5a6a3e-0d53-4c1e-9a5e-2d8f7f3b6c11"}]`))
		}},
		{"getObject with noCache false", "without options.noCache=true", func(t *testing.T, nc net.Conn) {
			nc.Write(frame(t, 1, "getObject", `["manta","/k",{"noCache":false}]`))
		}},
		{"empty method name", "empty method name", func(t *testing.T, nc net.Conn) {
			nc.Write(rawFrame(fast.StatusData, 1, `{"m":{"uts":1,"name":""},"d":[]}`))
		}},
		{"oversized frame", "exceeds", func(t *testing.T, nc net.Conn) {
			f := pingFrame(t)
			binary.BigEndian.PutUint32(f[11:], fast.DefaultMaxFrame+1)
			nc.Write(f)
		}},
		{"END from the client", "END frame", func(t *testing.T, nc net.Conn) {
			nc.Write(rawFrame(fast.StatusEnd, 1, `{"m":{"uts":1,"name":"ping"},"d":[]}`))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := lenientServer(t, Options{})
			bystander := dial(t, s.Addr())
			bystander.ok("ping", opts())

			nc, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			tt.send(t, nc)
			testutil.Eventually(t, "the violation", func() bool { return len(s.Violations()) > 0 })
			v := s.Violations()
			if len(v) != 1 || !strings.Contains(v[0], tt.want) {
				t.Fatalf("violations %q, want one about %q", v, tt.want)
			}
			// The server closed the offending connection, between frames and
			// without replying.
			nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			if n, err := io.ReadAll(nc); len(n) != 0 || err != nil {
				t.Errorf("offending connection got %d bytes then %v, want a clean close", len(n), err)
			}
			// Everyone else carries on.
			bystander.ok("ping", opts())
			dial(t, s.Addr()).ok("version", opts())
		})
	}
}

// A msgid may not be reused while its request is pending, and may be
// reused as soon as its reply ended.
func TestMsgIDReuse(t *testing.T) {
	s := lenientServer(t, Options{})
	release := make(chan struct{})
	var once sync.Once
	s.SetHook(func(r Request) Action {
		if r.Method == "findObjects" {
			<-release // hold it pending
		}
		return Action{}
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	bystander := dial(t, s.Addr())
	c := dial(t, s.Addr())
	for range 3 { // sequential reuse is fine
		collect(t, c.start(5, "ping", opts()))
	}
	held := c.start(9, "findObjects", "manta", "(type=x)", opts())
	testutil.Eventually(t, "the request to be pending", func() bool { return s.Calls("findObjects") == 1 })
	c.write(frame(t, 9, "ping", `[{}]`)) // raw: the client's own table still waits on the first
	testutil.Eventually(t, "the violation", func() bool { return len(s.Violations()) == 1 })
	if v := s.Violations()[0]; !strings.Contains(v, "msgid 9 reused") {
		t.Errorf("violation %q", v)
	}
	if err := c.waitClosed(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		t.Errorf("connection ended with %v, want a clean close", err)
	}
	once.Do(func() { close(release) })
	if r := collect(t, held); !r.broken {
		t.Errorf("the held request was answered on a dead connection: %+v", r)
	}
	bystander.ok("ping", opts())
}

func TestMaxFrame(t *testing.T) {
	s := lenientServer(t, Options{MaxFrame: 64})
	c := dial(t, s.Addr())
	c.start(0, "ping", map[string]any{"pad": strings.Repeat("x", 100)})
	testutil.Eventually(t, "the violation", func() bool { return len(s.Violations()) == 1 })
	if v := s.Violations()[0]; !strings.Contains(v, "exceeds the 64-byte limit") {
		t.Errorf("violation %q", v)
	}
}

// In strict mode a violation fails the test that caused it.
func TestStrict(t *testing.T) {
	tb := &testutil.Errors{TB: t}
	s := lenientServer(t, Options{Strict: tb})
	c := dial(t, s.Addr())
	c.ok("ping", opts())
	if len(tb.Messages()) != 0 {
		t.Fatal("a clean request failed the test")
	}
	c.start(0, "getObject", "manta", "/k", map[string]any{})
	testutil.Eventually(t, "Errorf", func() bool { return len(tb.Messages()) == 1 })
	if msg := tb.Messages()[0]; !strings.Contains(msg, "protocol violation") {
		t.Errorf("Errorf(%q)", msg)
	}
}

// ERROR frames from a client (the old cancel convention) are ignored.
func TestClientErrorFrameIgnored(t *testing.T) {
	s := lenientServer(t, Options{})
	c := dial(t, s.Addr())
	c.write(rawFrame(fast.StatusError, 3, `{"m":{"uts":1,"name":"ping"},"d":{"name":"Cancel","message":"x"}}`))
	c.ok("ping", opts())
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations %q", v)
	}
}
