package evacuate

import (
	"context"
	"errors"
	"log/slog"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
)

// retrySource is the object source of a retry job: the objects of an earlier
// job that did not complete. Unlike the legacy, which re-sent the metadata
// (and etags) of the original discovery, it reads each object's current
// metadata again, so that objects moved, deleted or rewritten since are not
// copied for nothing and etags are fresh.
type retrySource struct {
	store    *jobstore.Store
	jobID    string
	metadata rebalancer.MetadataStore
	failures *logging.Summarizer
}

// retried lists the statuses of objects a retry job takes over: everything
// but complete.
var retried = []rebalancer.ObjectStatus{
	rebalancer.ObjectSkipped, rebalancer.ObjectError, rebalancer.ObjectUnprocessed,
	rebalancer.ObjectAssigned, rebalancer.ObjectPostProcessing,
}

func (s *retrySource) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	for _, status := range retried {
		var after int64
		for {
			rows, err := s.store.ObjectsInStatus(ctx, s.jobID, status, after, 500)
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				break
			}
			for i := range rows {
				row := &rows[i]
				after = row.Seq
				if row.Error != nil && *row.Error == rebalancer.ErrorBadShardNumber.String() {
					continue
				}
				obj, ok := s.current(ctx, row, req.Shark)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !ok {
					continue
				}
				if err := visit(obj); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// current returns the object's metadata as it is now, and false when there
// is nothing left to move.
func (s *retrySource) current(ctx context.Context, row *jobstore.ObjectRow, shark string) (rebalancer.Object, bool) {
	stored, err := row.Object()
	if err != nil {
		// Not parseable then, not parseable now: let the new job record it.
		return rebalancer.Object{ID: row.ID, Key: row.Key, Shard: row.Shard, Etag: row.Etag, Metadata: []byte(row.Metadata)}, true
	}
	var cur rebalancer.Object
	err = retry.Do(ctx, retry.Policy{
		Attempts:  4,
		Backoff:   metadataBackoff,
		Retryable: func(err error) bool { return !errors.Is(err, rebalancer.ErrObjectNotFound) },
	}, func(ctx context.Context) error {
		var err error
		cur, err = s.metadata.GetObject(ctx, row.Shard, row.Key)
		return err
	})
	switch {
	case err == nil:
		if cur.ID != row.ID || !cur.HasShark(shark) {
			return rebalancer.Object{}, false
		}
		cur.ScanID = row.ScanID
		return cur, true
	case errors.Is(err, rebalancer.ErrObjectNotFound), ctx.Err() != nil:
		return rebalancer.Object{}, false
	}
	// Metadata cannot be read now: retry with what was stored, whose etag
	// the metadata stage re-checks anyway.
	s.failures.Log(ctx, slog.LevelWarn, "cannot re-read metadata for a retried object; using the stored copy", err, "object", row.ID)
	return stored, true
}
