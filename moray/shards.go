package moray

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
)

// ShardResolver gives the address (host:port) of a metadata shard's Moray.
// Shards calls it before every new connection, so DNS changes are followed.
type ShardResolver interface {
	ResolveShard(ctx context.Context, shard int) (addr string, err error)
}

// StaticShards maps shard numbers to fixed addresses, for tests, the demo
// and hand-made configurations.
type StaticShards map[int]string

// ResolveShard returns the shard's address, or an error wrapping
// ErrUnknownShard.
func (m StaticShards) ResolveShard(_ context.Context, shard int) (string, error) {
	addr, ok := m[shard]
	if !ok {
		return "", fmt.Errorf("shard %d: %w", shard, ErrUnknownShard)
	}
	return addr, nil
}

// ShardFunc adapts a function to ShardResolver.
type ShardFunc func(ctx context.Context, shard int) (string, error)

// ResolveShard calls f.
func (f ShardFunc) ResolveShard(ctx context.Context, shard int) (string, error) {
	return f(ctx, shard)
}

// SRVResolver looks up DNS SRV records; *net.Resolver is one.
type SRVResolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
}

// DNSShards finds shard N's Moray as production Manta publishes it: the SRV
// record _moray._tcp.{N}.moray.{Domain}, one answer picked at random (as
// the legacy rebalancer does, spreading clients over the shard's Moray
// zones), or, without SRV records, the name {N}.moray.{Domain} on port 2020.
type DNSShards struct {
	Domain   string      // e.g. "us-east.joyent.us"
	Resolver SRVResolver // nil: net.DefaultResolver
}

// ResolveShard returns the address to dial for shard.
func (d DNSShards) ResolveShard(ctx context.Context, shard int) (string, error) {
	host := ShardHost(shard, d.Domain)
	var r SRVResolver = net.DefaultResolver
	if d.Resolver != nil {
		r = d.Resolver
	}
	if _, srvs, err := r.LookupSRV(ctx, "moray", "tcp", host); err == nil && len(srvs) > 0 {
		s := srvs[rand.IntN(len(srvs))]
		return net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))), nil
	}
	// No SRV answer (or no SRV service at all): the A record, on the port
	// every Moray zone's HAProxy listens on. The dialer resolves it.
	return net.JoinHostPort(host, strconv.Itoa(DefaultPort)), nil
}

// ShardHost is the DNS name of a shard's Moray: "{shard}.moray.{domain}".
func ShardHost(shard int, domain string) string {
	return strconv.Itoa(shard) + ".moray." + domain
}

// Shards hands out one Client per metadata shard, made on first use and
// kept until Close. It is safe for concurrent use.
type Shards struct {
	resolver ShardResolver
	opts     Options

	mu      sync.Mutex
	closed  bool
	clients map[int]*Client
}

// NewShards returns shard clients configured with opts, finding each
// shard's address with r.
func NewShards(r ShardResolver, opts Options) *Shards {
	return &Shards{resolver: r, opts: opts, clients: make(map[int]*Client)}
}

// Client returns shard's client. It does not connect: a bad address shows
// in the first RPC's error. After Close it returns a closed client, whose
// RPCs fail with ErrClosed.
func (s *Shards) Client(shard int) *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[shard]; ok {
		return c
	}
	c := newClient(fmt.Sprintf("shard %d", shard), func(ctx context.Context) (string, error) {
		return s.resolver.ResolveShard(ctx, shard)
	}, s.opts)
	if s.closed {
		c.Close()
		return c
	}
	s.clients[shard] = c
	return c
}

// Close closes every shard client.
func (s *Shards) Close() error {
	s.mu.Lock()
	s.closed = true
	clients := s.clients
	s.clients = make(map[int]*Client)
	s.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
	return nil
}
