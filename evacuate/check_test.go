package evacuate

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// groupsOf returns a check's groups as "kind/reason: n", with the job
// replaced by its name in jobs.
func groupsOf(c SharkCheck, jobs map[string]string) map[string]int64 {
	out := map[string]int64{}
	for _, g := range c.Groups {
		k := g.Kind
		if g.Reason != "" {
			k += "/" + g.Reason
		}
		if g.Job != "" {
			k += " in " + jobs[g.Job]
		}
		out[k] += g.Objects
	}
	return out
}

// A job keeps the cause of each skip and counts skips by source shark;
// once it ends, it says how many objects still name its shark. The shark
// check then finds, afresh, every metadata record naming the shark and
// says why each is there; it is safe only once none is and the shark is
// out of service.
func TestCausesVerdictAndCheck(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, 60, func(i int) []rebalancer.StorageNode {
			switch {
			case i < 5:
				return []rebalancer.StorageNode{fakes.Shark(1)} // the only copy
			case i < 25:
				return []rebalancer.StorageNode{fakes.Shark(1), fakes.Shark(7)} // 7's copies cannot be read
			}
			return []rebalancer.StorageNode{fakes.Shark(1), fakes.Shark(2)}
		})
		h.freshDiscovery(h.engine)
		ctx := context.Background()
		shark := h.from.MantaStorageID
		for i := 55; i < 60; i++ {
			h.moray.Delete(h.objs[i].Shard, h.objs[i].Key) // not there any more
			h.objs[i] = h.moray.Put(h.objs[i].Shard, fakes.ObjectValue("acct", fmt.Sprintf("10000000-0000-4000-8000-%012d", i), 10,
				fakes.Shark(1), fakes.Shark(2)))
		}
		h.agents.SetFailTask(func(t rebalancer.Task) rebalancer.SkipReason {
			if t.Source.MantaStorageID == "7.stor.test" {
				return rebalancer.SkipSourceOtherError
			}
			return 0
		})
		o := fastOptions()
		o.ExcludeKeyPrefixes = []string{"/stor/logs/"}
		for i := 50; i < 55; i++ { // under an excluded prefix
			obj := h.objs[i]
			h.moray.Delete(obj.Shard, obj.Key)
			v := strings.Replace(string(fakes.ObjectValue("acct", obj.ID, 10, fakes.Shark(1), fakes.Shark(2))), "/acct/stor/", "/acct/stor/logs/", 1)
			h.objs[i] = h.moray.Put(obj.Shard, []byte(v))
		}
		j, st := h.run(o)
		if j.State != rebalancer.JobComplete {
			t.Fatalf("job ended %v %q", j.State, j.Error)
		}
		if got := h.check(j.ID); got["skipped/source_other_error"] != 20 || got["skipped/source_is_evac_shark"] != 5 || got["complete"] != 30 {
			t.Fatalf("counts %v", got)
		}

		// The cause, and the source.
		objs, err := h.engine.Objects(ctx, j.ID, rebalancer.ObjectSkipped, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range objs {
			if obj.SkipReason != "source_other_error" {
				continue
			}
			if obj.Source != "7.stor.test" || !strings.Contains(obj.Detail, "copy from 7.stor.test failed: copy from 7.stor.test: source_other_error") {
				t.Errorf("skipped object recorded source %q, detail %q", obj.Source, obj.Detail)
			}
		}
		wantBySource := []SourceCount{{"7.stor.test", "skipped", "source_other_error", 20}, {"", "skipped", "source_is_evac_shark", 5}}
		if !reflect.DeepEqual(st.BySource, wantBySource) {
			t.Errorf("by source %+v, want %+v", st.BySource, wantBySource)
		}
		recount, err := h.js.RecountSources(ctx, j.ID)
		if err != nil || len(recount) != 2 {
			t.Errorf("recount by source %+v %v", recount, err)
		}
		if v := st.Verdict; v == nil || v.ObjectsLeft != 25 || !v.DiscoveryDone || !strings.Contains(v.String(), "25 objects the job found still name 1.stor.test") ||
			!strings.Contains(v.String(), "/stor/logs/") {
			t.Errorf("verdict %+v: %v", v, v)
		}

		// The check: 25 skipped, 5 excluded, 5 written since (the ones
		// deleted and written again under new ids).
		for i := 55; i < 60; i++ {
			h.objs = append(h.objs, h.moray.Put(i%3, fakes.ObjectValue("acct", fmt.Sprintf("20000000-0000-4000-8000-%012d", i), 10,
				fakes.Shark(1), fakes.Shark(2))))
		}
		jobsBefore, _ := h.engine.Jobs(ctx)
		c, err := h.engine.CheckShark(ctx, shark, CheckOptions{Examples: 2})
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]string{j.ID: "job"}
		want := map[string]int64{"skipped/source_other_error in job": 20, "skipped/source_is_evac_shark in job": 5,
			"excluded//stor/logs/ in job": 5, "not_found": 5}
		if got := groupsOf(c, names); !reflect.DeepEqual(got, want) || c.Objects != 35 || c.Safe {
			t.Errorf("check: %d objects, safe %v, groups %v; want 35, false, %v", c.Objects, c.Safe, got, want)
		}
		if c.V2NotScanned != DefaultNotScanned {
			t.Errorf("check of an engine without buckets: V2NotScanned %q, want %q", c.V2NotScanned, DefaultNotScanned)
		}
		for _, g := range c.Groups {
			if len(g.Examples) != 2 {
				t.Errorf("group %s/%s lists %d examples, want 2", g.Kind, g.Reason, len(g.Examples))
			}
			if g.Reason == "source_other_error" && (g.Examples[0].Source != "7.stor.test" || g.Examples[0].Detail == "") {
				t.Errorf("example %+v", g.Examples[0])
			}
		}
		if c.Latest == nil || c.Latest.ID != j.ID || len(c.Running) != 0 || c.Shark.State != SharkDrained {
			t.Errorf("check: latest %v, running %v, shark %+v", c.Latest, c.Running, c.Shark)
		}
		if jobsAfter, _ := h.engine.Jobs(ctx); len(jobsAfter) != len(jobsBefore) {
			t.Errorf("the check stored a job")
		}

		// Fixed: the source readable again, the single copies gone, and a
		// new evacuation without exclusions finds the rest.
		h.agents.SetFailTask(nil)
		for i := range 5 {
			h.moray.Delete(h.objs[i].Shard, h.objs[i].Key)
		}
		j2 := h.evacuate(h.engine, h.from, fastOptions())
		if st, _ := h.engine.JobStatus(ctx, j2.ID); st.Verdict == nil || st.Verdict.ObjectsLeft != 0 ||
			st.Verdict.String() != "no object the job found names 1.stor.test any more" {
			t.Errorf("second job's verdict %+v", st.Verdict)
		}
		c, err = h.engine.CheckShark(ctx, shark, CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !c.Safe || c.Objects != 0 || len(c.Groups) != 0 || c.Latest.ID != j2.ID {
			t.Errorf("after the second job, check %+v", c)
		}
		// Put back in service, an empty shark is not safe: copies may land
		// on it.
		if _, err := h.engine.SetSharkState(ctx, shark, SharkInService, ""); err != nil {
			t.Fatal(err)
		}
		if c, err = h.engine.CheckShark(ctx, shark, CheckOptions{}); err != nil || c.Safe {
			t.Errorf("check of an empty shark in service: safe %v, %v", c.Safe, err)
		}
		var unknown *UnknownSharkError
		if _, err := h.engine.CheckShark(ctx, "1.stor.tset", CheckOptions{}); !errors.As(err, &unknown) {
			t.Errorf("check of an unknown shark: %v", err)
		}
	})
}

