package moraytest

import (
	"fmt"
	"sync"

	"github.com/TritonDataCenter/rebalancer/internal/fastserver"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// conn is one client connection. As with node-fast, its reader starts a
// goroutine per request, so many requests are in flight at once and their
// replies interleave (each frame whole).
type conn struct {
	*fastserver.Conn
	s *Server

	pmu     sync.Mutex
	pending map[uint32]bool // msgids of requests whose reply has not ended

	handlers sync.WaitGroup
}

// serveConn reads a connection's requests with node-fast's strictness.
func (s *Server) serveConn(fc *fastserver.Conn) {
	c := &conn{Conn: fc, s: s, pending: map[uint32]bool{}}
	dec := fast.NewDecoder(c, s.srv.MaxFrame())
	for {
		m, err := dec.Decode()
		if err != nil {
			c.ReadFailed(err)
			break
		}
		if !c.dispatch(m) {
			break
		}
	}
	// A client may half-close after its last request and still read the
	// replies (node-fast servers allow half-open sockets).
	c.handlers.Wait()
}

// dispatch handles one frame from the client; false stops reading.
func (c *conn) dispatch(m *fast.Message) bool {
	switch m.Status {
	case fast.StatusEnd:
		c.Violation(fmt.Sprintf("client sent an END frame (msgid %d), on which node-fast terminates the connection", m.ID))
		return false
	case fast.StatusError:
		// The old "cancel" convention: node-fast logs and ignores it.
		c.Log().Debug("ignoring ERROR frame from client", "msgid", m.ID)
		return true
	}
	c.pmu.Lock()
	dup := c.pending[m.ID]
	c.pending[m.ID] = true
	c.pmu.Unlock()
	if dup {
		c.Violation(fmt.Sprintf("msgid %d reused while a request with it is still pending", m.ID))
		return false
	}
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
		c.s.handle(c, m)
	}()
	return true
}

// reply writes the frames answering one request: zero or more DATA, then
// one END or one ERROR.
type reply struct {
	*fastserver.Reply
	c *conn
}

// flushSize is how many bytes of frames a reply collects before writing, so
// that a large findObjects does not cost a write per record while replies
// to other requests can still interleave with it.
const flushSize = 32 << 10

// data sends one result item.
func (r *reply) data(item []byte) {
	r.Data(item)
	if r.Len() >= flushSize {
		r.Flush()
	}
}

func (r *reply) end() {
	r.Frame(fast.StatusEnd, []byte("[]"))
	r.finish()
}

func (r *reply) fail(e *fast.Error) {
	d, err := fast.MarshalData(withDefaults(e))
	if err != nil {
		d, _ = fast.MarshalData(newError("InternalError", "moraytest: cannot encode error %q: %v", e.Name, err))
	}
	r.Frame(fast.StatusError, d)
	r.finish()
}

// finish releases the msgid and writes what is left. The msgid is free
// before the client can see the last frame, so it may reuse it at once.
func (r *reply) finish() {
	r.c.pmu.Lock()
	delete(r.c.pending, r.Request().ID)
	r.c.pmu.Unlock()
	r.Flush()
}
