package evacuate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
)

// Config is what an Engine is built from. Store, Metadata, Placement and
// Agent are required; Source is required for jobs that discover objects
// (retry jobs read the job they retry instead).
type Config struct {
	Store *Store
	// Source returns the object source of a new job.
	Source func(job JobRecord) (rebalancer.ObjectSource, error)
	// Metadata reads and rewrites object metadata. A
	// rebalancer.BatchMetadataStore gets each assignment's updates as one
	// batch per shard, unless the job's Options.IndividualUpdates is set.
	Metadata rebalancer.MetadataStore
	// Placement picks destinations; one Placement is shared by all jobs so
	// that they see one view of destination capacity.
	Placement rebalancer.Placement
	// Agent talks to the agents on the destinations.
	Agent rebalancer.Agent
	// LookupShark resolves the shark a job evacuates (its datacenter) when
	// the job is created: a shark it cannot find, which its error says by
	// wrapping rebalancer.ErrSharkNotFound, is refused with an
	// *UnknownSharkError. Its errors name the shark. Optional: without it
	// a job uses the shark as given.
	LookupShark func(ctx context.Context, storageID string) (rebalancer.StorageNode, error)
	// Fleet lists the storage nodes the fleet has, for Sharks and for
	// suggesting the names closest to an unknown one. Optional.
	Fleet func(ctx context.Context) ([]rebalancer.StorageNode, error)
	// Blocklist returns the sharks the configuration keeps out of every
	// placement (the Placement applies it), so that Sharks shows them.
	// Optional.
	Blocklist func() []string
	// Defaults are the options of new jobs (zero fields: DefaultOptions).
	Defaults Options
	// Logger receives the engine's logs (slog.Default when nil).
	Logger *slog.Logger
	// Metrics, when set, is updated as jobs progress.
	Metrics *Metrics
	// Capacity, when set, gives a destination's free space (MiB) and use
	// (percent) so that dry runs report projected fill per destination.
	Capacity func(storageID string) (availableMB int64, percentUsed float64, ok bool)
	// RestartDelay is how long a job interrupted by a job store failure
	// waits before it runs again (default 10s).
	RestartDelay time.Duration
	// StoreCheckInterval is how often, while jobs run, the engine checks
	// that the job store still works (Store.Check; default 5s). Jobs do
	// nothing while it fails: their progress could not be recorded.
	StoreCheckInterval time.Duration
	// Buckets says what the engine does about buckets (v2) objects:
	// whether Source discovers them, and how their multipart upload
	// records are fixed. Metadata must route them (mdapi.Router).
	Buckets Buckets
}

// Engine runs evacuation jobs: any number at once, each in its own
// goroutines, all sharing the store, the placement and the agents.
type Engine struct {
	cfg   Config
	store *jobstore.Store // cfg.Store's
	log   *slog.Logger

	mu      sync.Mutex
	running map[string]*runner // by job id
	sharks  map[string]string  // evacuated shark -> job id, for jobs running
	// released is closed and replaced whenever a job stops running here,
	// waking Wait.
	released chan struct{}
	wg       sync.WaitGroup
	closed   bool
	watching bool            // the store checks run
	ctx      context.Context // parent of every job started in the background
	cancel   context.CancelFunc

	healthMu sync.Mutex
	storeErr error // the job store's failure at the last check; nil when it works

	states sharkStates   // the stored shark states (sharks.go)
	checks chan struct{} // bounds the shark checks running at once (check.go)

	recentMu      sync.Mutex
	recentSources []recentSources // of the last jobs that ended here (sources.go)
}

// Errors the job controls return; the HTTP API maps them to status codes.
var (
	ErrJobNotRunning = errors.New("job is not running")
	// ErrStaticThreads refuses to change the metadata threads of a job
	// created with Options.StaticMetadataThreads.
	ErrStaticThreads = errors.New("job has static metadata threads")
	ErrSharkBusy     = errors.New("another job is evacuating this shark")
	ErrEngineClosed  = errors.New("engine closed")
	// ErrRetryDryRun refuses to retry a dry run: a retry moves objects.
	// Create a job instead: a new dry run, or the evacuation itself.
	ErrRetryDryRun = errors.New("a dry run is not retried: create a new dry run, or the evacuation itself")
	// ErrJobState is matched by the error of pausing a job that is paused
	// or stopping, or resuming one that is not paused.
	ErrJobState = errors.New("the job's state does not allow it")
	// ErrStillRunning is matched by the error of retrying a job that
	// has not ended.
	ErrStillRunning = errors.New("the job has not ended")
)

