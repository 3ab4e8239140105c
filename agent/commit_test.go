package agent

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// TestGroupCommit: results that wait while a batch is committed are
// committed together: their directory is fsynced once for all of them,
// after every one of their files was fsynced and renamed in, and they are
// recorded together. Nothing counts before its directory is fsynced.
func TestGroupCommit(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	cfg.Workers = 1
	cfg.WorkersPerAssignment = 4
	rec := &syncRecorder{root: cfg.Root, failAt: -1}
	g := newGate()
	t.Cleanup(g.release)
	var records, handed atomic.Int64
	a := startAgent(t, cfg, func(s *Server) {
		s.copier.tree.sync = rec.sync
		s.handedOver = func() { handed.Add(1) }
		s.store.fault = func(op string) error {
			// The first batch waits in its transaction until the gate
			// opens, while the other downloads finish.
			if op == "record" && records.Add(1) == 1 {
				g.wait(t.Context())
			}
			return nil
		}
	})
	owner := newID()
	body := content("group", 3000)
	var tasks []rebalancer.Task
	for range 9 {
		tasks = append(tasks, src.put(owner, newID(), body))
	}
	id := newID()
	a.mustPost(id, tasks...)
	g.arrivals(t, 1)
	testutil.Eventually(t, "every result handed to the committer", func() bool { return handed.Load() == int64(len(tasks)) })
	for _, task := range tasks {
		if _, err := os.Lstat(a.dest(task)); err != nil {
			t.Fatalf("a result was handed over before its file was in place: %v", err)
		}
	}
	if _, got, _ := a.get(id); got.Stats.Complete != 0 {
		t.Fatalf("%d tasks counted while the first batch is being recorded", got.Stats.Complete)
	}
	g.release()
	if got := a.waitComplete(id); got.Stats.Failed != 0 || got.Stats.Complete != 9 {
		t.Fatalf("stats %+v", got.Stats)
	}
	var files, ownerDir int
	for _, ev := range rec.recorded() {
		switch {
		case !ev.dir:
			files++
		case ev.rel == owner:
			ownerDir++
		}
	}
	if files != 9 || ownerDir != 2 {
		t.Fatalf("%d file fsyncs and %d of the directory, want 9 and 2 (one per batch): %+v", files, ownerDir, rec.recorded())
	}
	if n := records.Load(); n != 2 {
		t.Fatalf("%d record transactions, want 2", n)
	}
	for _, task := range tasks {
		a.checkFile(task, body)
	}
}

// TestGroupCommitSyncFailure: a directory that cannot be fsynced fails
// every task of the batch in it, and only those.
func TestGroupCommitSyncFailure(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	cfg.Workers = 1
	cfg.WorkersPerAssignment = 4
	g := newGate()
	t.Cleanup(g.release)
	var records, handed atomic.Int64
	failing := newID()
	a := startAgent(t, cfg, func(s *Server) {
		s.handedOver = func() { handed.Add(1) }
		s.copier.tree.sync = func(f *os.File, rel string) error {
			if rel == failing {
				return errInjected
			}
			return f.Sync()
		}
		s.store.fault = func(op string) error {
			if op == "record" && records.Add(1) == 1 {
				g.wait(t.Context())
			}
			return nil
		}
	})
	body := content("fail", 100)
	first := src.put(newID(), newID(), body)
	var good, bad []rebalancer.Task
	for range 4 {
		good = append(good, src.put(first.Owner, newID(), body))
		bad = append(bad, src.put(failing, newID(), body))
	}
	id := newID()
	a.mustPost(id, append(append([]rebalancer.Task{first}, good...), bad...)...)
	g.arrivals(t, 1)
	testutil.Eventually(t, "every result handed to the committer", func() bool { return handed.Load() == 9 })
	g.release()
	got := a.waitComplete(id)
	reasons := failedReasons(got)
	if got.Stats.Failed != len(bad) || got.Stats.Complete != 9 {
		t.Fatalf("stats %+v, failed %v", got.Stats, reasons)
	}
	for _, task := range bad {
		if reasons[task.ObjectID] != rebalancer.SkipAgentFSError {
			t.Errorf("task in the failing directory: %v, want AgentFSError", reasons[task.ObjectID])
		}
	}
}

// TestGroupCommitAcrossAssignments: one batch records the results of
// several running assignments, each counted and numbered on its own.
func TestGroupCommitAcrossAssignments(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	cfg.Workers = 2
	cfg.WorkersPerAssignment = 2
	g := newGate()
	t.Cleanup(g.release)
	var records, handed atomic.Int64
	a := startAgent(t, cfg, func(s *Server) {
		s.handedOver = func() { handed.Add(1) }
		s.store.fault = func(op string) error {
			if op == "record" && records.Add(1) == 1 {
				g.wait(t.Context())
			}
			return nil
		}
	})
	body := content("across", 700)
	ids := []string{newID(), newID()}
	sizes := []int{5, 4}
	// The source serves nothing until both assignments are stored: a copy
	// of the first recorded meanwhile would hold the state database's
	// writer at the gate, and the second POST would wait for it for ever.
	posted := make(chan struct{})
	servePosted := sync.OnceFunc(func() { close(posted) })
	t.Cleanup(servePosted) // before the source closes, should the test fail first
	for k, id := range ids {
		var tasks []rebalancer.Task
		for range sizes[k] {
			task := src.put(newID(), newID(), body)
			src.handle(task, func(w http.ResponseWriter, r *http.Request) {
				<-posted
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				w.Write(body)
			})
			tasks = append(tasks, task)
		}
		a.mustPost(id, tasks...)
	}
	servePosted()
	g.arrivals(t, 1)
	testutil.Eventually(t, "every result handed to the committer", func() bool { return handed.Load() == 9 })
	g.release()
	for k, id := range ids {
		if got := a.waitComplete(id); got.Stats.Failed != 0 || got.Stats.Complete != sizes[k] {
			t.Fatalf("%s: stats %+v", id, got.Stats)
		}
		st, _ := storedAssignment(t, a.s, id)
		var order []int64
		for _, task := range st.tasks {
			order = append(order, task.doneOrder.Int64)
		}
		slices.Sort(order)
		for i, n := range order {
			if n != int64(i+1) {
				t.Fatalf("%s: done_order %v, want 1 to %d", id, order, sizes[k])
			}
		}
	}
	if n := records.Load(); n != 2 {
		t.Fatalf("%d record transactions, want 2", n)
	}
}
