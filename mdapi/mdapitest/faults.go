package mdapitest

import (
	"encoding/json"
	"time"
)

// Request is a request as a Hook sees it.
type Request struct {
	Conn    uint64 // connection number, from 1, in accept order
	MsgID   uint32
	Method  string
	Payload json.RawMessage // the request's payload object (d[0]), as sent
}

// Fault is an error reply.
type Fault struct {
	Name    string
	Message string
	// Frame sends it as a Fast ERROR frame ({"name","message"}), as the
	// server does for requests it cannot decode or does not know; otherwise
	// it is an application error in a DATA reply ({"error":{...}}).
	Frame bool
}

// Common faults, as buckets-mdapi words them.
var (
	Overloaded         = Fault{Name: "OverloadedError", Message: "Timed out claiming a connection from the pool"}
	PostgresDown       = Fault{Name: "PostgresError", Message: "db error: FATAL: the database system is shutting down"}
	ObjectNotFound     = Fault{Name: "ObjectNotFound", Message: "requested object not found"}
	PreconditionFailed = Fault{Name: "PreconditionFailedError", Message: "if-match didn't match"}
)

// Action is what a Hook wants done with a request. The zero Action lets it
// through.
type Action struct {
	// Delay holds the request this long before acting on it. The server
	// handles a connection's requests in order, so the requests after it
	// on the connection wait too.
	Delay time.Duration
	// Fault, when set, is the reply instead of running the request.
	Fault *Fault
	// Drop closes the connection without replying, between two frames.
	Drop bool
}

// Hook is called for every request before it is handled; it must be safe
// for concurrent use.
type Hook func(Request) Action

// SetHook replaces the request hook; nil removes it.
func (s *Server) SetHook(h Hook) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

// objectKey names the object of a conditional update, for the canned
// conflicts.
type objectKey struct{ owner, bucketID, name string }

// FailNext makes the next n requests for method fail with f instead of
// running.
func (s *Server) FailNext(method string, n int, f Fault) { s.faults.FailNext(method, n, f) }

// ConflictNextUpdates makes the next n conditional object updates (an
// updateobject, or an object of a batchupdateobjects, with conditions) fail
// their conditions with PreconditionFailedError, as if another writer had
// got there first. The object is left as it was, so a client that reads it
// again and retries succeeds. A failing object of a batch fails its whole
// vnode, as a real conflict does.
func (s *Server) ConflictNextUpdates(n int) { s.faults.ConflictNext(n) }

// ConflictStorm makes every conditional update of an object that match
// accepts fail its conditions until stop is called.
func (s *Server) ConflictStorm(match func(owner, bucketID, name string) bool) (stop func()) {
	return s.faults.Storm(func(k objectKey) bool { return match(k.owner, k.bucketID, k.name) })
}

// forcedConflict is asked about each conditional update that passed its
// conditions.
func (s *Server) forcedConflict(owner, bucketID, name string) bool {
	return s.faults.Conflict(objectKey{owner, bucketID, name})
}

// action decides what to do with a request: a queued failure first, then
// the hook.
func (s *Server) action(conn uint64, method string, id uint32, payload json.RawMessage) Action {
	if f, ok := s.faults.Failure(method); ok {
		return Action{Fault: &f}
	}
	s.mu.Lock()
	h := s.hook
	s.mu.Unlock()
	if h == nil {
		return Action{}
	}
	return h(Request{Conn: conn, MsgID: id, Method: method, Payload: payload})
}