// SharkBusyError is the refusal of a job for a shark that another job
// running here is evacuating. It matches ErrSharkBusy.
type SharkBusyError struct {
	Shark string // the shark
	Job   string // the job evacuating it
}

func (e *SharkBusyError) Error() string {
	return fmt.Sprintf("shark %s: job %s: %v", e.Shark, e.Job, ErrSharkBusy)
}

// Is makes errors.Is(err, ErrSharkBusy) true.
func (e *SharkBusyError) Is(target error) bool { return target == ErrSharkBusy }

// stillRunning is the refusal of a retry of a job that has not ended,
// saying what to do; it matches ErrStillRunning.
type stillRunning string

func (e stillRunning) Error() string        { return string(e) }
func (e stillRunning) Is(target error) bool { return target == ErrStillRunning }

// StateError is the refusal of a pause or resume that the job's state does
// not allow: pausing a paused or stopping job, resuming one that is not
// paused. It matches ErrJobState.
type StateError struct {
	Job string
	// Why says what the job is: "is already paused", "is not paused",
	// "is stopping".
	Why string
}

func (e *StateError) Error() string { return "job " + e.Job + " " + e.Why }

// Is makes errors.Is(err, ErrJobState) true.
func (e *StateError) Is(target error) bool { return target == ErrJobState }

// NewEngine returns an engine. Call Start to resume the jobs a previous
// process left running.
func NewEngine(cfg Config) (*Engine, error) {
	switch {
	case cfg.Store == nil || cfg.Store.s == nil:
		return nil, errors.New("evacuate: Config.Store is required")
	case cfg.Metadata == nil:
		return nil, errors.New("evacuate: Config.Metadata is required")
	case cfg.Placement == nil:
		return nil, errors.New("evacuate: Config.Placement is required")
	case cfg.Agent == nil:
		return nil, errors.New("evacuate: Config.Agent is required")
	}
	cfg.Defaults = cfg.Defaults.withDefaults(DefaultOptions())
	if cfg.RestartDelay <= 0 {
		cfg.RestartDelay = 10 * time.Second
	}
	if cfg.StoreCheckInterval <= 0 {
		cfg.StoreCheckInterval = 5 * time.Second
	}
	if err := cfg.Defaults.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{cfg: cfg, store: cfg.Store.s, log: log, running: map[string]*runner{}, sharks: map[string]string{}, released: make(chan struct{}),
		ctx: ctx, cancel: cancel, checks: make(chan struct{}, MaxSharkChecks)}, nil
}

// Start resumes, in the background, every job the store says is running,
// setting up or paused: a manager restart continues its jobs instead of
// failing them. It also reads the shark states, which every placement
// from then on obeys. It returns an error only when the store cannot list
// the jobs or the states; Start may then be called again. A job already
// running here is left as it is, and once Close has begun nothing more is
// started.
func (e *Engine) Start(ctx context.Context) error {
	if err := e.loadStates(ctx); err != nil {
		return err
	}
	jobs, err := e.Jobs(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		switch j.State {
		case rebalancer.JobRunning, rebalancer.JobSetup, rebalancer.JobPaused, rebalancer.JobInit:
			if e.Running(j.ID) {
				continue
			}
			e.log.Info("resuming job", "job", j.ID, "shark", j.From.MantaStorageID, "state", j.State.String())
			err := e.startBackground(j)
			switch {
			case errors.Is(err, ErrEngineClosed):
				return nil // shutting down: the job stays resumable
			case err != nil:
				e.log.Error("cannot resume job", "job", j.ID, "err", err)
			}
		}
	}
	return nil
}

// Close stops every running job, leaving each resumable from the store, and
// waits for their goroutines.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
}

