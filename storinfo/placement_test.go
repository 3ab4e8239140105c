package storinfo_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/storinfo"
	"github.com/TritonDataCenter/rebalancer/storinfo/storinfotest"
)

const mib = storinfo.MiB

type fixture struct {
	t    *testing.T
	clk  *clock
	view *storinfo.View
	p    *storinfo.Placement
}

func newFixture(t *testing.T, tun storinfo.Tunables, nodes ...storinfo.Node) *fixture {
	t.Helper()
	f := &fixture{t: t, clk: newClock()}
	f.view = storinfo.NewView(storinfo.ViewConfig{Now: f.clk.Now})
	f.view.Set(nodes)
	p, err := storinfo.NewPlacement(storinfo.PlacementConfig{Tunables: tun, Snapshots: f.view, Rand: rand.NewPCG(1, 2), Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	return f
}

func (f *fixture) place(o rebalancer.Object, from rebalancer.StorageNode, avoid ...string) (rebalancer.StorageNode, error) {
	return f.p.Place(context.Background(), o, from, avoid)
}

// mustPlace places o and returns the destination's id.
func (f *fixture) mustPlace(o rebalancer.Object, from rebalancer.StorageNode) string {
	f.t.Helper()
	d, err := f.place(o, from)
	if err != nil {
		f.t.Fatalf("Place(%s, %d bytes): %v", o.ID, o.ContentLength, err)
	}
	return d.MantaStorageID
}

// mustSkip places o and checks that it is skipped for want.
func (f *fixture) mustSkip(o rebalancer.Object, from rebalancer.StorageNode, want rebalancer.SkipReason) {
	f.t.Helper()
	d, err := f.place(o, from)
	var skip *rebalancer.SkipError
	if !errors.As(err, &skip) || skip.Reason != want {
		f.t.Fatalf("Place(%s, %d bytes) = %v, %v; want a %v skip", o.ID, o.ContentLength, d, err, want)
	}
}

func (f *fixture) dest(id string) storinfo.DestinationReport {
	f.t.Helper()
	for _, d := range f.p.Capacity().Destinations {
		if d.MantaStorageID == id {
			return d
		}
	}
	f.t.Fatalf("no destination %s in the capacity report", id)
	return storinfo.DestinationReport{}
}

func sn(id, dc string) rebalancer.StorageNode {
	return rebalancer.StorageNode{MantaStorageID: id, Datacenter: dc}
}

func object(id string, size int64, copies ...rebalancer.StorageNode) rebalancer.Object {
	return rebalancer.Object{ID: id, Key: "/acct/stor/" + id, Owner: "acct", ContentLength: size, Sharks: copies}
}

// big is a roomy shark: 100 GiB free at 10 %.
func big(id, dc string) storinfo.Node { return node(id, dc, 100_000, 10) }

// The legacy validate_destination cases, plus the rules the legacy applies
// elsewhere (blocklists, avoid) and the choice of reason.
func TestPlacementRules(t *testing.T) {
	s1, s2, s3 := sn("1.stor", "dc1"), sn("2.stor", "dc2"), sn("3.stor", "dc3")
	tests := []struct {
		name   string
		tun    storinfo.Tunables
		fleet  []storinfo.Node
		from   rebalancer.StorageNode
		copies []rebalancer.StorageNode
		avoid  []string
		want   string // destination id, or
		skip   rebalancer.SkipReason
	}{
		{
			name:  "same datacenter move is allowed though a copy is there",
			fleet: []storinfo.Node{big("1.stor", "dc1"), big("2.stor", "dc1"), big("4.stor", "dc1")},
			from:  s1, copies: []rebalancer.StorageNode{s1, sn("2.stor", "dc1")}, want: "4.stor",
		},
		{
			name:  "cross datacenter into a datacenter holding a copy",
			fleet: []storinfo.Node{big("1.stor", "dc1"), big("2.stor", "dc2"), big("4.stor", "dc2")},
			from:  s1, copies: []rebalancer.StorageNode{s1, s2}, skip: rebalancer.SkipObjectAlreadyInDatacenter,
		},
		{
			name:  "the evacuated shark is never the destination",
			fleet: []storinfo.Node{big("1.stor", "dc1")},
			from:  s1, copies: []rebalancer.StorageNode{s1, s2}, skip: rebalancer.SkipObjectAlreadyOnDestShark,
		},
		{
			name:  "the evacuated shark is never the destination, listed or not",
			fleet: []storinfo.Node{big("1.stor", "dc1")},
			from:  s1, copies: []rebalancer.StorageNode{s2}, skip: rebalancer.SkipObjectAlreadyOnDestShark,
		},
		{
			name:  "a shark holding another copy is not a destination",
			fleet: []storinfo.Node{big("1.stor", "dc1"), big("2.stor", "dc2")},
			from:  s1, copies: []rebalancer.StorageNode{s1, s2}, skip: rebalancer.SkipObjectAlreadyOnDestShark,
		},
		{
			name:  "a new datacenter with no copy is allowed",
			fleet: []storinfo.Node{big("1.stor", "dc1"), big("2.stor", "dc2"), big("4.stor", "dc3")},
			from:  s1, copies: []rebalancer.StorageNode{s1, s2}, want: "4.stor",
		},
		{
			name:  "three copies across three datacenters: only the evacuated datacenter",
			fleet: []storinfo.Node{big("1.stor", "dc1"), big("2.stor", "dc2"), big("3.stor", "dc3"), big("4.stor", "dc2"), big("5.stor", "dc3"), big("6.stor", "dc1")},
			from:  s1, copies: []rebalancer.StorageNode{s1, s2, s3}, want: "6.stor",
		},
		{
			name:  "three copies across three datacenters and nowhere in the evacuated one",
			fleet: []storinfo.Node{big("1.stor", "dc1"), big("2.stor", "dc2"), big("3.stor", "dc3"), big("4.stor", "dc2"), big("5.stor", "dc3")},
			from:  s1, copies: []rebalancer.StorageNode{s1, s2, s3}, skip: rebalancer.SkipObjectAlreadyInDatacenter,
		},
		{
			name:  "three copies, a fourth datacenter",
			fleet: []storinfo.Node{big("4.stor", "dc2"), big("7.stor", "dc4")},
			from:  s1, copies: []rebalancer.StorageNode{s1, s2, s3}, want: "7.stor",
		},
		{
			name:  "the datacenter of the evacuated shark comes from the object when not given",
			fleet: []storinfo.Node{big("4.stor", "dc1")},
			from:  sn("1.stor", ""), copies: []rebalancer.StorageNode{s1, sn("2.stor", "dc1")}, want: "4.stor",
		},
		{
			name:  "the datacenter of the evacuated shark comes from storinfo when the object lacks it",
			fleet: []storinfo.Node{big("1.stor", "dc1"), big("4.stor", "dc1")},
			from:  sn("1.stor", ""), copies: []rebalancer.StorageNode{sn("2.stor", "dc1")}, want: "4.stor",
		},
		{
			name:  "an avoided destination is not chosen",
			fleet: []storinfo.Node{big("4.stor", "dc1"), big("5.stor", "dc1")},
			from:  s1, copies: []rebalancer.StorageNode{s1}, avoid: []string{"4.stor"}, want: "5.stor",
		},
		{
			name:  "when only avoided destinations remain",
			fleet: []storinfo.Node{big("2.stor", "dc2"), big("4.stor", "dc1"), big("5.stor", "dc2")},
			from:  s1, copies: []rebalancer.StorageNode{s1, s2}, avoid: []string{"4.stor", "x"}, skip: rebalancer.SkipDestinationUnreachable,
		},
		{
			name:  "lack of room is the reason when a valid destination is full",
			fleet: []storinfo.Node{big("2.stor", "dc2"), big("4.stor", "dc2"), node("5.stor", "dc1", 999, 99)},
			from:  s1, copies: []rebalancer.StorageNode{s1, s2}, avoid: []string{"6.stor"}, skip: rebalancer.SkipDestinationInsufficientSpace,
		},
		{
			name:  "a blocklisted shark is not a destination",
			tun:   storinfo.Tunables{BlocklistSharks: []string{"4.stor", "5.stor"}},
			fleet: []storinfo.Node{node("4.stor", "dc1", 900_000, 1), node("5.stor", "dc1", 900_000, 1), big("6.stor", "dc1"), big("7.stor", "dc1")},
			from:  s1, copies: []rebalancer.StorageNode{s1}, avoid: []string{"7.stor"}, want: "6.stor",
		},
		{
			name:  "a blocklisted datacenter is not a destination",
			tun:   storinfo.Tunables{BlocklistDatacenters: []string{"dc3"}},
			fleet: []storinfo.Node{node("4.stor", "dc3", 900_000, 1), big("5.stor", "dc1")},
			from:  s1, copies: []rebalancer.StorageNode{s1}, want: "5.stor",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.tun, tt.fleet...)
			// Many tries, so that a random choice that could break a rule
			// gets its chance to.
			for i := range 20 {
				o := object(fmt.Sprint("obj", i), 1000, tt.copies...)
				if tt.want != "" {
					d, err := f.place(o, tt.from, tt.avoid...)
					if err != nil || d.MantaStorageID != tt.want {
						t.Fatalf("Place = %v, %v; want %s", d, err, tt.want)
					}
					if n, _ := f.view.Snapshot().Node(tt.want); d.Datacenter != n.Datacenter {
						t.Fatalf("destination datacenter %q, want %q", d.Datacenter, n.Datacenter)
					}
					continue
				}
				d, err := f.place(o, tt.from, tt.avoid...)
				var skip *rebalancer.SkipError
				if !errors.As(err, &skip) || skip.Reason != tt.skip {
					t.Fatalf("Place = %v, %v; want a %v skip", d, err, tt.skip)
				}
				if !strings.Contains(err.Error(), o.ID) {
					t.Errorf("skip %q does not name the object", err)
				}
			}
		})
	}
}

