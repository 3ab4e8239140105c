package fastserver

import "sync"

// Faults are a fake's canned failures: errors queued per method to answer
// the next requests with, and conditional writes forced to fail as if
// another writer had got there first (the next n, and every one on an
// object that a storm's match accepts while the storm lasts). E is the
// fake's error reply, K what names the object of a conditional write. The
// zero value is ready to use; it is safe for concurrent use.
type Faults[E, K any] struct {
	mu        sync.Mutex
	failNext  map[string][]E
	conflicts int
	storms    []*storm[K]
}

type storm[K any] struct {
	match func(K) bool
}

// FailNext makes the next n requests for method fail with e.
func (f *Faults[E, K]) FailNext(method string, n int, e E) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext == nil {
		f.failNext = map[string][]E{}
	}
	for range n {
		f.failNext[method] = append(f.failNext[method], e)
	}
}

// Failure takes the error queued next for method, if any.
func (f *Faults[E, K]) Failure(method string) (e E, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.failNext[method]
	if len(q) == 0 {
		return e, false
	}
	f.failNext[method] = q[1:]
	return q[0], true
}

// ConflictNext makes the next n conditional writes conflict.
func (f *Faults[E, K]) ConflictNext(n int) {
	f.mu.Lock()
	f.conflicts += n
	f.mu.Unlock()
}

// Storm makes every conditional write on an object that match accepts
// conflict, until stop is called.
func (f *Faults[E, K]) Storm(match func(K) bool) (stop func()) {
	st := &storm[K]{match: match}
	f.mu.Lock()
	f.storms = append(f.storms, st)
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, x := range f.storms {
			if x == st {
				f.storms = append(f.storms[:i], f.storms[i+1:]...)
				return
			}
		}
	}
}

// Conflict is asked about each conditional write on object k that passed
// its condition: true makes it conflict. A storm that matches k does not
// use up one of the next n.
func (f *Faults[E, K]) Conflict(k K) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range f.storms {
		if st.match(k) {
			return true
		}
	}
	if f.conflicts > 0 {
		f.conflicts--
		return true
	}
	return false
}
