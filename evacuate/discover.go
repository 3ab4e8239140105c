package evacuate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

// errEnough stops a source once max_objects objects are recorded.
var errEnough = errors.New("max_objects reached")

// errStopping stops a source when its job is stopped: discovery did not
// finish, and the job must not say it did.
var errStopping = errors.New("job stopping")

// discover streams the job's objects from its source into the store, in
// batches, resuming from the per-shard checkpoints of an earlier run. Its
// failure does not stop the job's other stages: the job ends Failed, naming
// the error, once the objects already found have been handled (CRIT-7).
func (r *runner) discover(ctx context.Context) {
	if r.discoveryFinished.Load() {
		return
	}
	err := r.discoverAll(ctx)
	if errors.Is(err, errStopping) {
		r.discoveryStopped.Store(true)
	}
	if ctx.Err() != nil || errors.Is(err, errStopping) {
		return
	}
	if err != nil {
		r.log.Error("discovery failed", "err", err)
		r.discoveryErr.Store(&err)
	} else if err := r.store.SetDiscoveryDone(ctx, r.job.ID); err != nil {
		if ctx.Err() == nil {
			r.fatal(err)
		}
		return
	}
	r.discoveryFinished.Store(true)
	r.wakeFeeder()
}

func (r *runner) discoverAll(ctx context.Context) error {
	src, err := r.source()
	if err != nil {
		return err
	}
	if err := r.recordBuckets(ctx); err != nil {
		return err
	}
	after, err := r.store.Checkpoints(ctx, r.job.ID)
	if err != nil {
		return err
	}
	recorded, err := r.recordedSoFar(ctx)
	if err != nil {
		return err
	}
	o := r.job.Options
	if o.MaxObjects > 0 && recorded >= int64(o.MaxObjects) {
		return nil
	}

	// The source calls visit at its own pace; a recorder goroutine writes
	// batches every 100 ms or 256 objects, so the first objects reach the
	// store (and the agents) quickly even when a scan is slow.
	objs := make(chan rebalancer.Object, 1024)
	recErr := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		recErr <- r.recordDiscovered(ctx, objs, recorded)
	}()

	excluded := 0
	visit := func(o rebalancer.Object) error {
		if !r.active(ctx) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errStopping
		}
		if r.job.Options.excluded(o.Key) {
			excluded++
			return nil
		}
		select {
		case objs <- o:
			return nil
		case <-stopped:
			return errEnough // the recorder is done: max_objects, or its error below
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err = src.Discover(ctx, rebalancer.DiscoverRequest{Shark: r.job.From.MantaStorageID, After: after}, visit)
	close(objs)
	<-stopped
	if rerr := <-recErr; rerr != nil && !errors.Is(rerr, errEnough) {
		return rerr
	}
	if excluded > 0 {
		r.log.Info("objects excluded by key prefix", "count", excluded, "prefixes", r.job.Options.ExcludeKeyPrefixes)
	}
	if errors.Is(err, errEnough) {
		return nil
	}
	if errors.Is(err, errStopping) {
		r.log.Info("discovery stopped with the job; the objects it did not find need a new job")
		return err
	}
	if err != nil {
		return fmt.Errorf("shark %s: %w", r.job.From.MantaStorageID, err)
	}
	return nil
}

// recordDiscovered batches objects into the store until the channel closes,
// or returns errEnough once max_objects objects are recorded.
func (r *runner) recordDiscovered(ctx context.Context, objs <-chan rebalancer.Object, recorded int64) error {
	limit := int64(r.job.Options.MaxObjects)
	batch := make([]rebalancer.Object, 0, 256)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if limit > 0 && recorded+int64(len(batch)) > limit {
			batch = batch[:limit-recorded]
		}
		res, err := r.store.RecordDiscovered(ctx, r.job.ID, batch)
		if err != nil {
			return err
		}
		recorded += int64(res.Inserted)
		r.e.cfg.Metrics.discovered(res.Inserted, res.Duplicates)
		if res.Duplicates > 0 {
			r.log.Info("objects found under several keys or shards", "duplicates", res.Duplicates)
		}
		batch = batch[:0]
		r.wakeFeeder()
		if limit > 0 && recorded >= limit {
			return errEnough
		}
		return nil
	}
	for {
		select {
		case o, ok := <-objs:
			if !ok {
				return flush()
			}
			batch = append(batch, o)
			if len(batch) == cap(batch) || (limit > 0 && recorded+int64(len(batch)) >= limit) {
				if err := flush(); err != nil {
					return err
				}
			}
		case <-t.C:
			if err := flush(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// recordedSoFar counts the objects an earlier run of this job recorded.
func (r *runner) recordedSoFar(ctx context.Context) (int64, error) {
	counts, err := r.store.Counts(ctx, r.job.ID)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range counts {
		n += c.N
	}
	return n, nil
}

// source returns the job's object source: its earlier job's leftovers for a
// retry job, the configured discovery otherwise.
func (r *runner) source() (rebalancer.ObjectSource, error) {
	if r.job.RetryOf != "" {
		return &retrySource{store: r.store, jobID: r.job.RetryOf, metadata: r.e.cfg.Metadata, failures: r.failures}, nil
	}
	if r.e.cfg.Source == nil {
		return nil, errors.New("no object source configured")
	}
	return r.e.cfg.Source(r.job)
}
