package evacuate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
)

// A runner drives one job: its stages (the package documentation draws
// them) run in their own goroutines and talk through the store and a few
// in-memory structures. The monitor ends the job when the counters say
// nothing is left.
type runner struct {
	e     *Engine
	job   JobRecord
	store *jobstore.Store
	log   *slog.Logger

	// stateMu serialises the changes of the stored Running/Paused state
	// with the paused flag, so that a pause arriving while the job
	// starts is not overwritten by the start.
	stateMu sync.Mutex

	ctl      sync.Mutex
	paused   bool
	stopping bool
	ctlWake  chan struct{} // closed and replaced on every control change

	feedWake chan struct{} // new unprocessed objects (capacity 1)

	discoveryFinished atomic.Bool
	discoveryErr      atomic.Pointer[error]
	discoveryStopped  atomic.Bool // the job was stopped before discovery finished
	feederDrained     atomic.Bool // dry run: everything discovered was planned
	feederStoppedFlag atomic.Bool // stopping: the feeder gave back what it held
	fatalErr          chan error  // a stage outside the errgroup failed (capacity 1)

	dryMu       sync.Mutex
	dryReserved map[string]int64 // dry run: bytes reserved per destination

	fl  *flight // assignments between placement and their recorded result
	mdq *queue  // assignments whose copies are verified, for the metadata stage

	mdWant   atomic.Int32
	mdChange chan struct{}

	meter *meter
	// eta is the job's smoothed ETA and sharkBytes the estimate of what
	// the evacuated shark holds, for an ETA while discovery runs (eta.go).
	eta        etaFilter
	sharkBytes atomic.Int64
	// failures sums up per-object failures in the log (progress.go).
	failures *logging.Summarizer
	sources  sourceCounts // copies per source shark (sources.go)

	// What JobStatus shows when the store cannot be read: the job as this
	// run last recorded it, its last counters, and why it is not running
	// (a job store failure), if so.
	known       atomic.Pointer[JobRecord]
	lastCounts  atomic.Pointer[[]Count]
	interrupted atomic.Pointer[error]

	// v2Down is why buckets (v2) metadata cannot be updated in this run,
	// once that is known (see setV2Down).
	v2Down atomic.Pointer[error]
}

func newRunner(e *Engine, j JobRecord) *runner {
	r := &runner{
		e: e, job: j, store: e.store,
		log:         e.log.With("job", j.ID, "shark", j.From.MantaStorageID),
		ctlWake:     make(chan struct{}),
		feedWake:    make(chan struct{}, 1),
		mdq:         newQueue(staticQueueLimit(j.Options)),
		mdChange:    make(chan struct{}, 1),
		meter:       newMeter(),
		failures:    logging.NewSummarizer(e.log.With("job", j.ID, "shark", j.From.MantaStorageID), 0),
		fatalErr:    make(chan error, 1),
		dryReserved: map[string]int64{},
	}
	r.fl = newFlight(j.Options)
	r.mdWant.Store(int32(j.Options.MetadataThreads))
	r.paused = j.State == rebalancer.JobPaused
	r.remember()
	return r
}

// staticQueueLimit is the limit of a job's metadata queue: its
// StaticQueueDepth in static mode, none otherwise.
func staticQueueLimit(o Options) int {
	if !o.StaticMetadataThreads {
		return 0
	}
	return max(o.StaticQueueDepth, 1)
}

// remember keeps a copy of the job record as this run last recorded it.
func (r *runner) remember() {
	j := r.job
	r.known.Store(&j)
}

// setInterrupted records why the job is not running, until a run starts
// again (nil).
func (r *runner) setInterrupted(err error) {
	if err == nil {
		r.interrupted.Store(nil)
		return
	}
	r.interrupted.Store(&err)
}

// trouble says why a job running here is not making progress: its run
// was interrupted by a job store failure, or the store fails its checks.
func (r *runner) trouble() error {
	if p := r.interrupted.Load(); p != nil {
		return *p
	}
	return r.e.storeFailure()
}

// storeDownError stops a run because the engine's checks find the job
// store failing.
type storeDownError struct{ error }

func (e *storeDownError) Unwrap() error { return e.error }

// permanentError ends a job as Failed.
type permanentError struct{ error }

func (e *permanentError) Unwrap() error { return e.error }

// interruptedError stops a run without changing the job's state: the store
// failed, and the engine runs the job again after a pause.
type interruptedError struct{ error }

