package moraytest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// Options configures a Server. The zero value is ready to use.
type Options struct {
	// Strict, when set, makes every protocol violation also fail this test
	// (with Errorf), so that a client which would have crashed a real Moray
	// fails the test that drove it. Close the server before the test ends
	// (Start arranges it), as Errorf must not be called after.
	Strict testing.TB

	// Logger receives the server's diagnostics; nil discards them.
	Logger *slog.Logger

	// Hook, when set, sees every request before it is handled and can fail,
	// delay or drop it. SetHook replaces it.
	Hook Hook

	// MaxFrame bounds the payload of a request frame; 0 means
	// fast.DefaultMaxFrame. A larger frame is a violation.
	MaxFrame int

	// Now is the clock for _mtime and bucket mtimes; nil means time.Now.
	Now func() time.Time
}

// Server is an in-process Moray listening on a loopback port. It is safe
// for concurrent use: tests may read and write its store directly while
// clients talk to it over the wire.
type Server struct {
	opts  Options
	log   *slog.Logger
	store *store

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loops and the connections

	mu         sync.Mutex
	addr       string
	ln         net.Listener // nil while offline or closed
	conns      map[*conn]struct{}
	nextConnID uint64
	closed     bool
	violations []string
	calls      map[string]int
	hook       Hook
	faults     faults
}

// New starts a server on 127.0.0.1 with an ephemeral port.
func New(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("moraytest: listen: %w", err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:   opts,
		log:    log.With("component", "moraytest", "addr", ln.Addr().String()),
		store:  newStore(now),
		ctx:    ctx,
		cancel: cancel,
		addr:   ln.Addr().String(),
		ln:     ln,
		conns:  map[*conn]struct{}{},
		calls:  map[string]int{},
		hook:   opts.Hook,
	}
	s.wg.Add(1)
	go s.serve(ln)
	return s, nil
}

// Start is New for tests: the server is strict about violations (they
// fail t), and t's cleanup closes it.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New(Options{Strict: t})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Addr returns the server's "host:port". It stays the same across Offline
// and Online.
func (s *Server) Addr() string { return s.addr }

func (s *Server) serve(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return // the listener was closed by Offline or Close
		}
		s.mu.Lock()
		if s.closed || s.ln != ln {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.nextConnID++
		c := newConn(s, nc, s.nextConnID)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops the server: it stops listening, closes every connection and
// waits for all of its goroutines. It may be called more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	ln := s.ln
	s.ln = nil
	conns := maps.Clone(s.conns)
	s.mu.Unlock()

	s.cancel()
	if ln != nil {
		ln.Close()
	}
	for c := range conns {
		c.shutdown()
	}
	s.wg.Wait()
}

// Offline makes the server unreachable: it stops listening, so new
// connections are refused, and closes every open connection (each between
// two frames, as a restarting Moray would not, but a cleanly failing proxy
// might). Online brings it back on the same address.
func (s *Server) Offline() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	conns := maps.Clone(s.conns)
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for c := range conns {
		c.drop()
	}
}

// Online listens again on the server's address after Offline. It is a
// no-op when the server is online.
func (s *Server) Online() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("moraytest: server closed")
	}
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("moraytest: listen again on %s: %w", s.addr, err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.serve(ln)
	return nil
}

// DropConnections closes every open connection, each between two frames.
// The server keeps listening.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := maps.Clone(s.conns)
	s.mu.Unlock()
	for c := range conns {
		c.drop()
	}
}

// Conns returns the number of open client connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// violation records something a real Moray would have crashed on.
func (s *Server) violation(what string) {
	s.mu.Lock()
	s.violations = append(s.violations, what)
	s.mu.Unlock()
	s.log.Error("protocol violation: a real Moray would have crashed", "violation", what)
	if s.opts.Strict != nil {
		s.opts.Strict.Errorf("moraytest: protocol violation (a real Moray would have crashed): %s", what)
	}
}

// Violations returns what clients did that would have crashed a real Moray
// (malformed frames, connections closed mid-frame, getObject without
// noCache, reused message ids...), in order. Each also closed the
// offending connection.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

func (s *Server) countCall(method string) {
	s.mu.Lock()
	s.calls[method]++
	s.mu.Unlock()
}

// Calls returns how many requests for method the server has received,
// whatever their outcome.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// CallCounts returns the number of requests received per method.
func (s *Server) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// ResetCalls sets every call count back to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	clear(s.calls)
	s.mu.Unlock()
}

// maxFrame is the request payload limit.
func (s *Server) maxFrame() int {
	if s.opts.MaxFrame > 0 {
		return s.opts.MaxFrame
	}
	return fast.DefaultMaxFrame
}
