package moray

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/retry"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// DefaultPort is Moray's port: HAProxy's in a Moray zone, or a standalone
// Moray's.
const DefaultPort = 2020

// Options configures a Client. The zero value is usable.
type Options struct {
	// Conns is the number of TCP connections kept to the endpoint (default
	// 2). Each carries any number of concurrent RPCs.
	Conns int
	// DialTimeout bounds connecting (default 10s).
	DialTimeout time.Duration
	// RPCTimeout bounds how long an RPC waits for each reply frame from the
	// server (default 1m; negative disables). For streaming RPCs the clock
	// restarts with every record, and time spent in the caller's callback
	// does not count. Expiry gives an error matching ErrTimeout.
	RPCTimeout time.Duration
	// WriteTimeout bounds writing one request frame (default 30s). A write
	// that times out may leave a partial frame, so the connection is then
	// dropped; a server that has not read for this long is stuck anyway.
	WriteTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before redialing after a
	// failed dial, doubling per consecutive failure (defaults 100ms, 5s).
	// RPCs that find no usable connection during the wait fail at once with
	// an error matching ErrConnection.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxFrame caps the payload of one reply frame (default
	// fast.DefaultMaxFrame). A larger frame is a protocol error.
	MaxFrame int
	// Logger receives connection events (default slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Conns <= 0 {
		o.Conns = 2
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.RPCTimeout == 0 {
		o.RPCTimeout = time.Minute
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Second, o.MinBackoff)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Client speaks to one Moray endpoint over a small pool of connections,
// multiplexing concurrent RPCs on each by message id. It is safe for
// concurrent use. Connections are made on demand and remade after a failure.
type Client struct {
	name    string // the endpoint, for errors and logs
	resolve func(ctx context.Context) (string, error)
	opts    Options
	log     *slog.Logger
	slots   []*slot
	rr      atomic.Uint32

	ctx    context.Context // cancelled by Close: aborts dials
	cancel context.CancelFunc

	closed atomic.Bool // set under mu
	mu     sync.Mutex
	conns  map[*conn]struct{} // every connection whose reader runs
	wg     sync.WaitGroup     // one per reader goroutine

	bufs sync.Pool // *[]byte frame and argument buffers
	// calls holds unary calls that received their last reply, with their
	// channels and timer: what a call would otherwise allocate per RPC.
	calls sync.Pool

	// Test hooks: the clock for m.uts, the req_id generator (nil: random
	// UUIDs, see appendReqID), and the first message id of each new
	// connection.
	now        func() time.Time
	newReqID   func() string
	firstMsgID uint32
}

// NewClient returns a client for the Moray at addr ("host:port"; a bare host
// gets DefaultPort). It does not connect until the first RPC.
func NewClient(addr string, opts Options) *Client {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, strconv.Itoa(DefaultPort))
	}
	return newClient(addr, func(context.Context) (string, error) { return addr, nil }, opts)
}

func newClient(name string, resolve func(context.Context) (string, error), opts Options) *Client {
	opts = opts.withDefaults()
	c := &Client{
		name:       name,
		resolve:    resolve,
		opts:       opts,
		log:        opts.Logger.With("moray", name),
		conns:      make(map[*conn]struct{}),
		now:        time.Now,
		firstMsgID: 1,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.slots = make([]*slot, opts.Conns)
	for i := range c.slots {
		c.slots[i] = &slot{}
	}
	return c
}

// Addr is the endpoint the client was made for.
func (c *Client) Addr() string { return c.name }

// Close fails the RPCs in flight with ErrClosed, closes every connection
// and waits for the client's goroutines to end. A request being written is
// finished first (within Options.WriteTimeout), so that no connection ends
// in the middle of a frame.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.closed.Store(true)
	c.cancel()
	conns := make([]*conn, 0, len(c.conns))
	for cn := range c.conns {
		conns = append(conns, cn)
	}
	c.mu.Unlock()
	for _, cn := range conns {
		cn.shutdown(ErrClosed)
	}
	c.wg.Wait()
	return nil
}

// slot is one place in the pool: a connection, or the state of getting one.
type slot struct {
	mu       sync.Mutex
	conn     *conn
	dialing  chan struct{} // closed when the dial in progress ends
	failures int           // consecutive failed dials
	retryAt  time.Time     // no dial before this
	lastErr  error         // why the last dial failed
}

