package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
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
		committing sync.WaitGroup // results handed to the committer and not yet acknowledged
	)
	ack := func(recorded bool) {
		if !recorded {
			unrecorded.Add(1)
		}
		committing.Done()
	}
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
				// The committer makes the result durable and records it
				// while this worker goes on with the next download.
				committing.Add(1)
				s.commits <- &taskResult{seq: seq, p: p, out: out, log: log, ack: ack}
				if s.handedOver != nil {
					s.handedOver()
				}
			}
		})
	}
	tg.Wait()
	committing.Wait()

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

// taskResult is a task's outcome on its way to the database.
type taskResult struct {
	seq int64 // the assignment's
	p   pendingTask
	out outcome
	log *slog.Logger
	// ack is called once the result is recorded and counted, or could not
	// be recorded.
	ack func(recorded bool)
}

// maxBatch bounds the results one transaction records.
const maxBatch = 256

// committer is the agent's group commit. It takes results as the
// workers of every running assignment deliver them; for each batch
// (whatever waited while the previous one was committed, so that a lone
// result waits for nothing) it fsyncs every destination directory once,
// records every result in one transaction, and only then counts them and
// acknowledges them to their assignments. It returns when results is
// closed.
func (s *Server) committer(ctx context.Context, results <-chan *taskResult) {
	batch := make([]*taskResult, 0, maxBatch)
	for r := range results {
		batch = append(batch[:0], r)
	more:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-results:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		s.commitBatch(ctx, batch)
	}
}

// commitBatch makes a batch of results durable and records them, retrying
// failed writes, then counts them. Results that cannot be recorded are
// acknowledged as such: their tasks stay pending and are done again.
func (s *Server) commitBatch(ctx context.Context, batch []*taskResult) {
	s.syncDirs(batch)
	var groups []assignmentResults
	for _, r := range batch {
		rec := result{idx: r.p.idx, status: r.out.status}
		if r.out.err != nil {
			rec.detail = r.out.err.Error()
		}
		i := slices.IndexFunc(groups, func(g assignmentResults) bool { return g.seq == r.seq })
		if i < 0 {
			i = len(groups)
			groups = append(groups, assignmentResults{seq: r.seq})
		}
		groups[i].results = append(groups[i].results, rec)
	}
	err := s.retryWrite(ctx, func() error { return s.store.recordBatch(ctx, groups) })
	for _, r := range batch {
		if err != nil {
			t := r.p.task
			r.log.Error("cannot record task result", "object", t.ObjectID, "owner", t.Owner, "status", r.out.status.String(), "err", err)
		} else {
			s.counted(r.log, r.p.task, r.out)
		}
		r.ack(err == nil)
	}
}

// syncDirs fsyncs the directory of every complete task in batch, each
// directory once, and closes them. A task whose directory cannot be
// fsynced fails (AgentFSError): its copy may not survive a power loss.
func (s *Server) syncDirs(batch []*taskResult) {
	for i := range batch {
		pd := batch[i].out.dir
		if pd == nil {
			continue
		}
		err := s.copier.tree.syncDir(pd.d)
		// The same directory, open for other tasks of the batch, is
		// synced now too: one fsync covers every entry made before it.
		for j := i; j < len(batch); j++ {
			o := &batch[j].out
			if o.dir == nil || !o.dir.id.same(pd.id) {
				continue
			}
			if j != i {
				o.dir.d.Close()
			}
			o.dir = nil
			if err != nil {
				*o = s.copier.fsFailure(relPath(batch[j].p.task), err)
			}
		}
		pd.d.Close()
	}
}

// counted counts and logs a task whose result was recorded.
func (s *Server) counted(log *slog.Logger, t rebalancer.Task, out outcome) {
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
}

// retryWrite runs a database write until it succeeds, for up to
// Config.RecordRetry, waiting 20 ms after the first failure and twice as
// long after each next one, up to 2 s.
func (s *Server) retryWrite(ctx context.Context, write func() error) error {
	return retry.Do(ctx, retry.Policy{
		MaxElapsed: s.cfg.RecordRetry,
		Backoff:    retry.Backoff{Initial: 20 * time.Millisecond, Max: 2 * time.Second},
	}, func(context.Context) error {
		err := write()
		if err != nil {
			s.m.recordFails.Inc()
		}
		return err
	})
}

// requeueLater puts an assignment back in the queue after
// Config.RequeueDelay, unless stop ends first (then it is resumed at the
// next start: it is still unfinished in the database).
func (s *Server) requeueLater(stop context.Context, wg *sync.WaitGroup, id string) {
	wg.Go(func() {
		if !retry.Sleep(stop, s.cfg.RequeueDelay) {
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
