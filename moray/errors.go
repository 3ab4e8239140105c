package moray

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// Sentinel errors. Every error the client returns says which endpoint and
// RPC it concerns; these are what callers branch on with errors.Is.
var (
	// ErrConnection matches every transport failure: a refused dial, a
	// connection reset or closed mid-stream, a protocol error from the peer,
	// or no reply within Options.RPCTimeout. The RPC may or may not have run
	// on the server; retrying it on a fresh connection is reasonable for
	// idempotent or etag-conditional requests.
	ErrConnection = errors.New("moray: connection failed")
	// ErrTimeout matches an RPC that got no reply frame within
	// Options.RPCTimeout. It also matches ErrConnection.
	ErrTimeout = errors.New("timed out waiting for the server")
	// ErrClosed is returned by RPCs on a closed Client.
	ErrClosed = errors.New("moray: client closed")
	// ErrUnknownShard is wrapped by a ShardResolver that has no address for
	// a shard. It is a configuration error, never transient.
	ErrUnknownShard = errors.New("unknown shard")
)

// TransportError reports that an RPC failed for want of a working connection
// rather than on the server. It matches ErrConnection.
type TransportError struct {
	Addr   string // the endpoint (host:port, or a shard label)
	Method string // the RPC, or "dial"
	Err    error  // the cause: a net error, io.ErrUnexpectedEOF, a *fast.ProtocolError, ErrTimeout...
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("moray %s: %s: %v", e.Addr, e.Method, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Is makes every TransportError match ErrConnection.
func (e *TransportError) Is(target error) bool { return target == ErrConnection }

// IsTransient reports whether err is worth retrying later: a transport
// failure (ErrConnection, which includes timeouts) or a server error that
// Moray itself documents as transient (NoDatabasePeersError,
// QueryTimeoutError). Context cancellation, ErrClosed and other server errors
// are not transient.
func IsTransient(err error) bool {
	if errors.Is(err, ErrConnection) {
		return true
	}
	var se *ServerError
	return errors.As(err, &se) && se.Retryable()
}

// ServerError is an ERROR reply: the RPC reached Moray and failed there. The
// more specific errors below wrap one; errors.As(err, &*ServerError) finds it
// under any of them.
type ServerError struct {
	Addr   string
	Method string
	Err    *fast.Error // name, message, context and info as the server sent them
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("moray %s: %s: %s: %s", e.Addr, e.Method, e.Err.Name, e.Err.Message)
}

func (e *ServerError) Unwrap() error { return e.Err }

// Name is the server's error name, such as "InvalidQueryError".
func (e *ServerError) Name() string { return e.Err.Name }

// Retryable reports whether Moray uses this error for a transient condition:
// no database connection available, or the query timed out.
func (e *ServerError) Retryable() bool {
	switch e.Err.Name {
	case "NoDatabasePeersError", "QueryTimeoutError":
		return true
	}
	return false
}

// EtagConflictError reports a failed etag precondition (putObject, delObject
// or one operation of a batch). It matches rebalancer.ErrEtagConflict.
//
// Moray writes "null" for an etag that does not exist; here that is the empty
// string. An empty Expected means the caller required the object not to
// exist; an empty Actual means the object does not exist, and then the error
// also matches rebalancer.ErrObjectNotFound.
type EtagConflictError struct {
	Bucket   string
	Key      string
	Expected string
	Actual   string
	Err      *ServerError
}

func (e *EtagConflictError) Error() string {
	return fmt.Sprintf("moray %s: %s: etag conflict on %s::%s: expected %s, found %s",
		e.Err.Addr, e.Err.Method, e.Bucket, e.Key, quoteEtag(e.Expected), quoteEtag(e.Actual))
}

func (e *EtagConflictError) Unwrap() error { return e.Err }

// Is matches rebalancer.ErrEtagConflict, and rebalancer.ErrObjectNotFound
// when the object does not exist.
func (e *EtagConflictError) Is(target error) bool {
	return target == rebalancer.ErrEtagConflict ||
		(target == rebalancer.ErrObjectNotFound && e.Missing())
}

// Missing reports whether the conflict is that the object does not exist.
func (e *EtagConflictError) Missing() bool { return e.Actual == "" }

func quoteEtag(s string) string {
	if s == "" {
		return "null"
	}
	return `"` + s + `"`
}

// ObjectNotFoundError reports a getObject or delObject of a key that does not
// exist. It matches rebalancer.ErrObjectNotFound.
type ObjectNotFoundError struct {
	Bucket string
	Key    string
	Err    *ServerError
}

func (e *ObjectNotFoundError) Error() string {
	return fmt.Sprintf("moray %s: %s: %s::%s does not exist", e.Err.Addr, e.Err.Method, e.Bucket, e.Key)
}

func (e *ObjectNotFoundError) Unwrap() error { return e.Err }

// Is matches rebalancer.ErrObjectNotFound.
func (e *ObjectNotFoundError) Is(target error) bool { return target == rebalancer.ErrObjectNotFound }

// BucketNotFoundError reports an RPC on a bucket that does not exist.
type BucketNotFoundError struct {
	Bucket string
	Err    *ServerError
}

func (e *BucketNotFoundError) Error() string {
	return fmt.Sprintf("moray %s: %s: bucket %s does not exist", e.Err.Addr, e.Err.Method, e.Bucket)
}

func (e *BucketNotFoundError) Unwrap() error { return e.Err }

// SharkNotFoundError reports a storage id with no record in the
// manta_storage bucket. Its message is the legacy job's.
type SharkNotFoundError struct {
	StorageID string
}

func (e *SharkNotFoundError) Error() string { return "Could not find shark " + e.StorageID }

// Is makes the error match rebalancer.ErrSharkNotFound.
func (e *SharkNotFoundError) Is(target error) bool { return target == rebalancer.ErrSharkNotFound }

// conflictMessage parses the message of an EtagConflictError from servers
// that do not send a context: `b::k was expected to have etag "X", but was "Y"`.
var conflictMessage = regexp.MustCompile(`^(.*?)::(.*) was expected to have etag "(.*)", but was "(.*)"$`)

var notFoundMessage = regexp.MustCompile(`^(.*?)::(.*) does not exist$`)

// typedError turns an ERROR reply into the most specific error type.
// bucket and key are those of the request, used when the server's context
// does not name them.
func typedError(se *ServerError, bucket, key string) error {
	switch se.Err.Name {
	case "EtagConflictError":
		e := &EtagConflictError{Bucket: bucket, Key: key, Err: se}
		var ctx map[string]json.RawMessage
		_ = json.Unmarshal(se.Err.Context, &ctx)
		expected, okE := contextEtag(ctx, "expected")
		actual, okA := contextEtag(ctx, "actual")
		if okE && okA {
			e.Expected, e.Actual = expected, actual
			if b, ok := contextEtag(ctx, "bucket"); ok && b != "" {
				e.Bucket = b
			}
			if k, ok := contextEtag(ctx, "key"); ok && k != "" {
				e.Key = k
			}
		} else if m := conflictMessage.FindStringSubmatch(se.Err.Message); m != nil {
			e.Bucket, e.Key, e.Expected, e.Actual = m[1], m[2], m[3], m[4]
		}
		e.Expected, e.Actual = nullEtag(e.Expected), nullEtag(e.Actual)
		return e
	case "ObjectNotFoundError":
		e := &ObjectNotFoundError{Bucket: bucket, Key: key, Err: se}
		if m := notFoundMessage.FindStringSubmatch(se.Err.Message); key == "" && m != nil {
			e.Bucket, e.Key = m[1], m[2] // a batch: the message names the key
		}
		return e
	case "BucketNotFoundError":
		return &BucketNotFoundError{Bucket: bucket, Err: se}
	}
	return se
}

// contextEtag reads a string field of an error context; JSON null reads as
// "" like the "null" literal Moray writes for a missing etag.
func contextEtag(ctx map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := ctx[name]
	if !ok {
		return "", false
	}
	var s *string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	if s == nil {
		return "", true
	}
	return *s, true
}

func nullEtag(s string) string {
	if s == "null" {
		return ""
	}
	return s
}
