package evacuate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
)

// poll checks every accepted assignment each PollInterval, at most
// PollConcurrency at a time, until its agent reports it complete.
func (r *runner) poll(ctx context.Context) error {
	o := r.job.Options
	interval := o.PollInterval.D()
	t := time.NewTicker(max(interval/2, 10*time.Millisecond))
	defer t.Stop()
	sem := make(chan struct{}, o.PollConcurrency)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		for _, a := range r.fl.due(time.Now(), interval) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				r.fl.polled(a)
				return ctx.Err()
			}
			r.fl.goTracked(func() {
				defer func() { <-sem }()
				r.pollOne(ctx, a)
			})
		}
	}
}

// pollOne asks an agent about one assignment and acts on the answer.
func (r *runner) pollOne(ctx context.Context, a *assignment) {
	defer r.fl.polled(a)
	o := r.job.Options
	got, err := r.e.cfg.Agent.GetAssignment(ctx, a.dest, a.id)
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	switch {
	case errors.Is(err, rebalancer.ErrAssignmentNotFound):
		// The agent lost an assignment it accepted (an operator deleted
		// it, or its state was reset). Post it once more under the same
		// id: the agent finds the copies it already made verified on
		// disk and reports them, so they are used rather than orphaned.
		// If it loses it again, its objects are skipped, not placed
		// elsewhere: a copy of each may be on this destination already.
		r.fl.mu.Lock()
		a.notFound++
		n := a.notFound
		r.fl.mu.Unlock()
		if n > 1 {
			r.abandon(ctx, a, rebalancer.SkipAgentAssignmentNoEnt, "the agent lost the assignment, posted again, twice", false)
			return
		}
		r.log.Warn("agent does not know an accepted assignment; posting it again", "assignment", a.id, "dest", a.dest.MantaStorageID)
		r.fl.unwatch(a)
		r.startPost(ctx, a)
		return
	case err != nil:
		r.fl.mu.Lock()
		if a.unreachableSince.IsZero() {
			a.unreachableSince = now
		}
		since := a.unreachableSince
		r.fl.mu.Unlock()
		if now.Sub(since) >= o.AgentUnreachableTimeout.D() {
			r.abandon(ctx, a, rebalancer.SkipNetworkError, fmt.Sprintf("agent unreachable since %s: %v", since.Format(time.RFC3339), err), true)
			return
		}
		r.log.Debug("cannot check assignment; will retry", "assignment", a.id, "dest", a.dest.MantaStorageID, "err", err)
		return
	}
	r.fl.mu.Lock()
	a.unreachableSince = time.Time{}
	posted := a.posted
	r.fl.mu.Unlock()
	if got.Stats.State.Phase != rebalancer.AssignmentComplete {
		if !posted.IsZero() && now.Sub(posted) >= o.AssignmentTimeout.D() {
			r.abandon(ctx, a, rebalancer.SkipAgentAssignmentTimeout,
				fmt.Sprintf("still %s %s after it was accepted", got.Stats.State, now.Sub(posted).Round(time.Second)), true)
		}
		return
	}
	r.complete(ctx, a, got)
}

// complete records an agent's results. Only a task the agent reports copied
// goes on to a metadata update; a reply that does not add up (counts that
// do not match, unknown or missing tasks) is not trusted at all, because
// "Complete" with nothing failed is how a legacy agent reports a task it
// silently lost (docs/compatibility.md, Manager behaviour).
func (r *runner) complete(ctx context.Context, a *assignment, got rebalancer.Assignment) {
	if problem := checkReply(a, got); problem != "" {
		r.log.Error("agent reply does not match the assignment; no copy of it is trusted",
			"assignment", a.id, "dest", a.dest.MantaStorageID, "problem", problem)
		r.abandon(ctx, a, rebalancer.SkipAssignmentMismatch, "agent reply does not match the assignment: "+problem, true)
		return
	}
	failed := make(map[string]rebalancer.Task, len(got.Stats.State.Failed))
	for _, t := range got.Stats.State.Failed {
		failed[t.ObjectID] = t
	}
	var changes []jobstore.Change
	var copied int64
	succeeded := 0
	for _, p := range a.order {
		task, bad := failed[p.row.ID]
		if !bad {
			changes = append(changes, jobstore.Change{ID: p.row.ID, Bytes: p.row.ContentLength, To: rebalancer.ObjectPostProcessing})
			copied += p.row.ContentLength
			succeeded++
			r.e.cfg.Metrics.copied(a.dest.MantaStorageID, p.source, p.row.ContentLength)
			r.sources.add(p.source, p.row.ContentLength, false)
			continue
		}
		c := r.taskFailure(p, a.dest, task)
		r.copyFailed(ctx, p, a.dest, task.Status.Reason, c.To)
		changes = append(changes, c)
	}
	r.record(ctx, a, changes, copied)
	r.e.cfg.Metrics.assignmentDone(time.Since(a.born))
	if succeeded > 0 {
		// A static job's queue is bounded: the poller waits here while it
		// is full. If the job stops meanwhile, the objects stay
		// post_processing, which the next run queues again (restore).
		r.mdq.pushWait(ctx, a.id)
	}
	// The agent's record is not needed any more; deleting it keeps agents
	// from accumulating completed assignments (the legacy never cleaned up).
	r.fl.goTracked(func() {
		if err := r.e.cfg.Agent.DeleteAssignment(ctx, a.dest, a.id); err != nil && ctx.Err() == nil {
			r.log.Debug("cannot delete a finished assignment from its agent", "assignment", a.id, "err", err)
		}
	})
}

