package evacuate

import (
	"bytes"
	"maps"
	"path/filepath"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
)

// The tests in this file pin single guards of the engine, each of which
// once survived a mutation (the guard removed or its comparison shifted)
// with every other suite passing. Each says which guard it holds.

// After an etag conflict the object is read again; if the key now holds
// another object (a new objectId) that still lists the evacuated shark,
// the copy the agent made is of the old object and must not be named by
// the new one's metadata (metadata.go: "cur.ID != obj.ID").
func TestConflictWithAnotherObjectUnderTheKey(t *testing.T) {
	for _, individual := range []bool{false, true} {
		name := "batched"
		if individual {
			name = "individual"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 30, nil)
			// Five keys are rewritten, just before their update, with a
			// new object that also has a copy on the evacuated shark.
			newer := map[string]rebalancer.Object{}
			for _, o := range h.objs[:5] {
				id := "ffffffff-0000-4000-8000-" + o.ID[24:]
				v := fakes.ObjectValue("acct", id, 77, fakes.Shark(1), fakes.Shark(2))
				v = bytes.Replace(v, []byte(`"/acct/stor/`+id+`"`), []byte(`"`+o.Key+`"`), 1)
				h.moray.ReplaceOnce(o.Shard, o.Key, v)
				want, err := rebalancer.ParseObject(v)
				if err != nil {
					t.Fatal(err)
				}
				want.Shard = o.Shard
				newer[o.Key] = want
			}
			o := fastOptions()
			o.IndividualUpdates = individual
			j, _ := h.run(o)
			if j.State != rebalancer.JobComplete {
				t.Fatalf("job ended %v %q", j.State, j.Error)
			}
			want := map[string]int64{"complete": 25, "error": 5, "error/moray_etag_mismatch": 5}
			if got := h.check(j.ID); !maps.Equal(got, want) {
				t.Errorf("counts %v, want %v", got, want)
			}
			for key, want := range newer {
				cur, _ := h.moray.Get(want.Shard, key)
				if cur.ID != want.ID || !bytes.Equal(cur.Metadata, want.Metadata) {
					t.Errorf("%s: the object now under the key was changed: %s", key, cur.Metadata)
				}
			}
		})
	}
}

// An agent that drops a task from its reply altogether (Total and
// Complete both one short) must not have the assignment trusted: the lost
// object's metadata would be rewritten to a destination holding no copy
// (poll.go: "st.Total != len(a.order)").
func TestAgentOmitsATask(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 60, nil)
	h.agents.SetOmit(true)
	j, _ := h.run(fastOptions())
	want := map[string]int64{"skipped": 60, "skipped/assignment_mismatch": 60}
	if got := h.check(j.ID); !maps.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	if writes, _, _ := h.moray.Writes(); writes != 0 {
		t.Errorf("%d metadata writes from replies that did not add up", writes)
	}
}

// A copy failure that might pass (the source failing) sends the object
// out again until it has been posted MaxAttempts times, and not once more
// (poll.go taskFailure: "Attempts+1 >= MaxAttempts").
func TestMaxAttemptsBoundsPosts(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 40, func(i int) []rebalancer.StorageNode {
		return []rebalancer.StorageNode{fakes.Shark(1), fakes.Shark(2), fakes.Shark(7)}
	})
	h.agents.SetFailTask(func(rebalancer.Task) rebalancer.SkipReason { return rebalancer.SkipSourceOtherError })
	o := fastOptions()
	o.MaxAttempts = 3
	j, _ := h.run(o)
	want := map[string]int64{"skipped": 40, "skipped/source_other_error": 40}
	if got := h.check(j.ID); !maps.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	for _, obj := range h.objs {
		if n := h.agents.TaskPosts(obj.ID); n != 3 {
			t.Errorf("object %s posted %d times, want 3 (max_attempts)", obj.ID, n)
		}
	}
}