// In a one-datacenter region every object can be placed: the mistake of
// the Rust port, which rejected any datacenter holding another copy, would
// skip them all.
func TestPlacementSingleDatacenterRegion(t *testing.T) {
	var fleet []storinfo.Node
	for i := range 20 {
		fleet = append(fleet, big(fmt.Sprintf("%d.stor", i), "dc1"))
	}
	f := newFixture(t, storinfo.Tunables{}, fleet...)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 1000 {
		from := fleet[rng.IntN(len(fleet))].StorageNode()
		other := fleet[rng.IntN(len(fleet))].StorageNode()
		o := object(fmt.Sprint("obj", i), rng.Int64N(10*mib), from, other)
		d := f.mustPlace(o, from)
		if o.HasShark(d) {
			t.Fatalf("object %s placed on %s, which holds a copy", o.ID, d)
		}
	}
}

// Random fleets and objects: every placement obeys the rules, and every
// skip is right about there being no valid destination.
func TestPlacementRulesProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for round := range 20 {
		var fleet []storinfo.Node
		ndc := 1 + rng.IntN(4)
		for i := range 2 + rng.IntN(12) {
			fleet = append(fleet, big(fmt.Sprintf("%d.stor", i), fmt.Sprintf("dc%d", rng.IntN(ndc))))
		}
		f := newFixture(t, storinfo.Tunables{MaxSharks: 1 + rng.IntN(6)}, fleet...)
		for i := range 200 {
			var copies []rebalancer.StorageNode
			for range 1 + rng.IntN(3) {
				copies = append(copies, fleet[rng.IntN(len(fleet))].StorageNode())
			}
			from := copies[0]
			o := object(fmt.Sprint("obj", i), rng.Int64N(mib), copies...)
			validDest := func(n rebalancer.StorageNode) bool {
				if n.MantaStorageID == from.MantaStorageID || o.HasShark(n.MantaStorageID) {
					return false
				}
				if n.Datacenter != from.Datacenter {
					for _, c := range copies {
						if c.Datacenter == n.Datacenter {
							return false
						}
					}
				}
				return true
			}
			d, err := f.place(o, from)
			if err == nil {
				if !validDest(d) {
					t.Fatalf("round %d: %s (copies %v, from %s) placed on %v", round, o.ID, copies, from, d)
				}
				continue
			}
			var skip *rebalancer.SkipError
			if !errors.As(err, &skip) {
				t.Fatalf("round %d: Place = %v", round, err)
			}
			for _, n := range fleet {
				if validDest(n.StorageNode()) {
					t.Fatalf("round %d: %s skipped (%v) but %s is valid", round, o.ID, err, n.MantaStorageID)
				}
			}
		}
	}
}

