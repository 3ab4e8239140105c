package evacuate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
)

// metadata runs the metadata stage: MetadataThreads workers, resized while
// the job runs, each taking the next assignment whose copies are verified and
// pointing its objects' metadata at their new copies.
func (r *runner) metadata(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var stops []chan struct{}
	for {
		want := int(r.mdWant.Load())
		for len(stops) < want {
			stop := make(chan struct{})
			stops = append(stops, stop)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.metadataWorker(ctx, stop)
			}()
		}
		for len(stops) > want {
			// A worker finishes the assignment it is on, then exits.
			close(stops[len(stops)-1])
			stops = stops[:len(stops)-1]
		}
		r.e.cfg.Metrics.setMetadataThreads(r.job.ID, len(stops))
		select {
		case <-ctx.Done():
			r.e.cfg.Metrics.setMetadataThreads(r.job.ID, 0)
			return ctx.Err()
		case <-r.mdChange:
		}
	}
}

func (r *runner) metadataWorker(ctx context.Context, stop <-chan struct{}) {
	for {
		id, ok := r.mdq.pop(ctx, stop)
		if !ok {
			return
		}
		if err := r.updateAssignment(ctx, id); err != nil {
			if ctx.Err() == nil {
				r.fatal(err)
			}
			return
		}
	}
}

// updateAssignment updates the metadata of an assignment's verified copies
// and records the outcome.
func (r *runner) updateAssignment(ctx context.Context, id string) error {
	rows, err := r.store.AssignmentObjects(ctx, r.job.ID, id, rebalancer.ObjectPostProcessing)
	if err != nil {
		return err
	}
	changes, err := r.updateObjects(ctx, rows)
	if err != nil {
		return err // ctx ended: the objects stay post_processing
	}
	if err := r.store.Transition(ctx, r.job.ID, rebalancer.ObjectPostProcessing, changes); err != nil {
		return fmt.Errorf("assignment %s: record metadata updates: %w", id, err)
	}
	requeued := false
	r.objectsEnded(ctx, "metadata", changes)
	for _, c := range changes {
		requeued = requeued || c.To == rebalancer.ObjectUnprocessed
	}
	if requeued {
		r.wakeFeeder()
	}
	return nil
}

// updateObjects points the metadata of an assignment's objects at their
// verified new copies and returns their next statuses, in order. With a
// BatchMetadataStore (and batched updates on), the objects of each shard
// of each kind (v1 in Moray, v2 in buckets-mdapi) go in one batch; a batch
// that fails is done again one by one, which sorts out conflicts, deleted
// objects and transient failures per object. (A Moray batch is atomic; a
// buckets-mdapi one is atomic per vnode, and redoing its objects one by
// one is safe as each update is conditional on the version read.)
func (r *runner) updateObjects(ctx context.Context, rows []jobstore.ObjectRow) ([]jobstore.Change, error) {
	changes := make([]jobstore.Change, len(rows))
	batcher, batched := r.e.cfg.Metadata.(rebalancer.BatchMetadataStore)
	batched = batched && !r.job.Options.IndividualUpdates && len(rows) > 1
	type batchKey struct {
		v2    bool
		shard int
	}
	byShard := map[batchKey][]int{} // kind and shard -> indexes of rows ready to update
	var shards []batchKey
	for i := range rows {
		obj, dest, c, ok := r.checkUpdate(&rows[i])
		if !ok {
			changes[i] = c
			continue
		}
		if !batched {
			c, err := r.replaceOne(ctx, &rows[i], obj, dest)
			if err != nil {
				return nil, err
			}
			changes[i] = c
			continue
		}
		k := batchKey{isV2(&obj), obj.Shard}
		if byShard[k] == nil {
			shards = append(shards, k)
		}
		byShard[k] = append(byShard[k], i)
	}
	from := r.job.From.MantaStorageID
	for _, k := range shards {
		shard, idx := k.shard, byShard[k]
		reps := make([]rebalancer.SharkReplacement, len(idx))
		for k, i := range idx {
			obj, _ := rows[i].Object() // parsed by checkUpdate already
			reps[k] = rebalancer.SharkReplacement{Object: obj, From: from, To: rows[i].Dest()}
		}
		_, err := batcher.ReplaceSharks(ctx, shard, reps)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil {
			for _, i := range idx {
				changes[i] = jobstore.Change{ID: rows[i].ID, Bytes: rows[i].ContentLength, To: rebalancer.ObjectComplete}
			}
			continue
		}
		r.log.Debug("batched metadata update failed; updating one by one", "shard", shard, "v2", k.v2, "objects", len(idx), "err", err)
		for k, i := range idx {
			c, err := r.replaceOne(ctx, &rows[i], reps[k].Object, reps[k].To)
			if err != nil {
				return nil, err
			}
			changes[i] = c
		}
	}
	return changes, nil
}

