package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Server is a rebalancer agent: the HTTP API that accepts assignments, the
// workers that carry them out, and the state that lets a restarted agent
// resume. Make one with New, serve Handler (and MetricsHandler) on
// listeners of your choice, and call Run to process assignments.
//
// A Server holds no process-wide state, so several can run in one process
// (tests and the demo do).
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *store
	m       *metrics
	copier  *copier
	hosts   *allowList
	handler http.Handler
	// bodies is the memory POST bodies being read may take, in bytes
	// (Config.MaxBodyBytesInFlight); inBodies is how much they take now.
	bodies   *semaphore.Weighted
	inBodies atomic.Int64

	mu      sync.Mutex
	saving  map[string]struct{} // ids posted and being saved: known, not yet stored
	active  int                 // scheduled plus running assignments
	running int
	queue   []string // scheduled assignments, first in first out
	wake    chan struct{}
	ran     bool

	// commits carries task results to the committer (worker.go) while Run
	// runs.
	commits chan *taskResult

	// beforeCopy, when set (tests only), runs before each task's copy.
	beforeCopy func(ctx context.Context, objectID string)
	// handedOver, when set (tests only), runs once a task's result is
	// queued for the group commit.
	handedOver func()
}

// New prepares an agent: it checks the Manta root, empties the temp
// directory of partial downloads from an earlier run, opens (or creates)
// the state database in the data directory (moving a corrupt one aside),
// imports any queued work left by a legacy agent, and queues every
// assignment that was not finished. Nothing runs until Run is called.
// logger may be nil.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	cfg.Root = filepath.Clean(cfg.Root)
	cfg.DataDir = filepath.Clean(cfg.DataDir)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	hosts, err := parseAllowSources(cfg.AllowSources)
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	// The root is a mounted dataset on a shark: creating it would put
	// objects on the wrong filesystem.
	fi, err := os.Stat(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("manta root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("manta root %s is not a directory", cfg.Root)
	}
	tr, err := openTree(cfg.Root, logger)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		tr.close()
		return nil, fmt.Errorf("data directory: %w", err)
	}
	ctx := context.Background()
	st, err := openStore(ctx, cfg.DataDir, logger)
	if err != nil {
		tr.close()
		return nil, err
	}
	var s *Server
	m := newMetrics(cfg.Metrics, func() float64 { return float64(s.inBodies.Load()) })
	s = &Server{
		cfg:    cfg,
		log:    logger,
		store:  st,
		m:      m,
		copier: newCopier(cfg, tr, hosts, logger, m),
		hosts:  hosts,
		bodies: semaphore.NewWeighted(cfg.MaxBodyBytesInFlight),
		saving: map[string]struct{}{},
		wake:   make(chan struct{}, cfg.Workers),
	}
	if err := s.importLegacy(ctx); err != nil {
		s.Close()
		return nil, err
	}
	ids, err := st.resumable(ctx)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("list unfinished assignments: %w", err)
	}
	s.queue = ids
	s.active = len(ids)
	s.gauges()
	if len(ids) > 0 {
		logger.Info("resuming unfinished assignments", "count", len(ids))
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the agent's HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// MetricsHandler returns the Prometheus exposition of the agent's metrics.
// Like the legacy agent's metrics server, it answers on any path.
func (s *Server) MetricsHandler() http.Handler { return s.m.handler() }

// Config returns the configuration in effect, defaults applied.
func (s *Server) Config() Config { return s.cfg }

// Run processes assignments until ctx ends. Then it starts no new task,
// lets downloads in flight finish for up to Config.ShutdownGrace, abandons
// the rest (their tasks stay pending, for the next start), and returns
// once every goroutine it started has stopped. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("agent: Run called twice")
	}
	s.ran = true
	s.mu.Unlock()

	// work outlives ctx by the grace period, so that downloads in flight
	// can finish and be recorded.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	// The committer outlives the workers, whose assignments wait for it.
	// Results wait for it in a buffer of a full batch: workers go on
	// downloading while it commits, unless it falls that far behind.
	s.commits = make(chan *taskResult, maxBatch)
	committed := make(chan struct{})
	go func() { s.committer(work, s.commits); close(committed) }()
	defer func() { close(s.commits); <-committed }()
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() { s.worker(ctx, work, &wg) })
	}
	wg.Go(func() { s.pruneLoop(ctx) })
	s.log.Info("agent running", "root", s.cfg.Root, "data_dir", s.cfg.DataDir,
		"workers", s.cfg.Workers, "workers_per_assignment", s.cfg.WorkersPerAssignment, "max_queued", s.cfg.MaxQueued)

	<-ctx.Done()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	grace := time.NewTimer(s.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		s.log.Warn("shutdown grace period over; abandoning downloads in flight", "grace", s.cfg.ShutdownGrace)
		stopWork()
		<-done
	}
	s.log.Info("agent stopped")
	return nil
}

