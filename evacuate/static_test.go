package evacuate

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

func TestQueueBounded(t *testing.T) {
	ctx := context.Background()
	q := newQueue(2)
	for _, id := range []string{"a", "b"} {
		if !q.pushWait(ctx, id) {
			t.Fatalf("push %s into a queue with room", id)
		}
	}
	pushed := make(chan bool)
	go func() { pushed <- q.pushWait(ctx, "c") }()
	// The queue is full: "c" waits until a pop makes room.
	if id, _ := q.pop(ctx, nil); id != "a" {
		t.Fatalf("pop = %q, want a", id)
	}
	if !testutil.Receive(t, "the waiting push", pushed) {
		t.Fatal("the waiting push failed")
	}
	// Restoring goes beyond the limit rather than waiting.
	q.push("d")
	q.push("e")
	if n := q.size(); n != 4 {
		t.Fatalf("size %d after two pushes past the limit, want 4", n)
	}
	cancelled, cancel := context.WithCancel(ctx)
	go func() { pushed <- q.pushWait(cancelled, "f") }()
	cancel()
	if testutil.Receive(t, "the cancelled push", pushed) {
		t.Fatal("a push into a full queue succeeded after its context ended")
	}
	for _, want := range []string{"b", "c", "d", "e"} {
		if id, _ := q.pop(ctx, nil); id != want {
			t.Fatalf("pop = %q, want %q", id, want)
		}
	}
	// Unbounded (dynamic threads): never waits.
	u := newQueue(0)
	for i := range 1000 {
		if !u.pushWait(ctx, fmt.Sprint(i)) {
			t.Fatal("an unbounded queue refused a push")
		}
	}
}

// gate is a MetadataStore that holds every update until the test opens
// it, or until the update's context ends. It has no batch method, so every
// update goes through ReplaceShark.
type gate struct {
	m       *fakes.Moray
	started atomic.Int32
	open    chan struct{}
}

func newGate(m *fakes.Moray) *gate { return &gate{m: m, open: make(chan struct{})} }

func (g *gate) GetObject(ctx context.Context, shard int, key string) (rebalancer.Object, error) {
	return g.m.GetObject(ctx, shard, key)
}

