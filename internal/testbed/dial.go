package testbed

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Ports the code under test uses for a shark's services, as in production:
// mako (nginx) on 80 and the rebalancer agent on 7878.
const (
	MakoPort  = "80"
	AgentPort = "7878"
)

// resolver maps the fleet's host names ("1.stor.demo.example:80",
// "storinfo.demo.example:80") to the loopback addresses its servers really
// listen on. Lookups happen at dial time, so a service restarted on another
// port is found again without anyone rebuilding clients.
type resolver struct {
	mu    sync.RWMutex
	hosts map[string]string // "host:port" -> "127.0.0.1:port"
	dial  net.Dialer
}

func newResolver() *resolver {
	return &resolver{hosts: map[string]string{}, dial: net.Dialer{Timeout: 5 * time.Second}}
}

func (r *resolver) set(hostport, addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts[strings.ToLower(hostport)] = addr
}

func (r *resolver) lookup(hostport string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a, ok := r.hosts[strings.ToLower(hostport)]
	return a, ok
}

// DialContext dials the loopback address behind a fleet host name. IP
// literals are dialled as they are (a manager on httptest, say); any other
// name is refused, so that nothing a test drives can reach past the fleet.
func (r *resolver) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if real, ok := r.lookup(addr); ok {
		return r.dial.DialContext(ctx, network, real)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("testbed: dial %s: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return r.dial.DialContext(ctx, network, addr)
	}
	if host == "localhost" {
		return r.dial.DialContext(ctx, network, addr)
	}
	return nil, fmt.Errorf("testbed: dial %s: no such host in the fleet", addr)
}

// newTransport returns the fleet's HTTP transport. It never decompresses
// bodies (the agent checks the MD5 of the bytes as stored) and keeps enough
// idle connections for every agent downloading from every shark at once.
func newTransport(r *resolver) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           r.DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}
}