func TestPlacementCapacityLimits(t *testing.T) {
	from := sn("1.stor", "dc1")
	tests := []struct {
		name    string
		tun     storinfo.Tunables
		node    storinfo.Node
		fits    []int64 // sizes placed one after the other, all fitting
		notFits int64   // then this one does not
	}{
		{
			name: "legacy formula under max fill", tun: storinfo.Tunables{MaxFillPercentage: 80, MinAvailMB: -1},
			node: node("4.stor", "dc1", 900, 10), fits: []int64{700 * mib, 0}, notFits: 1,
		},
		{
			name: "exact bytes, not whole MiB", tun: storinfo.Tunables{MaxFillPercentage: 80, MinAvailMB: -1},
			node: node("4.stor", "dc1", 900, 10), fits: []int64{mib / 2, 700*mib - mib/2}, notFits: 1,
		},
		{
			name: "min free stays free", tun: storinfo.Tunables{},
			node: node("4.stor", "dc1", 5000, 0), fits: []int64{4000*mib - 1, 1}, notFits: 1,
		},
		{
			name: "less than min free takes nothing, not even zero bytes", tun: storinfo.Tunables{MinAvailMB: 2000},
			node: node("4.stor", "dc1", 1999, 0), notFits: 0,
		},
		{
			name: "no minimum", tun: storinfo.Tunables{MinAvailMB: -1},
			node: node("4.stor", "dc1", 10, 0), fits: []int64{10 * mib}, notFits: 1,
		},
		{
			name: "at max fill takes nothing", tun: storinfo.Tunables{MaxFillPercentage: 80},
			node: node("4.stor", "dc1", 100_000, 80), notFits: 0,
		},
		{
			name: "above max fill takes nothing", tun: storinfo.Tunables{MaxFillPercentage: 80},
			node: node("4.stor", "dc1", 100_000, 85), notFits: 0,
		},
		{
			name: "below max fill takes", tun: storinfo.Tunables{MaxFillPercentage: 90},
			node: node("4.stor", "dc1", 10_000, 85), fits: []int64{mib}, notFits: 10_000 * mib,
		},
		{
			name: "full shark at 100", tun: storinfo.Tunables{MinAvailMB: -1},
			node: node("4.stor", "dc1", 0, 100), notFits: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.tun, tt.node)
			for i, size := range tt.fits {
				if d := f.mustPlace(object(fmt.Sprint("fit", i), size, from), from); d != tt.node.MantaStorageID {
					t.Fatalf("placed on %s", d)
				}
			}
			f.mustSkip(object("nofit", tt.notFits, from), from, rebalancer.SkipDestinationInsufficientSpace)
		})
	}
}

