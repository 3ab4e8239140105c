package evacuate

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// currentSource discovers from the fake Moray's metadata as it is now, as
// a fresh scan of the shards would.
type currentSource struct{ h *harness }

func (s currentSource) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	for _, o := range s.h.objs {
		cur, ok := s.h.moray.Get(o.Shard, o.Key)
		if !ok || !cur.HasShark(req.Shark) {
			continue
		}
		cur.ScanID = o.ScanID
		if err := visit(cur); err != nil {
			return err
		}
	}
	return nil
}

// freshDiscovery makes the harness's jobs discover the metadata as it is.
func (h *harness) freshDiscovery(e *Engine) {
	e.cfg.Source = func(JobRecord) (rebalancer.ObjectSource, error) { return currentSource{h}, nil }
}

func (h *harness) evacuate(e *Engine, shark rebalancer.StorageNode, opts Options) JobRecord {
	h.t.Helper()
	j, err := e.CreateJob(context.Background(), shark.MantaStorageID, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	defer cancel()
	if j, err = e.Wait(ctx, j.ID); err != nil || j.State != rebalancer.JobComplete {
		h.t.Fatalf("job on %s ended %v %q (%v)", shark, j.State, j.Error, err)
	}
	return j
}

func (h *harness) sharkState(e *Engine, n int) SharkStatus {
	h.t.Helper()
	st, err := e.SharkStatus(context.Background(), fakes.Shark(n).MantaStorageID)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// destinations returns the sharks a job copied objects to.
func (h *harness) destinations(id string) []string {
	h.t.Helper()
	d, err := h.js.Destinations(context.Background(), id, rebalancer.ObjectComplete)
	if err != nil {
		h.t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(d))
}

// copiedTo returns how many of the harness's objects an agent copied to
// shark: none may be, when it is out of service.
func (h *harness) copiedTo(n int) int {
	copied := 0
	for _, o := range h.objs {
		if h.agents.Copied(fakes.Shark(n).MantaStorageID, o.ID) {
			copied++
		}
	}
	return copied
}

// A shark's state outlives its job and the engine: an evacuated shark, or
// one an operator took out, is never a destination again until it is put
// back in service, and a running job's shark cannot be put back.
func TestSharkLifecycle(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, 60, nil) // every object on sharks 1 and 2
		h.freshDiscovery(h.engine)
		ctx := context.Background()
		shark := func(n int) string { return fakes.Shark(n).MantaStorageID }

		// Shark 3 holds nothing: its evacuation completes at once and
		// leaves it drained.
		j3 := h.evacuate(h.engine, fakes.Shark(3), fastOptions())
		if st := h.sharkState(h.engine, 3); st.State != SharkDrained || st.Job != j3.ID || st.ByOperator || !st.OutOfService() {
			t.Fatalf("after its evacuation, shark 3 is %+v", st)
		}
		if _, err := h.engine.SetSharkState(ctx, shark(4), SharkDrained, "disk failing"); err != nil {
			t.Fatal(err)
		}
		if st := h.sharkState(h.engine, 4); st.State != SharkDrained || !st.ByOperator || st.Reason != "disk failing" || st.Since.IsZero() {
			t.Fatalf("after shark out, shark 4 is %+v", st)
		}

		// Evacuating shark 1 places on 5 and 6 only. While it runs, its
		// shark is draining and cannot be put back or taken out.
		h.agents.SetSlow(true)
		j1, err := h.engine.CreateJob(ctx, shark(1), fastOptions())
		if err != nil {
			t.Fatal(err)
		}
		if st := h.sharkState(h.engine, 1); st.State != SharkDraining || st.Running != j1.ID || st.Job != j1.ID {
			t.Fatalf("while evacuated, shark 1 is %+v", st)
		}
		for _, to := range []SharkState{SharkInService, SharkDrained} {
			if _, err := h.engine.SetSharkState(ctx, shark(1), to, ""); !errors.Is(err, ErrSharkBusy) || !strings.Contains(err.Error(), j1.ID) {
				t.Errorf("SetSharkState(%s) of a shark being evacuated: %v", to, err)
			}
		}
		h.agents.SetSlow(false)
		if j1 = h.wait(j1.ID); j1.State != rebalancer.JobComplete {
			t.Fatalf("job on shark 1 ended %v %q", j1.State, j1.Error)
		}
		if got := h.destinations(j1.ID); !slices.Equal(got, []string{shark(5), shark(6)}) {
			t.Errorf("shark 1's objects went to %v, want 5 and 6 only", got)
		}
		for _, n := range []int{3, 4} {
			if c := h.copiedTo(n); c != 0 {
				t.Errorf("%d objects copied to shark %d, which is out of service", c, n)
			}
		}

		// A restarted engine finds the states, and evacuating shark 2
		// (whose objects have their other copy on 5 or 6) places on those
		// only.
		h.engine.Close()
		e := h.newEngine()
		t.Cleanup(e.Close)
		h.engine = e
		h.freshDiscovery(e)
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		for n, want := range map[int]SharkState{1: SharkDrained, 3: SharkDrained, 4: SharkDrained, 5: SharkInService} {
			if st := h.sharkState(e, n); st.State != want {
				t.Errorf("after a restart, shark %d is %s, want %s", n, st.State, want)
			}
		}
		j2 := h.evacuate(e, fakes.Shark(2), fastOptions())
		if got := h.destinations(j2.ID); !slices.Equal(got, []string{shark(5), shark(6)}) {
			t.Errorf("shark 2's objects went to %v, want 5 and 6 only", got)
		}
		for _, n := range []int{1, 3, 4} {
			if c := h.copiedTo(n); c != 0 {
				t.Errorf("%d objects copied to shark %d, which is out of service", c, n)
			}
		}

		// Back in service, a shark takes copies again; one never taken out
		// has nothing to change; one nobody knows is refused.
		if st, err := e.SetSharkState(ctx, shark(3), SharkInService, "repaired"); err != nil || st.State != SharkInService || !st.ByOperator {
			t.Fatalf("shark in: %+v %v", st, err)
		}
		if slices.Contains(e.exclusions(""), shark(3)) || !slices.Contains(e.exclusions(""), shark(4)) {
			t.Errorf("exclusions after shark 3 is back: %v", e.exclusions(""))
		}
		if _, err := e.SetSharkState(ctx, shark(7), SharkInService, ""); err != nil {
			t.Errorf("shark in of a shark in service: %v", err)
		}
		var unknown *UnknownSharkError
		if _, err := e.SetSharkState(ctx, "8.stor.tset", SharkDrained, ""); !errors.As(err, &unknown) {
			t.Errorf("shark out of an unknown shark: %v", err)
		}
		if _, err := e.SetSharkState(ctx, shark(5), SharkDraining, ""); !errors.Is(err, ErrInvalidSharkState) {
			t.Errorf("an operator set draining: %v", err)
		}
		all, err := e.Sharks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]SharkState{}
		for _, s := range all {
			got[s.Shark] = s.State
		}
		want := map[string]SharkState{shark(1): SharkDrained, shark(2): SharkDrained, shark(3): SharkInService, shark(4): SharkDrained}
		if !maps.Equal(got, want) {
			t.Errorf("Sharks = %v, want %v", got, want)
		}
	})
}

