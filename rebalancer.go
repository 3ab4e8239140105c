package rebalancer

import (
	"context"
	"errors"
	"fmt"
)

// ObjectSource finds the objects that have a copy on a shark.
//
// Discover calls visit once for each object whose sharks array lists
// req.Shark, and returns when every object has been visited, when visit
// returns an error (which Discover returns), or when ctx ends. visit is never
// called concurrently, and objects of one shard are visited in ascending
// ScanID order, so the highest ScanID visited per shard is a safe place to
// resume from. An object listing the shark twice is visited once.
//
// Discover must report every failure (an unreachable shard, a malformed row)
// as an error naming the shard: silently scanning less than everything would
// leave data behind on a shark about to be retired.
type ObjectSource interface {
	Discover(ctx context.Context, req DiscoverRequest, visit func(Object) error) error
}

// DiscoverRequest says what to discover.
type DiscoverRequest struct {
	// Shark is the storage id of the shark being evacuated.
	Shark string
	// After maps a shard number to the highest ScanID already visited in an
	// earlier run; a resumable source skips rows up to it. Sources that cannot
	// resume may ignore it: consumers deduplicate by object id.
	After map[int]int64
}

// MetadataStore reads and conditionally rewrites object metadata. The
// engine calls it from several goroutines at once.
type MetadataStore interface {
	// GetObject reads the current metadata of the object stored under key on
	// shard, with its current etag.
	GetObject(ctx context.Context, shard int, key string) (Object, error)
	// ReplaceShark rewrites the metadata of obj (stored under obj.Key on
	// obj.Shard) so that the copy listed on shark from is listed on to
	// instead, leaving everything else in the value untouched. The write
	// succeeds only if the stored etag still equals obj.Etag; otherwise the
	// error wraps ErrEtagConflict. It returns the new etag.
	ReplaceShark(ctx context.Context, obj Object, from string, to StorageNode) (etag string, err error)
}

// SharkReplacement is one ReplaceShark of a batch.
type SharkReplacement struct {
	Object Object
	From   string
	To     StorageNode
}

// BatchMetadataStore is a MetadataStore that can also rewrite the metadata
// of several objects of one shard in one atomic batch, each write
// conditional on its object's etag: if any object changed, nothing is
// written and the error wraps ErrEtagConflict. It returns the new etags in
// order. The engine uses it, when offered, to update an assignment's
// objects with one request per shard (the legacy use_batched_updates).
type BatchMetadataStore interface {
	MetadataStore
	ReplaceSharks(ctx context.Context, shard int, reps []SharkReplacement) (etags []string, err error)
}

// Placement chooses where an object's new copy goes. The engine calls
// Place and Release from several goroutines (and jobs) at once.
type Placement interface {
	// Place picks a destination for obj, which is leaving the shark from, and
	// reserves room for it there. It never picks a shark named in avoid
	// (destinations that already failed this object). When no shark can take
	// the object the error is a *SkipError saying why; other errors (such as
	// no capacity information yet) are worth retrying later.
	Place(ctx context.Context, obj Object, from StorageNode, avoid []string) (StorageNode, error)
	// Release gives back a reservation made by Place: copied says whether
	// the bytes were written (and so will show up in the shark's reported
	// usage) or abandoned.
	Release(dest StorageNode, bytes int64, copied bool)
}

// Agent is what the manager needs from the rebalancer agent running on a
// destination shark. The engine calls it from several goroutines at once.
type Agent interface {
	// PostAssignment hands the agent on dest a batch of tasks. An agent that
	// is full answers with an error wrapping ErrAgentBusy; one that already
	// has the id, with ErrAssignmentExists.
	PostAssignment(ctx context.Context, dest StorageNode, a AssignmentPayload) error
	// GetAssignment reads an assignment's progress. An unknown id gives an
	// error wrapping ErrAssignmentNotFound.
	GetAssignment(ctx context.Context, dest StorageNode, id string) (Assignment, error)
	// DeleteAssignment forgets a completed assignment.
	DeleteAssignment(ctx context.Context, dest StorageNode, id string) error
}

// Errors the interfaces above wrap, so callers can branch with errors.Is.
var (
	ErrEtagConflict       = errors.New("etag conflict")
	ErrObjectNotFound     = errors.New("object not found")
	ErrAgentBusy          = errors.New("agent busy")
	ErrAssignmentExists   = errors.New("assignment already exists")
	ErrAssignmentNotFound = errors.New("assignment not found")
	// ErrSharkNotFound is wrapped by the error of a lookup of a storage id
	// that names no storage node (moray.LookupShark's, say).
	ErrSharkNotFound = errors.New("shark not found")
)

// SkipError says that an object will not be moved, and why.
type SkipError struct {
	Reason SkipReason
	Err    error // the underlying cause, if any
}

func (e *SkipError) Error() string {
	if e.Err == nil {
		return "skipped: " + e.Reason.String()
	}
	return fmt.Sprintf("skipped: %s: %v", e.Reason, e.Err)
}

func (e *SkipError) Unwrap() error { return e.Err }
