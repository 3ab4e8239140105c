package agent

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// TestSourceProxy: with Config.SourceProxy every download goes through that
// proxy, which is how a source known by a name only the proxy can resolve
// is reached.
func TestSourceProxy(t *testing.T) {
	src := newSource(t)
	const fakeHost = "9.stor.proxied.example"
	var hits atomic.Int32
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Host = src.host()
	}}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy gets the absolute URL of the origin.
		if r.URL.Host != fakeHost {
			http.Error(w, "unknown host "+r.URL.Host, http.StatusBadGateway)
			return
		}
		hits.Add(1)
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	pu, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg.SourceProxy = pu
	a := startAgent(t, cfg)
	body := content("proxied", 5000)
	task := src.put("owner", newID(), body)
	task.Source = rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: fakeHost}
	id := newID()
	a.mustPost(id, task)
	got := a.waitComplete(id)
	if got.Stats.Failed != 0 {
		t.Fatalf("copy through the proxy failed: %+v", got.Stats.State.Failed)
	}
	a.checkFile(task, body)
	if hits.Load() != 1 {
		t.Fatalf("proxy saw %d downloads, want 1", hits.Load())
	}
}

func TestSourceProxyValidation(t *testing.T) {
	for _, raw := range []string{"socks5://127.0.0.1:1080", "http://", "localhost:3128", "/just/a/path"} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Root: "/manta", DataDir: "/data", SourceProxy: u}.WithDefaults()
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "source proxy") {
			t.Errorf("proxy %q: validate = %v", raw, err)
		}
	}
	u, _ := url.Parse("http://127.0.0.1:3128")
	if err := (Config{Root: "/manta", DataDir: "/data", SourceProxy: u}).WithDefaults().validate(); err != nil {
		t.Errorf("valid proxy: %v", err)
	}
}
