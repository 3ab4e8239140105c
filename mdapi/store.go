package mdapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
)

// ShardClients gives the client of a buckets-mdapi shard. *Shards is one.
type ShardClients interface {
	Client(shard int) *Client
}

// MetadataStore reads and rewrites the metadata of v2 (buckets) objects in
// buckets-mdapi. It implements rebalancer.BatchMetadataStore for the
// objects ObjectFromRecord makes: their Key is a Locator key, their Shard
// the buckets-mdapi shard, their Etag "<id>@<modified>" (see Etag), and their
// Metadata the record as the server returned it (see ObjectFromRecord).
//
// Moving v2 objects needs a server that accepts sharks in updateobject
// (MANTA-5484); against upstream buckets-mdapi ReplaceShark fails with an
// error matching ErrUnsupported. Batches need batchupdateobjects as well: a
// shard whose server lacks it answers every later ReplaceSharks with an
// *UnsupportedError at once, without asking again, so callers redo the
// batch object by object.
type MetadataStore struct {
	shards ShardClients

	// BatchSize is how many objects one batchupdateobjects request of
	// ReplaceSharks carries, 1..MaxBatch (0: MaxBatch). The legacy manager
	// config's mdapi.max_batch_size sets it. Set it before first use.
	BatchSize int

	mu      sync.Mutex
	noBatch map[int]error // shards known to lack batchupdateobjects
}

var _ rebalancer.BatchMetadataStore = (*MetadataStore)(nil)

// NewMetadataStore returns a store over the given shard clients.
func NewMetadataStore(shards ShardClients) *MetadataStore {
	return &MetadataStore{shards: shards, noBatch: map[int]error{}}
}

// ObjectFromRecord makes the rebalancer's Object for a record read from
// buckets-mdapi shard's vnode. Its Metadata is the record in the server's
// own JSON form (Record.MarshalJSON) after three members that say where it
// came from, so that rebalancer.ParseObject rebuilds the same Object from
// it:
//
//	{"key":"v2/<vnode>/<owner>/<bucket_id>/<name>","objectId":"<id>","vnode":<vnode>,
//	 "id":..., "owner":..., "bucket_id":..., "name":..., "created":..., "modified":...,
//	 "content_length":..., "content_md5":..., "content_type":..., "headers":{...},
//	 "sharks":[...], "properties":...}
//
// The headers and properties in it are what an update sends back, so they
// must be the object's own; direct-database discovery builds the Record from
// the row's columns.
func ObjectFromRecord(shard int, vnode uint64, rec *Record) (rebalancer.Object, error) {
	loc := rec.Locator(vnode)
	if err := loc.check(); err != nil {
		return rebalancer.Object{}, fmt.Errorf("buckets-mdapi shard %d: %w", shard, err)
	}
	key := loc.Key()
	meta, err := rec.appendJSON(nil, func(w *jsonstr.Object) {
		w.Str("key", key)
		w.Str("objectId", rec.ID)
		w.Uint("vnode", vnode)
	})
	if err != nil {
		return rebalancer.Object{}, fmt.Errorf("buckets-mdapi shard %d: object %s: %w", shard, key, err)
	}
	return rebalancer.Object{
		ID:            rec.ID,
		Key:           key,
		Owner:         rec.Owner,
		Shard:         shard,
		Etag:          rec.Etag(),
		ContentLength: rec.ContentLength,
		ContentMD5:    rec.ContentMD5,
		Sharks:        rec.Sharks,
		BucketID:      rec.BucketID,
		IsBucket:      true,
		Name:          rec.Name,
		Metadata:      meta,
	}, nil
}

// GetObject reads the current metadata of the object whose Locator key is
// key on shard. A missing object gives an error matching
// rebalancer.ErrObjectNotFound.
func (s *MetadataStore) GetObject(ctx context.Context, shard int, key string) (rebalancer.Object, error) {
	loc, err := ParseKey(key)
	if err != nil {
		return rebalancer.Object{}, &rebalancer.BadObjectError{Kind: rebalancer.ErrorBadMantaObject, Key: key, Msg: err.Error()}
	}
	rec, err := s.shards.Client(shard).GetObject(ctx, loc)
	if err != nil {
		return rebalancer.Object{}, fmt.Errorf("read object %s on buckets-mdapi shard %d: %w", key, shard, err)
	}
	return ObjectFromRecord(shard, loc.Vnode, rec)
}

// ReplaceShark rewrites obj's sharks so that the one on from is on to
// instead, and sends every other field the update writes (content type,
// headers, properties) back as obj.Metadata has them. The update is
// conditional on the object still being the version obj.Etag names: the
// same id (if-match) and not modified since (if-unmodified-since). It
// returns the new etag.
//
// A changed object gives an error matching rebalancer.ErrEtagConflict; a
// deleted one rebalancer.ErrObjectNotFound; metadata that cannot be sent
// back exactly (see canonical) a *rebalancer.BadObjectError.
func (s *MetadataStore) ReplaceShark(ctx context.Context, obj rebalancer.Object, from string, to rebalancer.StorageNode) (string, error) {
	u, err := updateFor(obj, from, to)
	if err != nil {
		return "", err
	}
	rec, err := s.shards.Client(obj.Shard).UpdateObject(ctx, u)
	if err != nil {
		return "", fmt.Errorf("replace shark %s with %s in object %s on buckets-mdapi shard %d: %w",
			from, to.MantaStorageID, obj.Key, obj.Shard, err)
	}
	return rec.Etag(), nil
}

