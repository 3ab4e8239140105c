package testbed

import (
	"context"
	"errors"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

func TestScanSource(t *testing.T) {
	ctx := context.Background()
	f := New(t, Config{Shards: 3, Objects: Objects{Count: 200, Seed: 5, Pin: shark1, PinFraction: 0.5}})
	want := map[string]rebalancer.Object{}
	for _, o := range objects(t, f) {
		if o.HasShark(shark1) {
			want[o.ID] = o
		}
	}
	src := f.ScanSource()
	src.PageSize = 7 // many pages

	var seen []rebalancer.Object
	err := src.Discover(ctx, rebalancer.DiscoverRequest{Shark: shark1}, func(o rebalancer.Object) error {
		seen = append(seen, o)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Fatalf("visited %d objects, want %d", len(seen), len(want))
	}
	last := map[int]int64{}
	for _, o := range seen {
		w, ok := want[o.ID]
		if !ok || o.Shard != w.Shard || o.Etag != w.Etag || o.Key != w.Key || o.ScanID <= last[o.Shard] {
			t.Fatalf("visited %+v (last id on its shard %d), want %+v", o, last[o.Shard], w)
		}
		last[o.Shard] = o.ScanID
	}

	// Resuming after checkpoints visits exactly the rest.
	after := map[int]int64{}
	rest := 0
	for i, o := range seen {
		if i%3 == 0 {
			after[o.Shard] = o.ScanID
		}
	}
	for _, o := range seen {
		if o.ScanID > after[o.Shard] {
			rest++
		}
	}
	n := 0
	err = src.Discover(ctx, rebalancer.DiscoverRequest{Shark: shark1, After: after}, func(o rebalancer.Object) error {
		if o.ScanID <= after[o.Shard] {
			t.Fatalf("visited %s (id %d) at or before the checkpoint %d of shard %d", o.Key, o.ScanID, after[o.Shard], o.Shard)
		}
		n++
		return nil
	})
	if err != nil || n != rest {
		t.Fatalf("resumed scan visited %d, want %d (%v)", n, rest, err)
	}

	// visit's error ends the scan and comes back.
	stop := errors.New("enough")
	err = src.Discover(ctx, rebalancer.DiscoverRequest{Shark: shark1}, func(rebalancer.Object) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("Discover returned %v, want %v", err, stop)
	}
}
