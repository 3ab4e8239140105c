package rebalancertest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// memorySource is an embedder's ObjectSource: objects kept in memory,
// shard by shard, each shard's in ScanID order.
type memorySource struct {
	shards []int
	objs   map[int][]rebalancer.Object
}

func (s *memorySource) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	for _, shard := range s.shards {
		for _, o := range s.objs[shard] {
			if err := ctx.Err(); err != nil {
				return err
			}
			if o.ScanID <= req.After[shard] || !o.HasShark(req.Shark) {
				continue
			}
			if err := visit(o); err != nil {
				return err
			}
		}
	}
	return nil
}

// newMemorySource is the factory the suite calls: it loads the suite's
// records into a fresh source.
func newMemorySource(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
	s := &memorySource{objs: map[int][]rebalancer.Object{}}
	for _, sh := range shards {
		s.shards = append(s.shards, sh.Number)
		for i, rec := range sh.Objects {
			if rec.Malformed {
				t.Skip("memorySource holds parsed objects only")
			}
			o, err := rebalancer.ParseObject(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			o.Shard, o.Key, o.ScanID = sh.Number, rec.Key, int64(i+1)
			s.objs[sh.Number] = append(s.objs[sh.Number], o)
		}
	}
	slices.Sort(s.shards)
	return rebalancertest.SourceHarness{Source: s}
}

// An embedder checks its ObjectSource with a test that runs the suite:
//
//	func TestMemorySource(t *testing.T) {
//		rebalancertest.TestObjectSource(t, newMemorySource)
//	}
//
// The suite skips the checks this harness cannot support (it has no
// Break, and stores no malformed record) and says so.
func ExampleTestObjectSource() {
	objs := 0
	h := newMemorySource(&testing.T{}, []rebalancertest.Shard{{Number: 1, Objects: []rebalancertest.StoredObject{{
		Key:   "/acct/stor/a",
		Value: rebalancertest.ObjectValue("/acct/stor/a", "obj-a", 10, "", rebalancertest.SharkNode(1), rebalancertest.SharkNode(2)),
	}}}})
	h.Source.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: rebalancertest.Shark}, func(rebalancer.Object) error {
		objs++
		return nil
	})
	fmt.Println(objs, "object on", rebalancertest.Shark)
	// Output: 1 object on 1.stor.rebalancertest.example
}
