package moraytest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// conn is one client connection. A reader goroutine decodes requests and
// starts a goroutine per request, so many requests are in flight at once
// and their replies interleave, as with node-fast. Each frame is written
// whole under wmu, and the server only ever closes a connection between
// frames (except when the whole server is closed).
type conn struct {
	s   *Server
	id  uint64
	nc  net.Conn
	log *slog.Logger

	ctx    context.Context // cancelled when the connection closes
	cancel context.CancelFunc

	wmu    sync.Mutex // held while writing a frame, and to close
	closed bool       // under wmu: the server closed the connection

	pmu     sync.Mutex
	pending map[uint32]bool // msgids of requests whose reply has not ended

	handlers sync.WaitGroup
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	return &conn{
		s: s, id: id, nc: nc, ctx: ctx, cancel: cancel,
		log:     s.log.With("conn", id, "remote", nc.RemoteAddr().String()),
		pending: map[uint32]bool{},
	}
}

func (c *conn) serve() {
	defer c.s.wg.Done()
	defer c.s.forget(c)
	c.log.Debug("connection opened")
	dec := fast.NewDecoder(c.nc, c.s.maxFrame())
	for {
		m, err := dec.Decode()
		if err != nil {
			c.readFailed(err)
			break
		}
		if !c.dispatch(m) {
			break
		}
	}
	// A client may half-close after its last request and still read the
	// replies (node-fast servers allow half-open sockets).
	c.handlers.Wait()
	c.drop()
	c.log.Debug("connection closed")
}

func (c *conn) isClosed() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.closed
}

func (c *conn) readFailed(err error) {
	var pe *fast.ProtocolError
	switch {
	case c.isClosed():
		// We closed it.
	case errors.Is(err, io.EOF):
		// A clean end between frames.
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.violation("connection closed in the middle of a frame (node-fast: incomplete message at end-of-stream)")
	case errors.As(err, &pe):
		c.violation(fmt.Sprintf("malformed frame (msgid %d): %s", pe.MsgID, pe.Reason))
	default:
		// A reset or similar: node-fast handles socket errors.
		c.log.Debug("connection read failed", "err", err)
	}
}

// violation records a violation and closes the connection, whose requests
// a crashing Moray would have lost.
func (c *conn) violation(what string) {
	c.s.violation(fmt.Sprintf("connection %d from %s: %s", c.id, c.nc.RemoteAddr(), what))
	c.drop()
}

// dispatch handles one frame from the client; false stops reading.
func (c *conn) dispatch(m *fast.Message) bool {
	switch m.Status {
	case fast.StatusEnd:
		c.violation(fmt.Sprintf("client sent an END frame (msgid %d), on which node-fast terminates the connection", m.ID))
		return false
	case fast.StatusError:
		// The old "cancel" convention: node-fast logs and ignores it.
		c.log.Debug("ignoring ERROR frame from client", "msgid", m.ID)
		return true
	}
	c.pmu.Lock()
	dup := c.pending[m.ID]
	c.pending[m.ID] = true
	c.pmu.Unlock()
	if dup {
		c.violation(fmt.Sprintf("msgid %d reused while a request with it is still pending", m.ID))
		return false
	}
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
		c.s.handle(c, m)
	}()
	return true
}

// drop closes the connection between frames.
func (c *conn) drop() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.closed {
		c.closed = true
		c.cancel()
		c.nc.Close()
	}
}

// shutdown closes the connection for Close: a writer blocked on a client
// that does not read is cut loose first.
func (c *conn) shutdown() {
	c.cancel()
	c.nc.SetWriteDeadline(time.Now())
	c.drop()
}

// write sends whole frames; after the connection closed it drops them.
func (c *conn) write(frames []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return
	}
	if _, err := c.nc.Write(frames); err != nil {
		c.log.Debug("write failed; closing", "err", err)
		c.closed = true
		c.cancel()
		c.nc.Close()
	}
}

// reply writes the frames answering one request: zero or more DATA, then
// one END or one ERROR, all with the request's version, msgid and method.
type reply struct {
	c   *conn
	req *fast.Message
	buf []byte
}

// flushSize is how many bytes of frames a reply collects before writing, so
// that a large findObjects does not cost a write per record while replies
// to other requests can still interleave with it.
const flushSize = 32 << 10

func (r *reply) frame(status fast.Status, data []byte) {
	buf, err := fast.AppendFrame(r.buf, &fast.Message{
		Version: r.req.Version, Status: status, ID: r.req.ID, Method: r.req.Method,
		UTS: time.Now().UnixMicro(), Data: data,
	})
	if err != nil {
		// Our own payloads are well formed, so this is a bug in moraytest:
		// make it visible without taking the test binary down.
		r.c.s.violation(fmt.Sprintf("moraytest internal error: cannot encode the %s reply to %s: %v", status, r.req.Method, err))
		r.c.drop()
		return
	}
	r.buf = buf
}

// data sends one result item.
func (r *reply) data(item []byte) {
	d := make([]byte, 0, len(item)+2)
	d = append(append(append(d, '['), item...), ']')
	r.frame(fast.StatusData, d)
	if len(r.buf) >= flushSize {
		r.c.write(r.buf)
		r.buf = r.buf[:0]
	}
}

func (r *reply) end() {
	r.frame(fast.StatusEnd, []byte("[]"))
	r.finish()
}

func (r *reply) fail(e *fast.Error) {
	d, err := fast.MarshalData(withDefaults(e))
	if err != nil {
		d, _ = fast.MarshalData(newError("InternalError", "moraytest: cannot encode error %q: %v", e.Name, err))
	}
	r.frame(fast.StatusError, d)
	r.finish()
}

// finish releases the msgid and writes what is left. The msgid is free
// before the client can see the last frame, so it may reuse it at once.
func (r *reply) finish() {
	r.c.pmu.Lock()
	delete(r.c.pending, r.req.ID)
	r.c.pmu.Unlock()
	r.c.write(r.buf)
	r.buf = nil
}