// A job that stops (or fails) leaves its shark draining: out of service,
// with what it did not move still to move. A dry run changes no state, is
// not retried, and its shark is a destination again once it ends.
func TestSharkStatesOfStoppedJobsAndDryRuns(t *testing.T) {
	h := newHarness(t, t.TempDir()+"/jobs.db", 40, nil)
	ctx := context.Background()
	o := fastOptions()
	o.DryRun = true
	dry, _ := h.run(o)
	if st := h.sharkState(h.engine, 1); st.State != SharkInService || st.OutOfService() {
		t.Errorf("after a dry run, shark 1 is %+v", st)
	}
	if _, err := h.engine.RetryJob(ctx, dry.ID, nil); !errors.Is(err, ErrRetryDryRun) {
		t.Errorf("retry of a dry run: %v", err)
	}
	if jobs, _ := h.engine.Jobs(ctx); len(jobs) != 1 {
		t.Errorf("a refused retry stored a job: %d jobs", len(jobs))
	}

	h.agents.SetSlow(true)
	j, err := h.engine.CreateJob(ctx, h.from.MantaStorageID, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.engine.StopJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	h.agents.SetSlow(false)
	if j = h.wait(j.ID); j.State != rebalancer.JobStopped {
		t.Fatalf("job ended %v", j.State)
	}
	if st := h.sharkState(h.engine, 1); st.State != SharkDraining || st.Running != "" || !st.OutOfService() {
		t.Errorf("after its job stopped, shark 1 is %+v", st)
	}
	// The operator may then take it out for good.
	if st, err := h.engine.SetSharkState(ctx, h.from.MantaStorageID, SharkDrained, "given up"); err != nil || st.State != SharkDrained {
		t.Errorf("shark out after a stopped job: %+v %v", st, err)
	}
}

// ignoreAvoid is a Placement that breaks the contract: it ignores avoid.
type ignoreAvoid struct{ *fakes.Placement }

func (p ignoreAvoid) Place(ctx context.Context, obj rebalancer.Object, from rebalancer.StorageNode, _ []string) (rebalancer.StorageNode, error) {
	return p.Placement.Place(ctx, obj, from, nil)
}

// excluder is a Placement that keeps the exclusions it is given, as
// storinfo.Placement does.
type excluder struct {
	*fakes.Placement
	mu       sync.Mutex
	excluded []string
}

func (p *excluder) ExcludeSharks(sharks []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.excluded = sharks
}

func (p *excluder) Place(ctx context.Context, obj rebalancer.Object, from rebalancer.StorageNode, avoid []string) (rebalancer.StorageNode, error) {
	p.mu.Lock()
	avoid = append(slices.Clip(avoid), p.excluded...)
	p.mu.Unlock()
	return p.Placement.Place(ctx, obj, from, avoid)
}

func (p *excluder) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.excluded)
}

