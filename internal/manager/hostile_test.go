package manager_test

// The manager against hostile or unlucky surroundings, through its
// production wiring and real agents: agents that lose assignments, peers
// without the right token, a job store swapped under it, a stop at any
// moment.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// noOrphans fails the test if any shark but the evacuated one holds a file
// that no metadata names: a copy made for nothing.
func (r *running) noOrphans() {
	r.t.Helper()
	rep, err := r.fleet.Verify(context.Background(), evacuated)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		r.t.Fatal(err)
	}
	for shark, n := range rep.Unreferenced {
		if shark != evacuated && n > 0 {
			r.t.Errorf("%d orphan copies on %s", n, shark)
		}
	}
}

// An assignment the agent lost (deleted by an operator, or its state
// reset) is posted again once under the same id: the agent finds the
// copies it made verified on disk and reports them, so the job completes
// and no copy is orphaned.
func TestLostAssignmentsPostedAgain(t *testing.T) {
	const objects = 150
	fleet := testbed.Config{Sharks: 5, Objects: testbed.Objects{Count: objects, Pin: evacuated, PinFraction: 1}}

	t.Run("deleted by an operator", func(t *testing.T) {
		r := start(t, fleet, nil)
		var mu sync.Mutex
		posts, deleted := map[string]int{}, map[string]bool{}
		for _, s := range r.fleet.Sharks() {
			if s.ID() == evacuated {
				continue
			}
			s.SetAgentFault(func(w http.ResponseWriter, req *http.Request) bool {
				switch id, ok := strings.CutPrefix(req.URL.Path, "/assignments/"); {
				case req.Method == "POST" && req.URL.Path == "/assignments":
					b, _ := io.ReadAll(req.Body)
					req.Body = io.NopCloser(bytes.NewReader(b))
					var p rebalancer.AssignmentPayload
					if json.Unmarshal(b, &p) == nil {
						mu.Lock()
						posts[p.ID]++
						mu.Unlock()
					}
				case req.Method == "GET" && ok:
					// The operator deletes each assignment as soon as the
					// agent has finished it, before the manager hears.
					mu.Lock()
					defer mu.Unlock()
					if deleted[id] {
						return false
					}
					rec := httptest.NewRecorder()
					s.Agent().Handler().ServeHTTP(rec, httptest.NewRequest("GET", req.URL.Path, nil))
					var a rebalancer.Assignment
					if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &a) != nil ||
						a.Stats.State.Phase != rebalancer.AssignmentComplete {
						// Not finished: the manager gets the answer just read.
						w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
						w.WriteHeader(rec.Code)
						w.Write(rec.Body.Bytes())
						return true
					}
					del := httptest.NewRecorder()
					s.Agent().Handler().ServeHTTP(del, httptest.NewRequest("DELETE", req.URL.Path, nil))
					if del.Code != http.StatusOK {
						t.Errorf("operator's DELETE %s: %d %s", id, del.Code, del.Body)
					}
					deleted[id] = true
				}
				return false
			})
		}
		id := r.createWith(evacuated, `{"max_tasks_per_assignment":10}`)
		d := r.waitFor(id, "the end", terminal)
		if d.State != rebalancer.JobComplete || d.Results.Complete != objects {
			t.Fatalf("job ended %s (%s): %v", d.State, d.Error, d.Results)
		}
		r.noOrphans()
		mu.Lock()
		defer mu.Unlock()
		if len(posts) == 0 {
			t.Fatal("no assignment posted")
		}
		for a, n := range posts {
			if !deleted[a] || n != 2 {
				t.Errorf("assignment %s: deleted %v, posted %d times; want deleted and posted twice", a, deleted[a], n)
			}
		}
	})

	t.Run("agent state reset", func(t *testing.T) {
		r := start(t, fleet, nil)
		// The manager hears nothing from the agents until they are reset.
		hold := make(chan struct{})
		var dests []*testbed.Shark
		for _, s := range r.fleet.Sharks() {
			if s.ID() == evacuated {
				continue
			}
			dests = append(dests, s)
			s.SetAgentFault(func(w http.ResponseWriter, req *http.Request) bool {
				if req.Method != "GET" || !strings.HasPrefix(req.URL.Path, "/assignments/") {
					return false
				}
				select {
				case <-hold:
					return false
				case <-req.Context().Done():
					return true
				}
			})
		}
		// Posts to an agent being restarted wait for it.
		id := r.createWith(evacuated, `{"max_tasks_per_assignment":10,"agent_unreachable_timeout":"1m",
			"unreachable_backoff":{"initial":"50ms","step":"50ms","max":"500ms","tries":200}}`)
		// Wait until an agent has finished an assignment the manager does
		// not know the outcome of.
		ac := r.fleet.AgentClient()
		testutil.Eventually(t, "an agent to finish an assignment", func() bool {
			for _, s := range dests {
				l, err := ac.ListAssignments(context.Background(), s.Node(), "", 0)
				if err != nil {
					continue
				}
				for _, a := range l.Assignments {
					if a.State == "Complete" {
						return true
					}
				}
			}
			return false
		})
		for _, s := range dests {
			if err := s.StopAgent(); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{agent.DBFileName, agent.DBFileName + "-wal", agent.DBFileName + "-shm"} {
				if err := os.Remove(filepath.Join(s.DataDir(), f)); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
			if err := s.StartAgent(); err != nil {
				t.Fatal(err)
			}
		}
		close(hold)
		d := r.waitFor(id, "the end", terminal)
		if d.State != rebalancer.JobComplete || d.Results.Complete != objects {
			t.Fatalf("job ended %s (%s): %v", d.State, d.Error, d.Results)
		}
		r.noOrphans()
	})
}

