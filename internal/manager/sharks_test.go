package manager_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// destinations returns the sharks a job copied objects to.
func (r *running) destinations(id string) []string {
	r.t.Helper()
	seen := map[string]bool{}
	var after int64
	for {
		objs, err := r.client().Objects(context.Background(), id, jobapi.ObjectQuery{Status: rebalancer.ObjectComplete, Limit: 10000, After: after})
		if err != nil {
			r.t.Fatal(err)
		}
		if len(objs) == 0 {
			return slices.Sorted(maps.Keys(seen))
		}
		for _, o := range objs {
			seen[o.DestShark] = true
			after = o.Seq
		}
	}
}

func (r *running) evacuate(shark string) string {
	r.t.Helper()
	id := r.create(shark)
	if d := r.waitFor(id, "the end", terminal); d.State != rebalancer.JobComplete || d.Results.Complete == 0 {
		r.t.Fatalf("job on %s ended %s (%s): %+v", shark, d.State, d.Error, d.Results)
	}
	return id
}

// Issue 18's acceptance, through the production wiring on both job stores:
// evacuate shark A to Complete, then B; B's job puts nothing on A, and the
// check says A is safe to retire. After a restart A and B are still
// drained, and so out of every placement, also after a reload of the
// placement limits. A create for an unknown shark, and the retry of a dry
// run, are refused and store nothing.
func TestSharkLifecycle(t *testing.T) {
	const a, b, c, d, e = "1.stor.demo.example", "2.stor.demo.example", "3.stor.demo.example", "4.stor.demo.example", "5.stor.demo.example"
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			r := start(t, testbed.Config{Sharks: 5, Shards: 2, Objects: testbed.Objects{Count: 300, Pin: a, PinFraction: 0.5}}, withStore(t, store))
			ctx := context.Background()
			cl := r.client()

			r.evacuate(a)
			jb := r.evacuate(b)
			if got := r.destinations(jb); slices.Contains(got, a) {
				t.Errorf("the job on %s put copies on %s, evacuated before it: destinations %v", b, a, got)
			}
			check, err := cl.CheckShark(ctx, a, jobapi.CheckQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if !check.Safe || check.Objects != 0 || check.Shark.State != "drained" {
				t.Fatalf("check of %s: %+v", a, check)
			}
			rep, err := r.fleet.Verify(ctx, a)
			if err != nil || !rep.OK() {
				t.Fatalf("the fleet, verified for %s: %v %v", a, rep, err)
			}

			r.restart()
			cl = r.client()
			for _, s := range []string{a, b} {
				if got, err := cl.Shark(ctx, s); err != nil || got.State != "drained" || got.ChangedBy != "job" {
					t.Errorf("after a restart, %s is %+v (%v)", s, got, err)
				}
			}
			jc := r.evacuate(c)
			if got := r.destinations(jc); slices.Contains(got, a) || slices.Contains(got, b) {
				t.Errorf("after a restart, the job on %s put copies on evacuated sharks: destinations %v", c, got)
			}

			// A reload of the placement limits keeps them out.
			next := maps.Clone(r.cfg)
			next["blocklist_sharks"] = []string{e}
			if _, err := r.m.Reload(ctx, parse(t, next)); err != nil {
				t.Fatal(err)
			}
			excluded := map[string]bool{}
			for _, dest := range r.m.Placement().Capacity().Destinations {
				if dest.Excluded {
					excluded[dest.MantaStorageID] = true
				}
			}
			if want := map[string]bool{a: true, b: true, c: true}; !maps.Equal(excluded, want) {
				t.Errorf("after a reload, the placement excludes %v, want %v", excluded, want)
			}
			sharks, err := cl.Sharks(ctx)
			if err != nil {
				t.Fatal(err)
			}
			states := map[string]string{}
			for _, s := range sharks {
				states[s.MantaStorageID] = s.State
				if s.Blocklisted {
					states[s.MantaStorageID] += ", blocklisted"
				}
			}
			if want := map[string]string{a: "drained", b: "drained", c: "drained", d: "in_service", e: "in_service, blocklisted"}; !maps.Equal(states, want) {
				t.Errorf("sharks %v, want %v", states, want)
			}

			// Refused: an unknown shark, the retry of a dry run.
			before, err := cl.Jobs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var apiErr *jobapi.Error
			if _, err := cl.CreateJob(ctx, jobapi.CreateParams{FromShark: "no.such.shark"}); !errors.As(err, &apiErr) || apiErr.Code != 422 {
				t.Errorf("create on no.such.shark: %v", err)
			}
			if _, err := cl.CreateJob(ctx, jobapi.CreateParams{FromShark: "4.stor.demo.exmaple"}); err == nil ||
				!strings.Contains(err.Error(), "did you mean 4.stor.demo.example?") || strings.Contains(err.Error(), "exmaple.demo.example") {
				t.Errorf("create on a misspelt shark: %v", err)
			}
			if after, err := cl.Jobs(ctx); err != nil || !slices.Equal(after, before) {
				t.Errorf("refused creates changed the job list: %d jobs before, %d after (%v)", len(before), len(after), err)
			}
			// A dry run of e, blocklisted: its objects, on d and e, have
			// nowhere to go.
			dry, err := cl.CreateJob(ctx, jobapi.CreateParams{FromShark: e, DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if st := r.waitFor(dry, "the end", terminal); st.State != rebalancer.JobComplete || st.DryRun == nil || st.Results.Complete != 0 {
				t.Fatalf("dry run ended %s: %+v", st.State, st.Results)
			}
			if _, err := cl.RetryJob(ctx, dry); !errors.As(err, &apiErr) || apiErr.Code != 409 {
				t.Errorf("retry of a dry run: %v", err)
			}
			jobs, err := cl.Jobs(ctx)
			if err != nil || len(jobs) != len(before)+1 || !jobs[len(jobs)-1].DryRun {
				t.Errorf("jobs after the dry run and its refused retry: %+v (%v)", jobs, err)
			}
			if got, _ := cl.Shark(ctx, e); got == nil || got.State != "in_service" || !got.Blocklisted {
				t.Errorf("a dry run changed %s's state: %+v", e, got)
			}
		})
	}
}
