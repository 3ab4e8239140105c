package jobapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/sqlitestore"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// fleet is what an engine under the API runs on: the fakes, with n objects
// on shark 1 (and a second copy on shark 2), spread over shards 0 to 2.
type fleet struct {
	moray  *fakes.Moray
	agents *fakes.Agents
	source *fakes.Source
}

func newFleet(n int) *fleet {
	f := &fleet{moray: fakes.NewMoray(), agents: fakes.NewAgents(), source: &fakes.Source{}}
	for i := range n {
		o := f.moray.Put(i%3, fakes.ObjectValue("acct", fmt.Sprintf("00000000-0000-4000-8000-%012d", i), int64(100+i),
			fakes.Shark(1), fakes.Shark(2)))
		o.ScanID = int64(i + 1)
		f.source.Objects = append(f.source.Objects, o)
	}
	return f
}

// engine returns an engine over the fleet and store. lookup resolves the
// sharks jobs evacuate; nil finds shark 1 only.
func (f *fleet) engine(tb testing.TB, st *evacuate.Store, lookup func(context.Context, string) (rebalancer.StorageNode, error)) *evacuate.Engine {
	tb.Helper()
	if lookup == nil {
		lookup = func(ctx context.Context, id string) (rebalancer.StorageNode, error) {
			if id == fakes.Shark(1).MantaStorageID {
				return fakes.Shark(1), nil
			}
			return rebalancer.StorageNode{}, fmt.Errorf("no shark %s: %w", id, rebalancer.ErrSharkNotFound)
		}
	}
	e, err := evacuate.NewEngine(evacuate.Config{
		Store:       st,
		Source:      func(evacuate.JobRecord) (rebalancer.ObjectSource, error) { return f.source, nil },
		Metadata:    f.moray,
		Placement:   fakes.NewPlacement(fakes.Shark(3), fakes.Shark(4), fakes.Shark(5)),
		Agent:       f.agents,
		LookupShark: lookup,
		Defaults:    testbed.FastJobOptions(),
		Logger:      testutil.Discard(),
		Metrics:     evacuate.NewMetrics(evacuate.MetricLabels{}),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// openStore opens a SQLite job store in a temporary directory.
func openStore(tb testing.TB) *evacuate.Store {
	tb.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(tb.TempDir(), "jobs.db"), evacuate.StoreOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// harness is a Server over an engine over the fakes, listening on
// loopback, with a Client for it.
type harness struct {
	t *testing.T
	*fleet
	engine   *evacuate.Engine
	srv      *httptest.Server
	client   *Client
	snaplink atomic.Bool
}

func newHarness(t *testing.T, n int) *harness {
	t.Helper()
	h := &harness{t: t, fleet: newFleet(n)}
	h.engine = h.fleet.engine(t, openStore(t), nil)
	t.Cleanup(h.engine.Close) // after the server closes: cleanups run last first
	api := &Server{Engine: h.engine, Domain: "test", Version: "9.9.9", Metrics: evacuate.NewMetrics(evacuate.MetricLabels{}),
		Logger: testutil.Discard(), SnaplinkCleanupRequired: h.snaplink.Load}
	h.srv = httptest.NewServer(api.Handler())
	t.Cleanup(h.srv.Close)
	var err error
	if h.client, err = NewClient(h.srv.URL); err != nil {
		t.Fatal(err)
	}
	return h
}

// do sends a request as it is, for what the Client would not send.
func (h *harness) do(method, path, body string) (int, string, http.Header) {
	h.t.Helper()
	return do(h.t, h.srv.Client(), method, h.srv.URL+path, body)
}

func do(t testing.TB, c *http.Client, method, url, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// wait waits until the job no longer runs and fails the test unless it
// ended in a terminal state.
func (h *harness) wait(id string) evacuate.JobRecord {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	defer cancel()
	j, err := h.engine.Wait(ctx, id)
	if err != nil || !j.State.Terminal() {
		h.t.Fatalf("job %s did not finish: %v (state %v)", id, err, j.State)
	}
	return j
}

// job reads a stored job.
func (h *harness) job(id string) evacuate.JobRecord {
	h.t.Helper()
	j, err := h.engine.Job(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

// jobs counts the stored jobs.
func (h *harness) jobs() int {
	h.t.Helper()
	jobs, err := h.engine.Jobs(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return len(jobs)
}

// running waits until the job is running in the engine, past its setup.
func (h *harness) running(id string) {
	h.t.Helper()
	testutil.Eventually(h.t, "job "+id+" running", func() bool {
		j, err := h.engine.Job(context.Background(), id)
		return err == nil && j.State == rebalancer.JobRunning && h.engine.Running(id)
	})
}

// get returns the body of GET path, failing the test on another status
// than 200.
func (h *harness) get(path string) string {
	h.t.Helper()
	code, body, _ := h.do("GET", path, "")
	if code != http.StatusOK {
		h.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return body
}
