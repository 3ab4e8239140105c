package moray

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray/filter"
)

// Buckets the rebalancer reads and writes.
const (
	MantaBucket   = "manta"         // v1 object metadata, on every shard
	StorageBucket = "manta_storage" // minnow records of the storage nodes
)

// ShardClients gives the Moray client of a metadata shard. *Shards is one.
type ShardClients interface {
	Client(shard int) *Client
}

// MetadataStore reads and rewrites v1 object metadata in the "manta" bucket
// of each metadata shard. It implements rebalancer.MetadataStore.
type MetadataStore struct {
	shards ShardClients
}

var _ rebalancer.MetadataStore = (*MetadataStore)(nil)

// NewMetadataStore returns a store over the given shard clients.
func NewMetadataStore(shards ShardClients) *MetadataStore {
	return &MetadataStore{shards: shards}
}

// GetObject reads the current metadata of key on shard, with its etag and
// _id. A missing object gives an error matching rebalancer.ErrObjectNotFound.
func (s *MetadataStore) GetObject(ctx context.Context, shard int, key string) (rebalancer.Object, error) {
	rec, err := s.shards.Client(shard).GetObject(ctx, MantaBucket, key)
	if err != nil {
		return rebalancer.Object{}, fmt.Errorf("read object %s on shard %d: %w", key, shard, err)
	}
	obj, err := rebalancer.ParseObject(rec.Value)
	if err != nil {
		return rebalancer.Object{}, fmt.Errorf("object %s on shard %d: %w", key, shard, err)
	}
	// The Moray key is what a conditional write must name, whatever the
	// value's own key field says.
	obj.Key = rec.Key
	obj.Etag = rec.Etag
	obj.Shard = shard
	obj.ScanID = rec.ID
	return obj, nil
}

// ReplaceShark writes obj's metadata with the sharks element naming from
// replaced by to, and nothing else changed (rebalancer.ReplaceShark), on the
// condition that the stored etag is still obj.Etag. It returns the new etag.
//
// A changed object gives an error wrapping an *EtagConflictError (matching
// rebalancer.ErrEtagConflict) with the expected and actual etags; a deleted
// one also matches rebalancer.ErrObjectNotFound. An object without an etag
// is refused: writing it unconditionally could undo a concurrent change.
func (s *MetadataStore) ReplaceShark(ctx context.Context, obj rebalancer.Object, from string, to rebalancer.StorageNode) (string, error) {
	value, err := replacement(obj, from, to)
	if err != nil {
		return "", err
	}
	etag, err := s.shards.Client(obj.Shard).PutObject(ctx, MantaBucket, obj.Key, value, PutOptions{Etag: IfEtag(obj.Etag)})
	if err != nil {
		return "", fmt.Errorf("replace shark %s with %s in object %s on shard %d: %w", from, to.MantaStorageID, obj.Key, obj.Shard, err)
	}
	return etag, nil
}

func replacement(obj rebalancer.Object, from string, to rebalancer.StorageNode) (json.RawMessage, error) {
	if obj.Key == "" {
		return nil, errors.New("replace shark: object without a key")
	}
	if obj.Etag == "" {
		return nil, fmt.Errorf("replace shark %s in object %s on shard %d: no etag to condition the write on", from, obj.Key, obj.Shard)
	}
	value, err := rebalancer.ReplaceShark(obj.Metadata, from, to)
	if err != nil {
		return nil, fmt.Errorf("replace shark %s in object %s on shard %d: %w", from, obj.Key, obj.Shard, err)
	}
	return value, nil
}

// Update is one shark replacement for ReplaceSharks.
type Update = rebalancer.SharkReplacement

// ReplaceSharks applies several replacements on one shard in a single
// atomic batch, each conditional on its object's etag, and returns the new
// etags in order. If any object changed, nothing is written and the error
// wraps an *EtagConflictError whose Key names the object that changed: drop
// or re-read it and try the rest again.
func (s *MetadataStore) ReplaceSharks(ctx context.Context, shard int, updates []Update) ([]string, error) {
	if len(updates) == 0 {
		return nil, nil
	}
	ops := make([]BatchOp, len(updates))
	for i, u := range updates {
		if u.Object.Shard != shard {
			return nil, fmt.Errorf("replace sharks on shard %d: object %s is on shard %d", shard, u.Object.Key, u.Object.Shard)
		}
		value, err := replacement(u.Object, u.From, u.To)
		if err != nil {
			return nil, err
		}
		ops[i] = BatchOp{Bucket: MantaBucket, Key: u.Object.Key, Value: value, Etag: IfEtag(u.Object.Etag)}
	}
	results, err := s.shards.Client(shard).Batch(ctx, ops)
	if err != nil {
		return nil, fmt.Errorf("replace sharks in %d objects on shard %d: %w", len(updates), shard, err)
	}
	etags := make([]string, len(results))
	for i, r := range results {
		if r.Key != ops[i].Key {
			return nil, fmt.Errorf("replace sharks on shard %d: batch result %d is for %s, not %s", shard, i, r.Key, ops[i].Key)
		}
		etags[i] = r.Etag
	}
	return etags, nil
}

// LookupShark reads a storage node's record from the manta_storage bucket
// (on the storage shard, shard 1 in Manta) and returns its id and
// datacenter. An unknown id gives a *SharkNotFoundError.
func LookupShark(ctx context.Context, c *Client, storageID string) (rebalancer.StorageNode, error) {
	var found []rebalancer.StorageNode
	err := c.FindObjects(ctx, StorageBucket, "(manta_storage_id="+filter.Escape(storageID)+")",
		FindOptions{Limit: 2, NoCount: true}, func(r *Record) error {
			var n rebalancer.StorageNode
			if err := json.Unmarshal(r.Value, &n); err != nil {
				return fmt.Errorf("manta_storage record %s: %w", r.Key, err)
			}
			found = append(found, n)
			return nil
		})
	if err != nil {
		return rebalancer.StorageNode{}, fmt.Errorf("look up shark %s: %w", storageID, err)
	}
	switch {
	case len(found) == 0:
		return rebalancer.StorageNode{}, &SharkNotFoundError{StorageID: storageID}
	case len(found) > 1:
		return rebalancer.StorageNode{}, fmt.Errorf("look up shark %s: more than one manta_storage record", storageID)
	}
	n := found[0]
	if n.MantaStorageID != storageID || n.Datacenter == "" {
		return rebalancer.StorageNode{}, fmt.Errorf("look up shark %s: bad manta_storage record (id %q, datacenter %q)",
			storageID, n.MantaStorageID, n.Datacenter)
	}
	return n, nil
}
