package mdapitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// conn is one client connection. Like buckets-mdapi's Fast server, it
// handles a connection's requests one at a time, in order, and sends each
// reply (its DATA frames and END, or its ERROR) before reading on: replies on
// one connection never interleave.
type conn struct {
	s   *Server
	id  uint64
	nc  net.Conn
	log *slog.Logger

	ctx    context.Context // cancelled when the connection closes
	cancel context.CancelFunc

	wmu    sync.Mutex
	closed bool
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	return &conn{s: s, id: id, nc: nc, ctx: ctx, cancel: cancel,
		log: s.log.With("conn", id, "remote", nc.RemoteAddr().String())}
}

func (c *conn) serve() {
	defer c.s.wg.Done()
	defer c.s.forget(c)
	r := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		m, err := c.readFrame(r)
		if err != nil {
			c.readFailed(err)
			break
		}
		if m == nil {
			continue
		}
		if !c.dispatch(m) {
			break
		}
		if c.isClosed() {
			break
		}
	}
	c.drop()
}

// readFrame reads one frame and checks it as the real server would take
// it. A nil message with a nil error is a frame to ignore.
func (c *conn) readFrame(r *bufio.Reader) (*fast.Message, error) {
	var h [fast.HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(h[11:])
	if uint64(size) > uint64(c.s.maxFrame()) {
		return nil, &fast.ProtocolError{Reason: fmt.Sprintf("frame of %d bytes exceeds the %d-byte limit", size, c.s.maxFrame()),
			MsgID: binary.BigEndian.Uint32(h[3:])}
	}
	frame := make([]byte, fast.HeaderSize+int(size))
	copy(frame, h[:])
	if _, err := io.ReadFull(r, frame[fast.HeaderSize:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	m, err := fast.NewDecoder(bytes.NewReader(frame), len(frame)).Decode()
	if err != nil {
		return nil, err
	}
	if m.Version != fast.Version2 {
		return nil, &fast.ProtocolError{Reason: fmt.Sprintf("version %d frame: buckets-mdapi checks every frame with CRC-16/ARC (version 2) and fails the others", m.Version), MsgID: m.ID}
	}
	want, err := payloadLen(frame[fast.HeaderSize:])
	switch {
	case err != nil:
		return nil, &fast.ProtocolError{Reason: fmt.Sprintf("payload the server would misread: %v", err), MsgID: m.ID}
	case want != int(size):
		return nil, &fast.ProtocolError{Reason: fmt.Sprintf("payload of %d bytes re-serializes to %d: the server would lose the frame boundary", size, want), MsgID: m.ID}
	}
	return m, nil
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
	case errors.Is(err, io.EOF):
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.violation("connection closed in the middle of a frame")
	case errors.As(err, &pe):
		c.violation(fmt.Sprintf("malformed frame (msgid %d): %s", pe.MsgID, pe.Reason))
	default:
		c.log.Debug("connection read failed", "err", err)
	}
}

func (c *conn) violation(what string) {
	c.s.violation(fmt.Sprintf("connection %d from %s: %s", c.id, c.nc.RemoteAddr(), what))
	c.drop()
}

// dispatch handles one frame; false stops reading.
func (c *conn) dispatch(m *fast.Message) bool {
	switch m.Status {
	case fast.StatusEnd, fast.StatusError:
		c.violation(fmt.Sprintf("client sent a %s frame (msgid %d), which buckets-mdapi takes for a request", m.Status, m.ID))
		return false
	}
	c.s.handle(c, m)
	return true
}

// drop closes the connection (between frames: replies are written whole).
func (c *conn) drop() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.closed {
		c.closed = true
		c.cancel()
		c.nc.Close()
	}
}

func (c *conn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.log.Debug("write failed; closing", "err", err)
		c.closed = true
		c.cancel()
		c.nc.Close()
	}
}

// reply collects the frames answering one request.
type reply struct {
	c   *conn
	req *fast.Message
	buf []byte
}

func (r *reply) frame(status fast.Status, data []byte) {
	buf, err := fast.AppendFrame(r.buf, &fast.Message{Version: fast.Version2, Status: status, ID: r.req.ID,
		Method: r.req.Method, UTS: time.Now().UnixMicro(), Data: data})
	if err != nil {
		r.c.s.violation(fmt.Sprintf("mdapitest internal error: cannot encode the %s reply to %s: %v", status, r.req.Method, err))
		return
	}
	r.buf = buf
}

// item adds one DATA frame carrying [v].
func (r *reply) item(v []byte) {
	d := make([]byte, 0, len(v)+2)
	r.frame(fast.StatusData, append(append(append(d, '['), v...), ']'))
}

// end sends the DATA frames and an END.
func (r *reply) end() {
	r.frame(fast.StatusEnd, []byte("[]"))
	r.c.write(r.buf)
}

// appError answers with an application error, as buckets-mdapi does: a
// DATA frame holding {"error":{"name":..,"message":..}}, then END.
func (r *reply) appError(name, message string) {
	r.buf = r.buf[:0]
	r.item(wrappedError(name, message))
	r.end()
}

// fastError answers with a Fast ERROR frame, as rust-fast does when a
// handler fails: {"name":"FastError","message":..}.
func (r *reply) fastError(message string) {
	r.fail("FastError", message)
}

func (r *reply) fail(name, message string) {
	w := jw{}
	w.open()
	w.str("name", name)
	w.str("message", message)
	w.close()
	r.buf = r.buf[:0]
	r.frame(fast.StatusError, w.b)
	r.c.write(r.buf)
}

func wrappedError(name, message string) []byte {
	w := jw{}
	w.open()
	w.key("error")
	w.open()
	w.n = 0
	w.str("name", name)
	w.str("message", message)
	w.close()
	w.close()
	return w.b
}

// jw writes JSON objects in serde_json's form.
type jw struct {
	b []byte
	n int
}

func (w *jw) open()  { w.b = append(w.b, '{') }
func (w *jw) close() { w.b = append(w.b, '}') }

func (w *jw) key(k string) {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = appendSerdeString(w.b, k)
	w.b = append(w.b, ':')
}

func (w *jw) str(k, v string) {
	w.key(k)
	w.b = appendSerdeString(w.b, v)
}

func (w *jw) raw(k string, v []byte) {
	w.key(k)
	w.b = append(w.b, v...)
}
