package storinfo_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/storinfo"
	"github.com/TritonDataCenter/rebalancer/storinfo/storinfotest"
)

// records returns n minnow records 1.stor.example.com .. n.stor.example.com
// spread over three datacenters.
func records(n int) []storinfotest.Record {
	out := make([]storinfotest.Record, n)
	for i := range out {
		out[i] = storinfotest.NewRecord(fmt.Sprintf("%d.stor.example.com", i+1), fmt.Sprintf("dc%d", i%3), 100_000, int64(50_000+i))
	}
	return out
}

// newClient returns a client of base that retries fast.
func newClient(t *testing.T, base string, mod ...func(*storinfo.ClientConfig)) *storinfo.Client {
	t.Helper()
	cfg := storinfo.ClientConfig{BaseURL: base, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond, Timeout: 10 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := storinfo.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ids(nodes []storinfo.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.MantaStorageID
	}
	return out
}

func TestListPaging(t *testing.T) {
	tests := []struct {
		nodes, pageSize int
		follow          bool
		wantRequests    int
	}{
		{nodes: 0, pageSize: 100, wantRequests: 1},
		{nodes: 1, pageSize: 100, wantRequests: 1},
		{nodes: 99, pageSize: 100, wantRequests: 1},
		// A full last page gets one more request, as in the legacy: a
		// full page alone does not say whether more remain.
		{nodes: 100, pageSize: 100, wantRequests: 2},
		{nodes: 101, pageSize: 100, wantRequests: 2},
		{nodes: 200, pageSize: 100, wantRequests: 3},
		{nodes: 250, pageSize: 100, wantRequests: 3},
		{nodes: 250, pageSize: 100, follow: true, wantRequests: 3},
		{nodes: 1000, pageSize: 500, wantRequests: 3},
		{nodes: 7, pageSize: 1, wantRequests: 8},
		{nodes: 7, pageSize: 1, follow: true, wantRequests: 8},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d nodes by %d follow=%v", tt.nodes, tt.pageSize, tt.follow), func(t *testing.T) {
			srv := storinfotest.NewServer(records(tt.nodes)...)
			defer srv.Close()
			c := newClient(t, srv.URL, func(c *storinfo.ClientConfig) { c.PageSize, c.FollowLink = tt.pageSize, tt.follow })
			got, err := c.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := srv.Records()
			if len(got) != len(want) {
				t.Fatalf("listed %d nodes, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].MantaStorageID != want[i].MantaStorageID || got[i].AvailableMB != want[i].AvailableMB ||
					got[i].Datacenter != want[i].Datacenter || got[i].Filesystem != "/manta" || got[i].Timestamp == 0 {
					t.Fatalf("node %d = %+v, want record %+v", i, got[i], want[i])
				}
			}
			reqs := srv.Requests()
			if len(reqs) != tt.wantRequests {
				t.Fatalf("%d requests, want %d: %q", len(reqs), tt.wantRequests, reqs)
			}
			if first := fmt.Sprintf("GET /storagenodes?limit=%d&after_id=", tt.pageSize); reqs[0] != first {
				t.Errorf("first request %q, want %q", reqs[0], first)
			}
			for i := 1; i < len(reqs); i++ {
				after := want[i*tt.pageSize-1].MantaStorageID
				if !strings.Contains(reqs[i], "after_id="+after) || !strings.Contains(reqs[i], fmt.Sprintf("limit=%d", tt.pageSize)) {
					t.Errorf("request %d = %q, want limit=%d and after_id=%s", i, reqs[i], tt.pageSize, after)
				}
			}
		})
	}
}

// The numeric order of storinfo survives paging: 10.stor follows 9.stor.
func TestListNumericOrder(t *testing.T) {
	srv := storinfotest.NewServer(records(12)...)
	defer srv.Close()
	got, err := newClient(t, srv.URL, func(c *storinfo.ClientConfig) { c.PageSize = 5 }).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids(got) {
		if want := fmt.Sprintf("%d.stor.example.com", i+1); id != want {
			t.Fatalf("node %d is %s, want %s", i, id, want)
		}
	}
}

// pagedHandler serves fixed pages of raw JSON, with optional Link headers.
type pagedHandler struct {
	pages map[string]string // after_id -> body
	links map[string]string // after_id -> Link header
	seen  []string
}

