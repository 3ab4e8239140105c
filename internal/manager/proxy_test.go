package manager_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
)

// With Deps.AgentProxy and no AgentClient, the manager's own agent client
// reaches the agents through that proxy: here the only way to them, since
// their names resolve nowhere else.
func TestAgentProxy(t *testing.T) {
	f := testbed.New(t, testbed.Config{Sharks: 4, Objects: testbed.Objects{Count: 60, Pin: evacuated, PinFraction: 1}})
	var agentRequests atomic.Int64
	fleetProxy := f.ProxyHandler()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Host, ":"+testbed.AgentPort) {
			agentRequests.Add(1)
		}
		fleetProxy.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	pu, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfgMap := f.ManagerConfig()
	endpoints := map[string]any{}
	for _, n := range f.ShardNumbers() {
		endpoints[fmt.Sprint(n)] = f.MorayAddr(n)
	}
	cfgMap["moray_endpoints"] = endpoints
	cfg := parse(t, cfgMap)

	if _, err := manager.New(context.Background(), cfg, manager.Deps{AgentProxy: &url.URL{Scheme: "socks5", Host: "x:1"}}); err == nil ||
		!strings.Contains(err.Error(), "agent proxy") {
		t.Fatalf("a socks5 agent proxy: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	m, err := manager.New(ctx, cfg, manager.Deps{AgentProxy: pu, Logger: f.Logger(), JobOptions: testbed.FastTimers})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	api := httptest.NewServer(m.Handler())
	r := &running{t: t, fleet: f, m: m, api: api, cfg: cfgMap}
	t.Cleanup(func() {
		api.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		m.Close()
	})

	id := r.create(evacuated)
	d := r.waitFor(id, "the end", terminal)
	if d.State != rebalancer.JobComplete || d.Results.Complete != 60 {
		t.Fatalf("job ended %s (%s): %v", d.State, d.Error, d.Results)
	}
	r.verify()
	if agentRequests.Load() == 0 {
		t.Fatal("no agent request went through the proxy")
	}
}