// CreateJob stores a new evacuation job for the shark and starts it in the
// background. Zero fields of opts take the engine's Config.Defaults. A
// storage id without a domain part is completed by the caller (the
// manager knows its domain). The shark is looked up first
// (Config.LookupShark): an unknown one is refused with an
// *UnknownSharkError, and a failed lookup with an error wrapping
// ErrSharkLookup, each leaving nothing stored. An evacuation marks its
// shark draining as it is created (a dry run changes no state).
func (e *Engine) CreateJob(ctx context.Context, shark string, opts Options) (JobRecord, error) {
	shark = strings.TrimSpace(shark)
	if shark == "" {
		return JobRecord{}, errors.New("a shark to evacuate is required")
	}
	opts = opts.withDefaults(e.cfg.Defaults)
	if err := opts.Validate(); err != nil {
		return JobRecord{}, err
	}
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return JobRecord{}, ErrEngineClosed
	}
	if err := e.loadStates(ctx); err != nil {
		return JobRecord{}, err
	}
	node, err := e.resolveShark(ctx, shark)
	if err != nil {
		return JobRecord{}, err
	}
	return e.createAndStart(ctx, JobRecord{
		ID:      uuid.NewString(),
		Action:  rebalancer.JobEvacuate,
		State:   rebalancer.JobSetup,
		From:    node,
		Options: opts,
	})
}

// createAndStart claims the job's shark, stores the job (and, for an
// evacuation, its shark draining) and starts it. The claim comes first so
// that a refused job (its shark busy, the engine closing) leaves no record
// behind: the legacy stored a Failed job for every refused request.
func (e *Engine) createAndStart(ctx context.Context, j JobRecord) (JobRecord, error) {
	if err := e.loadStates(ctx); err != nil {
		return JobRecord{}, err
	}
	r, err := e.claim(j)
	if err != nil {
		return JobRecord{}, err
	}
	stored, err := storedJob(j)
	if err == nil {
		err = e.storeNewJob(ctx, stored, !j.Options.DryRun)
	}
	if err != nil {
		e.release(r)
		return JobRecord{}, err
	}
	e.pushExclusions()
	e.launch(r)
	return e.Job(ctx, j.ID)
}

// storeNewJob stores a job, with its shark draining when drain is set.
func (e *Engine) storeNewJob(ctx context.Context, j jobstore.Job, drain bool) error {
	if !drain {
		return e.store.CreateJob(ctx, j)
	}
	e.states.mu.Lock()
	defer e.states.mu.Unlock()
	rec := jobstore.SharkRecord{Shark: j.From.MantaStorageID, State: jobstore.SharkDraining, JobID: j.ID, ChangedBy: jobstore.ByJob,
		Reason: "evacuation " + j.ID + " created"}
	if j.RetryOf != "" {
		rec.Reason = "evacuation " + j.ID + " created to retry " + j.RetryOf
	}
	return e.setStateLocked(rec, func(rec jobstore.SharkRecord) error { return e.store.CreateJobWithShark(ctx, j, rec) })
}

// finishJob records a job's end: a completed evacuation leaves its shark
// drained, in the same transaction.
func (e *Engine) finishJob(ctx context.Context, j JobRecord, state rebalancer.JobState, msg string) error {
	if state != rebalancer.JobComplete || j.Options.DryRun {
		return e.store.SetJobState(ctx, j.ID, state, msg)
	}
	e.states.mu.Lock()
	defer e.states.mu.Unlock()
	rec := jobstore.SharkRecord{Shark: j.From.MantaStorageID, State: jobstore.SharkDrained, JobID: j.ID, ChangedBy: jobstore.ByJob,
		Reason: "evacuation " + j.ID + " complete"}
	return e.setStateLocked(rec, func(rec jobstore.SharkRecord) error {
		return e.store.SetJobStateWithShark(ctx, j.ID, state, msg, rec)
	})
}

