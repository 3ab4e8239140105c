package testbed

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"

	"github.com/TritonDataCenter/rebalancer/agent"
)

// With ExternalAgents the fleet runs no agent; one started elsewhere and
// registered with SetAgentAddr is reached under the shark's name, through
// HTTPClient and through ProxyHandler, and an unreachable target closes the
// client's connection instead of answering for it.
func TestExternalAgentsAndProxy(t *testing.T) {
	f := New(t, Config{Sharks: 2, ExternalAgents: true})
	s := f.Shark(shark1)
	for _, sh := range f.Sharks() {
		if sh.Agent() != nil || sh.AgentAddr() != "" {
			t.Fatalf("shark %s runs an agent with ExternalAgents", sh.ID())
		}
	}
	if err := os.MkdirAll(s.Root()+"/owner", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.ObjectPath("owner", "object"), []byte("payload"), 0o644); err != nil {
		t.Fatal(err)
	}

	proxy := httptest.NewServer(f.ProxyHandler())
	defer proxy.Close()
	pu, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(pu)}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	if code, body := get(t, client, "http://"+shark1+"/owner/object"); code != 200 || body != "payload" {
		t.Fatalf("object through the proxy: %d %q", code, body)
	}
	health := "http://" + shark1 + ":" + AgentPort + "/health"
	if resp, err := client.Get(health); err == nil {
		resp.Body.Close()
		t.Fatalf("no agent runs, yet the proxy answered %d", resp.StatusCode)
	}
	if code, _ := get(t, http.DefaultClient, proxy.URL+"/owner/object"); code != http.StatusBadRequest {
		t.Fatalf("a request not in proxy form: %d, want 400", code)
	}

	a, err := agent.New(agent.Config{Root: s.Root(), DataDir: s.DataDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		a.Close()
	}()
	s.SetAgentAddr(srv.Listener.Addr().String())
	if code, _ := get(t, client, health); code != 200 {
		t.Fatalf("external agent through the proxy: %d", code)
	}
	if code, _ := get(t, f.HTTPClient(), health); code != 200 {
		t.Fatalf("external agent through HTTPClient: %d", code)
	}
}
