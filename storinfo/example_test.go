package storinfo_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/storinfo"
	"github.com/TritonDataCenter/rebalancer/storinfo/storinfotest"
)

// A Client lists the whole fleet, page by page.
func ExampleClient() {
	srv := storinfotest.NewServer(
		storinfotest.NewRecord("1.stor.example.com", "dc0", 1_000_000, 400_000),
		storinfotest.NewRecord("2.stor.example.com", "dc1", 1_000_000, 900_000),
		storinfotest.NewRecord("10.stor.example.com", "dc1", 1_000_000, 50_000),
	)
	defer srv.Close()

	client, err := storinfo.NewClient(storinfo.ClientConfig{BaseURL: srv.URL, PageSize: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	nodes, err := client.List(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range nodes {
		fmt.Printf("%s %s %d MiB free, %.0f%% used\n", n.MantaStorageID, n.Datacenter, n.AvailableMB, n.PercentUsed)
	}
	_, err = client.Get(context.Background(), "3.stor.example.com")
	fmt.Println(errors.Is(err, storinfo.ErrNotFound))
	// Output:
	// 1.stor.example.com dc0 400000 MiB free, 60% used
	// 2.stor.example.com dc1 900000 MiB free, 10% used
	// 10.stor.example.com dc1 50000 MiB free, 95% used
	// true
}

// A View keeps the last good snapshot when storinfo fails, and says how old
// it is.
func ExampleView() {
	srv := storinfotest.NewServer(storinfotest.NewRecord("1.stor.example.com", "dc0", 1_000_000, 400_000))
	defer srv.Close()
	client, err := storinfo.NewClient(storinfo.ClientConfig{BaseURL: srv.URL, RetryMax: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	view := storinfo.NewView(storinfo.ViewConfig{Source: client})
	// A manager runs view.Run(ctx) in a goroutine it owns; here, one refresh
	// at a time.
	ctx := context.Background()
	fmt.Println(view.Refresh(ctx) == nil, len(view.Snapshot().Nodes))

	srv.FailNext(1, 503)
	fmt.Println(view.Refresh(ctx) == nil, len(view.Snapshot().Nodes))
	st := view.Status()
	fmt.Println(st.ConsecutiveFailures, st.LastError != nil)
	// Output:
	// true 1
	// false 1
	// 1 true
}

// A Placement picks a destination per object and counts what it placed.
func ExamplePlacement() {
	view := storinfo.NewView(storinfo.ViewConfig{})
	view.Set([]storinfo.Node{
		{MantaStorageID: "1.stor", Datacenter: "dc0", AvailableMB: 500_000, PercentUsed: 50},
		{MantaStorageID: "2.stor", Datacenter: "dc0", AvailableMB: 800_000, PercentUsed: 20},
		{MantaStorageID: "3.stor", Datacenter: "dc1", AvailableMB: 900_000, PercentUsed: 10},
	})
	placement, err := storinfo.NewPlacement(storinfo.PlacementConfig{
		Snapshots: view,
		Tunables:  storinfo.Tunables{MaxFillPercentage: 90, MaxSharks: 2},
		Rand:      rand.NewPCG(1, 2), // reproducible choices
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	from := rebalancer.StorageNode{MantaStorageID: "1.stor", Datacenter: "dc0"}
	obj := rebalancer.Object{ID: "2e08b069", ContentLength: 1 << 30,
		Sharks: []rebalancer.StorageNode{from, {MantaStorageID: "3.stor", Datacenter: "dc1"}}}

	// 3.stor holds a copy: only 2.stor, in the evacuated shark's
	// datacenter, is valid.
	dest, err := placement.Place(context.Background(), obj, from, nil)
	fmt.Println(dest.MantaStorageID, err)

	// Once 2.stor has failed the object, nothing is left.
	_, err = placement.Place(context.Background(), obj, from, []string{"2.stor"})
	var skip *rebalancer.SkipError
	fmt.Println(errors.As(err, &skip), skip.Reason)

	// The copy went through: its bytes count until storinfo shows them.
	placement.Release(dest, obj.ContentLength, true)
	for _, d := range placement.Capacity().Destinations {
		fmt.Printf("%s: %d MiB unreflected, %.1f%% projected\n", d.MantaStorageID, d.UnreflectedBytes>>20, d.ProjectedPercentUsed)
	}
	// Output:
	// 2.stor <nil>
	// true destination_unreachable
	// 1.stor: 0 MiB unreflected, 50.0% projected
	// 2.stor: 1024 MiB unreflected, 20.1% projected
	// 3.stor: 0 MiB unreflected, 10.0% projected
}

// AvailableMB is the legacy capacity formula.
func ExampleAvailableMB() {
	// 900 MiB free at 10 % used: a 1000 MiB shark. Filling it to 80 %
	// leaves room for 700 MiB, 400 once 300 are promised elsewhere.
	fmt.Println(storinfo.AvailableMB(900, 10, 80, 0), storinfo.AvailableMB(900, 10, 80, 300))
	// Output: 700 400
}