// RetryJob creates and starts a job over the objects of an earlier job that
// did not complete (skipped, error, and anything left unfinished when that
// job ended). The earlier job may be in any state but running.
func (e *Engine) RetryJob(ctx context.Context, oldID string, opts *Options) (JobRecord, error) {
	old, err := e.Job(ctx, oldID)
	if err != nil {
		return JobRecord{}, err
	}
	if r, _ := e.runner(oldID); r != nil {
		switch {
		case r.isStopping():
			return JobRecord{}, stillRunning(fmt.Sprintf("job %s is stopping: it can be retried once it has ended (Stopped)", oldID))
		case r.isPaused():
			return JobRecord{}, stillRunning(fmt.Sprintf("job %s is paused, not ended: resume it, or stop it, and retry it once it has ended", oldID))
		}
		return JobRecord{}, stillRunning(fmt.Sprintf("job %s is still running: wait for it to end, or stop it, then retry it", oldID))
	}
	if old.Options.DryRun {
		// A retry moves objects; a dry run's were planned, not meant to
		// move. The legacy has no dry runs to compare with.
		return JobRecord{}, fmt.Errorf("job %s is a dry run: %w", oldID, ErrRetryDryRun)
	}
	o := old.Options
	if opts != nil {
		o = *opts
	}
	o.MaxObjects = 0
	o.DryRun = false
	o = o.withDefaults(e.cfg.Defaults)
	if err := o.Validate(); err != nil {
		return JobRecord{}, err
	}
	return e.createAndStart(ctx, JobRecord{
		ID:      uuid.NewString(),
		Action:  rebalancer.JobEvacuate,
		State:   rebalancer.JobSetup,
		From:    old.From,
		Options: o,
		RetryOf: old.ID,
	})
}

// Running reports whether the job runs in this engine: started by
// CreateJob, RetryJob or Start, and not yet ended.
func (e *Engine) Running(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.running[id] != nil
}

// claim registers a runner for a job, refusing a second job on the same
// shark. Close waits for every claim to be released.
func (e *Engine) claim(j JobRecord) (*runner, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrEngineClosed
	}
	if e.running[j.ID] != nil {
		return nil, fmt.Errorf("job %s is already running", j.ID)
	}
	if other, ok := e.sharks[j.From.MantaStorageID]; ok {
		return nil, &SharkBusyError{Shark: j.From.MantaStorageID, Job: other}
	}
	r := newRunner(e, j)
	e.running[j.ID] = r
	e.sharks[j.From.MantaStorageID] = j.ID
	e.wg.Add(1) // under mu, so never after Close began to wait
	if !e.watching {
		e.watching = true
		e.wg.Add(1)
		go e.watchStore()
	}
	return r, nil
}

// watchStore checks the job store every StoreCheckInterval until the
// engine closes, so that running jobs stop recording into a store that is
// gone (see Health).
func (e *Engine) watchStore() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.StoreCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
			e.Health(e.ctx)
		}
	}
}

// Health checks the job store now (Store.Check) and returns its failure,
// if any. The result also holds back running jobs: while the store fails
// they do nothing, and their status carries the failure in its error
// field; they go on by themselves once it works again. An error says what
// is wrong with the store, for an operator.
func (e *Engine) Health(ctx context.Context) error {
	// A caller giving up (a probe's connection closing) says nothing about
	// the store; a store that does not answer in 10s does.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := e.store.Check(ctx)
	if e.ctx.Err() != nil {
		return err // closing: nothing to hold back
	}
	e.healthMu.Lock()
	prev := e.storeErr
	e.storeErr = err
	e.healthMu.Unlock()
	switch {
	case err != nil && prev == nil:
		e.log.Error("job store failing; running jobs wait for it", "err", err)
	case err == nil && prev != nil:
		e.log.Info("job store works again; running jobs go on", "was", prev)
	}
	return err
}

// storeFailure returns the job store's failure at the last check.
func (e *Engine) storeFailure() error {
	e.healthMu.Lock()
	defer e.healthMu.Unlock()
	return e.storeErr
}

// evacuatedByOthers returns the sharks that running jobs other than job
// are evacuating.
func (e *Engine) evacuatedByOthers(job string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.sharks) < 2 {
		return nil
	}
	out := make([]string, 0, len(e.sharks)-1)
	for shark, id := range e.sharks {
		if id != job {
			out = append(out, shark)
		}
	}
	return out
}

