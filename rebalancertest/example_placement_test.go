package rebalancertest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// rotation is an embedder's Placement: a fixed list of destinations, taken
// in turn, with the rules that protect durability and no account of space.
type rotation struct {
	mu    sync.Mutex
	dests []rebalancer.StorageNode
	next  int
}

func (r *rotation) Place(_ context.Context, obj rebalancer.Object, from rebalancer.StorageNode, avoid []string) (rebalancer.StorageNode, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range r.dests {
		d := r.dests[r.next%len(r.dests)]
		r.next++
		if d.MantaStorageID != from.MantaStorageID && !obj.HasShark(d.MantaStorageID) && !slices.Contains(avoid, d.MantaStorageID) {
			return d, nil
		}
	}
	return rebalancer.StorageNode{}, &rebalancer.SkipError{Reason: rebalancer.SkipObjectAlreadyOnDestShark,
		Err: errors.New("every destination holds the object or failed it")}
}

func (r *rotation) Release(rebalancer.StorageNode, int64, bool) {}

// newRotation is the factory the suite calls with each fleet. Rotation
// keeps no account of space, so TracksSpace stays false and the suite
// skips the checks of room.
func newRotation(t *testing.T, fleet []rebalancertest.Destination) rebalancertest.PlacementHarness {
	r := &rotation{}
	for _, d := range fleet {
		r.dests = append(r.dests, d.Node)
	}
	return rebalancertest.PlacementHarness{Placement: r}
}

// An embedder checks its Placement with a test that runs the suite:
//
//	func TestRotation(t *testing.T) {
//		rebalancertest.TestPlacement(t, newRotation)
//	}
func ExampleTestPlacement() {
	h := newRotation(nil, []rebalancertest.Destination{
		{Node: rebalancertest.SharkNode(1)}, {Node: rebalancertest.SharkNode(2)}, {Node: rebalancertest.SharkNode(3)},
	})
	obj := rebalancer.Object{Sharks: []rebalancer.StorageNode{rebalancertest.SharkNode(1), rebalancertest.SharkNode(2)}}
	dest, err := h.Placement.Place(context.Background(), obj, rebalancertest.SharkNode(1), nil)
	fmt.Println(dest, err)
	// Output: 3.stor.rebalancertest.example <nil>
}