func (e *interruptedError) Unwrap() error { return e.error }

// errFinished ends the stages once the monitor sees the job done.
var errFinished = errors.New("job finished")

func (r *runner) run(ctx context.Context) (rebalancer.JobState, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer r.failures.Close()
	resumed := r.job.State == rebalancer.JobRunning || r.job.State == rebalancer.JobPaused
	if err := r.prepare(ctx); err != nil {
		if ctx.Err() != nil {
			return r.job.State, ctx.Err()
		}
		var perm *permanentError
		if !errors.As(err, &perm) {
			return r.job.State, &interruptedError{err}
		}
		r.log.Error("job failed to start", "err", err)
		r.finish(context.WithoutCancel(ctx), rebalancer.JobFailed, err.Error())
		r.ended(context.WithoutCancel(ctx), rebalancer.JobFailed, err.Error())
		return rebalancer.JobFailed, err
	}
	r.started(resumed)
	r.e.cfg.Metrics.jobStarted()
	defer r.e.cfg.Metrics.jobEnded()

	g, gctx := errgroup.WithContext(ctx)
	// Discovery is not part of the group: its failure must not cancel the
	// copies in flight, only fail the job once they have drained.
	discoveryDone := make(chan struct{})
	go func() {
		defer close(discoveryDone)
		r.discover(gctx)
	}()
	g.Go(func() error { return r.feed(gctx) })
	g.Go(func() error { return r.poll(gctx) })
	g.Go(func() error { return r.metadata(gctx) })
	g.Go(func() error { return r.monitor(gctx) })
	err := g.Wait()
	cancel()
	<-discoveryDone
	r.fl.wait() // posts and polls in their own goroutines

	switch {
	case errors.Is(err, errFinished):
	case ctx.Err() != nil && err == nil || errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The manager is shutting down: the job stays as it is, resumable.
		r.log.Info("job interrupted; it will resume when the manager restarts")
		r.e.cfg.Metrics.endJob(r.job.ID, nil)
		return r.job.State, context.Canceled
	case err != nil:
		// Only the store fails a stage (the other failures are objects'
		// and end up in their statuses). Everything is where the store
		// says it is, so the job is interrupted, not failed.
		r.e.cfg.Metrics.endJob(r.job.ID, nil)
		return r.job.State, &interruptedError{err}
	}
	state, msg := rebalancer.JobComplete, ""
	if r.isStopping() {
		state = rebalancer.JobStopped
	}
	if p := r.discoveryErr.Load(); p != nil {
		state, msg = rebalancer.JobFailed, "discovery: "+(*p).Error()
	}
	// What could not be done for buckets (v2) objects keeps the job from
	// ending Complete: the shark would look safe to retire.
	fctx := context.WithoutCancel(ctx)
	var problems []string
	if p := r.v2Failure(fctx); p != "" {
		problems = append(problems, p)
	}
	if r.discoveryErr.Load() == nil && !r.job.Options.DryRun {
		p, err := r.fixUploads(fctx)
		if err != nil {
			r.log.Error("cannot record the multipart upload records fixed", "err", err)
			p = "multipart upload records: " + err.Error()
		}
		if p != "" {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		if state == rebalancer.JobComplete {
			state = rebalancer.JobFailed
		}
		msg = strings.Join(append(problems, msg), "; ")
		msg = strings.TrimSuffix(msg, "; ")
	}
	r.releaseDryRun()
	r.finish(fctx, state, msg)
	r.failures.Flush(ctx)
	r.ended(fctx, state, msg)
	return state, nil
}

func (r *runner) finish(ctx context.Context, state rebalancer.JobState, msg string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.e.finishJob(ctx, r.job, state, msg); err != nil {
		r.log.Error("cannot record the job's final state", "state", state.String(), "err", err)
	}
	r.job.State = state
	r.job.Error = msg
	r.remember()
}

// prepare resolves the shark being evacuated, restores what a previous run
// left in flight, and marks the job running.
func (r *runner) prepare(ctx context.Context) error {
	if err := r.e.loadStates(ctx); err != nil {
		return err
	}
	// Jobs are created with their shark looked up; a job stored by an
	// earlier version may not have it yet.
	if r.job.From.Datacenter == "" && r.e.cfg.LookupShark != nil {
		node, err := r.e.cfg.LookupShark(ctx, r.job.From.MantaStorageID)
		if err != nil {
			return &permanentError{err} // it names the shark
		}
		r.job.From = node
		if err := r.store.SetJobSource(ctx, r.job.ID, node); err != nil {
			return err
		}
	}
	r.stateMu.Lock()
	if r.isPaused() {
		r.job.State = rebalancer.JobPaused
	} else {
		if err := r.store.SetJobState(ctx, r.job.ID, rebalancer.JobRunning, ""); err != nil {
			r.stateMu.Unlock()
			return err
		}
		r.job.State = rebalancer.JobRunning
	}
	r.stateMu.Unlock()
	if r.job.DiscoveryDone {
		r.discoveryFinished.Store(true)
	}
	if r.job.RetryOf != "" {
		// The uploads whose parts the retried job moved: their remaining
		// parts go where the others went, and their records get fixed.
		if err := r.store.InheritUploads(ctx, r.job.ID, r.job.RetryOf, uploadsDone); err != nil {
			return err
		}
	}
	if err := r.restore(ctx); err != nil {
		return err
	}
	r.remember()
	r.setInterrupted(nil)
	return nil
}

// restore picks up a previous run's work: assignments stored but maybe not
// accepted are posted again (an agent that has one answers 409, which counts
// as accepted), accepted ones are polled, and verified copies whose metadata
// was not yet updated are queued for it.
func (r *runner) restore(ctx context.Context) error {
	if r.job.Options.DryRun {
		return nil
	}
	recs, err := r.store.Assignments(ctx, r.job.ID, jobstore.AssignmentCreated, jobstore.AssignmentPosted)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		rows, err := r.store.AssignmentObjects(ctx, r.job.ID, rec.ID, rebalancer.ObjectAssigned)
		if err != nil {
			return err
		}
		a, err := r.assignmentFromRows(rec, rows)
		if err != nil {
			return err
		}
		r.fl.adoptRestored(a)
		if rec.State == jobstore.AssignmentPosted {
			if rec.Posted != 0 {
				a.posted = time.UnixMilli(rec.Posted)
			}
			r.fl.watch(a)
		} else {
			r.startPost(ctx, a)
		}
	}
	if len(recs) > 0 {
		r.log.Info("restored assignments in flight", "count", len(recs))
	}
	var after int64
	seen := map[string]bool{}
	for {
		rows, err := r.store.ObjectsInStatus(ctx, r.job.ID, rebalancer.ObjectPostProcessing, after, 1000)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		for _, row := range rows {
			after = row.Seq
			if !seen[row.AssignmentID] {
				seen[row.AssignmentID] = true
				r.mdq.push(row.AssignmentID)
			}
		}
	}
	return nil
}