// pick returns a connection for an RPC: a working one, round robin, or a new
// one for an empty slot. It waits only for a dial in progress.
func (c *Client) pick(ctx context.Context) (*conn, error) {
	n := len(c.slots)
	start := int(c.rr.Add(1))
	for {
		if c.closed.Load() {
			return nil, ErrClosed
		}
		var wait chan struct{}
		var backoff error
		for i := range n {
			s := c.slots[(start+i)%n]
			s.mu.Lock()
			if s.conn != nil && !s.conn.usable() {
				s.conn = nil
			}
			switch {
			case s.conn != nil:
				cn := s.conn
				s.mu.Unlock()
				return cn, nil
			case s.dialing != nil:
				if wait == nil {
					wait = s.dialing
				}
			case time.Now().Before(s.retryAt):
				backoff = fmt.Errorf("reconnecting in %v after: %w",
					time.Until(s.retryAt).Round(time.Millisecond), s.lastErr)
			default:
				done := make(chan struct{})
				s.dialing = done
				s.mu.Unlock()
				return c.dial(ctx, s, done)
			}
			s.mu.Unlock()
		}
		if wait == nil {
			return nil, &TransportError{Addr: c.name, Method: "dial", Err: backoff}
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// dial connects slot s. done is closed when it is over, to wake RPCs that
// waited for this dial rather than start their own.
func (c *Client) dial(ctx context.Context, s *slot, done chan struct{}) (*conn, error) {
	cn, err := c.connect(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dialing = nil
	close(done)
	if err != nil {
		// A dial abandoned by its caller says nothing about the server.
		if ctx.Err() == nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrUnknownShard) {
			s.failures++
			s.lastErr = err
			s.retryAt = time.Now().Add(c.backoff(s.failures))
			c.log.Warn("moray: cannot connect", "err", err, "failures", s.failures)
		}
		return nil, err
	}
	s.failures = 0
	s.conn = cn
	return cn, nil
}

func (c *Client) backoff(failures int) time.Duration {
	// ±25% jitter so that the clients of a restarted shard do not redial in
	// lockstep.
	b := retry.Backoff{Initial: c.opts.MinBackoff, Max: c.opts.MaxBackoff, Jitter: 0.25}
	return b.Delay(failures - 1)
}

func (c *Client) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()

	addr, err := c.resolve(ctx)
	if err != nil {
		if errors.Is(err, ErrUnknownShard) {
			return nil, fmt.Errorf("moray %s: %w", c.name, err)
		}
		return nil, &TransportError{Addr: c.name, Method: "dial", Err: err}
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if c.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, &TransportError{Addr: c.name, Method: "dial", Err: err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		nc.Close() // nothing was written on it
		return nil, ErrClosed
	}
	cn := &conn{
		client:  c,
		nc:      nc,
		addr:    addr,
		wsem:    make(chan struct{}, 1),
		pending: make(map[uint32]*call),
		next:    c.firstMsgID,
		broken:  make(chan struct{}),
	}
	c.conns[cn] = struct{}{}
	c.wg.Add(1)
	go cn.readLoop(fast.NewDecoder(nc, c.opts.MaxFrame))
	c.log.Debug("moray: connected", "addr", addr)
	return cn, nil
}

// target names what an RPC is about, for typed errors.
type target struct{ bucket, key string }

// Reply channel sizes. A unary reply is one DATA and an END, so its reader
// never waits. A streaming RPC gets some slack; past it, the reader waits
// for the consumer, which holds back the other RPCs on that connection too
// (Fast has no per-request flow control), rather than buffering a whole
// result set in memory.
const (
	unaryBuffer  = 2
	streamBuffer = 64
)

// do runs one RPC: it sends method(args) and passes every item of every DATA
// reply (and of the END, where servers put none) to fn, in order. args is
// the encoded d array.
func (c *Client) do(ctx context.Context, method string, args []byte, tgt target, stream bool, fn func(item json.RawMessage) error) error {
	if err := ctx.Err(); err != nil {
		return c.ctxError(method, err)
	}
	cn, err := c.pick(ctx)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return c.ctxError(method, ctx.Err())
		case errors.Is(err, ErrClosed):
			return fmt.Errorf("moray %s: %s: %w", c.name, method, ErrClosed)
		}
		return err
	}
	size := unaryBuffer
	if stream {
		size = streamBuffer
	}
	cl, err := cn.register(size)
	if err != nil {
		return cn.transportError(method, err)
	}
	bp := c.getBuf()
	frame, err := fast.AppendFrame((*bp)[:0], &fast.Message{
		Status: fast.StatusData,
		ID:     cl.id,
		Method: method,
		UTS:    c.now().UnixMicro(),
		Data:   args,
	})
	if err != nil {
		c.putBuf(bp)
		cn.forget(cl)
		return fmt.Errorf("moray %s: %s: %w", c.name, method, err)
	}
	*bp = frame
	werr := cn.write(ctx, frame)
	c.putBuf(bp)
	if werr != nil {
		cn.forget(cl)
		if ctx.Err() != nil && errors.Is(werr, ctx.Err()) {
			return c.ctxError(method, werr)
		}
		return cn.transportError(method, werr)
	}
	finished, err := c.await(ctx, cn, cl, method, tgt, fn)
	if finished && !stream {
		// Its last reply was received and its channels are empty: no
		// one else holds it.
		c.calls.Put(cl)
	}
	return err
}

func (c *Client) ctxError(method string, err error) error {
	return fmt.Errorf("moray %s: %s: %w", c.name, method, err)
}

// await reads the replies of call cl until its END or ERROR. finished
// says that the call got its last reply and was not abandoned: nothing
// refers to it any more.
func (c *Client) await(ctx context.Context, cn *conn, cl *call, method string, tgt target, fn func(json.RawMessage) error) (finished bool, err error) {
	var timeout <-chan time.Time
	if d := c.opts.RPCTimeout; d > 0 {
		if cl.timer == nil {
			cl.timer = time.NewTimer(d)
		} else {
			cl.timer.Reset(d)
		}
		defer cl.timer.Stop()
		timeout = cl.timer.C
	}
	// handle processes one reply; done is true once the RPC is over, and
	// final once its last reply has come.
	handle := func(m *fast.Message) (done, final bool, err error) {
		switch m.Status {
		case fast.StatusError:
			fe, perr := fast.ParseError(m.Data)
			if perr != nil { // the decoder checked the shape already
				return true, true, cn.transportError(method, perr)
			}
			return true, true, typedError(&ServerError{Addr: c.name, Method: method, Err: fe}, tgt.bucket, tgt.key)
		case fast.StatusData, fast.StatusEnd:
			err := eachItem(m.Data, fn)
			if err != nil {
				bad, malformed := err.(*badArrayError)
				if m.Status == fast.StatusData || malformed {
					cn.abandon(cl)
					if malformed {
						err = cn.transportError(method, bad.err)
					}
					return true, false, err
				}
				return true, true, err
			}
			if m.Status == fast.StatusEnd {
				return true, true, nil
			}
			if timeout != nil {
				cl.timer.Reset(c.opts.RPCTimeout)
			}
			return false, false, nil
		}
		return true, false, cn.transportError(method, fmt.Errorf("unexpected %s reply", m.Status))
	}
	for {
		select {
		case m := <-cl.ch:
			if done, final, err := handle(m); done {
				return final, err
			}
		case <-cn.broken:
			// Replies that arrived before the break still count: the RPC
			// may have completed.
			for {
				select {
				case m := <-cl.ch:
					if done, _, err := handle(m); done {
						return false, err
					}
				default:
					return false, cn.transportError(method, cn.cause())
				}
			}
		case <-ctx.Done():
			cn.abandon(cl)
			return false, c.ctxError(method, ctx.Err())
		case <-timeout:
			cn.abandon(cl)
			return false, cn.transportError(method, fmt.Errorf("%w: no reply for %v", ErrTimeout, c.opts.RPCTimeout))
		}
	}
}

func (c *Client) getBuf() *[]byte {
	if bp, ok := c.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 1024)
	return &b
}

func (c *Client) putBuf(bp *[]byte) {
	if cap(*bp) > 64<<10 { // do not keep a large batch's buffer alive
		return
	}
	c.bufs.Put(bp)
}
