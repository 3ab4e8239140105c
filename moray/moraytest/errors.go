package moraytest

import (
	"encoding/json"
	"fmt"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// Moray's ERROR payloads are {name, message, context, info}: node-fast
// sends context {} and info {} unless the error sets them.
var emptyObject = json.RawMessage(`{}`)

func newError(name, format string, args ...any) *fast.Error {
	return &fast.Error{Name: name, Message: fmt.Sprintf(format, args...), Context: emptyObject, Info: emptyObject}
}

// withDefaults fills in the empty context and info a hook's error may lack.
func withDefaults(e *fast.Error) *fast.Error {
	c := *e
	if len(c.Context) == 0 {
		c.Context = emptyObject
	}
	if len(c.Info) == 0 {
		c.Info = emptyObject
	}
	return &c
}

func bucketNotFound(bucket string) *fast.Error {
	return newError("BucketNotFoundError", "%s does not exist", bucket)
}

func objectNotFound(bucket, key string) *fast.Error {
	return newError("ObjectNotFoundError", "%s::%s does not exist", bucket, key)
}

// EtagConflict returns the EtagConflictError Moray sends when an etag
// condition fails; "null" stands for "must not exist" (expected) or "did
// not exist" (actual).
func EtagConflict(bucket, key, expected, actual string) *fast.Error {
	return etagConflict(bucket, key, expected, actual)
}

func etagConflict(bucket, key, expected, actual string) *fast.Error {
	e := newError("EtagConflictError", "%s::%s was expected to have etag \"%s\", but was \"%s\"", bucket, key, expected, actual)
	ctx := jsObj()
	ctx.set("bucket", jsStr(bucket))
	ctx.set("key", jsStr(key))
	ctx.set("expected", jsStr(expected))
	ctx.set("actual", jsStr(actual))
	e.Context = ctx.appendJSON(nil)
	return e
}

func invalidQuery(f string) *fast.Error {
	return newError("InvalidQueryError", "%s is an invalid filter", f)
}

func notIndexed(bucket, f string) *fast.Error {
	return newError("NotIndexedError", "%s does not have indexes that support %s", bucket, f)
}

// pgError is a PostgreSQL error passed through unchanged, which node-pg
// names "error".
func pgError(format string, args ...any) *fast.Error {
	return newError("error", format, args...)
}

func invocationError(format string, args ...any) *fast.Error {
	return newError("InvocationError", format, args...)
}

func notImplemented(what string) *fast.Error {
	return newError("InternalError", "moraytest: %s is not implemented", what)
}
