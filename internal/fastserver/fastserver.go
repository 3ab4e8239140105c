// Package fastserver is what the module's in-process Fast servers share
// (moraytest's Moray and mdapitest's buckets-mdapi): a listener on a
// loopback port with its accept loop, the connections it keeps and closes,
// Offline and Online, the protocol violations and per-method call counts it
// records, the frames of a reply, and canned faults.
//
// What differs between the two real servers stays with each fake, which
// runs its connections through Config.Serve:
//
//   - how a frame is read and how strictly (node-fast's decoder for Moray;
//     for buckets-mdapi also the serde_json re-serialization of every
//     payload, and version 2 only);
//   - whether a connection's requests run concurrently with their replies
//     interleaved (Moray) or one after the other (buckets-mdapi);
//   - the requests' handlers, and the shapes of replies and errors.
package fastserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// Config configures a Server.
type Config struct {
	// Name is the fake's package name: it prefixes errors and violations
	// and names the component in logs ("moraytest").
	Name string
	// Consequence says what a violation would have cost against the real
	// server ("a real Moray would have crashed"), for the violations'
	// messages.
	Consequence string
	// Truncated is the violation recorded for a connection closed in the
	// middle of a frame.
	Truncated string
	// Strict, when set, makes every violation also fail this test (with
	// Errorf). Close the server before the test ends.
	Strict testing.TB
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// MaxFrame bounds the payload of a request frame; 0 means
	// fast.DefaultMaxFrame. Serve applies it.
	MaxFrame int
	// WriteTimeout bounds each write to a client; 0 means none. Close cuts
	// a write short either way.
	WriteTimeout time.Duration
	// Serve runs one connection, on its own goroutine, reading its frames
	// until the client stops or the connection is dropped; the Server
	// closes the connection when Serve returns.
	Serve func(*Conn)
}

// Server listens on a loopback port and tracks the connections it serves.
// It is safe for concurrent use.
type Server struct {
	cfg  Config
	log  *slog.Logger
	addr string

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loops and the connections

	mu         sync.Mutex
	ln         net.Listener // nil while offline or closed
	conns      map[*Conn]struct{}
	nextConnID uint64
	closed     bool
	violations []string
	calls      map[string]int
}

// Listen makes a server listening on 127.0.0.1 with an ephemeral port.
// It accepts connections once Start is called.
func Listen(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%s: listen: %w", cfg.Name, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:    cfg,
		log:    log.With("component", cfg.Name, "addr", ln.Addr().String()),
		addr:   ln.Addr().String(),
		ctx:    ctx,
		cancel: cancel,
		ln:     ln,
		conns:  map[*Conn]struct{}{},
		calls:  map[string]int{},
	}
	return s, nil
}

// Start accepts connections, each served by Config.Serve, until Offline or
// Close. Call it once, when what Serve uses is in place.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.wg.Add(1)
		go s.accept(s.ln)
	}
}

// Addr returns the server's "host:port". It stays the same across Offline
// and Online.
func (s *Server) Addr() string { return s.addr }

// MaxFrame is the request payload limit.
func (s *Server) MaxFrame() int {
	if s.cfg.MaxFrame > 0 {
		return s.cfg.MaxFrame
	}
	return fast.DefaultMaxFrame
}

func (s *Server) accept(ln net.Listener) {
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
		c := s.newConn(nc, s.nextConnID)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

func (s *Server) serve(c *Conn) {
	defer s.wg.Done()
	defer s.forget(c)
	c.log.Debug("connection opened")
	s.cfg.Serve(c)
	c.Drop()
	c.log.Debug("connection closed")
}

func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops the server: it stops listening, closes every connection
// (cutting short a write to a client that does not read) and waits for all
// of its goroutines. It may be called more than once.
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
// connections are refused, and closes every open connection, each between
// two frames. Online brings it back on the same address.
func (s *Server) Offline() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.DropConnections()
}

// Online listens again on the server's address after Offline. It is a
// no-op when the server is online.
func (s *Server) Online() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%s: server closed", s.cfg.Name)
	}
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("%s: listen again on %s: %w", s.cfg.Name, s.addr, err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

// DropConnections closes every open connection, each between two frames.
// The server keeps listening.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := maps.Clone(s.conns)
	s.mu.Unlock()
	for c := range conns {
		c.Drop()
	}
}

// Conns returns the number of open client connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Violation records something the real server would not have survived
// (see Config.Consequence), and fails the Strict test.
func (s *Server) Violation(what string) {
	s.mu.Lock()
	s.violations = append(s.violations, what)
	s.mu.Unlock()
	s.log.Error("protocol violation: "+s.cfg.Consequence, "violation", what)
	if s.cfg.Strict != nil {
		s.cfg.Strict.Errorf("%s: protocol violation (%s): %s", s.cfg.Name, s.cfg.Consequence, what)
	}
}

// Violations returns the violations recorded, in order.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// CountCall counts a request for method.
func (s *Server) CountCall(method string) {
	s.mu.Lock()
	s.calls[method]++
	s.mu.Unlock()
}

