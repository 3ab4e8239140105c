package storinfo_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/storinfo"
	"github.com/TritonDataCenter/rebalancer/storinfo/storinfotest"
)

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// scripted is a Lister whose answers the test sets.
type scripted struct {
	mu     sync.Mutex
	nodes  []storinfo.Node
	err    error
	calls  int
	during func() // called inside List, if set
}

func (s *scripted) set(nodes []storinfo.Node, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes, s.err = nodes, err
}

func (s *scripted) List(ctx context.Context) ([]storinfo.Node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.during != nil {
		s.during()
	}
	return s.nodes, s.err
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func node(id, dc string, availMB int64, pct float64) storinfo.Node {
	return storinfo.Node{MantaStorageID: id, Datacenter: dc, AvailableMB: availMB, PercentUsed: pct, Filesystem: "/manta"}
}

func TestViewKeepsLastGoodSnapshot(t *testing.T) {
	clk := newClock()
	src := &scripted{}
	v := storinfo.NewView(storinfo.ViewConfig{Source: src, Now: clk.Now})
	ctx := context.Background()

	if v.Snapshot() != nil || v.Status().HasSnapshot() {
		t.Fatal("a new view has a snapshot")
	}
	select {
	case <-v.Ready():
		t.Fatal("Ready before the first snapshot")
	default:
	}

	// A failure with no snapshot yet stays "no snapshot", never "no sharks".
	boom := errors.New("storinfo down")
	src.set(nil, boom)
	if err := v.Refresh(ctx); !errors.Is(err, boom) {
		t.Fatalf("Refresh = %v", err)
	}
	if v.Snapshot() != nil {
		t.Fatal("a failed refresh produced a snapshot")
	}

	src.set([]storinfo.Node{node("2.stor", "dc0", 10, 1), node("1.stor", "dc0", 20, 2)}, nil)
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	good := v.Snapshot()
	if good == nil || len(good.Nodes) != 2 || good.Nodes[0].MantaStorageID != "1.stor" || !good.Taken.Equal(clk.Now()) {
		t.Fatalf("snapshot = %+v", good)
	}
	<-v.Ready()
	if st := v.Status(); st.LastError != nil || st.ConsecutiveFailures != 0 || st.Nodes != 2 || st.Age != 0 {
		t.Fatalf("status after success = %+v", st)
	}

	// Two failures keep the snapshot and report its age.
	src.set(nil, boom)
	for range 2 {
		clk.Advance(10 * time.Second)
		if err := v.Refresh(ctx); !errors.Is(err, boom) {
			t.Fatalf("Refresh = %v", err)
		}
	}
	if v.Snapshot() != good {
		t.Fatal("a failed refresh replaced the snapshot")
	}
	st := v.Status()
	if !errors.Is(st.LastError, boom) || st.ConsecutiveFailures != 2 || st.Age != 20*time.Second || st.Nodes != 2 ||
		!st.LastErrorAt.Equal(clk.Now()) || !st.LastAttempt.Equal(clk.Now()) {
		t.Fatalf("status after failures = %+v", st)
	}

	// An empty but successful listing is believed.
	src.set([]storinfo.Node{}, nil)
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s := v.Snapshot(); s == good || len(s.Nodes) != 0 {
		t.Fatalf("snapshot after empty listing = %+v", s)
	}
	if st := v.Status(); st.LastError != nil || st.ConsecutiveFailures != 0 {
		t.Fatalf("status after recovery = %+v", st)
	}
}

// A shutting-down refresh is not recorded as a storinfo failure.
func TestViewRefreshCanceled(t *testing.T) {
	src := &scripted{}
	src.set(nil, context.Canceled)
	v := storinfo.NewView(storinfo.ViewConfig{Source: src})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.Refresh(ctx); err == nil {
		t.Fatal("Refresh succeeded")
	}
	if st := v.Status(); st.ConsecutiveFailures != 0 {
		t.Fatalf("status = %+v", st)
	}
}

func TestViewRun(t *testing.T) {
	src := &scripted{}
	src.set([]storinfo.Node{node("1.stor", "dc0", 10, 1)}, nil)
	v := storinfo.NewView(storinfo.ViewConfig{Source: src, Interval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- v.Run(ctx) }()
	testutil.Receive(t, "the first snapshot", v.Ready())
	testutil.Eventually(t, "Run to poll three times", func() bool { return src.count() >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	n := src.count()
	if v.Refresh(context.Background()) != nil || src.count() != n+1 {
		t.Fatal("Refresh after Run does not list")
	}
}

// Against a storinfo that goes away: the view keeps what it had.
func TestViewWithStorinfoDown(t *testing.T) {
	srv := storinfotest.NewServer(records(4)...)
	defer srv.Close()
	v := storinfo.NewView(storinfo.ViewConfig{Source: newClient(t, srv.URL, func(c *storinfo.ClientConfig) { c.RetryMax = -1 })})
	ctx := context.Background()
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	good := v.Snapshot()
	srv.SetDown(true)
	if err := v.Refresh(ctx); err == nil {
		t.Fatal("Refresh succeeded with storinfo down")
	}
	srv.SetDown(false)
	srv.FailNext(1, 500)
	if err := v.Refresh(ctx); err == nil {
		t.Fatal("Refresh succeeded with storinfo failing")
	}
	if v.Snapshot() != good || len(good.Nodes) != 4 {
		t.Fatal("the snapshot was lost")
	}
	if st := v.Status(); st.ConsecutiveFailures != 2 {
		t.Fatalf("status = %+v", st)
	}
	srv.Remove("1.stor.example.com")
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s := v.Snapshot(); len(s.Nodes) != 3 {
		t.Fatalf("snapshot has %d nodes", len(s.Nodes))
	}
}

func TestViewSet(t *testing.T) {
	clk := newClock()
	v := storinfo.NewView(storinfo.ViewConfig{Now: clk.Now})
	if err := v.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh without a source succeeded")
	}
	v.Set([]storinfo.Node{node("b", "dc0", 1, 1), node("a", "dc0", 2, 2), node("b", "dc1", 3, 3)})
	s := v.Snapshot()
	if len(s.Nodes) != 2 || s.Nodes[0].MantaStorageID != "a" || s.Nodes[1].Datacenter != "dc1" || !s.Taken.Equal(clk.Now()) {
		t.Fatalf("snapshot = %+v", s)
	}
	if n, ok := s.Node("b"); !ok || n.AvailableMB != 3 {
		t.Fatalf("Node(b) = %+v, %v", n, ok)
	}
	if _, ok := s.Node("c"); ok {
		t.Fatal("Node(c) found")
	}
	<-v.Ready()
}

// While the view has no storage node (storinfo failing before any listing,
// then listing none), Run asks again after RetryInterval rather than
// Interval; once it has nodes, after Interval.
func TestViewRetryInterval(t *testing.T) {
	src := &scripted{}
	src.set(nil, errors.New("storinfo down"))
	// An hour between polls: only the retry interval can make the
	// listings below happen within the test's deadline.
	v := storinfo.NewView(storinfo.ViewConfig{Source: src, Interval: time.Hour, RetryInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- v.Run(ctx) }()
	testutil.Eventually(t, "retries while storinfo fails", func() bool { return src.count() >= 3 })
	src.set([]storinfo.Node{}, nil)
	n := src.count()
	testutil.Eventually(t, "retries while storinfo lists no node", func() bool {
		return src.count() >= n+3 && v.Snapshot() != nil && len(v.Snapshot().Nodes) == 0
	})
	src.set([]storinfo.Node{node("1.stor", "dc0", 10, 1)}, nil)
	testutil.Eventually(t, "a snapshot with a node", func() bool { s := v.Snapshot(); return s != nil && len(s.Nodes) == 1 })
	n = src.count()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	// With a node, the next poll was an hour away: none happened since.
	if got := src.count(); got != n {
		t.Errorf("%d listings after the view had a node, want none before Interval", got-n)
	}
}