// badObject is what becomes of an object whose stored metadata does not
// parse (err from jobstore.ObjectRow.Object): an error of the kind it names.
func badObject(row *jobstore.ObjectRow, err error) jobstore.Change {
	kind := rebalancer.ErrorBadMantaObject
	var bad *rebalancer.BadObjectError
	if errors.As(err, &bad) {
		kind = bad.Kind
	}
	return jobstore.Change{ID: row.ID, Bytes: row.ContentLength, To: rebalancer.ObjectError, Error: kind, Detail: err.Error()}
}

// checkUpdate parses an object about to be updated and returns it with its
// destination; ok false means it must not be updated, and c says what
// becomes of it instead.
func (r *runner) checkUpdate(row *jobstore.ObjectRow) (obj rebalancer.Object, dest rebalancer.StorageNode, c jobstore.Change, ok bool) {
	dest = row.Dest()
	obj, err := row.Object()
	if err != nil {
		return obj, dest, badObject(row, err), false
	}
	if isV2(&obj) && r.v2DownErr() != nil {
		return obj, dest, jobstore.Change{ID: row.ID, Bytes: row.ContentLength, To: rebalancer.ObjectError,
			Error: rebalancer.ErrorMdapiUpdateFailed, Detail: v2DownDetail(r.v2DownErr(), "copied, metadata not updated")}, false
	}
	if r.e.excluded(dest.MantaStorageID, r.job.ID) && row.Attempts+1 < r.job.Options.MaxAttempts {
		// The copy went to a shark that a job started since is evacuating,
		// and that job may have scanned past this object already: naming
		// the destination now could leave the object on it. Or an operator
		// took the shark out since. Place it again (placement avoids
		// sharks out of service).
		return obj, dest, jobstore.Change{ID: row.ID, Bytes: row.ContentLength, To: rebalancer.ObjectUnprocessed, Avoid: dest.MantaStorageID,
			Detail: "the destination left service; placing the object again"}, false
	}
	return obj, dest, jobstore.Change{}, true
}

