package storinfo_test

import (
	"context"
	"errors"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// The engine pins the parts of a multipart upload through it.
var _ evacuate.PinnedPlacement = (*storinfo.Placement)(nil)

// PlaceOn applies Place's rules to one destination chosen beforehand, and
// reserves room there as Place does.
func TestPlaceOn(t *testing.T) {
	s1, s2 := sn("1.stor", "dc1"), sn("2.stor", "dc2")
	fleet := []storinfo.Node{big("1.stor", "dc1"), big("2.stor", "dc2"), big("4.stor", "dc1"), big("5.stor", "dc2"),
		node("6.stor", "dc1", 1, 0), big("7.stor", "dc3")}
	tests := []struct {
		name   string
		tun    storinfo.Tunables
		dest   string
		copies []rebalancer.StorageNode
		avoid  []string
		out    []string // ExcludeSharks's
		size   int64
		skip   rebalancer.SkipReason // 0: placed on dest
	}{
		{name: "a valid destination", dest: "4.stor", copies: []rebalancer.StorageNode{s1, s2}},
		{name: "one in another datacenter without a copy", dest: "7.stor", copies: []rebalancer.StorageNode{s1, s2}},
		{name: "the evacuated shark", dest: "1.stor", copies: []rebalancer.StorageNode{s1, s2}, skip: rebalancer.SkipObjectAlreadyOnDestShark},
		{name: "a shark holding a copy", dest: "2.stor", copies: []rebalancer.StorageNode{s1, s2}, skip: rebalancer.SkipObjectAlreadyOnDestShark},
		{name: "a datacenter holding a copy", dest: "5.stor", copies: []rebalancer.StorageNode{s1, s2}, skip: rebalancer.SkipObjectAlreadyInDatacenter},
		{name: "avoided", dest: "4.stor", copies: []rebalancer.StorageNode{s1, s2}, avoid: []string{"4.stor"}, skip: rebalancer.SkipDestinationUnreachable},
		{name: "blocklisted", tun: storinfo.Tunables{BlocklistSharks: []string{"4.stor"}}, dest: "4.stor", copies: []rebalancer.StorageNode{s1, s2},
			skip: rebalancer.SkipDestinationUnreachable},
		{name: "out of service", out: []string{"4.stor"}, dest: "4.stor", copies: []rebalancer.StorageNode{s1, s2},
			skip: rebalancer.SkipDestinationUnreachable},
		{name: "not listed", dest: "9.stor", copies: []rebalancer.StorageNode{s1, s2}, skip: rebalancer.SkipDestinationUnreachable},
		{name: "no room", tun: storinfo.Tunables{MinAvailMB: -1}, dest: "6.stor", copies: []rebalancer.StorageNode{s1, s2}, size: 2 * mib,
			skip: rebalancer.SkipDestinationInsufficientSpace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.tun, fleet...)
			f.p.ExcludeSharks(tt.out)
			size := tt.size
			if size == 0 {
				size = mib
			}
			got, err := f.p.PlaceOn(context.Background(), object("o", size, tt.copies...), s1, tt.dest, tt.avoid)
			if tt.skip != 0 {
				var skip *rebalancer.SkipError
				if !errors.As(err, &skip) || skip.Reason != tt.skip {
					t.Fatalf("PlaceOn(%s) = %v, %v; want a %v skip", tt.dest, got, err, tt.skip)
				}
				return
			}
			if err != nil || got.MantaStorageID != tt.dest {
				t.Fatalf("PlaceOn(%s) = %v, %v", tt.dest, got, err)
			}
			if d := f.dest(tt.dest); d.ReservedBytes != size {
				t.Fatalf("%s reserves %d bytes, want %d", tt.dest, d.ReservedBytes, size)
			}
			f.p.Release(got, size, false)
			if d := f.dest(tt.dest); d.ReservedBytes != 0 {
				t.Fatalf("%s reserves %d bytes after the release", tt.dest, d.ReservedBytes)
			}
		})
	}
}

// Without a snapshot PlaceOn fails as Place does: not a skip.
func TestPlaceOnNoSnapshot(t *testing.T) {
	view := storinfo.NewView(storinfo.ViewConfig{})
	p, err := storinfo.NewPlacement(storinfo.PlacementConfig{Snapshots: view})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.PlaceOn(context.Background(), object("o", 1, sn("1.stor", "dc1")), sn("1.stor", "dc1"), "2.stor", nil)
	var skip *rebalancer.SkipError
	if !errors.Is(err, storinfo.ErrNoSnapshot) || errors.As(err, &skip) {
		t.Fatalf("PlaceOn without a snapshot = %v", err)
	}
}
