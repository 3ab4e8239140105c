package mdapitest

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq" // the PostgreSQL driver

	"github.com/TritonDataCenter/rebalancer/internal/fastserver"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

// Version says which buckets-mdapi the server behaves as.
type Version int

const (
	// Fork is buckets-mdapi with the rebalancer's changes (branch
	// MANTA-5504, on top of MANTA-5484): updateobject takes sharks and
	// updates a row only if its id matches, batchupdateobjects exists, and
	// so do listvnodes and listowners.
	Fork Version = iota
	// ForkWithoutDiscovery is MANTA-5484 alone: sharks in updateobject and
	// batchupdateobjects, but no listvnodes or listowners.
	ForkWithoutDiscovery
	// Upstream is buckets-mdapi's master: updateobject ignores sharks and
	// does not check the id, and the three RPCs above are unknown.
	Upstream
)

func (v Version) String() string {
	switch v {
	case Fork:
		return "fork (MANTA-5504)"
	case ForkWithoutDiscovery:
		return "fork (MANTA-5484)"
	case Upstream:
		return "upstream"
	}
	return fmt.Sprintf("Version(%d)", int(v))
}

func (v Version) sharks() bool    { return v != Upstream }
func (v Version) batch() bool     { return v != Upstream }
func (v Version) discovery() bool { return v == Fork }

// DefaultVnodes are the vnodes a server gets when Options.Vnodes is nil.
var DefaultVnodes = []uint64{0, 1, 2, 3}

// Options configures a Server.
type Options struct {
	// DSN is the PostgreSQL URL of the database the server keeps its data
	// in (required). New creates the schemas it needs there.
	DSN string
	// Vnodes are the vnode schemas to create (nil: DefaultVnodes).
	Vnodes []uint64
	// Version is the buckets-mdapi to behave as (default Fork).
	Version Version
	// Strict, when set, makes every protocol violation also fail this test
	// (with Errorf). Close the server before the test ends (Start arranges
	// it).
	Strict testing.TB
	// Logger receives the server's diagnostics; nil discards them.
	Logger *slog.Logger
	// Hook, when set, sees every request before it is handled.
	Hook Hook
	// MaxFrame bounds the payload of a request frame; 0 means
	// fast.DefaultMaxFrame.
	MaxFrame int
}

// Server is an in-process buckets-mdapi listening on a loopback port, its
// data in a real PostgreSQL database. It is safe for concurrent use.
type Server struct {
	opts   Options
	srv    *fastserver.Server
	db     *sql.DB
	faults fastserver.Faults[Fault, objectKey]

	mu   sync.Mutex
	hook Hook
}

// New connects to the database, creates the vnode schemas, and starts a
// server on 127.0.0.1 with an ephemeral port.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.DSN == "" {
		return nil, fmt.Errorf("mdapitest: no database (Options.DSN)")
	}
	if opts.Vnodes == nil {
		opts.Vnodes = DefaultVnodes
	}
	db, err := sql.Open("postgres", opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("mdapitest: database: %w", err)
	}
	db.SetMaxOpenConns(16)
	s := &Server{opts: opts, db: db, hook: opts.Hook}
	if err := s.CreateVnodes(ctx, opts.Vnodes...); err != nil {
		db.Close()
		return nil, err
	}
	srv, err := fastserver.Listen(fastserver.Config{
		Name:         "mdapitest",
		Consequence:  "a real buckets-mdapi would have dropped the connection",
		Truncated:    "connection closed in the middle of a frame",
		Strict:       opts.Strict,
		Logger:       opts.Logger,
		MaxFrame:     opts.MaxFrame,
		WriteTimeout: 30 * time.Second,
		Serve:        s.serveConn,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	s.srv = srv
	srv.Start()
	return s, nil
}

// Start is New for tests: a fresh PostgreSQL database from pgtest (the test
// is skipped, loudly, when there is no PostgreSQL), a strict server, and
// t's cleanup closing it. opts, if given, supply everything but DSN and
// Strict.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o.DSN = pgtest.NewDatabase(t)
	o.Strict = t
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Addr returns the server's "host:port". It stays the same across Offline
// and Online.
func (s *Server) Addr() string { return s.srv.Addr() }

// Version is the buckets-mdapi the server behaves as.
func (s *Server) Version() Version { return s.opts.Version }

// Vnodes are the vnodes the server was created with.
func (s *Server) Vnodes() []uint64 { return slices.Clone(s.opts.Vnodes) }

// DB is the server's database, for tests that read or write it directly.
func (s *Server) DB() *sql.DB { return s.db }

// Close stops the server, closes every connection and the database handle,
// and waits for its goroutines. It may be called more than once.
func (s *Server) Close() {
	s.srv.Close()
	s.db.Close()
}

// Offline makes the server unreachable: it stops listening and closes every
// connection (between frames). Online brings it back on the same address.
func (s *Server) Offline() { s.srv.Offline() }

// Online listens again on the server's address after Offline.
func (s *Server) Online() error { return s.srv.Online() }

// DropConnections closes every open connection, each between two frames.
func (s *Server) DropConnections() { s.srv.DropConnections() }

// Conns returns the number of open client connections.
func (s *Server) Conns() int { return s.srv.Conns() }

// Violations returns, in order, what clients did that a real buckets-mdapi
// would have lost the connection over. Each also closed the offending
// connection.
func (s *Server) Violations() []string { return s.srv.Violations() }

// Calls returns how many requests for method the server has received.
func (s *Server) Calls(method string) int { return s.srv.Calls(method) }

// CallCounts returns the number of requests received per method.
func (s *Server) CallCounts() map[string]int { return s.srv.CallCounts() }

// ResetCalls sets every call count back to zero.
func (s *Server) ResetCalls() { s.srv.ResetCalls() }
