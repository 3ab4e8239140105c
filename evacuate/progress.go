package evacuate

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
)

// What a running job tells about itself as it goes, besides its status:
// its ETA and per-job series at every look of its monitor at the
// counters, a line when it starts and when it ends, and its objects' skips
// and errors, summed up per cause (a dead source fails thousands of
// objects the same way: the log gets their first and then a line a
// minute with their count, not one line each).

// observe takes a look at the job's counters: it updates the ETA and the
// job's series.
func (r *runner) observe(now time.Time, counts []Count) {
	c := sumCounts(counts)
	discovered := r.discoveryFinished.Load()
	if r.sharkBytes.Load() == 0 && !discovered && r.job.RetryOf == "" && r.e.cfg.Capacity != nil {
		// Taken once: the evacuated shark's use does not change while the
		// job copies its objects elsewhere.
		if avail, pct, ok := r.e.cfg.Capacity(r.job.From.MantaStorageID); ok {
			if b, ok := usedBytes(avail, pct); ok {
				r.sharkBytes.Store(b)
			}
		}
	}
	paused, stopping := r.isPaused(), r.isStopping()
	objRate, byteRate := r.meter.rates()
	raw, estimated, ok := rawETA(c, discovered, objRate, byteRate, r.sharkBytes.Load())
	ok = ok && r.meter.span() >= etaWarmUp
	r.eta.update(now, raw, estimated, ok && !paused && !stopping && !r.job.Options.DryRun)

	state := rebalancer.JobRunning.Title()
	switch {
	case stopping:
		state = "Stopping"
	case paused:
		state = rebalancer.JobPaused.Title()
	}
	s := r.snapshot(state, c)
	s.posting, s.copying = r.fl.stages()
	s.metadata = r.mdq.len()
	if eta, _, ok := r.eta.value(); ok {
		s.eta, s.etaOK = eta.Seconds(), true
	}
	r.e.cfg.Metrics.setJob(s)
}

func (r *runner) snapshot(state string, c jobCounts) *jobSnapshot {
	return &jobSnapshot{id: r.job.ID, shark: r.job.From.MantaStorageID, state: state,
		objects: c.byStatus, bytes: c.bytesByStatus, remaining: c.remaining()}
}

// started logs the start of a run of the job.
func (r *runner) started(resumed bool) {
	o := r.job.Options
	msg := "job started"
	if resumed {
		msg = "job resumed after a restart"
	}
	r.log.Info(msg, "state", r.job.State.String(), "retry_of", r.job.RetryOf, "dry_run", o.DryRun,
		"max_objects", o.MaxObjects, "metadata_threads", o.MetadataThreads, "max_tasks_per_assignment", o.MaxTasksPerAssignment)
}

// ended logs how the job ended, with its counts, the bytes it moved and
// how long it ran, and gives its final figures to the metrics.
func (r *runner) ended(ctx context.Context, state rebalancer.JobState, msg string) {
	args := []any{"state", state.String()}
	if msg != "" {
		args = append(args, "err", msg)
	}
	counts, err := getCounts(ctx, r.store, r.job.ID)
	if err != nil {
		r.log.Warn("cannot read the counts of the job that ended", "err", err)
		r.log.Info("job ended", args...)
		r.e.cfg.Metrics.endJob(r.job.ID, nil)
		return
	}
	c := sumCounts(counts)
	args = append(args, "objects", c.objects, "complete", c.byStatus["complete"], "skipped", c.byStatus["skipped"],
		"errors", c.byStatus["error"], "not_final", c.remaining(), "bytes_moved", c.bytesByStatus["complete"])
	if j, err := r.e.Job(ctx, r.job.ID); err == nil && !j.StartedAt.IsZero() && !j.FinishedAt.IsZero() {
		args = append(args, "duration", j.FinishedAt.Sub(j.StartedAt))
	}
	// The verdict an operator retiring the shark looks for: everything the
	// job was to find was moved. A limited job (max_objects, excluded key
	// prefixes) or a dry run leaves objects behind by design.
	o := r.job.Options
	empty := state == rebalancer.JobComplete && !o.DryRun && o.MaxObjects == 0 && len(o.ExcludeKeyPrefixes) == 0 &&
		c.byStatus["skipped"] == 0 && c.byStatus["error"] == 0 && c.remaining() == 0
	args = append(args, "shark_empty", empty)
	j := r.job
	j.DiscoveryDone = r.discoveryFinished.Load() && r.discoveryErr.Load() == nil && !r.discoveryStopped.Load()
	v := verdict(j, counts)
	args = append(args, "objects_left", v.ObjectsLeft, "verdict", v.String())
	level := slog.LevelInfo
	if state == rebalancer.JobFailed {
		level = slog.LevelError
	}
	r.log.Log(ctx, level, "job ended", args...)
	if scanned, note, known, err := r.store.JobBuckets(ctx, r.job.ID); err == nil && known && !scanned {
		r.log.Warn("buckets (v2) objects were not scanned: the shark may still hold v2 objects this job did not move", "why", note)
	}
	r.e.cfg.Metrics.endJob(r.job.ID, r.snapshot(state.Title(), c))
}

// objectsEnded counts, and logs summed up per cause, the objects a stage
// just recorded. stage names where the outcome was decided: "placement",
// "copy", "metadata".
func (r *runner) objectsEnded(ctx context.Context, stage string, changes []jobstore.Change) {
	for _, c := range changes {
		r.e.cfg.Metrics.objectEnded(c)
		switch c.To {
		case rebalancer.ObjectSkipped:
			r.failures.Log(ctx, slog.LevelWarn, "objects skipped", errors.New(c.Skip.String()),
				"stage", stage, "object", c.ID, "detail", c.Detail)
		case rebalancer.ObjectError:
			r.failures.Log(ctx, slog.LevelWarn, "objects in error", errors.New(c.Error.String()),
				"stage", stage, "object", c.ID, "detail", c.Detail)
		}
	}
}

// copyFailed logs, summed up per reason, a copy an agent reported failed
// (objectsEnded then logs the skip, if it is final), and counts it against
// its source.
func (r *runner) copyFailed(ctx context.Context, p *planned, dest rebalancer.StorageNode, reason rebalancer.SkipReason, next rebalancer.ObjectStatus) {
	r.e.cfg.Metrics.copyFailed(p.source)
	r.sources.add(p.source, 0, true)
	r.failures.Log(ctx, slog.LevelInfo, "copies failed", errors.New(reason.String()),
		"object", p.row.ID, "source", p.source, "dest", dest.MantaStorageID, "attempt", p.row.Attempts+1, "next", next.String())
}

// Stopping reports whether the job runs here and was asked to stop: it
// waits for its copies in flight, then ends Stopped.
func (e *Engine) Stopping(id string) bool {
	r, err := e.runner(id)
	return err == nil && r.isStopping()
}

// StoreFailure returns the job store's failure at the engine's last check
// (see Health), nil when it worked, without checking again: for pages that
// are refreshed often.
func (e *Engine) StoreFailure() error { return e.storeFailure() }
