package testbed

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// jobCounts returns a job's counts as "status/reason" -> objects.
func jobCounts(st evacuate.Status) map[string]int64 {
	got := map[string]int64{}
	for _, c := range st.Counts {
		got[c.Status+"/"+c.Reason] += c.N
	}
	return got
}

// onSharks counts, for each of ids, the objects whose metadata lists it,
// and the objects listed on more than one of them.
func onSharks(t *testing.T, f *Fleet, ids ...string) (on map[string]int64, shared int) {
	on = map[string]int64{}
	for _, o := range objects(t, f) {
		n := 0
		for _, id := range ids {
			if o.HasShark(id) {
				on[id]++
				n++
			}
		}
		if n > 1 {
			shared++
		}
	}
	return on, shared
}

// Several evacuations at once on one engine, sharing the placement: three
// sharks of an eight-shark fleet, with many objects that have copies on
// two of the evacuated sharks, so that the jobs race on the same metadata
// and often pick the same destination for the two copies of an object.
// Each job must move exactly the objects on its shark, and the fleet must
// verify clean for every evacuated shark.
//
// The evacuated sharks are blocklisted, as an operator evacuating several
// sharks would: while a job runs the engine keeps other jobs off its shark,
// but once it ends the shark is an ordinary destination again.
func TestConcurrentEvacuations(t *testing.T) {
	ctx := context.Background()
	evac := []string{shark1, "2.stor.demo.example", "3.stor.demo.example"}
	f := New(t, Config{Sharks: 8, Placement: storinfo.Tunables{BlocklistSharks: evac}})
	for i, id := range evac {
		if _, err := f.Populate(ctx, Objects{Count: 100, Seed: uint64(200 + i), Pin: id, Dir: fmt.Sprintf("load%d", i), MaxSize: 4 << 10}); err != nil {
			t.Fatal(err)
		}
	}
	on, shared := onSharks(t, f, evac...)
	if shared == 0 {
		t.Fatal("no object has copies on two evacuated sharks: pick other seeds")
	}

	e, err := f.NewEngine(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	jobs := map[string]string{}
	for _, id := range evac {
		j, err := e.CreateJob(ctx, id, evacuate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		jobs[id] = j.ID
	}
	for _, id := range evac {
		st := waitJob(t, e, jobs[id])
		if got, want := jobCounts(st), map[string]int64{"complete/": on[id]}; st.Job.State != rebalancer.JobComplete || !maps.Equal(got, want) {
			t.Errorf("job on %s ended %s (%s) with %v, want complete with %v", id, st.Job.State, st.Job.Error, got, want)
		}
	}
	for _, id := range evac {
		rep, err := f.Verify(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Err(); err != nil {
			t.Errorf("after evacuating %s: %v", id, err)
		}
	}
}

// A job must not name, as an object's new home, a shark that another job
// started evacuating in the meantime: that job may have scanned past the
// object already, and would leave it there. Job 1 places copies on shark 3
// and is held before it learns they are done (the agent on shark 3 holds
// its status replies); job 3 then starts evacuating shark 3 and finishes
// its scan (downloads of objects only it moves are held, so that it keeps
// running); only then
// does job 1 go on. Its copies on shark 3 must be placed again elsewhere,
// and both sharks must verify clean.
func TestEvacuationKeepsOffSharksBeingEvacuated(t *testing.T) {
	ctx := context.Background()
	const shark3 = "3.stor.demo.example"
	// Shark 1 is blocklisted, so that job 3 does not put copies back on it
	// once job 1 is over (see TestConcurrentEvacuations).
	f := New(t, Config{Sharks: 5, Placement: storinfo.Tunables{BlocklistSharks: []string{shark1}}})
	if _, err := f.Populate(ctx, Objects{Count: 60, Seed: 31, Pin: shark1, Dir: "one", MaxSize: 4 << 10}); err != nil {
		t.Fatal(err)
	}
	pop3, err := f.Populate(ctx, Objects{Count: 30, Seed: 33, Pin: shark3, Dir: "three", MaxSize: 4 << 10})
	if err != nil || pop3.Pinned != 30 {
		t.Fatal(pop3, err)
	}
	on, _ := onSharks(t, f, shark1, shark3)

	var releaseOnce, holdOnce sync.Once
	polls, downloads := make(chan struct{}), make(chan struct{})
	releasePolls := func() { releaseOnce.Do(func() { close(polls) }) }
	releaseDownloads := func() { holdOnce.Do(func() { close(downloads) }) }
	t.Cleanup(releasePolls) // before the fleet closes
	t.Cleanup(releaseDownloads)
	wait := func(gate chan struct{}, r *http.Request) bool {
		select {
		case <-gate:
			return false
		case <-r.Context().Done():
			return true
		}
	}
	f.Shark(shark3).SetAgentFault(func(w http.ResponseWriter, r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/assignments/") && wait(polls, r)
	})
	// Job 3's own objects, which job 1 never reads.
	three := map[string]bool{}
	for _, o := range objects(t, f) {
		if strings.Contains(o.Key, "/stor/three/") && !o.HasShark(shark1) {
			three[o.ID] = true
		}
	}
	if len(three) == 0 {
		t.Fatal("every object pinned to shark 3 is on shark 1 too: pick another seed")
	}
	for _, s := range f.Sharks() {
		s.SetMakoFault(func(w http.ResponseWriter, r *http.Request) bool {
			return three[path.Base(r.URL.Path)] && wait(downloads, r)
		})
	}

	e, err := f.NewEngine(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	j1, err := e.CreateJob(ctx, shark1, evacuate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	onThree := 0
	testutil.Eventually(t, "job 1 to place an object on "+shark3, func() bool {
		objs, err := e.Objects(ctx, j1.ID, rebalancer.ObjectAssigned, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.Dest.MantaStorageID == shark3 {
				onThree++
			}
		}
		return onThree > 0
	})

	j3, err := e.CreateJob(ctx, shark3, evacuate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Poll(t, "job 3's discovery to finish", func() error {
		j, err := e.Job(ctx, j3.ID)
		switch {
		case err != nil:
			t.Fatal(err)
		case j.DiscoveryDone:
			return nil
		case j.State.Terminal():
			t.Fatalf("job 3 ended before its discovery finished: %+v", j)
		}
		return fmt.Errorf("job 3: %+v", j)
	})
	releasePolls()
	st1 := waitJob(t, e, j1.ID)
	releaseDownloads()
	st3 := waitJob(t, e, j3.ID)

	for _, c := range []struct {
		shark string
		st    evacuate.Status
	}{{shark1, st1}, {shark3, st3}} {
		if got, want := jobCounts(c.st), map[string]int64{"complete/": on[c.shark]}; c.st.Job.State != rebalancer.JobComplete || !maps.Equal(got, want) {
			t.Errorf("job on %s ended %s (%s) with %v, want complete with %v", c.shark, c.st.Job.State, c.st.Job.Error, got, want)
		}
		rep, err := f.Verify(ctx, c.shark)
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Err(); err != nil {
			t.Errorf("after evacuating %s: %v", c.shark, err)
		}
	}
	t.Logf("job 1 had placed %d objects on %s before job 3 started", onThree, shark3)
}
