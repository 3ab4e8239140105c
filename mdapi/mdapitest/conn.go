package mdapitest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/TritonDataCenter/rebalancer/internal/fastserver"
	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// serveConn runs a connection as buckets-mdapi's Fast server does: it
// handles the requests one at a time, in order, and sends each reply (its
// DATA frames and END, or its ERROR) before reading on, so replies on one
// connection never interleave.
func (s *Server) serveConn(c *fastserver.Conn) {
	r := bufio.NewReaderSize(c, 64<<10)
	for !c.Closed() {
		m, err := s.readFrame(r)
		if err != nil {
			c.ReadFailed(err)
			return
		}
		if !s.dispatch(c, m) {
			return
		}
	}
}

// readFrame reads one frame and checks it as the real server would take
// it.
func (s *Server) readFrame(r *bufio.Reader) (*fast.Message, error) {
	var h [fast.HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(h[11:])
	if uint64(size) > uint64(s.srv.MaxFrame()) {
		return nil, &fast.ProtocolError{Reason: fmt.Sprintf("frame of %d bytes exceeds the %d-byte limit", size, s.srv.MaxFrame()),
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

// dispatch handles one frame; false stops reading.
func (s *Server) dispatch(c *fastserver.Conn, m *fast.Message) bool {
	switch m.Status {
	case fast.StatusEnd, fast.StatusError:
		c.Violation(fmt.Sprintf("client sent a %s frame (msgid %d), which buckets-mdapi takes for a request", m.Status, m.ID))
		return false
	}
	s.handle(c, m)
	return true
}

// reply collects the frames answering one request and sends them whole.
// Every request is version 2 (readFrame refuses the others), and so is
// every reply.
type reply struct{ *fastserver.Reply }

// end sends the DATA frames and an END.
func (r *reply) end() {
	r.Frame(fast.StatusEnd, []byte("[]"))
	r.Flush()
}

// appError answers with an application error, as buckets-mdapi does: a
// DATA frame holding {"error":{"name":..,"message":..}}, then END.
func (r *reply) appError(name, message string) {
	r.Reset()
	r.Data(wrappedError(name, message))
	r.end()
}

// fastError answers with a Fast ERROR frame, as rust-fast does when a
// handler fails: {"name":"FastError","message":..}.
func (r *reply) fastError(message string) {
	r.fail("FastError", message)
}

func (r *reply) fail(name, message string) {
	w := jsonstr.Object{Form: jsonstr.Serde}
	w.Open()
	w.Str("name", name)
	w.Str("message", message)
	w.Close()
	r.Reset()
	r.Frame(fast.StatusError, w.B)
	r.Flush()
}

func wrappedError(name, message string) []byte {
	w := jsonstr.Object{Form: jsonstr.Serde}
	w.Open()
	w.Key("error")
	w.Open()
	w.Str("name", name)
	w.Str("message", message)
	w.Close()
	w.Close()
	return w.B
}
