package main

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
)

func TestPinned(t *testing.T) {
	const shark = "1.stor.demo.example"
	f := testbed.New(t, testbed.Config{Sharks: 5, Shards: 2, Objects: testbed.Objects{Count: 120, Pin: shark, PinFraction: 0.5}})
	before, err := f.Verify(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	pinned := before.ByShark[shark]
	if pinned == 0 {
		t.Fatal("no object on the shark")
	}
	dests := []string{"4.stor.demo.example", "5.stor.demo.example"}
	st, err := Run(context.Background(), Options{
		Moray: f.Shards(), Shards: f.ShardNumbers(), Agents: f.AgentClient(), Shark: shark, Dests: dests,
		Database: filepath.Join(t.TempDir(), "jobs.db"), Log: f.Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if done, _ := st.Total(rebalancer.ObjectComplete); st.Job.State != rebalancer.JobComplete || done != int64(pinned) {
		t.Fatalf("job %s with %d complete, want complete with %d: %+v", st.Job.State, done, pinned, st.Counts)
	}
	after, err := f.Verify(context.Background(), shark)
	if err != nil {
		t.Fatal(err)
	}
	if err := after.Err(); err != nil {
		t.Fatal(err)
	}
	// Every moved copy went to a pinned destination: the other sharks
	// hold exactly what they held.
	for _, s := range []string{"2.stor.demo.example", "3.stor.demo.example"} {
		if after.ByShark[s] != before.ByShark[s] {
			t.Errorf("%s: %d copies before, %d after", s, before.ByShark[s], after.ByShark[s])
		}
	}
	if got, want := after.ByShark[dests[0]]+after.ByShark[dests[1]], before.ByShark[dests[0]]+before.ByShark[dests[1]]+pinned; got != want {
		t.Errorf("pinned destinations hold %d copies, want %d", got, want)
	}
}

func TestPinnedRules(t *testing.T) {
	node := func(id string) rebalancer.StorageNode {
		return rebalancer.StorageNode{MantaStorageID: id, Datacenter: "dc1"}
	}
	p := &Pinned{Dests: []rebalancer.StorageNode{node("a"), node("b"), node("c")}}
	obj := rebalancer.Object{ID: "o", Sharks: []rebalancer.StorageNode{node("x"), node("b")}}
	tests := []struct {
		name  string
		from  string
		avoid []string
		want  string // "" = skipped
	}{
		{"first in turn", "x", nil, "a"},
		{"holder of a copy is passed over", "x", nil, "c"},
		{"evacuated shark is passed over", "a", nil, "c"},
		{"avoided shark is passed over", "x", []string{"a"}, "c"},
		{"nothing left: skip", "a", []string{"c"}, ""},
	}
	for _, tt := range tests {
		got, err := p.Place(context.Background(), obj, node(tt.from), tt.avoid)
		if tt.want == "" {
			var skip *rebalancer.SkipError
			if !errors.As(err, &skip) || skip.Reason != rebalancer.SkipObjectAlreadyOnDestShark {
				t.Errorf("%s: got %v, %v; want a skip", tt.name, got.MantaStorageID, err)
			}
			continue
		}
		if err != nil || got.MantaStorageID != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got.MantaStorageID, err, tt.want)
		}
	}
}