// A long scan reports its progress; only MaxSharkChecks run at once; a
// scan that fails fails the check.
func TestCheckProgressAndLimits(t *testing.T) {
	h := newHarness(t, t.TempDir()+"/jobs.db", 1, nil)
	ctx := context.Background()
	release := make(chan struct{})
	h.engine.cfg.Source = func(JobRecord) (rebalancer.ObjectSource, error) {
		return fakes.BlockingSource{Object: h.objs[0], Release: release}, nil
	}
	progress := make(chan CheckProgress, 100)
	results := make(chan error, MaxSharkChecks)
	for range MaxSharkChecks {
		go func() {
			_, err := h.engine.CheckShark(ctx, h.from.MantaStorageID, CheckOptions{ProgressInterval: 5e6,
				Progress: func(p CheckProgress) {
					select {
					case progress <- p:
					default:
					}
				}})
			results <- err
		}()
	}
	if p := testutil.Receive(t, "progress", progress); p.Objects != 1 || p.Elapsed <= 0 {
		t.Errorf("progress %+v", p)
	}
	// Both checks hold their slot once each has reported progress.
	testutil.Eventually(t, "both checks running", func() bool { return len(h.engine.checks) == MaxSharkChecks })
	if _, err := h.engine.CheckShark(ctx, h.from.MantaStorageID, CheckOptions{}); !errors.Is(err, ErrChecksBusy) {
		t.Errorf("a third check: %v", err)
	}
	close(release)
	for range MaxSharkChecks {
		if err := testutil.Receive(t, "a check's end", results); err != nil {
			t.Error(err)
		}
	}
	h.engine.cfg.Source = func(JobRecord) (rebalancer.ObjectSource, error) {
		return &fakes.Source{Objects: h.objs, FailAt: 1}, nil
	}
	h.objs = append(h.objs, h.objs[0])
	if _, err := h.engine.CheckShark(ctx, h.from.MantaStorageID, CheckOptions{}); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("a check whose scan fails: %v", err)
	}
}