// ReplaceSharks applies several replacements on one shard with
// batchupdateobjects (BatchSize objects per request). The server commits one
// transaction per vnode, so unlike a Moray batch this one is not atomic as
// a whole: when it fails (the error wraps a *BatchError saying which
// objects), the objects of the other vnodes were updated. Redoing every
// object one by one is still safe: each update is conditional on the
// version read, so an object already updated fails its condition, and
// reading it again shows it no longer lists the shark.
//
// The server does not return the updated records, so the etags returned
// are empty: read an object again before updating it once more.
func (s *MetadataStore) ReplaceSharks(ctx context.Context, shard int, reps []rebalancer.SharkReplacement) ([]string, error) {
	if len(reps) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	known := s.noBatch[shard]
	s.mu.Unlock()
	if known != nil {
		return nil, known
	}
	updates := make([]Update, len(reps))
	for i, r := range reps {
		if r.Object.Shard != shard {
			return nil, fmt.Errorf("replace sharks on buckets-mdapi shard %d: object %s is on shard %d", shard, r.Object.Key, r.Object.Shard)
		}
		u, err := updateFor(r.Object, r.From, r.To)
		if err != nil {
			return nil, err
		}
		updates[i] = u
	}
	c := s.shards.Client(shard)
	chunk := s.BatchSize
	if chunk <= 0 || chunk > MaxBatch {
		chunk = MaxBatch
	}
	for start := 0; start < len(updates); start += chunk {
		end := min(start+chunk, len(updates))
		err := c.BatchUpdateObjects(ctx, updates[start:end])
		if errors.Is(err, ErrUnsupported) {
			s.mu.Lock()
			s.noBatch[shard] = err
			s.mu.Unlock()
		}
		if err != nil {
			return nil, fmt.Errorf("replace sharks in %d objects on buckets-mdapi shard %d: %w", len(reps), shard, err)
		}
	}
	return make([]string, len(reps)), nil
}

// envelope is what ObjectFromRecord puts before the record.
type envelope struct {
	Key      *string `json:"key"`
	ObjectID *string `json:"objectId"`
	Vnode    *uint64 `json:"vnode"`
}

// updateFor builds the update that moves obj's copy from one shark to
// another and changes nothing else.
func updateFor(obj rebalancer.Object, from string, to rebalancer.StorageNode) (Update, error) {
	bad := func(kind rebalancer.ObjectErrorKind, format string, args ...any) (Update, error) {
		return Update{}, &rebalancer.BadObjectError{Kind: kind, Key: obj.Key, Msg: fmt.Sprintf(format, args...)}
	}
	loc, err := ParseKey(obj.Key)
	if err != nil {
		return bad(rebalancer.ErrorBadMantaObject, "%v", err)
	}
	if obj.Etag == "" {
		return Update{}, fmt.Errorf("replace shark %s in object %s on buckets-mdapi shard %d: no etag to condition the write on", from, obj.Key, obj.Shard)
	}
	id, modified, err := ParseEtag(obj.Etag)
	if err != nil {
		return bad(rebalancer.ErrorBadMantaObject, "%v", err)
	}
	var env envelope
	var rec Record
	if err := json.Unmarshal(obj.Metadata, &env); err != nil {
		return bad(rebalancer.ErrorBadMantaObject, "metadata: %v", err)
	}
	if err := json.Unmarshal(obj.Metadata, &rec); err != nil {
		return bad(rebalancer.ErrorBadMantaObject, "metadata: %v", err)
	}
	switch {
	case env.Key == nil || *env.Key != obj.Key || env.Vnode == nil || *env.Vnode != loc.Vnode:
		return bad(rebalancer.ErrorBadMantaObject, "metadata is not that of a buckets-mdapi object read at this key")
	case rec.Owner != loc.Owner || rec.BucketID != loc.BucketID || rec.Name != loc.Name:
		return bad(rebalancer.ErrorBadMantaObject, "metadata names another object (%s)", rec.Locator(loc.Vnode).Key())
	case rec.ID != obj.ID || rec.ID != id || env.ObjectID == nil || *env.ObjectID != id:
		return bad(rebalancer.ErrorBadMantaObject, "object id %s, metadata id %s and etag %s disagree", obj.ID, rec.ID, obj.Etag)
	}
	sharks := make([]rebalancer.StorageNode, len(rec.Sharks))
	copy(sharks, rec.Sharks)
	at := -1
	for i, s := range sharks {
		if s.MantaStorageID != from {
			continue
		}
		if at >= 0 {
			return bad(rebalancer.ErrorDuplicateShark, "shark %s is listed twice", from)
		}
		at = i
	}
	if at < 0 {
		return Update{}, fmt.Errorf("replace shark in object %s on buckets-mdapi shard %d: shark %s: %w", obj.Key, obj.Shard, from, rebalancer.ErrSharkNotListed)
	}
	sharks[at] = to
	u := Update{
		Locator:     loc,
		ID:          id,
		ContentType: rec.ContentType,
		Headers:     rec.Headers,
		Properties:  rec.Properties,
		Sharks:      sharks,
		Conditions:  Conditions{IfMatch: []string{id}, IfUnmodifiedSince: modified},
	}
	// Encode it once now, so that what cannot be sent is recorded as a
	// property of the object rather than retried as a failure of the
	// server.
	if _, err := u.appendPayload(nil, "00000000-0000-0000-0000-000000000000"); err != nil {
		return bad(rebalancer.ErrorBadMantaObject, "cannot write the metadata back exactly: %v", err)
	}
	return u, nil
}
