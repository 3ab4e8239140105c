package sharkspotter

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/mdapi"
)

// Kind is the kind of metadata a source discovers.
type Kind int

const (
	// V1 objects are the Moray "manta" bucket's (MorayScanner,
	// PostgresScanner). Their Key is the Moray key, "/<owner>/...".
	V1 Kind = iota + 1
	// V2 objects are buckets-mdapi's (BucketsPostgresScanner,
	// BucketsMdapiScanner). Their Key is an mdapi.Locator key, "v2/...".
	V2
)

func (k Kind) String() string {
	switch k {
	case V1:
		return "v1 (Moray)"
	case V2:
		return "v2 (buckets-mdapi)"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// KindOf returns the kind of a discovered object, from its Key.
func KindOf(o rebalancer.Object) Kind {
	if mdapi.IsKey(o.Key) {
		return V2
	}
	return V1
}

// V2CheckpointOffset is added to a buckets shard's number to make its
// checkpoint key (CheckpointShard): Moray shard 1 and buckets-mdapi shard 1
// are different databases, whose scans must resume from checkpoints of
// their own. Shard numbers of either kind stay below it.
const V2CheckpointOffset = 1_000_000

// CheckpointShard is the key under which a source made by Multi expects the
// checkpoint of o's shard in DiscoverRequest.After: o.Shard for a v1 object,
// V2CheckpointOffset+o.Shard for a v2 one. Object.Shard itself stays the
// shard's own number in its tier, which is what the MetadataStore of its
// kind (moray or mdapi, told apart by KindOf) is called with.
func CheckpointShard(o rebalancer.Object) int {
	if KindOf(o) == V2 {
		return V2CheckpointOffset + o.Shard
	}
	return o.Shard
}

// Part is one source of a Multi: the objects it discovers are all of Kind.
type Part struct {
	Kind   Kind
	Source rebalancer.ObjectSource
}

// Multi returns one rebalancer.ObjectSource over several, typically a v1
// scanner and a v2 one, so that a job discovers every object on the shark
// whatever its kind. The parts are scanned at once; their objects are
// visited one at a time, each part's in the order it gives them.
//
// Its objects keep the Shard of their own tier, so that v1 shard 1 and v2
// shard 1 both appear as shard 1, told apart by their Key. The checkpoints
// it reads in DiscoverRequest.After are keyed by CheckpointShard instead,
// and the contract of ObjectSource holds for those keys: per key, ScanIDs
// ascend, and the highest visited is a safe place to resume from. A
// consumer keeping checkpoints (the evacuate engine) must key them with
// CheckpointShard.
//
// Discover returns visit's error, or the context's, as soon as either
// stops the scan; otherwise the errors of every part that failed, joined,
// each saying which kind of discovery it comes from.
func Multi(parts ...Part) rebalancer.ObjectSource { return &multi{parts: parts} }

type multi struct{ parts []Part }

// errStopped ends a part's scan once another part or visit ended the whole.
var errStopped = errors.New("sharkspotter: discovery stopped")

func (m *multi) Discover(parent context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	for i, p := range m.parts {
		if p.Kind != V1 && p.Kind != V2 {
			return fmt.Errorf("sharkspotter: part %d of the combined discovery has no kind", i)
		}
		if p.Source == nil {
			return fmt.Errorf("sharkspotter: part %d of the combined discovery has no source", i)
		}
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		mu       sync.Mutex
		stopped  bool
		visitErr error
		wg       sync.WaitGroup
	)
	errs := make([]error, len(m.parts))
	for i, p := range m.parts {
		after := map[int]int64{}
		for key, id := range req.After {
			switch {
			case p.Kind == V1 && key < V2CheckpointOffset:
				after[key] = id
			case p.Kind == V2 && key >= V2CheckpointOffset:
				after[key-V2CheckpointOffset] = id
			}
		}
		wg.Go(func() {
			errs[i] = p.Source.Discover(ctx, rebalancer.DiscoverRequest{Shark: req.Shark, After: after}, func(o rebalancer.Object) error {
				mu.Lock()
				defer mu.Unlock()
				if stopped {
					return errStopped
				}
				if err := parent.Err(); err != nil {
					stopped = true
					cancel()
					return err
				}
				if k := KindOf(o); k != p.Kind {
					return fmt.Errorf("sharkspotter: a %s source found object %s, which is %s", p.Kind, o.Key, k)
				}
				if o.Shard < 0 || o.Shard >= V2CheckpointOffset {
					return fmt.Errorf("sharkspotter: object %s of shard %d: shard numbers must be below %d", o.Key, o.Shard, V2CheckpointOffset)
				}
				if err := visit(o); err != nil {
					stopped, visitErr = true, err
					cancel()
					return err
				}
				return nil
			})
		})
	}
	wg.Wait()
	switch {
	case visitErr != nil:
		return visitErr
	case parent.Err() != nil:
		return parent.Err()
	}
	var failed []error
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Errorf("%s discovery: %w", m.parts[i].Kind, err))
		}
	}
	return errors.Join(failed...)
}
