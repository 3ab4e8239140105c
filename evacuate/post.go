package evacuate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
)

// statusCoder is implemented by agent client errors that carry the HTTP
// status of a reply the client did not expect.
type statusCoder interface{ StatusCode() int }

func httpStatus(err error) (int, bool) {
	var sc statusCoder
	if errors.As(err, &sc) {
		return sc.StatusCode(), true
	}
	return 0, false
}

// startPost hands an assignment to its agent in a goroutine of its own, so
// that one busy or unreachable agent never holds up the others.
func (r *runner) startPost(ctx context.Context, a *assignment) {
	r.fl.goTracked(func() { r.post(ctx, a) })
}

// post sends an assignment, waiting for a slot on its destination first.
// An agent that already has the assignment (409: an earlier POST got through
// before a timeout or a manager restart) has accepted it.
func (r *runner) post(ctx context.Context, a *assignment) {
	if !r.fl.acquireDest(ctx, a) {
		return // shutting down: the assignment stays stored, to be posted again
	}
	posted := false
	defer func() {
		if !posted {
			r.fl.releaseDest(a)
		}
	}()
	o := r.job.Options
	busy, unreachable := 0, 0
	for {
		if !r.active(ctx) {
			if ctx.Err() != nil {
				return
			}
			// Stopping before the agent has it: give the objects back.
			r.abandon(ctx, a, 0, "job stopped before the assignment was sent", false)
			return
		}
		err := r.e.cfg.Agent.PostAssignment(ctx, a.dest, a.payload())
		if err == nil || errors.Is(err, rebalancer.ErrAssignmentExists) {
			if err := r.store.SetAssignmentState(ctx, r.job.ID, a.id, jobstore.AssignmentPosted); err != nil {
				if ctx.Err() == nil {
					r.log.Error("cannot record an accepted assignment; it will be polled anyway", "assignment", a.id, "err", err)
				}
			}
			r.fl.mu.Lock()
			a.posts++
			a.posted = time.Now()
			a.unreachableSince = time.Time{}
			r.fl.mu.Unlock()
			r.fl.watch(a)
			posted = true
			r.e.cfg.Metrics.assignmentPosted()
			return
		}
		if ctx.Err() != nil {
			return
		}
		code, isStatus := httpStatus(err)
		switch {
		case errors.Is(err, rebalancer.ErrAgentBusy):
			busy++
			if busy > o.BusyBackoff.Tries {
				r.abandon(ctx, a, rebalancer.SkipAgentBusy, fmt.Sprintf("agent busy after %d tries: %v", busy, err), true)
				return
			}
			r.log.Debug("agent busy; will retry", "assignment", a.id, "dest", a.dest.MantaStorageID, "try", busy)
			if !retry.Sleep(ctx, o.BusyBackoff.Delay(busy)) {
				return
			}
		case isStatus && (code == http.StatusUnauthorized || code == http.StatusForbidden):
			// The agent requires a token the manager does not have.
			r.abandon(ctx, a, rebalancer.SkipAssignmentRejected, fmt.Sprintf(
				"agent refused the manager (%d): the manager's agent_token must be the agent's --token: %v", code, err), false)
			return
		case isStatus && code >= 400 && code < 500:
			// The agent refused the content: sending it again cannot help.
			r.abandon(ctx, a, rebalancer.SkipAssignmentRejected, fmt.Sprintf("agent rejected the assignment: %v", err), false)
			return
		default:
			unreachable++
			reason := rebalancer.SkipDestinationUnreachable
			if isStatus {
				reason = rebalancer.SkipAssignmentRejected
			}
			if unreachable >= o.UnreachableBackoff.Tries {
				r.abandon(ctx, a, reason, fmt.Sprintf("cannot post to agent after %d tries: %v", unreachable, err), true)
				return
			}
			r.failures.Log(ctx, slog.LevelWarn, "cannot post assignment; will retry", err, "assignment", a.id, "dest", a.dest.MantaStorageID, "try", unreachable)
			if !retry.Sleep(ctx, o.UnreachableBackoff.Delay(unreachable)) {
				return
			}
		}
	}
}

// abandon ends an assignment whose copies did not happen. Each object is
// placed again elsewhere while it has attempts left (when retry is true), or
// recorded as skipped for reason. A zero reason means "back to unprocessed
// as is" (the job is stopping).
func (r *runner) abandon(ctx context.Context, a *assignment, reason rebalancer.SkipReason, detail string, retry bool) {
	changes := make([]jobstore.Change, 0, len(a.order))
	for _, p := range a.order {
		switch {
		case reason == 0:
			changes = append(changes, jobstore.Change{ID: p.row.ID, Bytes: p.row.ContentLength, To: rebalancer.ObjectUnprocessed})
		case retry && p.row.Attempts+1 < r.job.Options.MaxAttempts:
			changes = append(changes, jobstore.Change{ID: p.row.ID, Bytes: p.row.ContentLength, To: rebalancer.ObjectUnprocessed, Avoid: a.dest.MantaStorageID, Detail: detail})
		default:
			changes = append(changes, jobstore.Change{ID: p.row.ID, Bytes: p.row.ContentLength, To: rebalancer.ObjectSkipped, Skip: reason, Detail: detail,
				Source: p.source})
		}
	}
	r.record(ctx, a, changes, 0)
	if reason != 0 {
		r.failures.Log(ctx, slog.LevelWarn, "assignments abandoned", errors.New(reason.String()),
			"assignment", a.id, "dest", a.dest.MantaStorageID, "objects", len(a.order), "detail", detail)
	}
}

// record writes an assignment's outcome (every object leaves assigned) and
// frees what it held. copiedBytes is what the agent wrote.
func (r *runner) record(ctx context.Context, a *assignment, changes []jobstore.Change, copiedBytes int64) {
	err := r.store.FinishAssignment(ctx, r.job.ID, a.id, changes)
	if err != nil {
		// Nothing is lost: the objects stay assigned in the store and the
		// assignment is picked up again when the job resumes.
		if ctx.Err() == nil {
			r.log.Error("cannot record an assignment's outcome", "assignment", a.id, "err", err)
			r.fatal(fmt.Errorf("assignment %s: %w", a.id, err))
		}
		return
	}
	requeued := false
	r.objectsEnded(ctx, "copy", changes)
	for _, c := range changes {
		requeued = requeued || c.To == rebalancer.ObjectUnprocessed
	}
	r.e.cfg.Placement.Release(a.dest, copiedBytes, true)
	r.e.cfg.Placement.Release(a.dest, a.bytes-copiedBytes, false)
	r.fl.finish(a)
	if requeued {
		r.wakeFeeder()
	}
}