func (h *pagedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.seen = append(h.seen, r.URL.RequestURI())
	key := r.URL.Query().Get("after_id")
	if p := r.URL.Query().Get("page"); p != "" {
		key = "page=" + p
	}
	body, ok := h.pages[key]
	if !ok {
		http.Error(w, `{"message":"no such page"}`, http.StatusNotFound)
		return
	}
	if l := h.links[key]; l != "" {
		w.Header().Set("Link", l)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, body)
}

func rec(id, extra string) string {
	return `{"manta_storage_id":"` + id + `","datacenter":"dc0","filesystem":"/manta","timestamp":1` + extra + `}`
}

func TestListBodies(t *testing.T) {
	camel := `,"availableMB":10,"percentUsed":1.5`
	snake := `,"available_mb":20,"percent_used":2`
	unknown := `,"availableMB":30,"percentUsed":3,"statvfs":{"bsize":4096},"zone_uuid":"z","new_field":[1,2]`
	tests := []struct {
		name     string
		pageSize int
		follow   bool
		h        *pagedHandler
		want     []string
		wantErr  string
		requests int
	}{
		{
			name: "both spellings and unknown fields", pageSize: 100,
			h:    &pagedHandler{pages: map[string]string{"": "[" + rec("1.stor", camel) + "," + rec("2.stor", snake) + "," + rec("3.stor", unknown) + "]"}},
			want: []string{"1.stor", "2.stor", "3.stor"}, requests: 1,
		},
		{
			// A server may serve fewer than asked; its Link header says
			// more remain.
			name: "short page with Link continues", pageSize: 100,
			h: &pagedHandler{
				pages: map[string]string{"": "[" + rec("1.stor", camel) + "]", "1.stor": "[" + rec("2.stor", camel) + "]"},
				links: map[string]string{"": `</storagenodes?after_id=1.stor&limit=100>; rel="next"`},
			},
			want: []string{"1.stor", "2.stor"}, requests: 2,
		},
		{
			name: "FollowLink takes the Link target", pageSize: 100, follow: true,
			h: &pagedHandler{
				pages: map[string]string{"": "[" + rec("1.stor", camel) + "]", "page=2": "[" + rec("2.stor", camel) + "]"},
				links: map[string]string{"": `</storagenodes?page=2>; rel="next"`},
			},
			want: []string{"1.stor", "2.stor"}, requests: 2,
		},
		{
			name: "Link with other relations first", pageSize: 100,
			h: &pagedHandler{
				pages: map[string]string{"": "[" + rec("1.stor", camel) + "]", "1.stor": "[]"},
				links: map[string]string{"": `</storagenodes>; rel="first", </storagenodes?after_id=1.stor&limit=100>; rel="next"`},
			},
			want: []string{"1.stor"}, requests: 2,
		},
		{
			// The cursor's node vanished between two pages and was the
			// last: storinfo answers 404, which ends the listing.
			name: "404 after a full page ends the list", pageSize: 2,
			h:    &pagedHandler{pages: map[string]string{"": "[" + rec("1.stor", camel) + "," + rec("2.stor", camel) + "]"}},
			want: []string{"1.stor", "2.stor"}, requests: 2,
		},
		{
			name: "404 on the first page fails", pageSize: 2,
			h:       &pagedHandler{pages: map[string]string{}},
			wantErr: "404 Not Found: no such page", requests: 1,
		},
		{
			name: "bad record on page 2 fails the whole list", pageSize: 1,
			h: &pagedHandler{pages: map[string]string{
				"": "[" + rec("1.stor", camel) + "]", "1.stor": `[{"manta_storage_id":"2.stor"}]`}},
			wantErr: "page 2", requests: 2,
		},
		{
			name: "truncated JSON fails", pageSize: 100,
			h:       &pagedHandler{pages: map[string]string{"": "[" + rec("1.stor", camel)}},
			wantErr: "unexpected end of JSON", requests: 1,
		},
		{
			name: "object instead of array fails", pageSize: 100,
			h:       &pagedHandler{pages: map[string]string{"": `{"message":"hello"}`}},
			wantErr: "not a JSON array", requests: 1,
		},
		{
			name: "null fails", pageSize: 100,
			h:       &pagedHandler{pages: map[string]string{"": `null`}},
			wantErr: "not a JSON array", requests: 1,
		},
		{
			name: "a page repeating the last fails instead of looping", pageSize: 1,
			h: &pagedHandler{pages: map[string]string{
				"": "[" + rec("1.stor", camel) + "]", "1.stor": "[" + rec("1.stor", camel) + "]"}},
			wantErr: "not advancing", requests: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.h)
			defer srv.Close()
			c := newClient(t, srv.URL, func(c *storinfo.ClientConfig) { c.PageSize, c.FollowLink = tt.pageSize, tt.follow })
			got, err := c.List(context.Background())
			if len(tt.h.seen) != tt.requests {
				t.Errorf("%d requests, want %d: %q", len(tt.h.seen), tt.requests, tt.h.seen)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if got != nil {
					t.Fatalf("a failed List returned %d nodes", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := strings.Join(ids(got), " "); g != strings.Join(tt.want, " ") {
				t.Errorf("listed %s, want %s", g, strings.Join(tt.want, " "))
			}
		})
	}
}

func TestListRetries(t *testing.T) {
	t.Run("5xx is retried", func(t *testing.T) {
		srv := storinfotest.NewServer(records(3)...)
		defer srv.Close()
		srv.FailNext(2, http.StatusServiceUnavailable)
		got, err := newClient(t, srv.URL).List(context.Background())
		if err != nil || len(got) != 3 {
			t.Fatalf("List = %d nodes, %v", len(got), err)
		}
		if n := len(srv.Requests()); n != 3 {
			t.Errorf("%d requests, want 3", n)
		}
	})
	t.Run("5xx until retries run out fails with the status", func(t *testing.T) {
		srv := storinfotest.NewServer(records(3)...)
		defer srv.Close()
		srv.FailNext(100, http.StatusInternalServerError)
		_, err := newClient(t, srv.URL, func(c *storinfo.ClientConfig) { c.RetryMax = 2 }).List(context.Background())
		var se *storinfo.StatusError
		if !errors.As(err, &se) || se.StatusCode != 500 || se.Message != "injected failure" {
			t.Fatalf("error = %v, want a 500 StatusError", err)
		}
		if n := len(srv.Requests()); n != 3 {
			t.Errorf("%d requests, want 3 (1 + 2 retries)", n)
		}
	})
	t.Run("a failure on page 2 fails the whole list", func(t *testing.T) {
		srv := storinfotest.NewServer(records(5)...)
		defer srv.Close()
		srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Query().Get("after_id") != "" {
				http.Error(w, "{}", http.StatusBadGateway)
				return true
			}
			return false
		})
		got, err := newClient(t, srv.URL, func(c *storinfo.ClientConfig) { c.PageSize, c.RetryMax = 2, -1 }).List(context.Background())
		if err == nil || got != nil || !strings.Contains(err.Error(), "page 2") {
			t.Fatalf("List = %d nodes, %v; want a page 2 error and no nodes", len(got), err)
		}
	})
	t.Run("4xx is not retried", func(t *testing.T) {
		srv := storinfotest.NewServer(records(3)...)
		defer srv.Close()
		srv.FailNext(1, http.StatusBadRequest)
		_, err := newClient(t, srv.URL).List(context.Background())
		var se *storinfo.StatusError
		if !errors.As(err, &se) || se.StatusCode != 400 {
			t.Fatalf("error = %v, want a 400", err)
		}
		if n := len(srv.Requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
	t.Run("a dead service is a transport error after retries", func(t *testing.T) {
		srv := storinfotest.NewServer(records(3)...)
		defer srv.Close()
		srv.SetDown(true)
		_, err := newClient(t, srv.URL, func(c *storinfo.ClientConfig) { c.RetryMax = 1 }).List(context.Background())
		var se *storinfo.StatusError
		if err == nil || errors.As(err, &se) {
			t.Fatalf("error = %v, want a transport error", err)
		}
		if n := len(srv.Requests()); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
	t.Run("the context bounds a slow service", func(t *testing.T) {
		srv := storinfotest.NewServer(records(3)...)
		defer srv.Close()
		srv.SetDelay(time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for len(srv.Requests()) == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		_, err := newClient(t, srv.URL).List(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
	})
	t.Run("the per-attempt timeout bounds a slow service", func(t *testing.T) {
		srv := storinfotest.NewServer(records(3)...)
		defer srv.Close()
		srv.SetDelay(time.Hour)
		_, err := newClient(t, srv.URL, func(c *storinfo.ClientConfig) { c.Timeout, c.RetryMax = 50*time.Millisecond, 1 }).List(context.Background())
		if err == nil || !strings.Contains(err.Error(), "Timeout") {
			t.Fatalf("error = %v, want a timeout", err)
		}
	})
}

func TestGet(t *testing.T) {
	srv := storinfotest.NewServer(records(3)...)
	defer srv.Close()
	c := newClient(t, srv.URL)
	n, err := c.Get(context.Background(), "2.stor.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if n.MantaStorageID != "2.stor.example.com" || n.Datacenter != "dc1" || n.AvailableMB != 50_001 || n.PercentUsed != 50 {
		t.Errorf("Get = %+v", n)
	}
	_, err = c.Get(context.Background(), "9.stor.example.com")
	var se *storinfo.StatusError
	if !errors.Is(err, storinfo.ErrNotFound) || !errors.As(err, &se) || se.StatusCode != 404 || !strings.Contains(err.Error(), "9.stor.example.com") {
		t.Fatalf("error = %v, want ErrNotFound naming the node", err)
	}
	// Ids are escaped into the path.
	if _, err := c.Get(context.Background(), "a b?c"); !errors.Is(err, storinfo.ErrNotFound) {
		t.Fatalf("error = %v", err)
	}
	if reqs := srv.Requests(); reqs[len(reqs)-1] != "GET /storagenodes/a%20b%3Fc" {
		t.Errorf("request = %q", reqs[len(reqs)-1])
	}
	// A 500 is not a not-found.
	srv.FailNext(100, 500)
	if _, err := newClient(t, srv.URL, func(c *storinfo.ClientConfig) { c.RetryMax = -1 }).Get(context.Background(), "1.stor.example.com"); err == nil || errors.Is(err, storinfo.ErrNotFound) {
		t.Fatalf("error = %v", err)
	}
}

func TestFlush(t *testing.T) {
	srv := storinfotest.NewServer()
	defer srv.Close()
	if err := newClient(t, srv.URL).Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if srv.Flushes() != 1 {
		t.Errorf("flushes = %d", srv.Flushes())
	}
}

func TestNewClient(t *testing.T) {
	tests := []struct {
		cfg     storinfo.ClientConfig
		wantURL string
		wantErr string
	}{
		{cfg: storinfo.ClientConfig{Domain: "us-east.example.com"}, wantURL: "http://storinfo.us-east.example.com"},
		{cfg: storinfo.ClientConfig{BaseURL: "http://127.0.0.1:8080/", Domain: "ignored"}, wantURL: "http://127.0.0.1:8080"},
		{cfg: storinfo.ClientConfig{BaseURL: "https://proxy/storinfo"}, wantURL: "https://proxy/storinfo"},
		{cfg: storinfo.ClientConfig{}, wantErr: "BaseURL or a Domain"},
		{cfg: storinfo.ClientConfig{BaseURL: "storinfo.example.com"}, wantErr: "must be http"},
		{cfg: storinfo.ClientConfig{BaseURL: "http://x/?a=b"}, wantErr: "query"},
		{cfg: storinfo.ClientConfig{Domain: "d", PageSize: 501}, wantErr: "page size"},
		{cfg: storinfo.ClientConfig{Domain: "d", PageSize: -1}, wantErr: "page size"},
	}
	for _, tt := range tests {
		c, err := storinfo.NewClient(tt.cfg)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewClient(%+v) error = %v, want %q", tt.cfg, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewClient(%+v): %v", tt.cfg, err)
			continue
		}
		if c.BaseURL() != tt.wantURL {
			t.Errorf("BaseURL = %s, want %s", c.BaseURL(), tt.wantURL)
		}
	}
}

// A base URL with a path keeps it in every request.
func TestClientBasePath(t *testing.T) {
	srv := storinfotest.NewServer(records(3)...)
	defer srv.Close()
	mux := http.NewServeMux()
	mux.Handle("/storinfo/", http.StripPrefix("/storinfo", srv.Handler))
	proxy := httptest.NewServer(mux)
	defer proxy.Close()
	got, err := newClient(t, proxy.URL+"/storinfo").List(context.Background())
	if err != nil || len(got) != 3 {
		t.Fatalf("List = %d nodes, %v", len(got), err)
	}
}
