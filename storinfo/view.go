package storinfo

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is the legacy storinfo poll interval.
const DefaultInterval = 10 * time.Second

// Lister lists every storage node; *Client implements it.
type Lister interface {
	List(ctx context.Context) ([]Node, error)
}

// Snapshot is the fleet as one successful storinfo listing showed it. It is
// shared by every reader and must not be modified.
type Snapshot struct {
	// Nodes are sorted by MantaStorageID, each listed once.
	Nodes []Node
	// Taken is when the listing that produced the snapshot started: every
	// node record in it was read from storinfo after Taken.
	Taken time.Time
}

// NewSnapshot returns a snapshot of nodes taken at taken. Nodes are copied
// and sorted; when an id repeats, the last record wins.
func NewSnapshot(nodes []Node, taken time.Time) *Snapshot {
	s := &Snapshot{Nodes: slices.Clone(nodes), Taken: taken}
	slices.SortStableFunc(s.Nodes, func(a, b Node) int { return cmp.Compare(a.MantaStorageID, b.MantaStorageID) })
	out := s.Nodes[:0]
	for i, n := range s.Nodes {
		if i+1 < len(s.Nodes) && s.Nodes[i+1].MantaStorageID == n.MantaStorageID {
			continue
		}
		out = append(out, n)
	}
	clear(s.Nodes[len(out):])
	s.Nodes = out
	return s
}

// Node returns the record of the storage node id.
func (s *Snapshot) Node(id string) (Node, bool) {
	i, ok := slices.BinarySearchFunc(s.Nodes, id, func(n Node, id string) int { return cmp.Compare(n.MantaStorageID, id) })
	if !ok {
		return Node{}, false
	}
	return s.Nodes[i], true
}

// ViewConfig configures a View.
type ViewConfig struct {
	// Source lists the fleet; usually a *Client. It may be nil when
	// snapshots are only ever injected with Set.
	Source Lister
	// Interval is the time between the end of one refresh and the start of
	// the next in Run (default 10 s, the legacy's fixed interval).
	Interval time.Duration
	// RetryInterval, when shorter than Interval, replaces it while the view
	// has no storage node at all (no listing has succeeded yet, or the last
	// one was empty), so that placement resumes soon after storinfo lists
	// sharks again. The manager's shark_list_retry_delay_ms sets it: the
	// legacy waited that long before looking again at an empty list of
	// destinations. Zero means Interval.
	RetryInterval time.Duration
	// Logger receives refresh failures and recoveries (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

// View keeps the latest good snapshot of the fleet, refreshed from storinfo.
//
// A refresh that fails keeps the previous snapshot: the legacy replaced its
// cache with an empty list, which stopped every job as though the fleet had
// vanished. Callers judge staleness with Status, or with the snapshot's
// Taken time. A View is safe for concurrent use; its polling goroutine is
// the caller's, started with Run.
type View struct {
	src      Lister
	interval time.Duration
	retry    time.Duration // RetryInterval, when shorter than interval
	log      *slog.Logger
	now      func() time.Time

	snap    atomic.Pointer[Snapshot]
	ready   chan struct{}
	refresh sync.Mutex // one listing at a time, so snapshots apply in order

	mu          sync.Mutex // guards the fields below
	lastAttempt time.Time
	lastErr     error
	lastErrAt   time.Time
	failures    int
}

// NewView returns a View with no snapshot yet.
func NewView(cfg ViewConfig) *View {
	v := &View{src: cfg.Source, interval: cfg.Interval, log: cfg.Logger, now: cfg.Now, ready: make(chan struct{})}
	if v.interval <= 0 {
		v.interval = DefaultInterval
	}
	if cfg.RetryInterval > 0 && cfg.RetryInterval < v.interval {
		v.retry = cfg.RetryInterval
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v
}

// Run refreshes the view now and then every Interval (RetryInterval while
// it has no storage node) until ctx ends, when it returns nil. Failures are
// recorded (see Status) and logged, never returned: the next tick tries
// again.
func (v *View) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		_ = v.Refresh(ctx)
		next := v.interval
		if s := v.snap.Load(); v.retry > 0 && (s == nil || len(s.Nodes) == 0) {
			next = v.retry
		}
		t.Reset(next)
	}
}

// Refresh lists the fleet now. On success the listing becomes the current
// snapshot; on failure the current snapshot is kept and the error is
// recorded and returned.
func (v *View) Refresh(ctx context.Context) error {
	if v.src == nil {
		return errors.New("storinfo: view has no source to refresh from")
	}
	v.refresh.Lock()
	defer v.refresh.Unlock()
	start := v.now()
	nodes, err := v.src.List(ctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lastAttempt = start
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down is not a storinfo failure.
			return err
		}
		v.lastErr, v.lastErrAt = err, v.now()
		v.failures++
		args := []any{"err", err, "failures", v.failures}
		if s := v.snap.Load(); s != nil {
			args = append(args, "snapshot_age", v.now().Sub(s.Taken).Round(time.Millisecond).String(), "nodes", len(s.Nodes))
		} else {
			args = append(args, "snapshot", "none")
		}
		v.log.Warn("storinfo refresh failed; keeping the last good snapshot", args...)
		return err
	}
	if v.failures > 0 {
		v.log.Info("storinfo refresh recovered", "failures", v.failures, "nodes", len(nodes))
	}
	v.failures = 0
	v.store(NewSnapshot(nodes, start))
	return nil
}

// Set makes nodes the current snapshot, taken now, as a successful refresh
// would. Tests and the demo use it to drive placement without a storinfo.
// It waits for a refresh in progress, so that the refresh cannot overwrite
// it with an older listing.
func (v *View) Set(nodes []Node) {
	v.refresh.Lock()
	defer v.refresh.Unlock()
	s := NewSnapshot(nodes, v.now())
	v.mu.Lock()
	defer v.mu.Unlock()
	v.store(s)
}

// store publishes s; v.mu is held.
func (v *View) store(s *Snapshot) {
	if v.snap.Swap(s) == nil {
		close(v.ready)
	}
}

// Snapshot returns the latest good snapshot, or nil before the first one.
func (v *View) Snapshot() *Snapshot { return v.snap.Load() }

// Ready is closed once the view has its first snapshot.
func (v *View) Ready() <-chan struct{} { return v.ready }

// ViewStatus describes how fresh a View is.
type ViewStatus struct {
	Nodes int           // storage nodes in the current snapshot
	Taken time.Time     // when the current snapshot was taken; zero if none
	Age   time.Duration // how old the current snapshot is; zero if none

	LastAttempt         time.Time // when the last refresh started
	LastError           error     // the error of the last failed refresh, nil once one succeeds
	LastErrorAt         time.Time
	ConsecutiveFailures int // refreshes failed since the last success
}

// HasSnapshot reports whether the view has a snapshot at all.
func (s ViewStatus) HasSnapshot() bool { return !s.Taken.IsZero() }

// Status reports the current snapshot's age and the last refresh error.
func (v *View) Status() ViewStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := ViewStatus{LastAttempt: v.lastAttempt, LastErrorAt: v.lastErrAt, ConsecutiveFailures: v.failures}
	if v.failures > 0 {
		st.LastError = v.lastErr
	}
	if s := v.snap.Load(); s != nil {
		st.Nodes, st.Taken, st.Age = len(s.Nodes), s.Taken, v.now().Sub(s.Taken)
	}
	return st
}
