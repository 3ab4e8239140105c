package rebalancertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// MiB is a mebibyte: the suite's sizes and rooms are whole MiB, the unit in
// which storage nodes report their free space.
const MiB = 1 << 20

// Destination is a storage node a Placement may put copies on, and how
// many bytes it can take.
type Destination struct {
	Node      rebalancer.StorageNode
	RoomBytes int64
}

// PlacementHarness is a Placement under test, over the fleet its factory
// was given.
type PlacementHarness struct {
	// Placement is the implementation under test.
	Placement rebalancer.Placement
	// TracksSpace says the placement honours Destination.RoomBytes: it
	// never reserves more than a destination's room, and Release gives
	// room back. Without it the checks of space are skipped.
	TracksSpace bool
}

// TestPlacement checks a rebalancer.Placement against the interface's
// contract. newPlacement returns a placement over the given fleet (every
// node in Datacenter, the evacuated Shark among them, each with room for
// RoomBytes); it is called once per check, so each starts with no
// reservation.
//
// The checks, each a subtest:
//
//   - Place never picks the evacuated shark, a shark the object's sharks
//     array names, or one in avoid, and returns the destination as the
//     fleet names it (storage id and datacenter, which go into metadata);
//   - when no destination is allowed, Place returns a *rebalancer.SkipError
//     with a valid reason;
//   - Place and Release are safe for concurrent use (the engine places and
//     releases from several goroutines);
//   - given TracksSpace, a destination takes no more than its room, an
//     object larger than any room is a *rebalancer.SkipError, and Release
//     of bytes not copied gives their room back.
//
// Use it from the implementation's tests:
//
//	func TestConformance(t *testing.T) {
//		rebalancertest.TestPlacement(t, func(t *testing.T, fleet []rebalancertest.Destination) rebalancertest.PlacementHarness {
//			return rebalancertest.PlacementHarness{Placement: NewRackPlacement(fleet), TracksSpace: true}
//		})
//	}
func TestPlacement(t *testing.T, newPlacement func(t *testing.T, fleet []Destination) PlacementHarness) {
	ctx := context.Background()
	from := SharkNode(1)
	fleet := func(room int64, n int) []Destination {
		var f []Destination
		for i := 1; i <= n; i++ {
			f = append(f, Destination{Node: SharkNode(i), RoomBytes: room})
		}
		return f
	}
	start := func(t *testing.T, f []Destination) PlacementHarness {
		t.Helper()
		h := newPlacement(t, f)
		if h.Placement == nil {
			t.Fatal("the harness has no Placement")
		}
		return h
	}
	object := func(size int64, holders ...int) rebalancer.Object {
		var sharks []rebalancer.StorageNode
		for _, n := range holders {
			sharks = append(sharks, SharkNode(n))
		}
		key := fmt.Sprintf("/%s/stor/rebalancertest/placed-%v", Owner, holders)
		o, err := rebalancer.ParseObject(ObjectValue(key, "bbbbbbbb-0000-4000-8000-000000000001", size, "", sharks...))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}

	t.Run("never the evacuated shark, a holder or an avoided shark", func(t *testing.T) {
		h := start(t, fleet(1024*MiB, 7))
		for _, tc := range []struct {
			holders []int
			avoid   []string
			allowed []int
		}{
			{[]int{1, 2}, nil, []int{3, 4, 5, 6, 7}},
			{[]int{1, 2, 3}, nil, []int{4, 5, 6, 7}},
			{[]int{2, 1}, []string{SharkNode(4).MantaStorageID, SharkNode(6).MantaStorageID}, []int{3, 5, 7}},
			{[]int{1, 3, 5, 7}, []string{SharkNode(2).MantaStorageID}, []int{4, 6}},
		} {
			obj := object(MiB, tc.holders...)
			for range 60 {
				dest, err := h.Placement.Place(ctx, obj, from, tc.avoid)
				if err != nil {
					t.Fatalf("Place of an object on %v avoiding %v: %v", tc.holders, tc.avoid, err)
				}
				n := slices.IndexFunc(fleetNodes(7), func(s rebalancer.StorageNode) bool { return s == dest })
				if n < 0 || !slices.Contains(tc.allowed, n+1) {
					t.Fatalf("Place of an object on %v avoiding %v chose %+v; allowed: sharks %v as the fleet names them",
						tc.holders, tc.avoid, dest, tc.allowed)
				}
				h.Placement.Release(dest, obj.ContentLength, false)
			}
		}
	})

	t.Run("a SkipError when nothing is allowed", func(t *testing.T) {
		h := start(t, fleet(1024*MiB, 5))
		for _, tc := range []struct {
			holders []int
			avoid   []string
		}{
			{[]int{1, 2, 3, 4, 5}, nil},
			{[]int{1, 2, 3}, []string{SharkNode(4).MantaStorageID, SharkNode(5).MantaStorageID}},
		} {
			dest, err := h.Placement.Place(ctx, object(MiB, tc.holders...), from, tc.avoid)
			var skip *rebalancer.SkipError
			if !errors.As(err, &skip) || !skip.Reason.Valid() {
				t.Errorf("Place of an object on %v avoiding %v = %+v, %v; want a *SkipError with a valid reason",
					tc.holders, tc.avoid, dest, err)
			}
		}
	})

	t.Run("safe for concurrent use", func(t *testing.T) {
		h := start(t, fleet(1024*MiB, 7))
		obj := object(MiB, 1, 2)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				for range 50 {
					dest, err := h.Placement.Place(ctx, obj, from, nil)
					if err != nil {
						errs <- err
						return
					}
					if dest == from || dest == SharkNode(2) {
						errs <- fmt.Errorf("concurrent Place chose %v, which holds a copy", dest)
						return
					}
					h.Placement.Release(dest, obj.ContentLength, false)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("room is respected and given back", func(t *testing.T) {
		f := []Destination{{Node: from, RoomBytes: 1024 * MiB}, {Node: SharkNode(2), RoomBytes: 3 * MiB}}
		h := start(t, f)
		if !h.TracksSpace {
			t.Skip("the harness does not set TracksSpace")
		}
		obj := object(MiB, 1, 3)
		var skip *rebalancer.SkipError
		if dest, err := h.Placement.Place(ctx, object(4*MiB, 1, 3), from, nil); !errors.As(err, &skip) || !skip.Reason.Valid() {
			t.Errorf("Place of 4 MiB where at most 3 fit = %+v, %v; want a *SkipError", dest, err)
		}
		for i := range 3 {
			if dest, err := h.Placement.Place(ctx, obj, from, nil); err != nil || dest != SharkNode(2) {
				t.Fatalf("Place of MiB %d of 3 = %+v, %v", i+1, dest, err)
			}
		}
		if dest, err := h.Placement.Place(ctx, obj, from, nil); !errors.As(err, &skip) || !skip.Reason.Valid() {
			t.Fatalf("Place of a fourth MiB where 3 fit = %+v, %v; want a *SkipError", dest, err)
		}
		h.Placement.Release(SharkNode(2), MiB, false)
		if dest, err := h.Placement.Place(ctx, obj, from, nil); err != nil || dest != SharkNode(2) {
			t.Errorf("Place after a MiB was released uncopied = %+v, %v; want room on %s", dest, err, SharkNode(2))
		}
	})
}

func fleetNodes(n int) []rebalancer.StorageNode {
	var out []rebalancer.StorageNode
	for i := 1; i <= n; i++ {
		out = append(out, SharkNode(i))
	}
	return out
}