func (g *gate) ReplaceShark(ctx context.Context, obj rebalancer.Object, from string, to rebalancer.StorageNode) (string, error) {
	g.started.Add(1)
	select {
	case <-g.open:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return g.m.ReplaceShark(ctx, obj, from, to)
}

// staticOptions are options whose metadata stage is easy to count: one
// object per assignment, one metadata thread, one poll at a time.
func staticOptions(static bool, depth int) Options {
	o := fastOptions()
	o.MaxTasksPerAssignment = 1
	o.MetadataThreads = 1
	o.PollConcurrency = 1
	o.IndividualUpdates = true
	o.StaticMetadataThreads = static
	o.StaticQueueDepth = depth
	return o
}

func statusCount(h *harness, id string, status rebalancer.ObjectStatus) int64 {
	st, err := h.engine.JobStatus(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	n, _ := st.Total(status)
	return n
}

// pollClock returns a clock for "nothing happens": an engine of its own
// whose job's assignments never finish, so that its poll rounds go on
// whatever the engine under test does; advance waits for n more of them.
func pollClock(t *testing.T) (advance func(n int)) {
	c := newHarness(t, filepath.Join(t.TempDir(), "clock.db"), 3, nil)
	c.agents.SetSlow(true)
	if _, err := c.engine.CreateJob(context.Background(), c.from.MantaStorageID, fastOptions()); err != nil {
		t.Fatal(err)
	}
	least := func() int {
		n := -1
		for _, s := range []int{3, 4, 5, 6} {
			if p := c.agents.LeastPolled(fakes.Shark(s).MantaStorageID); p >= 0 && (n < 0 || p < n) {
				n = p
			}
		}
		return n
	}
	testutil.Eventually(t, "the clock's assignments to be polled", func() bool { return least() >= 0 })
	return func(n int) {
		t.Helper()
		from := least()
		testutil.Eventually(t, fmt.Sprintf("%d poll rounds of the clock", n), func() bool { return least() >= from+n })
	}
}

// In static mode, assignments whose copies are verified wait for the fixed
// metadata workers in a queue of static_queue_depth, and the poller waits
// while it is full: with the one worker held, one assignment in its hands,
// two queued and the one the poller holds are all that reach
// post_processing. With dynamic threads the queue is unbounded and every
// verified assignment gets there.
func TestStaticQueueHoldsThePoller(t *testing.T) {
	const objects, depth = 12, 2
	for _, static := range []bool{true, false} {
		t.Run(fmt.Sprintf("static=%v", static), func(t *testing.T) {
			h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), objects, nil)
			g := newGate(h.moray)
			h.metadata = g
			h.engine.Close()
			h.engine = h.newEngine()
			j, err := h.engine.CreateJob(context.Background(), h.from.MantaStorageID, staticOptions(static, depth))
			if err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, "the metadata worker to take an assignment", func() bool { return g.started.Load() == 1 })
			if !static {
				testutil.Eventually(t, "every assignment verified", func() bool {
					return statusCount(h, j.ID, rebalancer.ObjectPostProcessing) == objects
				})
			} else {
				held := int64(1 + depth + 1) // the worker's, the queue's, the poller's
				testutil.Eventually(t, "the queue to fill", func() bool {
					return statusCount(h, j.ID, rebalancer.ObjectPostProcessing) >= held
				})
				advance := pollClock(t)
				advance(20)
				if n := statusCount(h, j.ID, rebalancer.ObjectPostProcessing); n != held {
					t.Errorf("%d objects post_processing while the queue was full, want %d", n, held)
				}
				if n := statusCount(h, j.ID, rebalancer.ObjectAssigned); n != objects-held {
					t.Errorf("%d objects assigned while the queue was full, want %d", n, objects-held)
				}
				if n := g.started.Load(); n != 1 {
					t.Errorf("%d metadata updates started with one static thread, want 1", n)
				}
			}
			close(g.open)
			j = h.wait(j.ID)
			if got := h.check(j.ID); j.State != rebalancer.JobComplete || got["complete"] != objects {
				t.Fatalf("job %v %q, counts %v", j.State, j.Error, got)
			}
		})
	}
}

// A static job restarted with more verified assignments than its queue
// holds queues them all before its workers start, rather than waiting for
// room that only the workers could make.
func TestStaticQueueResume(t *testing.T) {
	const objects = 12
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), objects, nil)
	g := newGate(h.moray)
	h.metadata = g
	h.engine.Close()
	h.engine = h.newEngine()
	j, err := h.engine.CreateJob(context.Background(), h.from.MantaStorageID, staticOptions(true, 1))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "three assignments verified", func() bool {
		return statusCount(h, j.ID, rebalancer.ObjectPostProcessing) == 3
	})
	h.engine.Close()

	close(g.open)
	h.engine = h.newEngine()
	if err := h.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	j = h.wait(j.ID)
	if got := h.check(j.ID); j.State != rebalancer.JobComplete || got["complete"] != objects {
		t.Fatalf("job %v %q, counts %v", j.State, j.Error, got)
	}
}

// The workers of a static job are fixed: SetMetadataThreads refuses, and
// the job's options stay as they were.
func TestStaticThreadsFixed(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 4, nil)
	g := newGate(h.moray)
	h.metadata = g
	h.engine.Close()
	h.engine = h.newEngine()
	o := staticOptions(true, 0)
	o.MetadataThreads = 3
	j, err := h.engine.CreateJob(context.Background(), h.from.MantaStorageID, o)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the metadata workers to start", func() bool { return g.started.Load() >= 1 })
	if err := h.engine.SetMetadataThreads(context.Background(), j.ID, 5); !errors.Is(err, ErrStaticThreads) {
		t.Errorf("SetMetadataThreads of a static job = %v, want ErrStaticThreads", err)
	}
	close(g.open)
	j = h.wait(j.ID)
	if j.Options.MetadataThreads != 3 || !j.Options.StaticMetadataThreads || j.Options.StaticQueueDepth != DefaultStaticQueueDepth {
		t.Errorf("stored options: threads %d, static %v, depth %d", j.Options.MetadataThreads, j.Options.StaticMetadataThreads, j.Options.StaticQueueDepth)
	}
}