// evacuatedByOther reports whether a running job other than job is
// evacuating shark.
func (e *Engine) evacuatedByOther(shark, job string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, ok := e.sharks[shark]
	return ok && id != job
}

// release ends a claim.
func (e *Engine) release(r *runner) {
	defer e.wg.Done()
	e.keepSources(r)
	e.mu.Lock()
	delete(e.running, r.job.ID)
	if e.sharks[r.job.From.MantaStorageID] == r.job.ID {
		delete(e.sharks, r.job.From.MantaStorageID)
	}
	close(e.released)
	e.released = make(chan struct{})
	e.mu.Unlock()
	e.pushExclusions() // a dry run's shark is a destination again
}

// Wait blocks until the job is no longer running in this engine (started by
// CreateJob, RetryJob or Start) and returns it as stored: in a terminal
// state, or resumable when the engine was closed first. For a job not
// running here it returns the stored job at once.
func (e *Engine) Wait(ctx context.Context, id string) (JobRecord, error) {
	for {
		e.mu.Lock()
		_, running := e.running[id]
		woken := e.released
		e.mu.Unlock()
		if !running {
			return e.Job(ctx, id)
		}
		select {
		case <-woken:
		case <-ctx.Done():
			return JobRecord{}, fmt.Errorf("job %s: %w", id, ctx.Err())
		}
	}
}

// startBackground claims a stored job and runs it in the background.
func (e *Engine) startBackground(j JobRecord) error {
	r, err := e.claim(j)
	if err != nil {
		return err
	}
	e.pushExclusions()
	e.launch(r)
	return nil
}

// launch runs a claimed job in the background until it ends or the engine
// closes, restarting it after a job store failure.
func (e *Engine) launch(r *runner) {
	j := r.job
	go func() {
		for {
			state, err := r.run(e.ctx)
			var interrupted *interruptedError
			if !errors.As(err, &interrupted) || e.ctx.Err() != nil {
				if err != nil && e.ctx.Err() == nil {
					e.log.Error("job ended with an error", "job", j.ID, "state", state.String(), "err", err)
				}
				e.release(r)
				return
			}
			r.setInterrupted(err)
			e.log.Error("job interrupted by a job store failure; restarting it", "job", j.ID, "in", e.cfg.RestartDelay, "err", err)
			if !e.waitForStore() {
				e.release(r)
				return
			}
			if r, err = e.reload(r); err != nil {
				e.log.Error("cannot restart job", "job", j.ID, "err", err)
				e.release(r)
				return
			}
		}
	}()
}

// waitForStore waits RestartDelay, then until the engine's checks find
// the job store working. It returns false if the engine closes first.
func (e *Engine) waitForStore() bool {
	if !retry.Sleep(e.ctx, e.cfg.RestartDelay) {
		return false
	}
	for e.storeFailure() != nil {
		if !retry.Sleep(e.ctx, e.cfg.StoreCheckInterval) {
			return false
		}
	}
	return true
}

// reload replaces a runner by a fresh one over the job's stored state. It
// waits for the store as long as it takes: giving up would leave the job
// Running in the store with nothing driving it until the next restart.
func (e *Engine) reload(old *runner) (*runner, error) {
	var j JobRecord
	err := retry.Do(e.ctx, retry.Policy{
		Backoff:   retry.Backoff{Initial: e.cfg.RestartDelay, Factor: 1},
		Retryable: func(err error) bool { return !errors.Is(err, ErrJobNotFound) },
		OnRetry: func(n int, _ time.Duration, err error) {
			old.setInterrupted(err)
			if (n+1)%10 == 0 {
				e.log.Error("job store still failing; the job waits for it", "job", old.job.ID, "attempts", n+1, "err", err)
			}
		},
	}, func(ctx context.Context) error {
		var err error
		j, err = e.Job(ctx, old.job.ID)
		return err
	})
	if err != nil {
		return old, err
	}
	r := newRunner(e, j)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running[j.ID] = r
	return r, nil
}

