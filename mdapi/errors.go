package mdapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// Sentinel errors. Every error the client returns says which endpoint and
// RPC it concerns; these are what callers branch on with errors.Is.
var (
	// ErrConnection matches every transport failure: a refused dial, a
	// connection reset or closed mid-reply, a protocol error from the peer,
	// or no reply within Options.RPCTimeout. The RPC may or may not have run
	// on the server.
	ErrConnection = errors.New("buckets-mdapi: connection failed")
	// ErrTimeout matches an RPC that got no reply frame within
	// Options.RPCTimeout. It also matches ErrConnection.
	ErrTimeout = moray.ErrTimeout
	// ErrClosed is returned by RPCs on a closed Client.
	ErrClosed = errors.New("buckets-mdapi: client closed")
	// ErrUnknownShard is wrapped when a ShardResolver has no address for a
	// shard: a configuration error, never transient.
	ErrUnknownShard = moray.ErrUnknownShard
	// ErrUnsupported matches an *UnsupportedError: the server lacks an RPC
	// (batchupdateobjects, listvnodes, listowners) or ignored the sharks of
	// an updateobject. Upstream buckets-mdapi has none of these; see the
	// package documentation for the version that does.
	ErrUnsupported = errors.New("not supported by this buckets-mdapi")
)

// TransportError reports that an RPC failed for want of a working
// connection rather than on the server. It matches ErrConnection.
type TransportError struct {
	Addr   string // the endpoint (host:port), or "shard N"
	Method string // the RPC, or "dial"
	Err    error  // the cause
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("buckets-mdapi %s: %s: %v", e.Addr, e.Method, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Is makes every TransportError match ErrConnection.
func (e *TransportError) Is(target error) bool { return target == ErrConnection }

// ServerError is a failure reported by the server. buckets-mdapi reports
// them two ways, and both end up here:
//
//   - application errors (object not found, precondition failed, a
//     PostgreSQL error, a bad limit, an overloaded connection pool) as an
//     ordinary DATA reply whose one item is {"error":{"name":..,"message":..}}
//     (InFrame false);
//   - request errors (a payload the server cannot decode, an unknown RPC) as
//     a Fast ERROR frame whose data is {"name":"FastError","message":..}
//     (InFrame true).
//
// The specific types below wrap one; errors.As(err, &*ServerError) finds it
// under any of them.
type ServerError struct {
	Addr    string
	Method  string
	Name    string // e.g. "ObjectNotFound", "PreconditionFailedError", "FastError"
	Message string
	InFrame bool            // a Fast ERROR frame rather than an error object in a DATA reply
	Raw     json.RawMessage // the error object as sent
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("buckets-mdapi %s: %s: %s: %s", e.Addr, e.Method, e.Name, e.Message)
}

// Retryable reports whether the error is one buckets-mdapi uses for a
// condition that passes: its PostgreSQL connection pool was exhausted
// (OverloadedError), or PostgreSQL failed (PostgresError), unless it failed
// because a table or vnode does not exist, which no retry fixes.
func (e *ServerError) Retryable() bool {
	switch e.Name {
	case "OverloadedError":
		return true
	case "PostgresError":
		return !strings.Contains(e.Message, "does not exist")
	}
	return false
}

// IsTransient reports whether err is worth retrying later: a transport
// failure (ErrConnection, which includes timeouts) or a retryable server
// error. Context cancellation, ErrClosed and other errors are not.
func IsTransient(err error) bool {
	if errors.Is(err, ErrConnection) {
		return true
	}
	var se *ServerError
	return errors.As(err, &se) && se.Retryable()
}

// ObjectNotFoundError reports an object that does not exist (any more). It
// matches rebalancer.ErrObjectNotFound.
type ObjectNotFoundError struct {
	Err *ServerError
}

func (e *ObjectNotFoundError) Error() string { return e.Err.Error() }
func (e *ObjectNotFoundError) Unwrap() error { return e.Err }

// Is matches rebalancer.ErrObjectNotFound.
func (e *ObjectNotFoundError) Is(target error) bool { return target == rebalancer.ErrObjectNotFound }

// BucketNotFoundError reports a bucket that does not exist.
type BucketNotFoundError struct {
	Err *ServerError
}

func (e *BucketNotFoundError) Error() string { return e.Err.Error() }
func (e *BucketNotFoundError) Unwrap() error { return e.Err }

// PreconditionFailedError reports a failed condition (if-match,
// if-unmodified-since...): the object changed since it was read. It matches
// rebalancer.ErrEtagConflict, so the caller reads it again and retries.
type PreconditionFailedError struct {
	Err *ServerError
}

func (e *PreconditionFailedError) Error() string { return e.Err.Error() }
func (e *PreconditionFailedError) Unwrap() error { return e.Err }

// Is matches rebalancer.ErrEtagConflict.
func (e *PreconditionFailedError) Is(target error) bool { return target == rebalancer.ErrEtagConflict }

// UnsupportedError reports that the server lacks something the client
// asked for: an RPC (it answered "Unsupported functon: ..."), or sharks in
// updateobject (it applied the update but left the sharks as they were).
// It matches ErrUnsupported, so callers fall back (batched updates to
// individual ones) or stop (moving v2 objects needs sharks in updateobject).
type UnsupportedError struct {
	Addr    string
	Method  string
	Feature string // what is missing, in words
	Err     error  // the server's error, if it sent one
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("buckets-mdapi %s: %s: %s is not supported by this server", e.Addr, e.Method, e.Feature)
}

func (e *UnsupportedError) Unwrap() error { return e.Err }

// Is matches ErrUnsupported.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// typedError turns a ServerError into the most specific error type. Both the
// names upstream buckets-mdapi sends and the "...Error" spellings some
// clients expect are recognized.
func typedError(se *ServerError) error {
	switch se.Name {
	case "ObjectNotFound", "ObjectNotFoundError":
		return &ObjectNotFoundError{Err: se}
	case "BucketNotFound", "BucketNotFoundError":
		return &BucketNotFoundError{Err: se}
	case "PreconditionFailedError", "PreconditionFailed":
		return &PreconditionFailedError{Err: se}
	case "FastError":
		if unsupportedMethod(se) {
			return &UnsupportedError{Addr: se.Addr, Method: se.Method, Feature: "the RPC " + strconv.Quote(se.Method), Err: se}
		}
	}
	return se
}

// unsupportedMethod recognizes a server's answer to an RPC it does not
// have: buckets-mdapi's "Unsupported functon: <method>" (sic), the same
// corrected, and node-fast's bad_method.
func unsupportedMethod(se *ServerError) bool {
	m := strings.ToLower(se.Message)
	if strings.HasPrefix(m, "unsupported functon") || strings.HasPrefix(m, "unsupported function") ||
		strings.HasPrefix(m, "unsupported rpc method") {
		return true
	}
	var e struct {
		Info struct {
			FastReason string `json:"fastReason"`
		} `json:"info"`
	}
	return json.Unmarshal(se.Raw, &e) == nil && e.Info.FastReason == "bad_method"
}

// frameError makes the ServerError of a Fast ERROR frame.
func frameError(addr, method string, fe *fast.Error) error {
	raw, _ := fast.MarshalData(fe)
	return typedError(&ServerError{Addr: addr, Method: method, Name: fe.Name, Message: fe.Message, InFrame: true, Raw: raw})
}

// dataError recognizes an error object in a DATA reply item: the upstream
// shape {"error":{"name":..,"message":..}}, or a bare {"name":..,
// "message":..} without an "id" (which every record has, and which no
// record's "name" comes with). ok is false for anything else.
func dataError(addr, method string, item json.RawMessage) (err error, ok bool) {
	var probe struct {
		Error   json.RawMessage `json:"error"`
		Name    *string         `json:"name"`
		Message *string         `json:"message"`
		ID      json.RawMessage `json:"id"`
	}
	if len(item) == 0 || item[0] != '{' || json.Unmarshal(item, &probe) != nil {
		return nil, false
	}
	inner := item
	switch {
	case len(probe.Error) > 0 && string(probe.Error) != "null":
		inner = probe.Error
	case probe.Name != nil && probe.Message != nil && probe.ID == nil:
	default:
		return nil, false
	}
	var e struct {
		Name    *string `json:"name"`
		Message *string `json:"message"`
	}
	if json.Unmarshal(inner, &e) != nil || e.Name == nil {
		// An "error" member that is not a named error: report it as such
		// rather than take the reply for a result.
		return &ServerError{Addr: addr, Method: method, Name: "InvalidError", Message: "malformed error object: " + truncate(string(inner), 200), Raw: item}, true
	}
	msg := ""
	if e.Message != nil {
		msg = *e.Message
	}
	return typedError(&ServerError{Addr: addr, Method: method, Name: *e.Name, Message: msg, Raw: item}), true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// BatchError reports the vnodes whose part of a batchupdateobjects failed.
// The server runs one transaction per vnode, so the objects of every other
// vnode of the request were updated: a batch is atomic per vnode, not as a
// whole. errors.Is(err, rebalancer.ErrEtagConflict) and
// errors.Is(err, rebalancer.ErrObjectNotFound) tell whether any vnode
// failed that way.
type BatchError struct {
	Addr   string
	Failed []VnodeFailure
}

// VnodeFailure is one vnode whose transaction was rolled back.
type VnodeFailure struct {
	Vnode   uint64
	Err     error // the typed error the server gave for the vnode
	Objects []int // indexes, in the request, of the objects of this vnode
}

func (e *BatchError) Error() string {
	n := 0
	for _, f := range e.Failed {
		n += len(f.Objects)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "buckets-mdapi %s: batchupdateobjects: %d objects in %d vnodes not updated", e.Addr, n, len(e.Failed))
	for i, f := range e.Failed {
		if i == 3 {
			fmt.Fprintf(&b, "; ...")
			break
		}
		fmt.Fprintf(&b, "; vnode %d: %v", f.Vnode, f.Err)
	}
	return b.String()
}

// Unwrap returns each failed vnode's error.
func (e *BatchError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// FailedObject returns the error of the request's object i, or nil if it
// was updated.
func (e *BatchError) FailedObject(i int) error {
	for _, f := range e.Failed {
		for _, j := range f.Objects {
			if j == i {
				return f.Err
			}
		}
	}
	return nil
}