// Reservations make room scarce until they are released.
func TestPlacementReserveRelease(t *testing.T) {
	from := sn("1.stor", "dc1")
	dest := sn("4.stor", "dc1")
	f := newFixture(t, storinfo.Tunables{MinAvailMB: -1}, node("4.stor", "dc1", 10, 0))
	for i := range 10 {
		f.mustPlace(object(fmt.Sprint("o", i), mib, from), from)
	}
	f.mustSkip(object("o10", 1, from), from, rebalancer.SkipDestinationInsufficientSpace)
	if d := f.dest("4.stor"); d.ReservedBytes != 10*mib || d.FreeBytes != 0 || d.LimitBytes != 10*mib {
		t.Fatalf("report = %+v", d)
	}
	// A zero-byte object still fits on a destination with no room left.
	f.mustPlace(object("empty", 0, from), from)

	// Abandoned copies give their room back at once.
	f.p.Release(dest, 3*mib, false)
	for i := range 3 {
		f.mustPlace(object(fmt.Sprint("again", i), mib, from), from)
	}
	f.mustSkip(object("o11", 1, from), from, rebalancer.SkipDestinationInsufficientSpace)

	// Copied bytes keep counting after their reservation ends.
	f.p.Release(dest, 4*mib, true)
	f.mustSkip(object("o12", 1, from), from, rebalancer.SkipDestinationInsufficientSpace)
	if d := f.dest("4.stor"); d.ReservedBytes != 6*mib || d.UnreflectedBytes != 4*mib || d.FreeBytes != 0 {
		t.Fatalf("report = %+v", d)
	}
}

// Copied bytes are forgotten only once storinfo shows a measurement taken
// after the copy was released.
func TestPlacementCopiedUntilReflected(t *testing.T) {
	from := sn("1.stor", "dc1")
	dest := sn("4.stor", "dc1")
	f := newFixture(t, storinfo.Tunables{MinAvailMB: -1}, node("4.stor", "dc1", 10, 0))
	for i := range 10 {
		f.mustPlace(object(fmt.Sprint("o", i), mib, from), from)
	}
	f.clk.Advance(time.Minute)
	released := f.clk.Now()
	f.p.Release(dest, 10*mib, true)
	f.clk.Advance(time.Second)

	withTimestamp := func(avail int64, measured time.Time) storinfo.Node {
		n := node("4.stor", "dc1", avail, 0)
		n.Timestamp = measured.UnixMilli()
		return n
	}
	steps := []struct {
		name string
		n    storinfo.Node
		free int64 // FreeBytes after the refresh
	}{
		// storinfo still serves a measurement from before the copies.
		{"measured before the release", withTimestamp(10, released.Add(-time.Second)), 0},
		// The shark's clock may run ahead: within ClockSkew, it proves nothing.
		{"measured within the clock skew", withTimestamp(10, released.Add(storinfo.DefaultClockSkew)), 0},
		// Now availableMB includes the copies, and they stop counting.
		{"measured after the release", withTimestamp(0, released.Add(storinfo.DefaultClockSkew+time.Millisecond)), 0},
		{"space freed by others", withTimestamp(5, released.Add(time.Hour)), 5 * mib},
	}
	for _, s := range steps {
		f.view.Set([]storinfo.Node{s.n})
		d := f.dest("4.stor")
		if d.FreeBytes != s.free {
			t.Fatalf("%s: report = %+v, want %d free", s.name, d, s.free)
		}
	}
	if d := f.dest("4.stor"); d.UnreflectedBytes != 0 || d.ReservedBytes != 0 {
		t.Fatalf("report = %+v", d)
	}
}

