package mdapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer/moray"
)

// DefaultPort is buckets-mdapi's port.
const DefaultPort = 2030

// Options configures a Client. The zero value is usable; the fields mean
// what they mean for a Moray client (moray.Options), whose connection
// machinery the Client uses.
type Options struct {
	// Conns is the number of TCP connections kept to the endpoint (default
	// 2). buckets-mdapi answers the requests of one connection one after
	// the other, so more connections mean more requests served at once.
	Conns int
	// DialTimeout bounds connecting (default 10s).
	DialTimeout time.Duration
	// RPCTimeout bounds the wait for each reply frame (default 1m;
	// negative disables). Expiry gives an error matching ErrTimeout.
	RPCTimeout time.Duration
	// WriteTimeout bounds writing one request frame (default 30s).
	WriteTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before redialing after a
	// failed dial (defaults 100ms, 5s).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxFrame caps the payload of one reply frame (default
	// fast.DefaultMaxFrame).
	MaxFrame int
	// Logger receives connection events (default slog.Default()).
	Logger *slog.Logger
}

func (o Options) moray() moray.Options {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return moray.Options{
		Conns: o.Conns, DialTimeout: o.DialTimeout, RPCTimeout: o.RPCTimeout, WriteTimeout: o.WriteTimeout,
		MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff, MaxFrame: o.MaxFrame,
		Logger: log.With("component", "buckets-mdapi"),
	}
}

// rpc is what a Client needs from its transport: *moray.Client.
type rpc interface {
	Call(ctx context.Context, method string, args json.RawMessage, fn func(item json.RawMessage) error) error
	Close() error
}

// Client speaks to one buckets-mdapi endpoint. It is safe for concurrent
// use; connections are made on demand and remade after a failure.
type Client struct {
	name     string // the endpoint, for errors
	rpc      rpc
	newReqID func() string
}

// NewClient returns a client for the buckets-mdapi at addr ("host:port"; a
// bare host gets DefaultPort). It does not connect until the first RPC.
func NewClient(addr string, opts Options) *Client {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, strconv.Itoa(DefaultPort))
	}
	return &Client{name: addr, rpc: moray.NewClient(addr, opts.moray()), newReqID: uuid.NewString}
}

// Addr is the endpoint the client was made for ("shard N" for a shard's
// client).
func (c *Client) Addr() string { return c.name }

// Close fails the RPCs in flight with ErrClosed, closes every connection
// (each between two frames) and waits for the client's goroutines.
func (c *Client) Close() error { return c.rpc.Close() }

// call sends method with the one-element argument array [payload] and
// passes each reply item to fn, after turning error replies, in whichever
// of their shapes, into typed errors.
func (c *Client) call(ctx context.Context, method string, payload []byte, fn func(item json.RawMessage) error) error {
	args := make([]byte, 0, len(payload)+2)
	args = append(append(append(args, '['), payload...), ']')
	var replyErr error
	err := c.rpc.Call(ctx, method, args, func(item json.RawMessage) error {
		if e, ok := dataError(c.name, method, item); ok {
			// Keep reading to the END, as the request is not over yet
			// and its connection stays in use.
			if replyErr == nil {
				replyErr = e
			}
			return nil
		}
		if replyErr != nil {
			return nil
		}
		if err := fn(item); err != nil {
			replyErr = err
		}
		return nil
	})
	if err != nil {
		return c.transportError(method, err)
	}
	return replyErr
}

// transportError translates an error of the Fast machinery.
func (c *Client) transportError(method string, err error) error {
	var te *moray.TransportError
	var se *moray.ServerError
	switch {
	case errors.As(err, &se):
		return frameError(c.name, method, se.Err)
	case errors.Is(err, moray.ErrClosed):
		return fmt.Errorf("buckets-mdapi %s: %s: %w", c.name, method, ErrClosed)
	case errors.As(err, &te):
		return &TransportError{Addr: c.name, Method: method, Err: te.Err}
	case errors.Is(err, ErrUnknownShard):
		return fmt.Errorf("buckets-mdapi %s: %s: %w", c.name, method, err)
	}
	return fmt.Errorf("buckets-mdapi %s: %s: %w", c.name, method, err)
}

// ShardResolver gives the address of a buckets-mdapi shard; Shards calls it
// before every new connection. moray.StaticShards and moray.ShardFunc are
// ShardResolvers too.
type ShardResolver = moray.ShardResolver

// StaticShards maps shard numbers to fixed addresses (host:port).
type StaticShards = moray.StaticShards

// DNSShards finds each shard's buckets-mdapi as Manta publishes it: the SRV
// record _buckets-mdapi._tcp.<host> (one answer at random), or, without SRV
// records, <host> on DefaultPort. Hosts are those of the legacy
// configuration's mdapi.shards, e.g. "1.buckets-mdapi.us-east.joyent.us".
type DNSShards struct {
	Hosts    map[int]string    // shard number -> host
	Resolver moray.SRVResolver // nil: net.DefaultResolver
}

// ResolveShard returns the address to dial for shard.
func (d DNSShards) ResolveShard(ctx context.Context, shard int) (string, error) {
	host, ok := d.Hosts[shard]
	if !ok {
		return "", fmt.Errorf("buckets-mdapi shard %d: %w", shard, ErrUnknownShard)
	}
	var r moray.SRVResolver = net.DefaultResolver
	if d.Resolver != nil {
		r = d.Resolver
	}
	if _, srvs, err := r.LookupSRV(ctx, "buckets-mdapi", "tcp", host); err == nil && len(srvs) > 0 {
		s := srvs[rand.IntN(len(srvs))]
		return net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))), nil
	}
	return net.JoinHostPort(host, strconv.Itoa(DefaultPort)), nil
}

// ShardNumber reads the shard number of a legacy mdapi.shards host: its
// leading integer, as in "1.buckets-mdapi.us-east.joyent.us". (The legacy
// sharkspotter panics on a host without one; here it is an error.)
func ShardNumber(host string) (int, error) {
	num, _, _ := strings.Cut(host, ".")
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || strconv.Itoa(n) != num {
		return 0, fmt.Errorf("buckets-mdapi host %q does not start with a shard number", host)
	}
	return n, nil
}

// Shards hands out one Client per buckets-mdapi shard, made on first use
// and kept until Close. It is safe for concurrent use.
type Shards struct {
	morays *moray.Shards

	mu      sync.Mutex
	clients map[int]*Client
}

// NewShards returns shard clients configured with opts, finding each
// shard's address with r.
func NewShards(r ShardResolver, opts Options) *Shards {
	return &Shards{morays: moray.NewShards(r, opts.moray()), clients: make(map[int]*Client)}
}

// Client returns shard's client. It does not connect; after Close it
// returns a closed client.
func (s *Shards) Client(shard int) *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[shard]; ok {
		return c
	}
	c := &Client{name: "shard " + strconv.Itoa(shard), rpc: s.morays.Client(shard), newReqID: uuid.NewString}
	s.clients[shard] = c
	return c
}

// Close closes every shard client.
func (s *Shards) Close() error {
	s.mu.Lock()
	s.clients = make(map[int]*Client)
	s.mu.Unlock()
	return s.morays.Close()
}
