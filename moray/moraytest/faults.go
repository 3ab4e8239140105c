package moraytest

import (
	"encoding/json"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// Request is a request as a Hook sees it.
type Request struct {
	Conn   uint64 // connection number, from 1, in accept order
	MsgID  uint32
	Method string
	// Args are the request's arguments (the Fast "d" array), each as node
	// would serialize it.
	Args []json.RawMessage
}

// Action is what a Hook wants done with a request. The zero Action lets it
// through.
type Action struct {
	// Delay holds the request this long before acting on it. Other
	// requests on the connection go on meanwhile, so replies interleave.
	Delay time.Duration
	// Error, when set, is sent as the reply (an ERROR frame) instead of
	// running the request. Empty Context and Info are sent as {}.
	Error *fast.Error
	// Drop closes the connection without replying, between two frames, as
	// a proxy or a restarting server would.
	Drop bool
}

// Hook is called for every request, before it is handled, on the
// request's own goroutine; it must be safe for concurrent use.
type Hook func(Request) Action

// SetHook replaces the request hook; nil removes it.
func (s *Server) SetHook(h Hook) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

// objectKey names the object of a conditional put, for the canned
// conflicts.
type objectKey struct{ bucket, key string }

// FailNext makes the next n requests for method fail with err instead of
// running.
func (s *Server) FailNext(method string, n int, err *fast.Error) {
	s.faults.FailNext(method, n, err)
}

// ConflictNextPuts makes the next n conditional puts (putObject, or a put
// in a batch, with an etag in its options) fail with EtagConflictError, as
// if another writer had got there first. The object is left as it was, so
// a client that re-reads it and retries succeeds. A failed put in a batch
// fails the whole batch, as a real conflict does.
func (s *Server) ConflictNextPuts(n int) { s.faults.ConflictNext(n) }

// ConflictStorm makes every conditional put on a key that match accepts
// fail with EtagConflictError until stop is called.
func (s *Server) ConflictStorm(match func(bucket, key string) bool) (stop func()) {
	return s.faults.Storm(func(k objectKey) bool { return match(k.bucket, k.key) })
}

// forcedConflict is asked about each conditional put that passed its etag
// check.
func (s *Server) forcedConflict(bucket, key string) bool {
	return s.faults.Conflict(objectKey{bucket, key})
}

// action decides what to do with a request: a queued failure first, then
// the hook.
func (s *Server) action(c *conn, m *fast.Message, args []*jsValue) Action {
	if e, ok := s.faults.Failure(m.Method); ok {
		return Action{Error: e}
	}
	s.mu.Lock()
	h := s.hook
	s.mu.Unlock()
	if h == nil {
		return Action{}
	}
	req := Request{Conn: c.ID(), MsgID: m.ID, Method: m.Method, Args: make([]json.RawMessage, len(args))}
	for i, a := range args {
		req.Args[i] = a.appendJSON(nil)
	}
	act := h(req)
	if act.Error != nil {
		act.Error = withDefaults(act.Error)
	}
	return act
}
