package evacuate

import (
	"context"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
)

// planned is one object on its way: placed, with the task that copies it.
type planned struct {
	row    *jobstore.ObjectRow
	obj    rebalancer.Object
	task   rebalancer.Task
	source string // the shark the agent reads from
}

// assignment is a batch of tasks for one destination, from the moment it is
// stored until its agent's results are recorded.
type assignment struct {
	id      string
	dest    rebalancer.StorageNode
	objects map[string]*planned
	order   []*planned
	bytes   int64
	born    time.Time // when its first task was added

	// Owned by the flight's lock once the assignment is adopted.
	slot             bool // holds a posting slot on its destination
	posts            int
	posted           time.Time
	lastPoll         time.Time
	polling          bool
	notFound         int
	unreachableSince time.Time
}

func (a *assignment) add(p *planned) {
	if a.born.IsZero() {
		a.born = time.Now()
	}
	a.objects[p.row.ID] = p
	a.order = append(a.order, p)
	a.bytes += p.row.ContentLength
}

func (a *assignment) payload() rebalancer.AssignmentPayload {
	tasks := make([]rebalancer.Task, len(a.order))
	for i, p := range a.order {
		tasks[i] = p.task
	}
	return rebalancer.AssignmentPayload{ID: a.id, Tasks: tasks}
}

// flight tracks the work between placement and recorded agent results, and
// enforces the limits that keep a job's memory and its pressure on agents
// and sources bounded.
type flight struct {
	mu        sync.Mutex
	opts      Options
	all       map[string]*assignment // stored, not yet finished
	watched   map[string]*assignment // accepted by their agent: to poll
	perDest   map[string]int         // accepted or being posted, per destination
	window    map[string]int         // how many perDest may reach; see windowLocked
	tasks     int                    // placed and not yet finished, open assignments included
	perSource map[string]int
	changed   chan struct{} // closed and replaced when capacity frees up
	wg        sync.WaitGroup
}

func newFlight(o Options) *flight {
	return &flight{
		opts: o, all: map[string]*assignment{}, watched: map[string]*assignment{},
		perDest: map[string]int{}, window: map[string]int{}, perSource: map[string]int{}, changed: make(chan struct{}),
	}
}

func (f *flight) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// room reports whether one more task reading from source fits, and a
// channel that is closed when that may have changed.
func (f *flight) room(source string) (bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ok := f.tasks < f.opts.MaxInflightTasks &&
		(f.opts.MaxInflightPerSource == 0 || f.perSource[source] < f.opts.MaxInflightPerSource)
	return ok, f.changed
}

// sourceRoom reports whether a source can take one more read.
func (f *flight) sourceRoom(source string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opts.MaxInflightPerSource == 0 || f.perSource[source] < f.opts.MaxInflightPerSource
}

// take counts a task placed into an open assignment.
func (f *flight) take(p *planned) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tasks++
	f.perSource[p.source]++
}

// give returns the capacity of tasks that are finished or abandoned.
func (f *flight) give(ps []*planned) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range ps {
		f.tasks--
		if f.perSource[p.source]--; f.perSource[p.source] <= 0 {
			delete(f.perSource, p.source)
		}
	}
	f.notify()
}

// adopt registers a stored assignment. Its tasks count from now on unless
// the feeder already counted them (taken).
func (f *flight) adopt(a *assignment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all[a.id] = a
}

// adoptRestored registers an assignment a previous run stored.
func (f *flight) adoptRestored(a *assignment) {
	for _, p := range a.order {
		f.take(p)
	}
	f.adopt(a)
}

// finish forgets an assignment whose results are recorded and frees its
// capacity.
func (f *flight) finish(a *assignment) {
	f.mu.Lock()
	if _, ok := f.all[a.id]; !ok {
		f.mu.Unlock()
		return
	}
	delete(f.all, a.id)
	delete(f.watched, a.id)
	dest := a.dest.MantaStorageID
	f.window[dest] = min(2*f.windowLocked(dest), f.opts.MaxOutstandingPerDest)
	f.mu.Unlock()
	f.releaseDest(a)
	f.give(a.order)
}

