package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// rawPost starts a POST /assignments of body on a new connection to addr,
// sending only its first sent bytes, and reads the reply in the
// background.
type rawPost struct {
	conn  net.Conn
	body  []byte
	sent  int
	reply chan rawReply
}

type rawReply struct {
	code int
	body string
	err  error
}

func startRawPost(t *testing.T, addr string, body []byte, sent int) *rawPost {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &rawPost{conn: conn, body: body, sent: sent, reply: make(chan rawReply, 1)}
	head := fmt.Sprintf("POST /assignments HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	if _, err := conn.Write(append([]byte(head), body[:sent]...)); err != nil {
		t.Fatal(err)
	}
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			p.reply <- rawReply{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		p.reply <- rawReply{code: resp.StatusCode, body: string(b), err: err}
	}()
	return p
}

// finish sends the rest of the body.
func (p *rawPost) finish(t *testing.T) {
	t.Helper()
	if _, err := p.conn.Write(p.body[p.sent:]); err != nil {
		t.Fatal(err)
	}
}

// paddedAssignment is a valid empty assignment of exactly n bytes.
func paddedAssignment(id string, n int) []byte {
	head := `{"id":"` + id + `","tasks":[],"pad":"`
	return []byte(head + strings.Repeat("x", n-len(head)-2) + `"}`)
}

// TestBodyBudget: many clients sending large bodies slowly, at once, hold
// no more memory than Config.MaxBodyBytesInFlight: those that would go over
// it get 503 at once (and may post again), the others are read and
// accepted once their bodies arrive, and everything reserved is given
// back.
func TestBodyBudget(t *testing.T) {
	const (
		clients = 16
		size    = 200 << 10
		budget  = 1 << 20
		fit     = budget / (size + 1) // bodies whose memory fits at once: 5
	)
	cfg := testConfig(t)
	cfg.MaxBodyBytes = 256 << 10
	cfg.MaxBodyBytesInFlight = budget
	cfg.BodyTimeout = testutil.Timeout
	a := startAgent(t, cfg)
	addr := a.srv.Listener.Addr().String()

	ids := make([]string, clients)
	posts := make([]*rawPost, clients)
	for i := range posts {
		ids[i] = newID()
		posts[i] = startRawPost(t, addr, paddedAssignment(ids[i], size), size-1000)
	}
	// Those that do not fit are refused while the others wait for the
	// rest of their bodies.
	waiting := map[int]bool{}
	for i := range posts {
		waiting[i] = true
	}
	refused := 0
	testutil.Poll(t, fmt.Sprintf("%d clients refused", clients-fit), func() error {
		for i := range waiting {
			select {
			case r := <-posts[i].reply:
				if r.err != nil || r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "busy") {
					t.Fatalf("client %d: %d %q %v, want 503 busy", i, r.code, r.body, r.err)
				}
				delete(waiting, i)
				refused++
			default:
			}
		}
		if refused < clients-fit {
			return fmt.Errorf("only %d refused", refused)
		}
		return nil
	})
	if held := a.s.inBodies.Load(); held != fit*(size+1) || held > budget {
		t.Fatalf("bodies hold %d bytes, want %d (budget %d)", held, fit*(size+1), budget)
	}
	if v, err := strconv.ParseFloat(metricValue(t, a.s, "rebalancer_agent_post_body_bytes"), 64); err != nil || v != fit*(size+1) {
		t.Fatalf("rebalancer_agent_post_body_bytes %v %v, want %d", v, err, fit*(size+1))
	}
	for i := range waiting {
		posts[i].finish(t)
	}
	for i := range waiting {
		r := testutil.Receive(t, fmt.Sprintf("client %d's reply", i), posts[i].reply)
		if r.err != nil || r.code != http.StatusOK {
			t.Fatalf("client %d: %d %q %v, want 200", i, r.code, r.body, r.err)
		}
		a.waitComplete(ids[i])
	}
	if held := a.s.inBodies.Load(); held != 0 {
		t.Fatalf("%d bytes still reserved after every body was read", held)
	}
	// A refused client posting again gets in.
	for i := range ids {
		if !waiting[i] {
			a.mustPost(ids[i])
			break
		}
	}
}