// replaceOne points the metadata of one object that checkUpdate passed at
// its verified new copy, conditionally on the etag it was read with. It
// returns the object's next status, and an error only when ctx ended.
//
// A conflict means the object changed since it was read. It is read again:
// if it is still the same object (same objectId) still listing the evacuated
// shark, the update is retried at once with the new etag; if it no longer
// lists the shark the object needs nothing more (an earlier run of this job
// may have updated it before a crash); if it was replaced by another object
// or deleted, the copy is not used. Other failures (Moray or buckets-mdapi
// unreachable, overloaded, timing out) are retried with backoff for
// MetadataRetryWindow, then left to a retry job. Errors have the kinds of
// the object's tier (moray_* or mdapi_*). A v2 object whose buckets-mdapi
// cannot move objects (upstream buckets-mdapi), or could not be reached
// for the whole window, stops the job's v2 updates (setV2Down).
func (r *runner) replaceOne(ctx context.Context, row *jobstore.ObjectRow, obj rebalancer.Object, dest rebalancer.StorageNode) (jobstore.Change, error) {
	o := r.job.Options
	from := r.job.From.MantaStorageID
	v2, kinds := isV2(&obj), errorKindsOf(&obj)
	var c jobstore.Change // the outcome, once op decides it
	done := func(to rebalancer.ObjectStatus, kind rebalancer.ObjectErrorKind, detail string) error {
		c = jobstore.Change{ID: row.ID, Bytes: row.ContentLength, To: to, Error: kind, Detail: detail}
		return nil
	}
	var refreshed *rebalancer.Object
	conflicts := 0
	op := func(ctx context.Context) error {
		for {
			if down := r.v2DownErr(); v2 && down != nil {
				// Another object found buckets-mdapi unusable meanwhile.
				return done(rebalancer.ObjectError, kinds.updateFailed, v2DownDetail(down, "copied, metadata not updated"))
			}
			_, err := r.e.cfg.Metadata.ReplaceShark(ctx, obj, from, dest)
			if err == nil {
				done(rebalancer.ObjectComplete, 0, "")
				c.Refresh = refreshed
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var bad *rebalancer.BadObjectError
			switch {
			case errors.As(err, &bad):
				return done(rebalancer.ObjectError, bad.Kind, err.Error())
			case v2 && tierUnusable(err):
				r.setV2Down(err)
				return done(rebalancer.ObjectError, kinds.updateFailed, v2DownDetail(err, "copied, metadata not updated"))
			case errors.Is(err, rebalancer.ErrObjectNotFound):
				return done(rebalancer.ObjectError, kinds.notFound, "object deleted before its metadata was updated")
			case !errors.Is(err, rebalancer.ErrEtagConflict) && !errors.Is(err, rebalancer.ErrSharkNotListed):
				return err // transient: retried with backoff
			}
			conflicts++
			cur, err := r.e.cfg.Metadata.GetObject(ctx, obj.Shard, obj.Key)
			switch {
			case errors.Is(err, rebalancer.ErrObjectNotFound):
				return done(rebalancer.ObjectError, kinds.notFound, "object deleted before its metadata was updated")
			case err != nil:
				return errRereading{err}
			case cur.ID != obj.ID:
				return done(rebalancer.ObjectError, kinds.etagMismatch,
					fmt.Sprintf("key now holds another object (%s), the copy is not used", cur.ID))
			case !cur.HasShark(from):
				// Nothing lists the evacuated shark any more.
				done(rebalancer.ObjectComplete, 0, "")
				if !cur.HasShark(dest.MantaStorageID) {
					c.Detail = "moved off the shark by someone else; the new copy is not used"
				}
				c.Refresh = &cur
				return nil
			case cur.HasShark(dest.MantaStorageID):
				// Another job, moving another copy of this object, put its
				// copy on the same destination first (the copy there is
				// that one). The object must still leave the evacuated
				// shark: place it again, elsewhere, while attempts remain.
				if row.Attempts+1 < o.MaxAttempts {
					c = jobstore.Change{ID: row.ID, Bytes: row.ContentLength, To: rebalancer.ObjectUnprocessed, Avoid: dest.MantaStorageID,
						Refresh: &cur, Detail: "metadata already lists the destination; placing the object again"}
					return nil
				}
				return done(rebalancer.ObjectError, kinds.etagMismatch,
					"metadata already lists the destination as well as the evacuated shark")
			case conflicts > o.EtagRetries:
				return done(rebalancer.ObjectError, kinds.etagMismatch,
					fmt.Sprintf("etag changed %d times while updating", conflicts))
			}
			obj, refreshed = cur, &cur
		}
	}
	err := retry.Do(ctx, retry.Policy{
		MaxElapsed: o.MetadataRetryWindow.D(),
		Backoff:    metadataBackoff,
		OnRetry: func(n int, _ time.Duration, err error) {
			r.failures.Log(ctx, slog.LevelWarn, "metadata update failed; retrying", err, "object", row.ID, "shard", obj.Shard, "attempt", n)
		},
	}, op)
	switch {
	case err == nil:
		return c, nil
	case ctx.Err() != nil:
		return jobstore.Change{}, ctx.Err()
	}
	// The retry window passed.
	var re *retry.Error
	if errors.As(err, &re) {
		err = re.Err
	}
	if v2 {
		r.setV2Down(err)
	}
	done(rebalancer.ObjectError, kinds.updateFailed, err.Error())
	return c, nil
}

// errRereading is a failure to read an object again after an etag
// conflict, retried like any transient failure.
type errRereading struct{ error }

func (e errRereading) Error() string { return "re-reading after an etag conflict: " + e.error.Error() }

func (e errRereading) Unwrap() error { return e.error }

// metadataBackoff is the schedule of waits between retries of a transient
// metadata failure: 100 ms, doubling, at most 5 s.
var metadataBackoff = retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