// assignmentFromRows rebuilds an assignment's tasks from its stored objects.
func (r *runner) assignmentFromRows(rec jobstore.AssignmentRecord, rows []jobstore.ObjectRow) (*assignment, error) {
	a := &assignment{id: rec.ID, dest: rec.Dest, posts: rec.Posts, objects: map[string]*planned{}}
	for i := range rows {
		row := &rows[i]
		obj, err := row.Object()
		if err != nil {
			return nil, fmt.Errorf("assignment %s: object %s: %w", rec.ID, row.ID, err)
		}
		src, ok := chooseSource(obj, r.job.From.MantaStorageID, row.Attempts, nil)
		if !ok {
			return nil, fmt.Errorf("assignment %s: object %s has no source", rec.ID, row.ID)
		}
		a.add(&planned{row: row, obj: obj, task: obj.Task(src), source: src.MantaStorageID})
	}
	return a, nil
}

// monitor ends the job when its counters say nothing is left to do.
func (r *runner) monitor(ctx context.Context) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-r.fatalErr:
			return err
		case <-t.C:
		}
		// Read the flags before the counts: discovery records its last
		// objects and then says it is done, so a "done" read after counts
		// taken before those objects were recorded would end the job with
		// them unprocessed (seen under load in the fault table).
		discovered := r.discoveryFinished.Load()
		drained := r.feederDrained.Load()
		if err := r.e.storeFailure(); err != nil {
			// The store answers, but the engine's checks find it unsafe
			// (its file deleted, say): record nothing more until it
			// works.
			return &storeDownError{err}
		}
		counts, err := getCounts(ctx, r.store, r.job.ID)
		if err != nil {
			return err
		}
		r.lastCounts.Store(&counts)
		var unprocessed, assigned, post, complete, bytes int64
		for _, c := range counts {
			switch c.Status {
			case "unprocessed":
				unprocessed += c.N
			case "assigned":
				assigned += c.N
			case "post_processing":
				post += c.N
			case "complete":
				complete += c.N
				bytes += c.Bytes
			}
		}
		now := time.Now()
		r.meter.observe(now, complete, bytes)
		r.observe(now, counts)
		inFlight := assigned + post
		switch {
		case r.isStopping():
			if inFlight == 0 && r.fl.idle() && r.feederStopped() {
				return errFinished
			}
		case r.job.Options.DryRun:
			if discovered && drained {
				return errFinished
			}
		default:
			if discovered && unprocessed == 0 && inFlight == 0 && r.fl.idle() {
				return errFinished
			}
		}
	}
}

