package moraytest

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/fastserver"
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
	opts   Options
	srv    *fastserver.Server
	store  *store
	faults fastserver.Faults[*fast.Error, objectKey]

	mu   sync.Mutex
	hook Hook
}

// New starts a server on 127.0.0.1 with an ephemeral port.
func New(opts Options) (*Server, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{opts: opts, store: newStore(now), hook: opts.Hook}
	srv, err := fastserver.Listen(fastserver.Config{
		Name:        "moraytest",
		Consequence: "a real Moray would have crashed",
		Truncated:   "connection closed in the middle of a frame (node-fast: incomplete message at end-of-stream)",
		Strict:      opts.Strict,
		Logger:      opts.Logger,
		MaxFrame:    opts.MaxFrame,
		Serve:       s.serveConn,
	})
	if err != nil {
		return nil, err
	}
	s.srv = srv
	srv.Start()
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
func (s *Server) Addr() string { return s.srv.Addr() }

// Close stops the server: it stops listening, closes every connection and
// waits for all of its goroutines. It may be called more than once.
func (s *Server) Close() { s.srv.Close() }

// Offline makes the server unreachable: it stops listening, so new
// connections are refused, and closes every open connection (each between
// two frames, as a restarting Moray would not, but a cleanly failing proxy
// might). Online brings it back on the same address.
func (s *Server) Offline() { s.srv.Offline() }

// Online listens again on the server's address after Offline. It is a
// no-op when the server is online.
func (s *Server) Online() error { return s.srv.Online() }

// DropConnections closes every open connection, each between two frames.
// The server keeps listening.
func (s *Server) DropConnections() { s.srv.DropConnections() }

// Conns returns the number of open client connections.
func (s *Server) Conns() int { return s.srv.Conns() }

// Violations returns what clients did that would have crashed a real Moray
// (malformed frames, connections closed mid-frame, getObject without
// noCache, reused message ids...), in order. Each also closed the
// offending connection.
func (s *Server) Violations() []string { return s.srv.Violations() }

// Calls returns how many requests for method the server has received,
// whatever their outcome.
func (s *Server) Calls(method string) int { return s.srv.Calls(method) }

// CallCounts returns the number of requests received per method.
func (s *Server) CallCounts() map[string]int { return s.srv.CallCounts() }

// ResetCalls sets every call count back to zero.
func (s *Server) ResetCalls() { s.srv.ResetCalls() }
