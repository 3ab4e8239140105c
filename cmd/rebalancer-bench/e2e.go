package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
)

// benchE2E evacuates a shark of the in-process Manta the demo runs (real
// agents writing files, Moray over Fast, storinfo over HTTP, the SQLite
// job store): every object has a copy on the evacuated shark, so every
// object moves. Objects/s counts objects from job creation to the job's
// end; time to first copy is from job creation to the first object whose
// metadata names its new copy. Each size is evacuated three times and the
// median run reported: one run's time varies by about 15% with how
// placement happens to spread the objects, and more with what else the
// machine runs.
func benchE2E(ctx context.Context, o Options) ([]Figure, error) {
	var figs []Figure
	runs := pick(o.Quick, 1, 3)
	small, err := evacuations(ctx, o, runs, pick(o.Quick, 50, 20000), 4<<10)
	if err != nil {
		return nil, fmt.Errorf("4 KiB objects: %w", err)
	}
	rate := func(r evacuationRun) float64 { return float64(r.objects) / r.total.Seconds() }
	mid := median(small, rate)
	f := Figure{Name: "evacuation, 4 KiB objects", Unit: "objects/s", Value: rate(mid), Target: ">= 5000", Met: met(rate(mid) >= 5000),
		Note: fmt.Sprintf("%d objects, median of %d runs (%s objects/s)", mid.objects, runs, list(small, rate, "%.0f"))}
	if !*f.Met {
		f.Note += "; everything shares two cores: the destination agents' per-object work (see the agent's 4 KiB figure), " +
			"the sharks serving the sources, Moray and the manager's job store; run with --profile-dir to see where the time goes"
	}
	figs = append(figs, f)
	first := func(r evacuationRun) float64 { return r.first.Seconds() }
	figs = append(figs, Figure{Name: "time to first copied object, 4 KiB objects", Unit: "s", Value: first(median(small, first)),
		Note: fmt.Sprintf("median of %d runs (%s s)", runs, list(small, first, "%.3f"))})

	large, err := evacuations(ctx, o, runs, pick(o.Quick, 1, 48), 16<<20)
	if err != nil {
		return figs, fmt.Errorf("16 MiB objects: %w", err)
	}
	firstLarge := first(median(large, first))
	figs = append(figs, Figure{Name: "time to first copied object, 16 MiB objects", Unit: "s", Value: firstLarge,
		Target: "< 1", Met: met(firstLarge < 1), Note: fmt.Sprintf("median of %d runs (%s s)", runs, list(large, first, "%.3f"))})
	mbs := func(r evacuationRun) float64 { return float64(r.bytes) / 1e6 / r.total.Seconds() }
	mid = median(large, mbs)
	figs = append(figs, Figure{Name: "evacuation, 16 MiB objects", Unit: "MB/s", Value: mbs(mid),
		Note: fmt.Sprintf("%d objects of 16 MiB, median of %d runs (%s MB/s)", mid.objects, runs, list(large, mbs, "%.0f"))})
	return figs, nil
}

// evacuations runs evacuation n times.
func evacuations(ctx context.Context, o Options, n, objects int, size int64) ([]evacuationRun, error) {
	var runs []evacuationRun
	for range n {
		r, err := evacuation(ctx, o, objects, size)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// median returns the run whose figure by is the median (of an even
// number, the lower middle one).
func median(runs []evacuationRun, by func(evacuationRun) float64) evacuationRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b evacuationRun) int { return cmp.Compare(by(a), by(b)) })
	return s[(len(s)-1)/2]
}

// list formats every run's figure, in the order they ran.
func list(runs []evacuationRun, by func(evacuationRun) float64, format string) string {
	var out []string
	for _, r := range runs {
		out = append(out, fmt.Sprintf(format, by(r)))
	}
	return strings.Join(out, ", ")
}

type evacuationRun struct {
	objects int
	bytes   int64
	total   time.Duration // job creation to the job's end
	first   time.Duration // job creation to the first object complete
}

// evacuation populates a fleet like the demo's (six sharks in three
// datacenters, two copies of each object) with n objects of size bytes,
// all with a copy on the shark it then evacuates, and times the job.
func evacuation(ctx context.Context, o Options, n int, size int64) (evacuationRun, error) {
	dir, err := os.MkdirTemp(o.Dir, "e2e-")
	if err != nil {
		return evacuationRun{}, err
	}
	defer os.RemoveAll(dir)
	const evacuated = "1.stor.demo.example"
	fmt.Fprintf(o.Log, "   populating %d objects of %d bytes\n", n, size)
	f, err := testbed.Start(ctx, testbed.Config{Sharks: 6, Datacenters: 3, Dir: dir, Logger: o.Logger,
		Objects: testbed.Objects{Count: n, MinSize: size, MaxSize: size, Pin: evacuated, Seed: 1}})
	if err != nil {
		return evacuationRun{}, err
	}
	defer f.Close()
	e, err := f.NewEngine(ctx, nil)
	if err != nil {
		return evacuationRun{}, err
	}

	start := time.Now()
	j, err := e.CreateJob(ctx, evacuated, testbed.FastJobOptions())
	if err != nil {
		return evacuationRun{}, err
	}
	run := evacuationRun{objects: n, bytes: int64(n) * size}
	// Watch for the first completed object while the job runs; status
	// reads are cheap (maintained counters) and do not slow the job.
	for run.first == 0 {
		st, err := e.JobStatus(ctx, j.ID)
		if err != nil {
			return run, err
		}
		if n, _ := st.Total(rebalancer.ObjectComplete); n > 0 || st.Job.State.Terminal() {
			run.first = time.Since(start)
			break
		}
		if !retry.Sleep(ctx, time.Millisecond) {
			return run, ctx.Err()
		}
	}
	rec, err := e.Wait(ctx, j.ID)
	if err != nil {
		return run, err
	}
	run.total = time.Since(start)
	if rec.State != rebalancer.JobComplete {
		return run, fmt.Errorf("job %s ended %s: %s", j.ID, rec.State, rec.Error)
	}
	st, err := e.JobStatus(ctx, j.ID)
	if err != nil {
		return run, err
	}
	if got, _ := st.Total(rebalancer.ObjectComplete); got != int64(n) {
		return run, fmt.Errorf("job %s: %d objects complete, want %d: %v", j.ID, got, n, st.Counts)
	}
	fmt.Fprintf(o.Log, "   %d objects in %s, first copy after %s\n", n, run.total.Round(time.Millisecond), run.first.Round(time.Millisecond))
	return run, nil
}