// With agent_token set, the manager sends it to every agent, and agents
// that require it do the job; without it they refuse every assignment and
// nothing is written. api_token guards every route of the job API but the
// health probe.
func TestTokens(t *testing.T) {
	const objects = 60
	fleet := testbed.Config{Sharks: 4, Agent: agent.Config{Token: "agent-s3cret"},
		Objects: testbed.Objects{Count: objects, Pin: evacuated, PinFraction: 1}}

	t.Run("agent token", func(t *testing.T) {
		r := start(t, fleet, func(cfg map[string]any) { cfg["agent_token"] = "agent-s3cret" })
		id := r.create(evacuated)
		if d := r.waitFor(id, "the end", terminal); d.State != rebalancer.JobComplete || d.Results.Complete != objects {
			t.Fatalf("job ended %s (%s): %v", d.State, d.Error, d.Results)
		}
		r.noOrphans()
	})

	t.Run("no agent token", func(t *testing.T) {
		r := start(t, fleet, nil)
		id := r.create(evacuated)
		d := r.waitFor(id, "the end", terminal)
		if d.Results.Complete != 0 || d.Results.SkipBreakdown["assignment_rejected"] != objects {
			t.Fatalf("job without the agents' token ended %s: %v", d.State, d.Results)
		}
		code, body := r.do("GET", "/jobs/"+id+"/objects?status=skipped&limit=1", "")
		if code != 200 || !strings.Contains(body, "401") || !strings.Contains(body, "agent_token") {
			t.Errorf("skipped object's detail does not point at the token: %d %s", code, body)
		}
		rep, err := r.fleet.Verify(context.Background(), evacuated)
		if err != nil {
			t.Fatal(err)
		}
		for shark, n := range rep.Unreferenced {
			if shark != evacuated && n > 0 {
				t.Errorf("%d files written on %s by agents that refused the manager", n, shark)
			}
		}
	})

	t.Run("api token", func(t *testing.T) {
		r := start(t, testbed.Config{Sharks: 3}, func(cfg map[string]any) { cfg["api_token"] = "api-s3cret" })
		call := func(method, path, token string) (int, string, http.Header) {
			req, _ := http.NewRequest(method, r.api.URL+path, strings.NewReader(`{"action":"evacuate","params":{"from_shark":"2.stor"}}`))
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b), resp.Header
		}
		for _, route := range []struct{ method, path string }{
			{"GET", "/jobs"}, {"POST", "/jobs"}, {"GET", "/jobs/" + evacuated}, {"PUT", "/jobs/x"},
			{"POST", "/jobs/x/retry"}, {"POST", "/jobs/x/stop"}, {"GET", "/jobs/x/objects"}, {"GET", "/nope"},
		} {
			for _, token := range []string{"", "wrong", "API-S3CRET", "api-s3cret2"} {
				code, body, hdr := call(route.method, route.path, token)
				if code != http.StatusUnauthorized || !strings.Contains(body, "api_token") || !strings.Contains(hdr.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s %s with token %q: %d %q", route.method, route.path, token, code, body)
				}
			}
		}
		if code, body, _ := call("GET", "/health", ""); code != http.StatusOK {
			t.Errorf("GET /health without a token: %d %s", code, body)
		}
		if code, body, _ := call("GET", "/jobs", "api-s3cret"); code != http.StatusOK {
			t.Errorf("GET /jobs with the token: %d %s", code, body)
		}
		if jobs, _ := r.m.Engine().Jobs(context.Background()); len(jobs) != 0 {
			t.Errorf("%d jobs created by unauthorized requests", len(jobs))
		}
	})
}

