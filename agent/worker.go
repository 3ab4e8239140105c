package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

// worker runs assignments one at a time until stop ends. work is the
// context of downloads and database writes, which outlives stop by the
// shutdown grace period. wg tracks the goroutines the worker starts.
func (s *Server) worker(stop, work context.Context, wg *sync.WaitGroup) {
	for {
		id, ok := s.next(stop)
		if !ok {
			return
		}
		s.runAssignment(stop, work, wg, id)
	}
}

// runAssignment does every pending task of an assignment, then marks it
// complete, unless it was interrupted or a result could not be recorded:
// then it stays unfinished, to be run again (later, or at the next start).
func (s *Server) runAssignment(stop, work context.Context, wg *sync.WaitGroup, id string) {
	log := s.log.With("assignment", id)
	began := time.Now()
	seq, tasks, err := s.store.start(work, id)
	if errors.Is(err, errNotFound) {
		log.Error("queued assignment is not in the database; dropping it")
		s.finished()
		return
	}
	if err != nil {
		log.Error("cannot start assignment", "err", err)
		s.requeueLater(stop, wg, id)
		return
	}
	s.mu.Lock()
	s.running++
	s.gaugesLocked()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running--
		s.gaugesLocked()
		s.mu.Unlock()
	}()
	log.Info("assignment started", "pending_tasks", len(tasks))

	var (
		nextTask   atomic.Int64
		abandoned  atomic.Int64
		unrecorded atomic.Int64
		tg         sync.WaitGroup
	)
	for range min(s.cfg.WorkersPerAssignment, len(tasks)) {
		tg.Go(func() {
			for {
				i := int(nextTask.Add(1) - 1)
				if i >= len(tasks) {
					return
				}
				p := tasks[i]
				if stop.Err() != nil {
					abandoned.Add(1)
					continue
				}
				out := s.safeCopy(work, p.task)
				if errors.Is(out.err, errAbandoned) {
					abandoned.Add(1)
					continue
				}
				if !s.recordTask(work, log, seq, p, out) {
					unrecorded.Add(1)
				}
			}
		})
	}
	tg.Wait()

	switch {
	case abandoned.Load() > 0:
		log.Info("assignment interrupted by shutdown; it resumes at the next start", "abandoned_tasks", abandoned.Load())
		return
	case unrecorded.Load() > 0:
		log.Error("task results could not be recorded; the assignment is not complete and will run again",
			"unrecorded_tasks", unrecorded.Load(), "retry_in", s.cfg.RequeueDelay)
		s.requeueLater(stop, wg, id)
		return
	}
	var stats rebalancer.AssignmentStats
	err = s.retryWrite(work, func() error {
		var err error
		stats, err = s.store.complete(work, seq)
		return err
	})
	if err != nil {
		log.Error("cannot record the assignment as complete; it will run again", "err", err, "retry_in", s.cfg.RequeueDelay)
		s.requeueLater(stop, wg, id)
		return
	}
	s.finished()
	s.m.assignT.Observe(time.Since(began).Seconds())
	log.Info("assignment complete", "total", stats.Total, "failed", stats.Failed, "duration", time.Since(began).Round(time.Millisecond))
}

// safeCopy runs one task, turning a panic into a failure: a task that
// goes wrong in an unexpected way must show up as failed, never vanish
// (the legacy agent lost such tasks and reported the assignment clean).
func (s *Server) safeCopy(ctx context.Context, t rebalancer.Task) (out outcome) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("task panicked", "object", t.ObjectID, "owner", t.Owner, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			out = failure(rebalancer.SkipAgentFSError, "internal error: %v", r)
		}
	}()
	if s.beforeCopy != nil {
		s.beforeCopy(ctx, t.ObjectID)
	}
	began := time.Now()
	out = s.copier.copy(ctx, t)
	if out.err == nil && !out.present {
		s.m.downloadTime.Observe(time.Since(began).Seconds())
	}
	return out
}

// recordTask stores a task's outcome, retrying failed writes, and only then
// counts it. It reports whether the outcome was stored; if not, the task
// stays pending and is done again.
func (s *Server) recordTask(ctx context.Context, log *slog.Logger, seq int64, p pendingTask, out outcome) bool {
	t := p.task
	detail := ""
	if out.err != nil {
		detail = out.err.Error()
	}
	err := s.retryWrite(ctx, func() error { return s.store.record(ctx, seq, p.idx, out.status, detail) })
	if err != nil {
		log.Error("cannot record task result", "object", t.ObjectID, "owner", t.Owner, "status", out.status.String(), "err", err)
		return false
	}
	s.m.task(out.status)
	switch {
	case out.status.State == rebalancer.TaskFailed:
		log.Warn("task failed", "object", t.ObjectID, "owner", t.Owner, "source", t.Source.MantaStorageID,
			"reason", out.status.Reason.String(), "err", out.err)
	case out.present:
		s.m.present.Inc()
		log.Debug("object already in place", "object", t.ObjectID, "owner", t.Owner)
	default:
		s.m.bytes.Add(float64(out.bytes))
		log.Debug("object copied", "object", t.ObjectID, "owner", t.Owner, "source", t.Source.MantaStorageID, "bytes", out.bytes)
	}
	return true
}

// retryWrite runs a database write until it succeeds, for up to
// Config.RecordRetry.
func (s *Server) retryWrite(ctx context.Context, write func() error) error {
	deadline := time.Now().Add(s.cfg.RecordRetry)
	delay := 20 * time.Millisecond
	for {
		err := write()
		if err == nil {
			return nil
		}
		s.m.recordFails.Inc()
		if time.Now().Add(delay).After(deadline) || !sleep(ctx, delay) {
			return err
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// requeueLater puts an assignment back in the queue after
// Config.RequeueDelay, unless stop ends first (then it is resumed at the
// next start: it is still unfinished in the database).
func (s *Server) requeueLater(stop context.Context, wg *sync.WaitGroup, id string) {
	wg.Go(func() {
		if !sleep(stop, s.cfg.RequeueDelay) {
			return
		}
		s.mu.Lock()
		s.queue = append(s.queue, id)
		s.mu.Unlock()
		s.signal()
	})
}

// finished drops a completed assignment from the backpressure count.
func (s *Server) finished() {
	s.mu.Lock()
	s.active--
	s.gaugesLocked()
	s.mu.Unlock()
}