// Calls returns how many requests for method were counted.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// CallCounts returns the number of requests counted per method.
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

// Conn is one client connection. Frames are written whole, under a lock,
// so the server only ever closes a connection between two frames (except
// when the whole server closes).
type Conn struct {
	srv *Server
	id  uint64
	nc  net.Conn
	log *slog.Logger

	ctx    context.Context // cancelled when the connection closes
	cancel context.CancelFunc

	wmu    sync.Mutex // held while writing, and to close
	closed bool       // under wmu: the server closed the connection
}

func (s *Server) newConn(nc net.Conn, id uint64) *Conn {
	ctx, cancel := context.WithCancel(s.ctx)
	return &Conn{
		srv: s, id: id, nc: nc, ctx: ctx, cancel: cancel,
		log: s.log.With("conn", id, "remote", nc.RemoteAddr().String()),
	}
}

// ID is the connection's number, from 1, in accept order.
func (c *Conn) ID() uint64 { return c.id }

// Context is cancelled when the connection closes or the server does.
func (c *Conn) Context() context.Context { return c.ctx }

// Log is the server's logger with the connection's number and remote
// address.
func (c *Conn) Log() *slog.Logger { return c.log }

// Read reads what the client sent.
func (c *Conn) Read(p []byte) (int, error) { return c.nc.Read(p) }

// Closed reports whether the server closed the connection.
func (c *Conn) Closed() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.closed
}

// ReadFailed handles the error that ended reading: a violation for a
// connection closed mid-frame and for a malformed frame, nothing for a
// clean end between frames or a connection the server closed itself.
func (c *Conn) ReadFailed(err error) {
	var pe *fast.ProtocolError
	switch {
	case c.Closed():
		// We closed it.
	case errors.Is(err, io.EOF):
		// A clean end between frames.
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.Violation(c.srv.cfg.Truncated)
	case errors.As(err, &pe):
		c.Violation(fmt.Sprintf("malformed frame (msgid %d): %s", pe.MsgID, pe.Reason))
	default:
		// A reset or similar: the real servers handle socket errors.
		c.log.Debug("connection read failed", "err", err)
	}
}

// Violation records a violation on this connection and closes it: the
// real server would have lost it, and every request in flight on it.
func (c *Conn) Violation(what string) {
	c.srv.Violation(fmt.Sprintf("connection %d from %s: %s", c.id, c.nc.RemoteAddr(), what))
	c.Drop()
}

// Drop closes the connection between frames.
func (c *Conn) Drop() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.closeLocked()
}

func (c *Conn) closeLocked() {
	if !c.closed {
		c.closed = true
		c.cancel()
		c.nc.Close()
	}
}

// shutdown closes the connection for Close: a write blocked on a client
// that does not read is cut loose first.
func (c *Conn) shutdown() {
	c.cancel()
	c.nc.SetWriteDeadline(time.Now())
	c.Drop()
}

// Send writes whole frames; after the connection closed it drops them. A
// failed write closes the connection.
func (c *Conn) Send(frames []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return
	}
	if d := c.srv.cfg.WriteTimeout; d > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(d))
	}
	if _, err := c.nc.Write(frames); err != nil {
		c.log.Debug("write failed; closing", "err", err)
		c.closeLocked()
	}
}

// Reply collects the frames answering one request, each echoing the
// request's protocol version, message id and method, and sends them on
// Flush.
type Reply struct {
	c   *Conn
	req *fast.Message
	buf []byte
}

// NewReply starts the reply to req.
func (c *Conn) NewReply(req *fast.Message) *Reply { return &Reply{c: c, req: req} }

// Request is the request the reply answers.
func (r *Reply) Request() *fast.Message { return r.req }

// Frame adds one frame.
func (r *Reply) Frame(status fast.Status, data []byte) {
	buf, err := fast.AppendFrame(r.buf, &fast.Message{
		Version: r.req.Version, Status: status, ID: r.req.ID, Method: r.req.Method,
		UTS: time.Now().UnixMicro(), Data: data,
	})
	if err != nil {
		// The fakes' own payloads are well formed, so this is a bug in
		// the fake: make it visible without taking the test binary down.
		r.c.srv.Violation(fmt.Sprintf("%s internal error: cannot encode the %s reply to %s: %v", r.c.srv.cfg.Name, status, r.req.Method, err))
		r.c.Drop()
		return
	}
	r.buf = buf
}

// Data adds a DATA frame carrying one result item: [item].
func (r *Reply) Data(item []byte) {
	d := make([]byte, 0, len(item)+2)
	r.Frame(fast.StatusData, append(append(append(d, '['), item...), ']'))
}

// Len is how many bytes of frames the reply holds unsent.
func (r *Reply) Len() int { return len(r.buf) }

// Reset forgets the frames not sent yet.
func (r *Reply) Reset() { r.buf = r.buf[:0] }

// Flush sends the frames collected so far.
func (r *Reply) Flush() {
	r.c.Send(r.buf)
	r.buf = r.buf[:0]
}
