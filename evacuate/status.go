package evacuate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

// Status is what is known of a job: its record, exact counters, and for a
// running job its current rates. Package jobapi serves it as the legacy
// GET /jobs/{uuid} document, with new fields beside the legacy ones.
type Status struct {
	Job        JobRecord
	Counts     []Count
	Duplicates int64
	Running    bool
	// ObjectsPerSecond and BytesPerSecond are over the last minute for a
	// running job, and over its whole run otherwise.
	ObjectsPerSecond float64
	BytesPerSecond   float64
	// Stopping is set for a job running here that was asked to stop: it
	// waits for the copies in flight, and then ends Stopped.
	Stopping bool
	// ETA, when HasETA, is how long the job should still take: for a
	// running job that is neither paused nor stopping, once it has a
	// rate. While discovery runs it is an estimate (ETAEstimated) from
	// what storinfo says the shark holds; it is smoothed so that it does
	// not jump (eta.go).
	ETA          time.Duration
	HasETA       bool
	ETAEstimated bool
	// DryRun, for a dry run, is its report: where objects would go.
	DryRun *DryRunReport
	// Buckets is what the job did about buckets (v2) objects: whether it
	// looked for them, their own counters, and their multipart uploads.
	Buckets BucketsStatus
	// BySource counts the skipped and errored objects by the source shark
	// their copy was read from, largest first: many failures reading
	// from one shark say that shark is in trouble.
	BySource []SourceCount
	// Verdict, once the job has ended, says how many of the objects it
	// found still name its shark.
	Verdict *Verdict
}

// DryRunReport is what a dry run found.
type DryRunReport struct {
	Objects      int64                        `json:"objects"`
	Bytes        int64                        `json:"bytes"`
	SingleCopy   int64                        `json:"single_copy_objects"`
	Unplaceable  int64                        `json:"unplaceable_objects"`
	Destinations map[string]DryRunDestination `json:"destinations"`
}

// DryRunDestination is what a dry run would put on one destination.
type DryRunDestination struct {
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// PercentUsed is how full the destination is now, and
	// ProjectedPercentUsed how full it would be with these bytes on it;
	// both absent when the engine has no capacity figures for it.
	PercentUsed          *float64 `json:"percent_used,omitempty"`
	ProjectedPercentUsed *float64 `json:"projected_percent_used,omitempty"`
}

// project fills in a destination's projected use from its current free
// space and use, as minnow reports them (percent used is of the whole
// filesystem, so its size is available / (1 - used)).
func (d *DryRunDestination) project(availableMB int64, percentUsed float64) {
	pct := percentUsed
	d.PercentUsed = &pct
	if percentUsed >= 100 {
		d.ProjectedPercentUsed = &pct
		return
	}
	totalMB := float64(availableMB) / (1 - percentUsed/100)
	if totalMB <= 0 {
		return
	}
	usedMB := totalMB - float64(availableMB) + float64(d.Bytes)/(1<<20)
	proj := usedMB / totalMB * 100
	d.ProjectedPercentUsed = &proj
}

// Total returns the number of objects in status (all reasons).
func (s *Status) Total(status rebalancer.ObjectStatus) (n, bytes int64) {
	for _, c := range s.Counts {
		if c.Status == status.String() {
			n += c.N
			bytes += c.Bytes
		}
	}
	return n, bytes
}

// Remaining is the number of objects not yet in a terminal status.
func (s *Status) Remaining() int64 {
	var n int64
	for _, st := range []rebalancer.ObjectStatus{rebalancer.ObjectUnprocessed, rebalancer.ObjectAssigned, rebalancer.ObjectPostProcessing} {
		v, _ := s.Total(st)
		n += v
	}
	return n
}

