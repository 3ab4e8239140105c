package moraytest

import (
	"bytes"
	"encoding/json"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// testClient is a minimal Fast client for these tests, written on
// moray/fast so that the server is tested independently of package moray.
// It keeps many requests in flight and demultiplexes replies by msgid.
type testClient struct {
	t   testing.TB
	nc  net.Conn
	wmu sync.Mutex

	mu      sync.Mutex
	nextID  uint32
	waiters map[uint32]chan *fast.Message
	readErr error
	done    chan struct{}
}

func dial(t testing.TB, addr string) *testClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &testClient{t: t, nc: nc, waiters: map[uint32]chan *fast.Message{}, done: make(chan struct{})}
	go c.read()
	t.Cleanup(c.close)
	return c
}

func (c *testClient) close() {
	c.nc.Close()
	<-c.done
}

func (c *testClient) read() {
	defer close(c.done)
	dec := fast.NewDecoder(c.nc, 0)
	for {
		m, err := dec.Decode()
		c.mu.Lock()
		if err != nil {
			c.readErr = err
			for _, w := range c.waiters {
				close(w)
			}
			c.waiters = map[uint32]chan *fast.Message{}
			c.mu.Unlock()
			return
		}
		w := c.waiters[m.ID]
		if m.Status != fast.StatusData {
			delete(c.waiters, m.ID)
		}
		c.mu.Unlock()
		if w == nil {
			c.t.Errorf("reply for unknown msgid %d: %s %s", m.ID, m.Status, m.Data)
			continue
		}
		w <- m
		if m.Status != fast.StatusData {
			close(w)
		}
	}
}

// encodeArgs builds a d array; json.RawMessage arguments go in verbatim.
func encodeArgs(t testing.TB, args []any) json.RawMessage {
	t.Helper()
	var b bytes.Buffer
	b.WriteByte('[')
	for i, a := range args {
		if i > 0 {
			b.WriteByte(',')
		}
		raw, ok := a.(json.RawMessage)
		if !ok {
			var err error
			if raw, err = fast.MarshalData(a); err != nil {
				t.Fatal(err)
			}
		}
		b.Write(raw)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// start sends a request and returns the channel its reply frames arrive
// on (closed after the END or ERROR, or when the connection ends).
func (c *testClient) start(id uint32, method string, args ...any) <-chan *fast.Message {
	c.t.Helper()
	w := make(chan *fast.Message, 256)
	c.mu.Lock()
	if id == 0 {
		c.nextID++
		id = c.nextID
	}
	c.waiters[id] = w
	c.mu.Unlock()
	frame, err := fast.AppendFrame(nil, &fast.Message{Status: fast.StatusData, ID: id, Method: method,
		UTS: time.Now().UnixMicro(), Data: encodeArgs(c.t, args)})
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(frame)
	return w
}

func (c *testClient) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Logf("write: %v", err)
	}
}

// result collects a reply: the items of its DATA frames, or its error.
type result struct {
	items  []json.RawMessage
	err    *fast.Error
	frames []*fast.Message
	broken bool // the connection ended before END or ERROR
}

func collect(t testing.TB, w <-chan *fast.Message) result {
	t.Helper()
	var r result
	timeout := time.After(20 * time.Second) // a hang, not a timing assertion
	for {
		select {
		case m, ok := <-w:
			if !ok {
				if len(r.frames) == 0 || r.frames[len(r.frames)-1].Status == fast.StatusData {
					r.broken = true
				}
				return r
			}
			r.frames = append(r.frames, m)
			switch m.Status {
			case fast.StatusData, fast.StatusEnd:
				var items []json.RawMessage
				if err := json.Unmarshal(m.Data, &items); err != nil {
					t.Fatalf("reply data %s: %v", m.Data, err)
				}
				r.items = append(r.items, items...)
			case fast.StatusError:
				e, err := fast.ParseError(m.Data)
				if err != nil {
					t.Fatal(err)
				}
				r.err = e
			}
		case <-timeout:
			t.Fatal("no reply within 20s")
		}
	}
}

// call runs one RPC.
func (c *testClient) call(method string, args ...any) result {
	c.t.Helper()
	return collect(c.t, c.start(0, method, args...))
}

// ok runs an RPC that must succeed and returns its items.
func (c *testClient) ok(method string, args ...any) []json.RawMessage {
	c.t.Helper()
	r := c.call(method, args...)
	if r.err != nil || r.broken {
		c.t.Fatalf("%s: error %v (broken %v)", method, r.err, r.broken)
	}
	return r.items
}

// fails runs an RPC that must fail and returns its error.
func (c *testClient) fails(method string, args ...any) *fast.Error {
	c.t.Helper()
	r := c.call(method, args...)
	if r.err == nil {
		c.t.Fatalf("%s succeeded with %s, want an error", method, r.items)
	}
	return r.err
}

// waitClosed waits until the server has closed the connection.
func (c *testClient) waitClosed() error {
	testutil.Receive(c.t, "the server to close the connection", c.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

func opts(kv ...any) map[string]any {
	m := map[string]any{"req_id": "8b5a6a3e-0d53-4c1e-9a5e-2d8f7f3b6c11", "noCache": true}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func decode[T any](t testing.TB, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

func wantError(t testing.TB, e *fast.Error, name, message string) {
	t.Helper()
	if e == nil {
		t.Fatalf("no error, want %s: %s", name, message)
	}
	if e.Name != name || message != "" && e.Message != message {
		t.Fatalf("error %s: %q, want %s: %q", e.Name, e.Message, name, message)
	}
}
