package moray

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// conn is one TCP connection carrying many RPCs.
//
// A Moray server crashes when a connection ends in the middle of a frame, so
// the socket is closed in exactly one place, the reader goroutine's exit,
// and only while holding the write semaphore: never with a request frame
// half written. Frames are written whole, one Write each, and a cancelled
// context never interrupts a Write; an abandoned RPC's replies are dropped
// instead.
type conn struct {
	client *Client
	nc     net.Conn
	addr   string // the address dialed

	wsem chan struct{} // write semaphore: held while writing one frame

	mu      sync.Mutex
	pending map[uint32]*call // outstanding and abandoned-but-unfinished RPCs
	next    uint32           // next message id to try
	err     error            // why the connection broke; set once
	broken  chan struct{}    // closed when err is set
}

// call is one RPC in flight on a conn.
type call struct {
	id        uint32
	ch        chan *fast.Message
	gone      chan struct{} // closed when the caller stops listening
	abandoned bool          // guarded by conn.mu
	// timer bounds the wait for each reply (Options.RPCTimeout); kept with
	// a unary call that is reused.
	timer *time.Timer
}

func (cn *conn) usable() bool {
	select {
	case <-cn.broken:
		return false
	default:
		return true
	}
}

func (cn *conn) cause() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

func (cn *conn) transportError(method string, err error) error {
	if errors.Is(err, ErrClosed) {
		return fmt.Errorf("moray %s: %s: %w", cn.client.name, method, ErrClosed)
	}
	return &TransportError{Addr: cn.client.name, Method: method, Err: err}
}

// register allocates a message id for a new call. Ids run from 1 to
// fast.MaxMsgID and wrap, skipping ids still pending: reusing one makes the
// server drop the connection.
func (cn *conn) register(buffer int) (*call, error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.err != nil {
		return nil, cn.err
	}
	if len(cn.pending) >= fast.MaxMsgID {
		return nil, errors.New("no free message id")
	}
	for {
		id := cn.next
		if cn.next >= fast.MaxMsgID {
			cn.next = 1
		} else {
			cn.next++
		}
		if _, busy := cn.pending[id]; busy || id == 0 {
			continue
		}
		var cl *call
		if buffer == unaryBuffer {
			cl, _ = cn.client.calls.Get().(*call)
		}
		if cl == nil {
			cl = &call{ch: make(chan *fast.Message, buffer), gone: make(chan struct{})}
		}
		cl.id, cl.abandoned = id, false
		cn.pending[id] = cl
		return cl, nil
	}
}

// forget drops a call whose request was never sent.
func (cn *conn) forget(cl *call) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.pending[cl.id] == cl {
		delete(cn.pending, cl.id)
	}
	cl.abandoned = true
	close(cl.gone)
}

// abandon stops listening to a call whose request was sent. Its id stays
// reserved until the server finishes it (END or ERROR), since the server
// still considers it in use; its other replies are dropped.
func (cn *conn) abandon(cl *call) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cl.abandoned {
		return
	}
	cl.abandoned = true
	close(cl.gone)
}

// write sends one whole frame. Only waiting for the connection honours ctx;
// once the first byte is out, the frame is finished whatever happens to ctx.
func (cn *conn) write(ctx context.Context, frame []byte) error {
	select {
	case cn.wsem <- struct{}{}:
	case <-cn.broken:
		return cn.cause()
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-cn.wsem }()
	if !cn.usable() {
		return cn.cause()
	}
	if err := cn.nc.SetWriteDeadline(time.Now().Add(cn.client.opts.WriteTimeout)); err != nil {
		cn.fail(err)
		return err
	}
	if _, err := cn.nc.Write(frame); err != nil {
		err = fmt.Errorf("write: %w", err)
		cn.fail(err)
		return err
	}
	return nil
}

// fail marks the connection broken and wakes the reader, which closes it.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	first := cn.err == nil
	if first {
		cn.err = err
		close(cn.broken)
	}
	cn.mu.Unlock()
	if first {
		// Wake the reader without closing the socket under a writer.
		_ = cn.nc.SetReadDeadline(time.Now())
	}
}

// shutdown breaks the connection on purpose (Client.Close).
func (cn *conn) shutdown(err error) { cn.fail(err) }

// readLoop demultiplexes replies to their calls until the connection breaks,
// then closes it.
func (cn *conn) readLoop(dec *fast.Decoder) {
	c := cn.client
	defer c.wg.Done()
	for {
		m, err := dec.Decode()
		if err != nil {
			cn.fail(readError(err))
			break
		}
		cn.dispatch(m)
	}
	err := cn.cause()
	if !errors.Is(err, ErrClosed) {
		c.log.Warn("moray: connection lost", "addr", cn.addr, "err", err)
	}
	// Wait for a write in progress to end, then close between frames. The
	// semaphore is never released: writers see the connection broken.
	cn.wsem <- struct{}{}
	cn.nc.Close()
	c.mu.Lock()
	delete(c.conns, cn)
	c.mu.Unlock()
}

func readError(err error) error {
	var pe *fast.ProtocolError
	switch {
	case errors.As(err, &pe):
		return err
	case errors.Is(err, io.EOF):
		return fmt.Errorf("server closed the connection: %w", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("connection closed in the middle of a reply frame: %w", err)
	}
	return fmt.Errorf("read: %w", err)
}

func (cn *conn) dispatch(m *fast.Message) {
	final := m.Status != fast.StatusData
	cn.mu.Lock()
	cl := cn.pending[m.ID]
	if cl != nil && final {
		delete(cn.pending, m.ID)
	}
	abandoned := cl != nil && cl.abandoned
	cn.mu.Unlock()
	log := cn.client.log
	switch {
	case cl == nil:
		log.Warn("moray: dropping a reply for an unknown message id",
			"addr", cn.addr, "msgid", m.ID, "method", m.Method, "status", m.Status.String())
		return
	case abandoned:
		log.Debug("moray: dropping a reply to an abandoned request",
			"addr", cn.addr, "msgid", m.ID, "method", m.Method, "status", m.Status.String())
		return
	}
	select {
	case cl.ch <- m:
	case <-cl.gone:
	case <-cn.broken:
	}
}