// TestChunkedBody: a body without a Content-Length is read within the
// same limits, its memory reserved as it grows.
func TestChunkedBody(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBodyBytes = 256 << 10
	a := startAgent(t, cfg)
	post := func(body []byte) (int, string) {
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < len(body); i += 10 << 10 {
				if _, err := pw.Write(body[i:min(i+10<<10, len(body))]); err != nil {
					return
				}
			}
			pw.Close()
		}()
		return request(t, http.MethodPost, a.url("/assignments"), pr)
	}
	id := newID()
	if code, body := post(paddedAssignment(id, 200<<10)); code != http.StatusOK {
		t.Fatalf("chunked POST: %d %s", code, body)
	}
	if code, body := post(paddedAssignment(newID(), 300<<10)); code != http.StatusBadRequest || !strings.Contains(body, "larger than") {
		t.Fatalf("chunked POST over the limit: %d %s", code, body)
	}
	a.waitComplete(id)
	if held := a.s.inBodies.Load(); held != 0 {
		t.Fatalf("%d bytes still reserved", held)
	}
}

// TestSlowClients: on the server from APIServer, a client that dribbles
// its headers, one that dribbles its body, and an idle kept-alive
// connection are each cut, while a normal request on the same server
// works.
func TestSlowClients(t *testing.T) {
	cfg := testConfig(t)
	cfg.HeaderTimeout = 200 * time.Millisecond
	cfg.BodyTimeout = 300 * time.Millisecond
	cfg.IdleTimeout = 300 * time.Millisecond
	a := startAgent(t, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := a.s.APIServer(nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	// dribble writes s one byte at a time until the connection breaks
	// or stop is closed.
	dribble := func(conn net.Conn, s string, stop chan struct{}) {
		for i := 0; ; i++ {
			if _, err := conn.Write([]byte{s[i%len(s)]}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	// cut waits until the server closes conn, and returns what it sent.
	cut := func(t *testing.T, conn net.Conn) string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(testutil.Timeout))
		b, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v; got %q", testutil.Timeout, b)
		}
		return string(b)
	}
	dial := func(t *testing.T) net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	t.Run("slow headers", func(t *testing.T) {
		conn := dial(t)
		stop := make(chan struct{})
		defer close(stop)
		conn.Write([]byte("POST /assignments HTTP/1.1\r\nHost: agent\r\n"))
		go dribble(conn, "X-Slow: aaaaaaaaaa\r\n", stop)
		if got := cut(t, conn); strings.Contains(got, "200 OK") {
			t.Fatalf("slow headers answered: %q", got)
		}
	})
	t.Run("slow body", func(t *testing.T) {
		conn := dial(t)
		stop := make(chan struct{})
		defer close(stop)
		body := paddedAssignment(newID(), 1000)
		fmt.Fprintf(conn, "POST /assignments HTTP/1.1\r\nHost: agent\r\nContent-Length: %d\r\n\r\n", len(body))
		go dribble(conn, string(body), stop)
		if got := cut(t, conn); !strings.HasPrefix(got, "HTTP/1.1 408") {
			t.Fatalf("slow body: got %q, want 408", got)
		}
		if held := a.s.inBodies.Load(); held != 0 {
			t.Fatalf("%d bytes still reserved", held)
		}
	})
	t.Run("idle", func(t *testing.T) {
		conn := dial(t)
		fmt.Fprint(conn, "GET /health HTTP/1.1\r\nHost: agent\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("health: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		conn.SetReadDeadline(time.Now().Add(testutil.Timeout))
		if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
			t.Fatalf("idle connection: %q %v, want closed", b, err)
		}
	})
	t.Run("normal", func(t *testing.T) {
		id := newID()
		code, body := request(t, http.MethodPost, "http://"+addr+"/assignments",
			strings.NewReader(`{"id":"`+id+`","tasks":[]}`))
		if code != http.StatusOK {
			t.Fatalf("POST: %d %s", code, body)
		}
		a.waitComplete(id)
	})
	if srv.ReadHeaderTimeout != cfg.HeaderTimeout || srv.IdleTimeout != cfg.IdleTimeout || srv.MaxHeaderBytes != maxHeaderBytes {
		t.Fatalf("server limits %v %v %d", srv.ReadHeaderTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}
