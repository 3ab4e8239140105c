package mdapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/TritonDataCenter/rebalancer"
)

// ErrNotConfigured matches the errors of a Router asked about a v2 object
// when it has no buckets-mdapi store.
var ErrNotConfigured = errors.New("no buckets-mdapi is configured")

// Router is the rebalancer.BatchMetadataStore of a job that moves both kinds
// of objects: it sends what concerns a v2 (buckets) object, whose Key is a
// Locator key (IsKey), to Buckets, and everything else to Moray. Object.Shard
// is a shard of the object's own tier: Moray shard 1 and buckets-mdapi shard
// 1 are different databases, and the Key says which.
//
// A batch (ReplaceSharks) must hold objects of one kind, as well as of one
// shard; it goes to its kind's store if that is a BatchMetadataStore, and
// otherwise fails without writing, so that the caller updates its objects
// one by one.
type Router struct {
	// Moray reads and updates v1 objects (a *moray.MetadataStore).
	Moray rebalancer.MetadataStore
	// Buckets reads and updates v2 objects (a *MetadataStore); nil when no
	// buckets-mdapi is configured, and then every call about a v2 object
	// fails with an error matching ErrNotConfigured.
	Buckets rebalancer.MetadataStore
}

var _ rebalancer.BatchMetadataStore = Router{}

// errNoBatch is a batch for a store that cannot batch.
var errNoBatch = errors.New("the metadata store of these objects does not update in batches")

func (r Router) store(key string) (rebalancer.MetadataStore, error) {
	if IsKey(key) {
		if r.Buckets == nil {
			return nil, fmt.Errorf("v2 object %s: %w", key, ErrNotConfigured)
		}
		return r.Buckets, nil
	}
	if r.Moray == nil {
		return nil, fmt.Errorf("v1 object %s: no Moray metadata store is configured", key)
	}
	return r.Moray, nil
}

// GetObject reads the object stored under key on shard of its kind.
func (r Router) GetObject(ctx context.Context, shard int, key string) (rebalancer.Object, error) {
	s, err := r.store(key)
	if err != nil {
		return rebalancer.Object{}, err
	}
	return s.GetObject(ctx, shard, key)
}

// ReplaceShark updates obj through the store of its kind.
func (r Router) ReplaceShark(ctx context.Context, obj rebalancer.Object, from string, to rebalancer.StorageNode) (string, error) {
	s, err := r.store(obj.Key)
	if err != nil {
		return "", err
	}
	return s.ReplaceShark(ctx, obj, from, to)
}

// ReplaceSharks updates a batch of objects of one kind and shard through
// the store of their kind. Mixed kinds, or a kind whose store does not
// batch, fail without writing anything.
func (r Router) ReplaceSharks(ctx context.Context, shard int, reps []rebalancer.SharkReplacement) ([]string, error) {
	if len(reps) == 0 {
		return nil, nil
	}
	v2 := IsKey(reps[0].Object.Key)
	for _, rep := range reps[1:] {
		if IsKey(rep.Object.Key) != v2 {
			return nil, fmt.Errorf("replace sharks on shard %d: objects %s and %s are of different kinds (v1 and v2): batch each kind apart",
				shard, reps[0].Object.Key, rep.Object.Key)
		}
	}
	s, err := r.store(reps[0].Object.Key)
	if err != nil {
		return nil, err
	}
	b, ok := s.(rebalancer.BatchMetadataStore)
	if !ok {
		return nil, fmt.Errorf("replace sharks in %d objects on shard %d: %w", len(reps), shard, errNoBatch)
	}
	return b.ReplaceSharks(ctx, shard, reps)
}