// JobStatus reads a job's status. For a job running here whose progress
// is held up by the job store (see Engine.Health), the status says so in
// Job.Error; and when the store cannot be read at all, such a job's status
// is what the engine last knew of it, with the store's error.
func (e *Engine) JobStatus(ctx context.Context, id string) (Status, error) {
	e.mu.Lock()
	r := e.running[id]
	e.mu.Unlock()
	st, err := e.storedStatus(ctx, id)
	if err != nil {
		if r == nil || errors.Is(err, ErrJobNotFound) {
			return Status{}, err
		}
		return r.lastStatus(fmt.Errorf("job store unavailable: %w", err)), nil
	}
	if r != nil {
		st.Running = true
		st.ObjectsPerSecond, st.BytesPerSecond = r.meter.rates()
		st.Stopping = r.isStopping()
		st.ETA, st.ETAEstimated, st.HasETA = r.eta.value()
		if err := r.trouble(); err != nil && !st.Job.State.Terminal() {
			st.Job.Error = "held up by the job store: " + err.Error()
		}
	}
	return st, nil
}

// lastStatus is a running job's status from memory, with why the store
// could not give it.
func (r *runner) lastStatus(err error) Status {
	st := Status{Running: true}
	if j := r.known.Load(); j != nil {
		st.Job = *j
	}
	if c := r.lastCounts.Load(); c != nil {
		st.Counts = *c
	}
	st.Job.Error = err.Error()
	st.ObjectsPerSecond, st.BytesPerSecond = r.meter.rates()
	return st
}

// storedStatus reads a job's status from the store.
func (e *Engine) storedStatus(ctx context.Context, id string) (Status, error) {
	j, err := e.Job(ctx, id)
	if err != nil {
		return Status{}, err
	}
	counts, err := getCounts(ctx, e.store, id)
	if err != nil {
		return Status{}, err
	}
	dups, _, err := e.store.Duplicates(ctx, id, 0)
	if err != nil {
		return Status{}, err
	}
	st := Status{Job: j, Counts: counts, Duplicates: dups}
	if st.Buckets, err = e.bucketsStatus(ctx, id); err != nil {
		return Status{}, err
	}
	bySource, err := e.store.SourceCounts(ctx, id)
	if err != nil {
		return Status{}, err
	}
	for _, c := range bySource {
		st.BySource = append(st.BySource, SourceCount(c))
	}
	sortSourceCounts(st.BySource)
	if j.State.Terminal() {
		v := verdict(j, counts)
		st.Verdict = &v
	}
	if !j.StartedAt.IsZero() {
		end := j.FinishedAt
		if end.IsZero() {
			end = j.UpdatedAt
		}
		if secs := end.Sub(j.StartedAt).Seconds(); secs > 0 {
			n, b := st.Total(rebalancer.ObjectComplete)
			st.ObjectsPerSecond, st.BytesPerSecond = float64(n)/secs, float64(b)/secs
		}
	}
	if j.Options.DryRun {
		rep := &DryRunReport{Destinations: map[string]DryRunDestination{}}
		for _, c := range counts {
			rep.Objects += c.N
			rep.Bytes += c.Bytes
			if c.Status == rebalancer.ObjectSkipped.String() {
				if c.Reason == rebalancer.SkipSourceIsEvacShark.String() {
					rep.SingleCopy += c.N
				} else {
					rep.Unplaceable += c.N
				}
			}
		}
		dests, err := e.store.Destinations(ctx, id, rebalancer.ObjectUnprocessed)
		if err != nil {
			return Status{}, err
		}
		for d, v := range dests {
			dd := DryRunDestination{Objects: v[0], Bytes: v[1]}
			if e.cfg.Capacity != nil {
				if avail, pct, ok := e.cfg.Capacity(d); ok {
					dd.project(avail, pct)
				}
			}
			rep.Destinations[d] = dd
		}
		st.DryRun = rep
	}
	return st, nil
}

// SkipBreakdown returns skip counts by reason, largest first.
func (s *Status) SkipBreakdown() []Count {
	var out []Count
	for _, c := range s.Counts {
		if c.Status == rebalancer.ObjectSkipped.String() || c.Status == rebalancer.ObjectError.String() {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].N > out[j].N })
	return out
}