// A snapshot whose listing started before the release says nothing about
// it, whatever timestamps a fast shark clock puts in it; a record without a
// timestamp is dated by its snapshot.
func TestPlacementCopiedSnapshotTime(t *testing.T) {
	from := sn("1.stor", "dc1")
	dest := sn("4.stor", "dc1")
	clk := newClock()
	src := &scripted{}
	v := storinfo.NewView(storinfo.ViewConfig{Source: src, Now: clk.Now})
	p, err := storinfo.NewPlacement(storinfo.PlacementConfig{Tunables: storinfo.Tunables{MinAvailMB: -1}, Snapshots: v, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	v.Set([]storinfo.Node{node("4.stor", "dc1", 10, 0)})
	if _, err := p.Place(context.Background(), object("o", 4*mib, from), from, nil); err != nil {
		t.Fatal(err)
	}

	// The copy is released while a listing is in progress, and the listing
	// brings a record stamped an hour ahead.
	future := node("4.stor", "dc1", 6, 0)
	future.Timestamp = clk.Now().Add(time.Hour).UnixMilli()
	src.set([]storinfo.Node{future}, nil)
	src.during = func() {
		clk.Advance(time.Second)
		p.Release(dest, 4*mib, true)
	}
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	src.during = nil
	if d := capacityOf(t, p, "4.stor"); d.UnreflectedBytes != 4*mib || d.FreeBytes != 2*mib {
		t.Fatalf("a listing started before the release forgot the copy: %+v", d)
	}

	// A record without a timestamp, in a listing started after the release
	// plus the clock skew.
	clk.Advance(storinfo.DefaultClockSkew)
	src.set([]storinfo.Node{node("4.stor", "dc1", 6, 0)}, nil)
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := capacityOf(t, p, "4.stor"); d.UnreflectedBytes != 4*mib {
		t.Fatalf("a listing within the clock skew forgot the copy: %+v", d)
	}
	clk.Advance(time.Millisecond)
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := capacityOf(t, p, "4.stor"); d.UnreflectedBytes != 0 || d.FreeBytes != 6*mib {
		t.Fatalf("report = %+v", d)
	}
}

func capacityOf(t *testing.T, p *storinfo.Placement, id string) storinfo.DestinationReport {
	t.Helper()
	for _, d := range p.Capacity().Destinations {
		if d.MantaStorageID == id {
			return d
		}
	}
	t.Fatalf("no destination %s", id)
	return storinfo.DestinationReport{}
}

func TestPlacementReleaseOddities(t *testing.T) {
	from := sn("1.stor", "dc1")
	f := newFixture(t, storinfo.Tunables{MinAvailMB: -1}, node("4.stor", "dc1", 10, 0))
	// Releasing what was never reserved changes nothing...
	f.p.Release(sn("4.stor", "dc1"), 5*mib, false)
	f.p.Release(sn("9.stor", "dc1"), 5*mib, false)
	f.p.Release(sn("4.stor", "dc1"), 0, true)
	f.p.Release(sn("4.stor", "dc1"), -1, true)
	if d := f.dest("4.stor"); d.FreeBytes != 10*mib || d.ReservedBytes != 0 || d.UnreflectedBytes != 0 {
		t.Fatalf("report = %+v", d)
	}
	// ... but copied bytes count even without a reservation (a job resumed
	// after a restart), here and on sharks not in storinfo.
	f.p.Release(sn("4.stor", "dc1"), 3*mib, true)
	f.p.Release(rebalancer.StorageNode{MantaStorageID: "9.stor"}, 2*mib, true)
	if d := f.dest("4.stor"); d.FreeBytes != 7*mib {
		t.Fatalf("report = %+v", d)
	}
	if d := f.dest("9.stor"); d.Listed || d.UnreflectedBytes != 2*mib {
		t.Fatalf("report = %+v", d)
	}
	// A release needs only the storage id.
	f.mustPlace(object("o", 2*mib, from), from)
	f.p.Release(rebalancer.StorageNode{MantaStorageID: "4.stor"}, 2*mib, false)
	if d := f.dest("4.stor"); d.FreeBytes != 7*mib {
		t.Fatalf("report = %+v", d)
	}
}

// A destination that drops out of storinfo keeps its reservations, and
// finds them again when it comes back.
func TestPlacementNodeLeavesAndReturns(t *testing.T) {
	from := sn("1.stor", "dc1")
	n4, n5 := node("4.stor", "dc1", 10, 0), node("5.stor", "dc1", 10, 0)
	f := newFixture(t, storinfo.Tunables{MinAvailMB: -1, MaxSharks: 1}, n4, n5)
	for i := range 20 {
		f.mustPlace(object(fmt.Sprint("o", i), mib, from), from)
	}
	f.view.Set([]storinfo.Node{n5})
	f.mustSkip(object("x", 1, from), from, rebalancer.SkipDestinationInsufficientSpace)
	if d := f.dest("4.stor"); d.Listed || d.ReservedBytes != 10*mib {
		t.Fatalf("report = %+v", d)
	}
	f.view.Set([]storinfo.Node{n4, n5})
	f.mustSkip(object("x", 1, from), from, rebalancer.SkipDestinationInsufficientSpace)
	f.p.Release(sn("4.stor", "dc1"), mib, false)
	if d := f.mustPlace(object("y", mib, from), from); d != "4.stor" {
		t.Fatalf("placed on %s", d)
	}
}

// Many jobs placing at once never promise a destination more than its room.
func TestPlacementConcurrentNeverOverfills(t *testing.T) {
	var fleet []storinfo.Node
	for i := range 5 {
		fleet = append(fleet, node(fmt.Sprintf("%d.stor", 10+i), "dc1", 100, 0)) // 100 objects each
	}
	f := newFixture(t, storinfo.Tunables{MinAvailMB: -1}, fleet...)
	from := sn("1.stor", "dc1")
	const workers, each = 8, 100
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		placed = map[string]int{}
		skips  int
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				d, err := f.place(object(fmt.Sprintf("w%d-%d", w, i), mib, from), from)
				mu.Lock()
				if err != nil {
					var skip *rebalancer.SkipError
					if !errors.As(err, &skip) || skip.Reason != rebalancer.SkipDestinationInsufficientSpace {
						t.Errorf("Place = %v", err)
					}
					skips++
				} else {
					placed[d.MantaStorageID]++
				}
				mu.Unlock()
				// Some jobs give objects back, as failed copies do.
				if err == nil && i%10 == 0 {
					f.p.Release(d, mib, false)
					mu.Lock()
					placed[d.MantaStorageID]--
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for id, n := range placed {
		if n > 100 {
			t.Errorf("%s promised %d MiB of 100", id, n)
		}
		if d := f.dest(id); d.ReservedBytes != int64(n)*mib || d.FreeBytes < 0 {
			t.Errorf("%s: %d placed, report %+v", id, n, d)
		}
		total += n
	}
	if total != 500 {
		t.Errorf("%d MiB placed, want the fleet's 500 filled exactly (%d skips)", total, skips)
	}
}

// The same seed and the same calls give the same destinations.
func TestPlacementDeterministic(t *testing.T) {
	run := func() []string {
		var fleet []storinfo.Node
		for i := range 30 {
			fleet = append(fleet, big(fmt.Sprintf("%d.stor", i), fmt.Sprintf("dc%d", i%3)))
		}
		f := newFixture(t, storinfo.Tunables{}, fleet...)
		var out []string
		for i := range 300 {
			from := fleet[i%30].StorageNode()
			out = append(out, f.mustPlace(object(fmt.Sprint("o", i), int64(i)*mib, from), from))
		}
		return out
	}
	a, b := run(), run()
	if !slices.Equal(a, b) {
		t.Fatal("two runs with the same seed differ")
	}
}

// Objects are spread over the top MaxSharks destinations, not poured into
// one (legacy quirk: one shuffle per batch of 250).
func TestPlacementSpreadsOverTopN(t *testing.T) {
	var fleet []storinfo.Node
	for i := range 10 {
		// 0.stor is the roomiest, 9.stor the least.
		fleet = append(fleet, node(fmt.Sprintf("%d.stor", i), "dc1", int64(200_000-i*1000), 10))
	}
	f := newFixture(t, storinfo.Tunables{}, fleet...)
	from := sn("x.stor", "dc1")
	count := map[string]int{}
	for i := range 250 {
		count[f.mustPlace(object(fmt.Sprint("o", i), 0, from), from)]++
	}
	for i := range 10 {
		id := fmt.Sprintf("%d.stor", i)
		switch {
		case i < 5 && (count[id] < 25 || count[id] > 75):
			t.Errorf("top-5 %s got %d of 250 objects", id, count[id])
		case i >= 5 && count[id] != 0:
			t.Errorf("%s, not in the top 5, got %d objects", id, count[id])
		}
	}
}

// With MaxSharks 1 the destination is always the one with the most room
// left, counting reservations and the max-fill-adjusted capacity (legacy
// quirk: it sorted by raw availableMB).
func TestPlacementRoomiestFirst(t *testing.T) {
	fleet := []storinfo.Node{
		node("4.stor", "dc1", 10_000, 50), // raw roomiest, but 2000 MiB under max fill 60
		node("5.stor", "dc1", 5_000, 0),   // 3000 MiB under max fill 60
		node("6.stor", "dc1", 4_000, 0),   // 2400 MiB
	}
	f := newFixture(t, storinfo.Tunables{MaxFillPercentage: 60, MinAvailMB: -1, MaxSharks: 1}, fleet...)
	from := sn("1.stor", "dc1")
	if d := f.mustPlace(object("first", mib, from), from); d != "5.stor" {
		t.Fatalf("first object on %s, want 5.stor", d)
	}
	for i := range 200 {
		best, bestFree := "", int64(-1)
		for _, d := range f.p.Capacity().Destinations {
			if d.FreeBytes > bestFree {
				best, bestFree = d.MantaStorageID, d.FreeBytes
			}
		}
		if d := f.mustPlace(object(fmt.Sprint("o", i), int64(i%7)*5*mib, from), from); d != best {
			t.Fatalf("object %d on %s, but %s had the most room (%d)", i, d, best, bestFree)
		}
	}
}

// The top N is taken among the valid destinations: roomy sharks that hold
// a copy do not crowd out the rest (the legacy could skip an object whose
// copies sat on its top five).
func TestPlacementTopNAmongValid(t *testing.T) {
	var fleet []storinfo.Node
	var copies []rebalancer.StorageNode
	for i := range 5 {
		n := node(fmt.Sprintf("%d.stor", i), "dc1", 900_000, 1)
		fleet = append(fleet, n)
		copies = append(copies, n.StorageNode())
	}
	fleet = append(fleet, node("9.stor", "dc1", 2000, 50))
	f := newFixture(t, storinfo.Tunables{}, fleet...)
	if d := f.mustPlace(object("o", mib, copies...), copies[0]); d != "9.stor" {
		t.Fatalf("placed on %s", d)
	}
}

func TestPlacementNoCapacityInformation(t *testing.T) {
	from := sn("1.stor", "dc1")
	o := object("o", 1, from)
	isRetry := func(t *testing.T, err, want error) {
		t.Helper()
		var skip *rebalancer.SkipError
		if !errors.Is(err, want) || errors.As(err, &skip) {
			t.Fatalf("Place = %v; want %v and no skip", err, want)
		}
	}
	t.Run("no snapshot yet", func(t *testing.T) {
		p, err := storinfo.NewPlacement(storinfo.PlacementConfig{Snapshots: storinfo.NewView(storinfo.ViewConfig{})})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Place(context.Background(), o, from, nil)
		isRetry(t, err, storinfo.ErrNoSnapshot)
		if r := p.Capacity(); !r.Taken.IsZero() || len(r.Destinations) != 0 {
			t.Fatalf("report = %+v", r)
		}
	})
	t.Run("stale snapshot", func(t *testing.T) {
		f := newFixture(t, storinfo.Tunables{}, big("4.stor", "dc1"))
		f.clk.Advance(storinfo.DefaultMaxStaleness)
		f.mustPlace(o, from)
		f.clk.Advance(time.Second)
		_, err := f.place(o, from)
		isRetry(t, err, storinfo.ErrStaleSnapshot)
		// The report still works.
		if d := f.dest("4.stor"); d.ReservedBytes != 1 {
			t.Fatalf("report = %+v", d)
		}
		if err := f.p.SetTunables(storinfo.Tunables{MaxStaleness: -1}); err != nil {
			t.Fatal(err)
		}
		f.mustPlace(o, from)
		if err := f.p.SetTunables(storinfo.Tunables{MaxStaleness: time.Hour}); err != nil {
			t.Fatal(err)
		}
		f.mustPlace(o, from)
	})
	t.Run("empty fleet", func(t *testing.T) {
		f := newFixture(t, storinfo.Tunables{})
		_, err := f.place(o, from)
		isRetry(t, err, storinfo.ErrNoStorageNodes)
	})
	t.Run("everything blocklisted", func(t *testing.T) {
		f := newFixture(t, storinfo.Tunables{BlocklistSharks: []string{"4.stor"}, BlocklistDatacenters: []string{"dc2"}},
			big("4.stor", "dc1"), big("5.stor", "dc2"))
		_, err := f.place(o, from)
		isRetry(t, err, storinfo.ErrNoStorageNodes)
	})
	t.Run("unknown datacenter of the evacuated shark", func(t *testing.T) {
		f := newFixture(t, storinfo.Tunables{}, big("4.stor", "dc1"))
		_, err := f.place(object("o", 1, sn("2.stor", "dc1")), sn("1.stor", ""))
		var skip *rebalancer.SkipError
		if err == nil || errors.As(err, &skip) || !strings.Contains(err.Error(), "1.stor") {
			t.Fatalf("Place = %v", err)
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		f := newFixture(t, storinfo.Tunables{}, big("4.stor", "dc1"))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := f.p.Place(ctx, o, from, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Place = %v", err)
		}
	})
}

func TestPlacementTunables(t *testing.T) {
	bad := []storinfo.Tunables{
		{MaxFillPercentage: 101},
		{MaxFillPercentage: -1},
		{MaxSharks: -1},
		{MinAvailMB: 1 << 50},
	}
	for _, tun := range bad {
		if _, err := storinfo.NewPlacement(storinfo.PlacementConfig{Tunables: tun, Snapshots: storinfo.NewView(storinfo.ViewConfig{})}); err == nil {
			t.Errorf("NewPlacement accepted %+v", tun)
		}
	}
	if _, err := storinfo.NewPlacement(storinfo.PlacementConfig{}); err == nil {
		t.Error("NewPlacement accepted no snapshot source")
	}

	from := sn("1.stor", "dc1")
	f := newFixture(t, storinfo.Tunables{MaxFillPercentage: 50}, node("4.stor", "dc1", 100_000, 60), big("5.stor", "dc2"))
	if d := f.mustPlace(object("a", mib, from), from); d != "5.stor" {
		t.Fatalf("placed on %s", d)
	}
	// A reload changes later placements and keeps reservations.
	blocklist := []string{"dc2"}
	if err := f.p.SetTunables(storinfo.Tunables{MaxFillPercentage: 70, BlocklistDatacenters: blocklist}); err != nil {
		t.Fatal(err)
	}
	blocklist[0] = "dc1" // the Placement keeps its own copy
	if d := f.mustPlace(object("b", mib, from), from); d != "4.stor" {
		t.Fatalf("placed on %s", d)
	}
	if d := f.dest("5.stor"); !d.Blocklisted || d.ReservedBytes != mib {
		t.Fatalf("report = %+v", d)
	}
	if err := f.p.SetTunables(storinfo.Tunables{MaxFillPercentage: 200}); err == nil {
		t.Fatal("SetTunables accepted 200 %")
	}
	if got := f.p.Tunables(); got.MaxFillPercentage != 70 || !slices.Equal(got.BlocklistDatacenters, []string{"dc2"}) {
		t.Fatalf("Tunables = %+v", got)
	}
}

// Excluded sharks (those being evacuated or evacuated already) are never
// destinations, whatever their room, and a reload of the tunables keeps
// them out.
func TestPlacementExcludeSharks(t *testing.T) {
	from := sn("1.stor", "dc1")
	f := newFixture(t, storinfo.Tunables{MaxSharks: 1}, node("4.stor", "dc1", 100_000, 10), node("5.stor", "dc1", 1_000_000, 10))
	if d := f.mustPlace(object("a", mib, from), from); d != "5.stor" {
		t.Fatalf("placed on %s, want the roomiest, 5.stor", d)
	}
	f.p.ExcludeSharks([]string{"5.stor"})
	for i := range 20 {
		if d := f.mustPlace(object(fmt.Sprint("b", i), mib, from), from); d != "4.stor" {
			t.Fatalf("placed on %s, an excluded shark", d)
		}
	}
	if d := f.dest("5.stor"); !d.Excluded || d.Blocklisted || d.ReservedBytes != mib {
		t.Errorf("report = %+v", d)
	}
	if err := f.p.SetTunables(storinfo.Tunables{MaxSharks: 2}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if d := f.mustPlace(object(fmt.Sprint("c", i), mib, from), from); d != "4.stor" {
			t.Fatalf("after a reload, placed on %s, an excluded shark", d)
		}
	}
	f.p.ExcludeSharks([]string{"4.stor", "5.stor"})
	if _, err := f.place(object("d", mib, from), from); !errors.Is(err, storinfo.ErrNoStorageNodes) {
		t.Fatalf("with every shark excluded, Place = %v", err)
	}
	f.p.ExcludeSharks(nil)
	if d := f.mustPlace(object("e", mib, from), from); d != "5.stor" {
		t.Fatalf("back in service: placed on %s", d)
	}
}

func TestPlacementCapacityReport(t *testing.T) {
	from := sn("1.stor", "dc1")
	f := newFixture(t, storinfo.Tunables{MaxFillPercentage: 80, BlocklistSharks: []string{"5.stor"}},
		node("4.stor", "dc1", 9000, 10), node("5.stor", "dc1", 500, 0))
	f.mustPlace(object("a", 3000*mib, from), from)
	f.p.Release(sn("4.stor", "dc1"), 1000*mib, true)
	r := f.p.Capacity()
	if !r.Taken.Equal(f.clk.Now()) || len(r.Destinations) != 2 {
		t.Fatalf("report = %+v", r)
	}
	want := storinfo.DestinationReport{
		MantaStorageID: "4.stor", Datacenter: "dc1", Listed: true, AvailableMB: 9000, PercentUsed: 10,
		LimitBytes:       7000 * mib, // total 10000, 8000 under 80 %, 1000 used
		ReservedBytes:    2000 * mib,
		UnreflectedBytes: 1000 * mib,
		FreeBytes:        4000 * mib,
		// 1000 used + 3000 pending of 10000.
		ProjectedPercentUsed: 40,
	}
	got := r.Destinations[0]
	if diff := got.ProjectedPercentUsed - want.ProjectedPercentUsed; diff > 1e-9 || diff < -1e-9 {
		t.Errorf("projected %v, want %v", got.ProjectedPercentUsed, want.ProjectedPercentUsed)
	}
	got.ProjectedPercentUsed = want.ProjectedPercentUsed
	if got != want {
		t.Errorf("report\n%+v\nwant\n%+v", got, want)
	}
	if b := r.Destinations[1]; b.MantaStorageID != "5.stor" || !b.Blocklisted || b.LimitBytes >= 0 {
		t.Errorf("report = %+v", b)
	}
}

// The whole chain against an in-process storinfo: copies fill a shark,
// minnow reports it, and the Placement stops counting them itself.
func TestPlacementWithStorinfo(t *testing.T) {
	clk := newClock()
	srv := storinfotest.NewServer(
		storinfotest.NewRecord("1.stor.example.com", "dc1", 100_000, 50_000),
		storinfotest.NewRecord("2.stor.example.com", "dc1", 100_000, 10_000),
	)
	defer srv.Close()
	srv.SetClock(clk.Now)
	v := storinfo.NewView(storinfo.ViewConfig{Source: newClient(t, srv.URL), Now: clk.Now})
	p, err := storinfo.NewPlacement(storinfo.PlacementConfig{Snapshots: v, Now: clk.Now, Rand: rand.NewPCG(1, 2),
		Tunables: storinfo.Tunables{MinAvailMB: -1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	from := sn("1.stor.example.com", "dc1")
	if _, err := p.Place(ctx, object("o", mib, from), from, nil); !errors.Is(err, storinfo.ErrNoSnapshot) {
		t.Fatalf("Place before any refresh = %v", err)
	}
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// 2.stor has 10000 MiB: 10 objects of 1000 MiB fill it.
	for i := range 10 {
		d, err := p.Place(ctx, object(fmt.Sprint("o", i), 1000*mib, from), from, nil)
		if err != nil || d.MantaStorageID != "2.stor.example.com" {
			t.Fatalf("Place = %v, %v", d, err)
		}
	}
	if _, err := p.Place(ctx, object("x", 1, from), from, nil); err == nil {
		t.Fatal("placed on a full shark")
	}
	// The copies land: the agent wrote them, minnow sees them.
	p.Release(sn("2.stor.example.com", "dc1"), 10_000*mib, true)
	srv.AdjustAvailableMB("2.stor.example.com", -10_000)
	srv.AdjustAvailableMB("2.stor.example.com", 5000) // and users deleted some
	if _, err := p.Place(ctx, object("x", 1, from), from, nil); err == nil {
		t.Fatal("placed before storinfo showed the copies")
	}
	// storinfo fails for a while: the last snapshot still holds.
	srv.SetDown(true)
	if err := v.Refresh(ctx); err == nil {
		t.Fatal("Refresh with storinfo down succeeded")
	}
	srv.SetDown(false)
	clk.Advance(storinfo.DefaultClockSkew + time.Second)
	if err := v.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	d := capacityOf(t, p, "2.stor.example.com")
	if d.UnreflectedBytes != 0 || d.FreeBytes != 5000*mib || d.AvailableMB != 5000 || d.PercentUsed != 95 {
		t.Fatalf("report = %+v", d)
	}
	if d, err := p.Place(ctx, object("y", 5000*mib, from), from, nil); err != nil || d.MantaStorageID != "2.stor.example.com" {
		t.Fatalf("Place = %v, %v", d, err)
	}
}