// checkReply returns what is wrong with a completed assignment's reply, or "".
func checkReply(a *assignment, got rebalancer.Assignment) string {
	st := got.Stats
	switch {
	case !strings.EqualFold(got.UUID, a.id):
		return fmt.Sprintf("reply is about assignment %q", got.UUID)
	case st.Total != len(a.order):
		return fmt.Sprintf("agent counts %d tasks, the assignment has %d", st.Total, len(a.order))
	case st.Complete != st.Total:
		return fmt.Sprintf("complete with %d of %d tasks processed", st.Complete, st.Total)
	case st.Failed != len(st.State.Failed):
		return fmt.Sprintf("agent counts %d failures but lists %d", st.Failed, len(st.State.Failed))
	}
	seen := map[string]bool{}
	for _, t := range st.State.Failed {
		if a.objects[t.ObjectID] == nil {
			return fmt.Sprintf("failed task %s is not in the assignment", t.ObjectID)
		}
		if seen[t.ObjectID] {
			return fmt.Sprintf("failed task %s listed twice", t.ObjectID)
		}
		seen[t.ObjectID] = true
	}
	return ""
}

// taskFailure decides what happens to an object whose copy failed: another
// attempt (from another copy, or on another destination) when that may
// help, otherwise a skip with the agent's reason. The detail keeps the
// cause the agent gives (a Go agent does: "dial tcp ...: connection
// refused"; a legacy one only names the reason).
func (r *runner) taskFailure(p *planned, dest rebalancer.StorageNode, failed rebalancer.Task) jobstore.Change {
	reason := failed.Status.Reason
	cause := reason.String()
	if d := strings.TrimSpace(failed.Detail); d != "" {
		cause = rebalancer.TruncateDetail(d)
	}
	c := jobstore.Change{ID: p.row.ID, Bytes: p.row.ContentLength, To: rebalancer.ObjectSkipped, Skip: reason, Source: p.source,
		Detail: fmt.Sprintf("agent on %s: copy from %s failed: %s", dest.MantaStorageID, p.source, cause)}
	if mpuPart(p.obj) {
		if _, ok := reason.HTTPStatus(); ok || reason == rebalancer.SkipSourceObjectNotFound {
			// A multipart-upload part whose data is gone (legacy
			// reclassification).
			c.Skip = rebalancer.SkipMPUPartNoData
			return c
		}
	}
	if p.row.Attempts+1 >= r.job.Options.MaxAttempts {
		return c
	}
	otherSource := false
	for _, s := range p.obj.Sharks {
		if s.MantaStorageID != r.job.From.MantaStorageID && s.MantaStorageID != p.source {
			otherSource = true
		}
	}
	code, isHTTP := reason.HTTPStatus()
	switch {
	case reason == rebalancer.SkipAgentFSError:
		// The destination's disk: try another destination.
		c.To, c.Avoid = rebalancer.ObjectUnprocessed, dest.MantaStorageID
	case reason == rebalancer.SkipSourceOtherError, reason == rebalancer.SkipNetworkError, isHTTP && code >= 500:
		// The source was unreachable or failing: that may pass, and the
		// next attempt reads another copy when there is one.
		c.To = rebalancer.ObjectUnprocessed
	case otherSource && (reason == rebalancer.SkipMD5Mismatch || reason == rebalancer.SkipSourceObjectNotFound || isHTTP):
		// This copy is bad or missing, but another copy exists.
		c.To = rebalancer.ObjectUnprocessed
	}
	if c.To == rebalancer.ObjectUnprocessed {
		c.Skip = 0
	}
	return c
}

// mpuPart reports whether an object is a part of a buckets multipart upload.
func mpuPart(o rebalancer.Object) bool {
	return o.IsBucket && strings.HasPrefix(o.Name, ".mpu-parts/")
}