// Whatever the Placement, no copy goes to a shark out of service: a
// SharkExcluder is told them, and a destination that is one anyway is
// given back.
func TestPlacementsKeepOutOfService(t *testing.T) {
	for _, tt := range []struct {
		name string
		wrap func(*fakes.Placement) rebalancer.Placement
	}{
		{"avoid list", func(p *fakes.Placement) rebalancer.Placement { return p }},
		{"placement ignoring avoid", func(p *fakes.Placement) rebalancer.Placement { return ignoreAvoid{p} }},
		{"excluder", func(p *fakes.Placement) rebalancer.Placement { return &excluder{Placement: p} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, t.TempDir()+"/jobs.db", 80, nil)
			ctx := context.Background()
			h.engine.Close()
			h.engine.cfg.Placement = tt.wrap(h.place)
			e, err := NewEngine(h.engine.cfg)
			if err != nil {
				t.Fatal(err)
			}
			h.engine = e
			t.Cleanup(e.Close)
			for _, n := range []int{3, 4} {
				if _, err := e.SetSharkState(ctx, fakes.Shark(n).MantaStorageID, SharkDrained, ""); err != nil {
					t.Fatal(err)
				}
			}
			if ex, ok := e.cfg.Placement.(*excluder); ok {
				if got := ex.get(); !slices.Equal(got, []string{"3.stor.test", "4.stor.test"}) {
					t.Errorf("the excluder was told %v", got)
				}
			}
			j, _ := h.run(fastOptions())
			if got := h.destinations(j.ID); !slices.Equal(got, []string{"5.stor.test", "6.stor.test"}) {
				t.Errorf("objects went to %v, want 5 and 6 only", got)
			}
			if got := h.check(j.ID); got["complete"] != 80 {
				t.Errorf("counts %v", got)
			}
			for _, n := range []int{3, 4} {
				if c := h.copiedTo(n); c != 0 {
					t.Errorf("%d objects copied to shark %d, which is out of service", c, n)
				}
			}
			if ex, ok := e.cfg.Placement.(*excluder); ok {
				// The job's own shark was excluded while it ran, and is
				// drained now.
				if got := ex.get(); !slices.Equal(got, []string{"1.stor.test", "3.stor.test", "4.stor.test"}) {
					t.Errorf("after the job, the excluder was told %v", got)
				}
			}
		})
	}
}