// Close releases the database and idle connections. Call it after Run has
// returned.
func (s *Server) Close() error {
	s.copier.close()
	err := s.store.close()
	if terr := s.copier.tree.close(); err == nil {
		err = terr
	}
	return err
}

// admission answers whether a POST of id may go ahead, and if so reserves
// the id until accepted or aborted is called. The 409 check comes before
// the 503 one, as in the legacy agent: a duplicate is a duplicate even
// when the queue is full.
func (s *Server) admit(ctx context.Context, id string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.saving[id]; ok {
		return http.StatusConflict, nil
	}
	exists, err := s.store.exists(ctx, id)
	if err != nil {
		return http.StatusInternalServerError, err
	}
	if exists {
		return http.StatusConflict, nil
	}
	if s.active+len(s.saving) >= s.cfg.MaxQueued {
		return http.StatusServiceUnavailable, nil
	}
	s.saving[id] = struct{}{}
	return http.StatusOK, nil
}

// accepted queues a saved assignment.
func (s *Server) accepted(id string) {
	s.mu.Lock()
	delete(s.saving, id)
	s.active++
	s.queue = append(s.queue, id)
	s.gaugesLocked()
	s.mu.Unlock()
	s.signal()
}

// aborted forgets an id whose save failed, so that it can be posted again.
func (s *Server) aborted(id string) {
	s.mu.Lock()
	delete(s.saving, id)
	s.mu.Unlock()
}

func (s *Server) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
		// As many wake-ups are pending as there are workers: each will
		// look at the queue again before it waits.
	}
}

// next returns the next scheduled assignment, waiting for one. It returns
// false once stop ends.
func (s *Server) next(stop context.Context) (string, bool) {
	for {
		if stop.Err() != nil {
			return "", false
		}
		s.mu.Lock()
		if len(s.queue) > 0 {
			id := s.queue[0]
			s.queue[0] = ""
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return id, true
		}
		s.mu.Unlock()
		select {
		case <-stop.Done():
			return "", false
		case <-s.wake:
		}
	}
}

func (s *Server) gauges() {
	s.mu.Lock()
	s.gaugesLocked()
	s.mu.Unlock()
}

func (s *Server) gaugesLocked() {
	s.m.active.WithLabelValues("scheduled").Set(float64(s.active - s.running))
	s.m.active.WithLabelValues("running").Set(float64(s.running))
}

// counts returns the number of scheduled and running assignments.
func (s *Server) counts() (scheduled, running int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active - s.running, s.running
}

func (s *Server) pruneLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		s.pruneOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) pruneOnce(ctx context.Context) {
	cutoff := s.store.now().Add(-s.cfg.Retention)
	n, err := s.store.prune(ctx, cutoff)
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Error("cannot prune completed assignments", "err", err)
	case n > 0:
		s.log.Info("pruned completed assignments", "count", n, "completed_before", cutoff)
	}
}
