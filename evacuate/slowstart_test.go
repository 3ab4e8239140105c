package evacuate

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

// The first assignments to each destination are small, two tasks then
// twice as many each time up to MaxTasksPerAssignment, so that the first
// copies are done and recorded at once whatever the objects' size.
func TestAssignmentSlowStart(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 400, nil)
	o := fastOptions()
	o.MaxTasksPerAssignment = 20
	// Only size makes an assignment go, but for each destination's last.
	o.FlushAge = Duration(5 * time.Second)
	j, _ := h.run(o)
	if j.State != rebalancer.JobComplete {
		t.Fatalf("job ended %v %q", j.State, j.Error)
	}
	posted := h.agents.PostSizes()
	if len(posted) == 0 {
		t.Fatal("nothing posted")
	}
	// Posters take turns as the posting window opens, so the sizes are
	// compared as a set: the ramp once, then full ones, and the last one
	// of the job, sent by age.
	for dest, sizes := range posted {
		rest := slices.Clone(sizes)
		for _, n := range []int{2, 4, 8, 16} {
			i := slices.Index(rest, n)
			if i < 0 {
				t.Fatalf("%s: assignment sizes %v, want 2, 4, 8, 16, then 20", dest, sizes)
			}
			rest = slices.Delete(rest, i, i+1)
		}
		slices.Sort(rest)
		if len(rest) < 2 || slices.ContainsFunc(rest[1:], func(n int) bool { return n != 20 }) {
			t.Fatalf("%s: assignment sizes %v, want 2, 4, 8, 16, then 20", dest, sizes)
		}
	}
}

// A destination holds one assignment at first, and twice as many each
// time one of its assignments finishes, up to MaxOutstandingPerDest.
func TestPostingWindow(t *testing.T) {
	o := fastOptions()
	o.MaxOutstandingPerDest = 5
	f := newFlight(o)
	dest := rebalancer.StorageNode{MantaStorageID: "3.stor"}
	n := 0
	newAssignment := func() *assignment {
		n++
		a := &assignment{id: fmt.Sprint(n), dest: dest, objects: map[string]*planned{}}
		f.adopt(a)
		return a
	}
	// acquire takes every slot it can get without waiting.
	acquire := func() []*assignment {
		var got []*assignment
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			a := newAssignment()
			ok := f.acquireDest(ctx, a)
			cancel()
			if !ok {
				return got
			}
			got = append(got, a)
		}
	}
	var held []*assignment
	for _, want := range []int{1, 2, 4, 5, 5} {
		held = append(held, acquire()...)
		if len(held) != want {
			t.Fatalf("%d assignments held at once, want %d", len(held), want)
		}
		f.finish(held[0])
		held = held[1:]
	}
	if other := (&assignment{id: "other", dest: rebalancer.StorageNode{MantaStorageID: "4.stor"}}); !f.acquireDest(context.Background(), other) {
		t.Fatal("another destination has a window of its own")
	}
}
