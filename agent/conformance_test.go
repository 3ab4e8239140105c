package agent_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// Client keeps the rebalancer.Agent contract against a real agent Server
// in process, copying from a test shark over loopback HTTP.
func TestClientConformance(t *testing.T) {
	rebalancertest.TestAgent(t, func(t *testing.T) rebalancertest.AgentHarness {
		src := newShark(t)
		root := filepath.Join(t.TempDir(), "manta")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		s, err := agent.New(agent.Config{
			Root: root, DataDir: filepath.Join(t.TempDir(), "data"),
			Workers: 1, MaxQueued: 2,
			DownloadTimeout: time.Minute, RetryDelays: []time.Duration{},
			ShutdownGrace: time.Second, Metrics: agent.MetricLabels{Zonename: "conformance"},
		}, testutil.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(s.Handler())
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		t.Cleanup(func() {
			srv.Close()
			stop()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return rebalancertest.AgentHarness{
			Agent: &agent.Client{BaseURL: func(rebalancer.StorageNode) string { return srv.URL }},
			Dest:  rebalancertest.SharkNode(3),
			Serve: src.put,
			Copy: func(owner, objectID string) ([]byte, error) {
				return os.ReadFile(filepath.Join(root, owner, objectID))
			},
			Stall:    src.stall,
			Capacity: 2,
		}
	})
}

// shark serves objects as a storage node's file server does, and can hold
// every download until released.
type shark struct {
	srv     *httptest.Server
	mu      sync.Mutex
	objects map[string][]byte
	gate    chan struct{} // while open, downloads wait
}

func newShark(t *testing.T) *shark {
	s := &shark{objects: map[string][]byte{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, ok := s.objects[r.URL.Path]
		gate := s.gate
		s.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *shark) put(owner, objectID string, body []byte) rebalancer.StorageNode {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects["/"+owner+"/"+objectID] = body
	return rebalancer.StorageNode{Datacenter: rebalancertest.Datacenter, MantaStorageID: strings.TrimPrefix(s.srv.URL, "http://")}
}

func (s *shark) stall() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gate := make(chan struct{})
	s.gate = gate
	return func() {
		s.mu.Lock()
		s.gate = nil
		s.mu.Unlock()
		close(gate)
	}
}