// windowLocked is how many assignments dest may hold at once: one at
// first, twice as many each time one of them finishes, up to
// MaxOutstandingPerDest. With the feeder's small first assignments, a
// job's first copies have their agents to themselves, rather than share
// them with everything the job would post at once, and finish within a
// second of the start at any object size; the window is full after four
// assignments have finished.
func (f *flight) windowLocked(dest string) int {
	if w, ok := f.window[dest]; ok {
		return w
	}
	return 1
}

// acquireDest waits for a posting slot on the assignment's destination. An
// assignment posted again (its agent lost it) keeps the slot it holds.
func (f *flight) acquireDest(ctx context.Context, a *assignment) bool {
	dest := a.dest.MantaStorageID
	for {
		f.mu.Lock()
		if a.slot {
			f.mu.Unlock()
			return true
		}
		if f.perDest[dest] < min(f.windowLocked(dest), f.opts.MaxOutstandingPerDest) {
			f.perDest[dest]++
			a.slot = true
			f.mu.Unlock()
			return true
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

// releaseDest gives back the assignment's posting slot, if it holds one.
func (f *flight) releaseDest(a *assignment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !a.slot {
		return
	}
	a.slot = false
	dest := a.dest.MantaStorageID
	if f.perDest[dest]--; f.perDest[dest] <= 0 {
		delete(f.perDest, dest)
	}
	f.notify()
}

// watch starts polling an accepted assignment.
func (f *flight) watch(a *assignment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watched[a.id] = a
}

func (f *flight) unwatch(a *assignment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.watched, a.id)
}

// due returns the watched assignments to poll now, marking them as being
// polled.
func (f *flight) due(now time.Time, interval time.Duration) []*assignment {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*assignment
	for _, a := range f.watched {
		if !a.polling && now.Sub(a.lastPoll) >= interval {
			a.polling = true
			out = append(out, a)
		}
	}
	return out
}

func (f *flight) polled(a *assignment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a.polling = false
	a.lastPoll = time.Now()
}

// idle reports whether no stored assignment is unfinished.
func (f *flight) idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.all) == 0
}

// goTracked runs fn in a goroutine that wait waits for.
func (f *flight) goTracked(fn func()) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		fn()
	}()
}

func (f *flight) wait() { f.wg.Wait() }

// queue is a FIFO of assignment ids for the metadata stage. By default it
// is unbounded: the poller never blocks on the metadata stage, and an id
// is a few bytes. A static job's queue has a limit (Options.StaticQueueDepth):
// pushWait then waits while the queue holds that many, as the legacy's
// bounded channel made its checker wait.
type queue struct {
	mu    sync.Mutex
	items []string
	limit int           // 0: unbounded
	ready chan struct{} // capacity 1: items may be waiting
	room  chan struct{} // capacity 1: the queue may be below its limit
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// push adds id at once, beyond the limit if need be. Restoring a job's
// verified copies uses it: it runs before the metadata workers start, so
// waiting for room there would wait for ever.
func (q *queue) push(id string) {
	q.mu.Lock()
	q.items = append(q.items, id)
	q.mu.Unlock()
	signal(q.ready)
}

// pushWait adds id once the queue is below its limit, waiting for room
// until ctx ends; it reports whether id was added.
func (q *queue) pushWait(ctx context.Context, id string) bool {
	for {
		q.mu.Lock()
		if q.limit <= 0 || len(q.items) < q.limit {
			q.items = append(q.items, id)
			more := q.limit > 0 && len(q.items) < q.limit
			q.mu.Unlock()
			signal(q.ready)
			if more {
				signal(q.room) // pass the room on to another waiter
			}
			return true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-q.room:
		}
	}
}

// size returns the number of ids waiting.
func (q *queue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// pop returns the next id, waiting for one until ctx or stop ends.
func (q *queue) pop(ctx context.Context, stop <-chan struct{}) (string, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			id := q.items[0]
			q.items[0] = ""
			q.items = q.items[1:]
			more := len(q.items) > 0
			q.mu.Unlock()
			if more {
				signal(q.ready)
			}
			signal(q.room)
			return id, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-stop:
			return "", false
		case <-q.ready:
		}
	}
}

// signal wakes one waiter on a channel of capacity 1, if it is not already
// signalled.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