func (e *Engine) runner(id string) (*runner, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.running[id]
	if r == nil {
		return nil, fmt.Errorf("job %s: %w", id, ErrJobNotRunning)
	}
	return r, nil
}

// PauseJob stops a running job from starting new work; copies already handed
// to agents finish and are recorded. ResumeJob undoes it.
func (e *Engine) PauseJob(ctx context.Context, id string) error {
	r, err := e.runner(id)
	if err != nil {
		return err
	}
	return r.pause(ctx)
}

// ResumeJob resumes a paused job.
func (e *Engine) ResumeJob(ctx context.Context, id string) error {
	r, err := e.runner(id)
	if err != nil {
		return err
	}
	return r.resume(ctx)
}

// StopJob ends a running job: it stops discovering and placing, waits for
// the copies agents already have, and ends Stopped. What it did not move can
// be retried. Stopping a job that is stopping already changes nothing.
func (e *Engine) StopJob(ctx context.Context, id string) error {
	r, err := e.runner(id)
	if err != nil {
		return err
	}
	r.requestStop()
	return nil
}

// SetMetadataThreads changes a running job's metadata update concurrency
// (1..MaxMetadataThreads), taking effect within moments. A job with
// static metadata threads refuses with ErrStaticThreads.
func (e *Engine) SetMetadataThreads(ctx context.Context, id string, n int) error {
	if n < 1 || n > MaxMetadataThreads {
		return fmt.Errorf("metadata threads must be in 1..%d, got %d", MaxMetadataThreads, n)
	}
	r, err := e.runner(id)
	if err != nil {
		return err
	}
	return r.setMetadataThreads(ctx, n)
}

// Defaults returns the options a new job gets (Config.Defaults, with
// DefaultOptions in the fields it left zero).
func (e *Engine) Defaults() Options { return e.cfg.Defaults }

// ObjectRecord is one object of a job, as the job store keeps it.
type ObjectRecord struct {
	ID     string
	Key    string
	Shard  int
	Status rebalancer.ObjectStatus
	// SkipReason, for a skipped object, and Error, for an object in
	// error, say why, in their database spellings
	// (rebalancer.SkipReason, rebalancer.ObjectErrorKind); Detail
	// explains it for people.
	SkipReason string
	Error      string
	Detail     string
	// Source, for a skipped or errored object, is the shark its copy was
	// read from ("" when none was).
	Source string
	// Dest is where the object is, or was to be, copied, and
	// AssignmentID the assignment that copies it.
	Dest          rebalancer.StorageNode
	AssignmentID  string
	Attempts      int
	ContentLength int64
	// Seq is the object's place in the job, by which Objects pages.
	Seq int64
}

// Objects returns up to limit objects of a job in status, in the order of
// their Seq, starting after the object numbered after (0: from the
// first).
func (e *Engine) Objects(ctx context.Context, jobID string, status rebalancer.ObjectStatus, after int64, limit int) ([]ObjectRecord, error) {
	rows, err := e.store.ObjectsInStatus(ctx, jobID, status, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]ObjectRecord, len(rows))
	for i, row := range rows {
		out[i] = ObjectRecord{ID: row.ID, Key: row.Key, Shard: row.Shard, Status: status, Detail: row.Detail, Source: row.SourceShark,
			Dest: row.Dest(), AssignmentID: row.AssignmentID, Attempts: row.Attempts, ContentLength: row.ContentLength, Seq: row.Seq}
		if row.SkippedReason != nil {
			out[i].SkipReason = *row.SkippedReason
		}
		if row.Error != nil {
			out[i].Error = *row.Error
		}
	}
	return out, nil
}

// Job returns a stored job.
func (e *Engine) Job(ctx context.Context, id string) (JobRecord, error) {
	return getJob(ctx, e.store, id)
}

// Jobs lists every stored job.
func (e *Engine) Jobs(ctx context.Context) ([]JobRecord, error) {
	jobs, err := e.store.ListJobs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]JobRecord, len(jobs))
	for i, j := range jobs {
		if out[i], err = jobRecord(j); err != nil {
			return nil, err
		}
	}
	return out, nil
}
