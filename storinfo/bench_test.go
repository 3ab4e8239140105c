package storinfo_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// benchFleet returns n roomy sharks over three datacenters and 100k objects
// with two or three copies each, the first on the evacuated shark.
func benchFleet(n int) (*storinfo.View, []rebalancer.Object, rebalancer.StorageNode) {
	rng := rand.New(rand.NewPCG(7, 8))
	fleet := make([]storinfo.Node, n)
	for i := range fleet {
		fleet[i] = node(fmt.Sprintf("%d.stor.example.com", i), fmt.Sprintf("dc%d", i%3), 10_000_000+rng.Int64N(1_000_000), 20+float64(rng.IntN(40)))
	}
	from := fleet[0].StorageNode()
	objs := make([]rebalancer.Object, 100_000)
	for i := range objs {
		copies := []rebalancer.StorageNode{from}
		for range 1 + rng.IntN(2) {
			copies = append(copies, fleet[rng.IntN(n)].StorageNode())
		}
		objs[i] = object(fmt.Sprint("obj", i), rng.Int64N(64*mib), copies...)
	}
	v := storinfo.NewView(storinfo.ViewConfig{})
	v.Set(fleet)
	return v, objs, from
}

// BenchmarkPlace measures the cost of placing one object, with releases in
// batches of 50 as assignments finish.
func BenchmarkPlace(b *testing.B) {
	for _, n := range []int{50, 500, 5000} {
		b.Run(fmt.Sprintf("sharks=%d", n), func(b *testing.B) {
			v, objs, from := benchFleet(n)
			p, err := storinfo.NewPlacement(storinfo.PlacementConfig{Snapshots: v, Rand: rand.NewPCG(1, 2)})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			type placed struct {
				dest  rebalancer.StorageNode
				bytes int64
			}
			batch := make([]placed, 0, 50)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				o := &objs[i%len(objs)]
				i++
				d, err := p.Place(ctx, *o, from, nil)
				if err != nil {
					b.Fatal(err)
				}
				batch = append(batch, placed{d, o.ContentLength})
				if len(batch) == cap(batch) {
					for _, x := range batch {
						p.Release(x.dest, x.bytes, true)
					}
					batch = batch[:0]
				}
			}
		})
	}
}

// BenchmarkPlaceParallel is several jobs sharing one Placement.
func BenchmarkPlaceParallel(b *testing.B) {
	v, objs, from := benchFleet(500)
	p, err := storinfo.NewPlacement(storinfo.PlacementConfig{Snapshots: v, Rand: rand.NewPCG(1, 2)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(objs))
		for pb.Next() {
			o := &objs[i%len(objs)]
			i++
			d, err := p.Place(ctx, *o, from, nil)
			if err != nil {
				b.Error(err)
				return
			}
			p.Release(d, o.ContentLength, false)
		}
	})
}

// BenchmarkRefresh is the cost of taking a new snapshot into account.
func BenchmarkRefresh(b *testing.B) {
	v, objs, from := benchFleet(500)
	p, err := storinfo.NewPlacement(storinfo.PlacementConfig{Snapshots: v, Rand: rand.NewPCG(1, 2)})
	if err != nil {
		b.Fatal(err)
	}
	nodes := v.Snapshot().Nodes
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		v.Set(nodes)
		if _, err := p.Place(ctx, objs[i%len(objs)], from, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