// A job store replaced by an empty one while the manager was down is
// refused at the next start with a message that says what to do, unless
// the operator accepts it.
func TestStoreReplacedRefusedAtStart(t *testing.T) {
	f := testbed.New(t, testbed.Config{Sharks: 3})
	cfgMap := f.ManagerConfig()
	dir := t.TempDir()
	cfgMap["database"] = dir
	cfg := parse(t, cfgMap)
	deps := manager.Deps{AgentClient: f.AgentClient(), Shards: f.Shards(), Logger: f.Logger(), JobOptions: testbed.FastTimers}
	m, err := manager.New(context.Background(), cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Engine().CreateJob(context.Background(), "2.stor.demo.example", evacuate.Options{}); err != nil {
		t.Fatal(err)
	}
	m.Engine().Close()
	m.Close()
	for _, name := range []string{"jobs.db", "jobs.db-wal", "jobs.db-shm"} {
		os.Remove(filepath.Join(dir, name))
	}
	if err := os.WriteFile(filepath.Join(dir, "jobs.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = manager.New(context.Background(), cfg, deps)
	if !errors.Is(err, evacuate.ErrStoreReplaced) || !strings.Contains(err.Error(), "--accept-empty-store") || !strings.Contains(err.Error(), "with 1 jobs") {
		t.Fatalf("manager on an emptied store: %v", err)
	}
	cfg.AcceptEmptyStore = true
	m, err = manager.New(context.Background(), cfg, deps)
	if err != nil {
		t.Fatalf("with AcceptEmptyStore: %v", err)
	}
	m.Close()
}

// A stop that lands while a restarted manager resumes its jobs is a clean
// stop (it used to fail with "resume jobs: list jobs: context canceled").
func TestStopWhileResuming(t *testing.T) {
	f := testbed.New(t, testbed.Config{Sharks: 3, Objects: testbed.Objects{Count: 40, Pin: evacuated, PinFraction: 1}})
	cfgMap := f.ManagerConfig()
	cfg := parse(t, cfgMap)
	deps := manager.Deps{AgentClient: f.AgentClient(), Shards: f.Shards(), Logger: f.Logger(), JobOptions: testbed.FastTimers}
	m, err := manager.New(context.Background(), cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	j, err := m.Engine().CreateJob(context.Background(), evacuated, evacuate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Engine().PauseJob(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	m.Engine().Close()
	m.Close()

	for range 5 {
		m, err := manager.New(context.Background(), cfg, deps)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the stop arrives before the jobs are resumed
		if err := m.Run(ctx); err != nil {
			t.Errorf("Run stopped while resuming: %v", err)
		}
		m.Close()
	}
}
