package testbed

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

// waitJob polls until the job reaches a terminal state.
func waitJob(t *testing.T, e *evacuate.Engine, id string) evacuate.Status {
	t.Helper()
	var st evacuate.Status
	testutil.Poll(t, "job "+id+" to end", func() error {
		var err error
		if st, err = e.JobStatus(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if st.Job.State.Terminal() && !st.Running {
			return nil
		}
		return fmt.Errorf("job still %s: %+v", st.Job.State, st.Counts)
	})
	return st
}

func count(st evacuate.Status, s rebalancer.ObjectStatus) int64 {
	n, _ := st.Total(s)
	return n
}

// A real evacuation over the fleet: discovery through Moray, placement from
// storinfo, copies by the agents from the surviving sharks over HTTP, and
// conditional metadata updates; then Verify from scratch.
func TestEvacuationEndToEnd(t *testing.T) {
	ctx := context.Background()
	// dc1 holds sharks 1, 3, 5 and dc2 sharks 2, 4: copies leaving shark 1
	// may only go to 3 or 5 (dc2 already has each object's other copy).
	f := New(t, Config{Sharks: 5, Datacenters: 2, Shards: 2})
	pop, err := f.Populate(ctx, Objects{Count: 600, Seed: 1, Pin: shark1, PinFraction: 0.5, MaxSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	single, err := f.Populate(ctx, Objects{Count: 7, Seed: 2, Pin: shark1, Copies: 1, Dir: "single"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.NewEngine(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := e.CreateJob(ctx, shark1, FastJobOptions())
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, e, j.ID)
	if st.Job.State != rebalancer.JobComplete || st.Job.From.Datacenter != "dc1" {
		t.Fatalf("job ended %s from %+v: %s", st.Job.State, st.Job.From, st.Job.Error)
	}
	if got := count(st, rebalancer.ObjectComplete); got != int64(pop.Pinned) {
		t.Fatalf("%d objects complete, want %d: %+v", got, pop.Pinned, st.Counts)
	}
	if got := count(st, rebalancer.ObjectSkipped); got != int64(single.Objects) {
		t.Fatalf("%d objects skipped, want %d: %+v", got, single.Objects, st.Counts)
	}

	rep, err := f.Verify(ctx, shark1)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.SingleCopy != single.Objects || rep.NoDestination != 0 {
		t.Fatalf("report %s", rep)
	}
	if rep.Unreferenced[shark1] != pop.Pinned || len(rep.Unreferenced) != 1 {
		t.Fatalf("unreferenced files %v, want %d on %s only", rep.Unreferenced, pop.Pinned, shark1)
	}
	for _, id := range []string{"2.stor.demo.example", "4.stor.demo.example"} {
		if got, before := rep.ByShark[id], pop.PerShark[id]; got != before {
			t.Fatalf("%s holds %d copies, had %d: nothing may move into dc2", id, got, before)
		}
	}
	if n := f.Shark(shark1).MakoRequests(); n != 0 {
		t.Fatalf("the evacuated shark served %d downloads", n)
	}
}

// Faults during an evacuation: a source copy that is corrupt and an agent
// killed and restarted mid-job. The job ends, metadata never points at a
// bad copy, and what could not move is reported, not hidden.
func TestEvacuationWithFaults(t *testing.T) {
	ctx := context.Background()
	f := New(t, Config{Sharks: 4, Objects: Objects{Count: 300, Seed: 3, Pin: shark1}})
	objs := objects(t, f)
	bad := objs[0]
	if err := f.Shark(other(bad)).Corrupt(bad.Owner, bad.ID); err != nil {
		t.Fatal(err)
	}
	// Hold every download until an agent has been killed under the job.
	release := make(chan struct{})
	for _, s := range f.Sharks() {
		s.SetMakoFault(func(w http.ResponseWriter, r *http.Request) bool {
			select {
			case <-release:
			case <-r.Context().Done():
				return true
			}
			return false
		})
	}
	e, err := f.NewEngine(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := e.CreateJob(ctx, shark1, FastJobOptions())
	if err != nil {
		t.Fatal(err)
	}
	// Once assignments are out, kill an agent holding some.
	var victim *Shark
	testutil.Eventually(t, "an object to be assigned", func() bool {
		objs, err := e.Objects(ctx, j.ID, rebalancer.ObjectAssigned, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) > 0 {
			victim = f.Shark(objs[0].Dest.MantaStorageID)
		}
		return victim != nil
	})
	if err := victim.StopAgent(); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := victim.StartAgent(); err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, e, j.ID)
	if st.Job.State != rebalancer.JobComplete {
		t.Fatalf("job ended %s: %s", st.Job.State, st.Job.Error)
	}

	rep, err := f.Verify(ctx, shark1)
	if err != nil {
		t.Fatal(err)
	}
	// The object whose only good copy is on shark 1 stays there; its bad
	// copy elsewhere is still bad; nothing else is wrong.
	want := map[ProblemKind]int{ProblemStillOnEvacuated: 1, ProblemBadMD5: 1}
	if !maps.Equal(rep.Counts, want) {
		t.Fatalf("problems %v, want %v\n%v", rep.Counts, want, rep.Err())
	}
	for _, p := range rep.Problems {
		if p.Key != bad.Key {
			t.Fatalf("problem with another object: %s", p)
		}
	}
	if got := count(st, rebalancer.ObjectComplete); got != int64(len(objs)-1) {
		t.Fatalf("%d complete, want %d: %+v", got, len(objs)-1, st.Counts)
	}
	if count(st, rebalancer.ObjectSkipped)+count(st, rebalancer.ObjectError) != 1 {
		t.Fatalf("the corrupt object is not accounted for: %+v", st.Counts)
	}
}

// The product's discovery (sharkspotter, over Moray's sql RPC) plugs into
// the fleet through Config.Source.
func TestEvacuationWithSharkspotter(t *testing.T) {
	ctx := context.Background()
	f := New(t, Config{Shards: 3, Objects: Objects{Count: 300, Seed: 4, Pin: shark1, PinFraction: 0.7},
		Source: func(f *Fleet) (rebalancer.ObjectSource, error) {
			return &sharkspotter.MorayScanner{Clients: f.NewShardClients(), Window: 50,
				Options: sharkspotter.Options{Shards: f.ShardNumbers(), Logger: f.Logger()}}, nil
		}})
	var on int64
	for _, o := range objects(t, f) {
		if o.HasShark(shark1) {
			on++
		}
	}
	e, err := f.NewEngine(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := e.CreateJob(ctx, shark1, FastJobOptions())
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, e, j.ID)
	if st.Job.State != rebalancer.JobComplete || count(st, rebalancer.ObjectComplete) != on {
		t.Fatalf("job ended %s, want %d complete: %+v", st.Job.State, on, st.Counts)
	}
	rep, err := f.Verify(ctx, shark1)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.Unreferenced[shark1] != int(count(st, rebalancer.ObjectComplete)) {
		t.Fatalf("%d objects moved, %d files left unreferenced on %s", count(st, rebalancer.ObjectComplete), rep.Unreferenced[shark1], shark1)
	}
}