// Control: pause, resume, stop.

func (r *runner) setControl(fn func()) chan struct{} {
	r.ctl.Lock()
	defer r.ctl.Unlock()
	fn()
	close(r.ctlWake)
	r.ctlWake = make(chan struct{})
	return r.ctlWake
}

func (r *runner) isPaused() bool {
	r.ctl.Lock()
	defer r.ctl.Unlock()
	return r.paused
}

func (r *runner) isStopping() bool {
	r.ctl.Lock()
	defer r.ctl.Unlock()
	return r.stopping
}

// active blocks while the job is paused. It returns false when the job is
// stopping or ctx ended.
func (r *runner) active(ctx context.Context) bool {
	for {
		r.ctl.Lock()
		paused, stopping, wake := r.paused, r.stopping, r.ctlWake
		r.ctl.Unlock()
		if stopping || ctx.Err() != nil {
			return false
		}
		if !paused {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-wake:
		}
	}
}

func (r *runner) pause(ctx context.Context) error {
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	if r.isStopping() {
		return &StateError{Job: r.job.ID, Why: "is stopping"}
	}
	if r.isPaused() {
		return &StateError{Job: r.job.ID, Why: "is already paused"}
	}
	if err := r.store.SetJobState(ctx, r.job.ID, rebalancer.JobPaused, ""); err != nil {
		return err
	}
	r.setControl(func() { r.paused = true })
	r.log.Info("job paused")
	return nil
}

func (r *runner) resume(ctx context.Context) error {
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	if r.isStopping() {
		return &StateError{Job: r.job.ID, Why: "is stopping"}
	}
	if !r.isPaused() {
		return &StateError{Job: r.job.ID, Why: "is not paused"}
	}
	if err := r.store.SetJobState(ctx, r.job.ID, rebalancer.JobRunning, ""); err != nil {
		return err
	}
	r.setControl(func() { r.paused = false })
	r.log.Info("job resumed")
	return nil
}

func (r *runner) requestStop() {
	r.setControl(func() { r.stopping = true; r.paused = false })
	r.log.Info("job stopping: waiting for the copies in flight")
}

func (r *runner) setMetadataThreads(ctx context.Context, n int) error {
	o := r.job.Options
	if o.StaticMetadataThreads {
		return fmt.Errorf("job %s: %w", r.job.ID, ErrStaticThreads)
	}
	o.MetadataThreads = n
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := r.store.SetJobOptions(ctx, r.job.ID, b); err != nil {
		return err
	}
	r.mdWant.Store(int32(n))
	select {
	case r.mdChange <- struct{}{}:
	default:
	}
	r.log.Info("metadata threads changed", "threads", n)
	return nil
}

func (r *runner) wakeFeeder() {
	select {
	case r.feedWake <- struct{}{}:
	default:
	}
}

// fatal fails the job from a goroutine outside the stage group: the store
// failed, so going on would lose track of objects.
func (r *runner) fatal(err error) {
	select {
	case r.fatalErr <- err:
	default:
	}
}

func (r *runner) feederStopped() bool { return r.feederStoppedFlag.Load() }

// noteDryRun remembers a dry run's reservation, so that every job's
// projection sees the others' and all are released at the end.
func (r *runner) noteDryRun(dest string, bytes int64) {
	r.dryMu.Lock()
	defer r.dryMu.Unlock()
	r.dryReserved[dest] += bytes
}

func (r *runner) releaseDryRun() {
	r.dryMu.Lock()
	defer r.dryMu.Unlock()
	for dest, n := range r.dryReserved {
		r.e.cfg.Placement.Release(rebalancer.StorageNode{MantaStorageID: dest}, n, false)
	}
	clear(r.dryReserved)
}
