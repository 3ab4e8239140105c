package sharkspotter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
)

// Defaults of the settings both scanners share.
const (
	// DefaultWorkers is how many shards are scanned at once (the legacy
	// manager's max_md_read_threads).
	DefaultWorkers = 10
	// DefaultRetries is how many times a failed query is retried when the
	// failure is transient.
	DefaultRetries = 5
	// DefaultRetryBackoff is the wait before the first retry; it doubles
	// with each further retry, up to a minute.
	DefaultRetryBackoff = time.Second
)

// maxRowErrors caps the row errors kept per shard; the rest are counted.
const maxRowErrors = 100

// Progress reports how far the scan of one shard has got. It is passed to
// an OnProgress callback on the goroutine that calls visit, after the visits
// it accounts for.
type Progress struct {
	Shard int
	// Through is the highest id up to which every row of the shard has been
	// visited or passed over: a safe resume point (DiscoverRequest.After)
	// even where no object matched.
	Through int64
	// Max is the highest id the shard had when its scan began, or 0 when
	// unknown. A scan may go beyond it if rows are inserted meanwhile.
	Max int64
	// Rows is the number of rows read from the shard so far (for
	// PostgresScanner, those that passed the SQL prefilter), and Found the
	// number of objects visited.
	Rows, Found int64
	// Done is set on a shard's last report when its scan completed.
	Done bool
}

// ShardError reports that the scan of one shard failed or was incomplete.
type ShardError struct {
	Shard int
	Err   error
}

func (e *ShardError) Error() string { return fmt.Sprintf("shard %d: %v", e.Shard, e.Err) }

func (e *ShardError) Unwrap() error { return e.Err }

// RowError reports a row that names the shark but whose value cannot be used
// (not JSON, no objectId, a malformed sharks array...). The scan goes on past
// it, and the shard's scan is reported as failed at its end.
type RowError struct {
	Shard int
	ID    int64  // the row's _id (or _idx)
	Key   string // the row's _key
	Err   error
}

func (e *RowError) Error() string {
	return fmt.Sprintf("row %d (key %q): %v", e.ID, e.Key, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// Options are the settings both scanners share: MorayScanner and
// PostgresScanner embed them. Shards is required.
type Options struct {
	// Shards lists the shard numbers to scan.
	Shards []int
	// Workers is how many shards are scanned at once (0: DefaultWorkers).
	Workers int
	// EndID, when positive, stops each shard's scan after this id.
	EndID int64
	// ExcludeKeyPrefixes leaves out objects whose key contains any of these
	// strings (the legacy exclude_key_prefixes; the single entry "none"
	// disables it). The legacy applied them in direct-DB mode only.
	ExcludeKeyPrefixes []string
	// Exhaustive parses every row's value rather than only those whose
	// text contains the quoted storage id.
	Exhaustive bool
	// Retries is how many times a query failing transiently (for Moray,
	// see moray.IsTransient; for PostgreSQL, a lost connection or a server
	// shutting down) is retried (0: DefaultRetries; negative: never).
	Retries int
	// RetryBackoff is the first wait before a retry (0:
	// DefaultRetryBackoff). It doubles with each further retry, up to a
	// minute.
	RetryBackoff time.Duration
	// Logger receives per-shard summaries and retries (nil: slog.Default()).
	Logger *slog.Logger
	// OnProgress, when set, is called after each query of each shard (a
	// Moray window, a PostgreSQL chunk), on the goroutine that calls visit.
	OnProgress func(Progress)
}

// common is a scan's settings, with defaults applied.
type common struct {
	shards     []int
	workers    int
	endID      int64
	policy     retry.Policy // for queries
	log        *slog.Logger
	onProgress func(Progress)
	m          matcher
}

// newCommon checks o and applies its defaults. transient says which query
// failures are worth retrying.
func newCommon(req rebalancer.DiscoverRequest, o Options, transient func(error) bool) (*common, error) {
	if req.Shark == "" {
		return nil, errors.New("sharkspotter: no shark given")
	}
	if len(o.Shards) == 0 {
		return nil, errors.New("sharkspotter: no shards given")
	}
	seen := make(map[int]bool, len(o.Shards))
	for _, s := range o.Shards {
		if s < 0 {
			return nil, fmt.Errorf("sharkspotter: invalid shard number %d", s)
		}
		if seen[s] {
			return nil, fmt.Errorf("sharkspotter: shard %d listed twice", s)
		}
		seen[s] = true
	}
	if o.EndID < 0 {
		return nil, fmt.Errorf("sharkspotter: negative end id %d", o.EndID)
	}
	m, err := newMatcher(req.Shark, o.ExcludeKeyPrefixes, o.Exhaustive)
	if err != nil {
		return nil, err
	}
	c := &common{shards: o.Shards, workers: o.Workers, endID: o.EndID, log: o.Logger, onProgress: o.OnProgress, m: m}
	if c.workers <= 0 {
		c.workers = DefaultWorkers
	}
	c.workers = min(c.workers, len(o.Shards))
	retries := o.Retries
	switch {
	case retries == 0:
		retries = DefaultRetries
	case retries < 0:
		retries = 0
	}
	backoff := o.RetryBackoff
	if backoff <= 0 {
		backoff = DefaultRetryBackoff
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.policy = retry.Policy{
		Attempts:  retries + 1,
		Backoff:   retry.Backoff{Initial: backoff, Max: time.Minute},
		Retryable: transient,
	}
	return c, nil
}

// backend is what a scanner provides: the id-ordered streams of a shard.
type backend interface {
	open(ctx context.Context, c *common, shard int) (shardSource, error)
}

// shardSource is one shard being scanned.
type shardSource struct {
	streams []stream // one per id column (_id, and _idx where present)
	max     int64    // highest id when the scan began, 0 if unknown
	close   func()
}

// stream reads the rows of one id column in ascending id order.
type stream interface {
	// column is "_id" or "_idx".
	column() string
	// fetch reads the next part of the stream, after the id after. It has
	// no side effects on failure, so it can be retried with the same after.
	fetch(ctx context.Context, after int64) (piece, error)
}

// piece is what one fetch read.
type piece struct {
	objs []rebalancer.Object // matching objects, ascending ScanID, each in (after, last]
	bad  []error             // *RowError for rows that could not be used
	rows int64               // rows read
	last int64               // every row up to last has been read
	done bool                // there is nothing after last
}

// batch is what a shard worker hands to the visiting goroutine.
type batch struct {
	objs []rebalancer.Object
	prog Progress
}

// discover runs the scan: shard workers feed batches to this goroutine,
// which calls visit for every object, in order per shard.
func (c *common) discover(parent context.Context, b backend, after map[int]int64, visit func(rebalancer.Object) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()

	batches := make(chan batch, c.workers)
	var (
		mu     sync.Mutex
		failed []*ShardError
	)
	// The launcher and the workers end before batches is closed, and the
	// loop below reads batches until it is closed, so no goroutine outlives
	// discover.
	go func() {
		defer close(batches)
		var g errgroup.Group
		g.SetLimit(c.workers)
		for _, shard := range c.shards {
			if ctx.Err() != nil {
				break
			}
			g.Go(func() error {
				err := c.scanShard(ctx, b, shard, after[shard], batches)
				if err != nil && ctx.Err() == nil {
					c.log.Error("shard scan failed", "shard", shard, "shark", c.m.shark, "err", err)
					mu.Lock()
					failed = append(failed, &ShardError{Shard: shard, Err: err})
					mu.Unlock()
				}
				return nil
			})
		}
		g.Wait()
	}()

	var stopErr error // visit's error, or the caller's context's
	for bt := range batches {
		if stopErr != nil {
			continue // draining, so that the workers see ctx and stop
		}
		for _, o := range bt.objs {
			if stopErr = parent.Err(); stopErr != nil {
				break
			}
			if stopErr = visit(o); stopErr != nil {
				break
			}
		}
		if stopErr == nil && c.onProgress != nil {
			c.onProgress(bt.prog)
		}
		if stopErr != nil {
			cancel()
		}
	}
	switch {
	case stopErr != nil:
		return stopErr
	case parent.Err() != nil:
		return parent.Err()
	case len(failed) == 0:
		return nil
	}
	slices.SortFunc(failed, func(a, b *ShardError) int { return cmp.Compare(a.Shard, b.Shard) })
	errs := make([]error, len(failed))
	shards := make([]int, len(failed))
	for i, f := range failed {
		errs[i], shards[i] = f, f.Shard
	}
	return fmt.Errorf("sharkspotter: shark %s: %d of %d shards failed %v: %w",
		c.m.shark, len(failed), len(c.shards), shards, errors.Join(errs...))
}

// streamState is a stream with its position and the objects read but not
// yet handed on.
type streamState struct {
	s    stream
	pos  int64
	done bool
	buf  []rebalancer.Object
}

// scanShard scans one shard. Its streams are merged by id: objects are sent
// only up to the lowest position of the streams not yet finished, so that
// nothing with a lower id can still come from another stream.
func (c *common) scanShard(ctx context.Context, b backend, shard int, after int64, out chan<- batch) error {
	start := time.Now()
	src, err := b.open(ctx, c, shard)
	if err != nil {
		return err
	}
	defer src.close()
	after = max(after, 0)
	states := make([]*streamState, len(src.streams))
	for i, s := range src.streams {
		states[i] = &streamState{s: s, pos: after}
	}
	prog := Progress{Shard: shard, Through: after, Max: src.max}
	var bad []error
	badCount := 0
	for {
		safe := int64(math.MaxInt64)
		through := after
		for _, st := range states {
			if !st.done {
				safe = min(safe, st.pos)
			}
			through = max(through, st.pos)
		}
		allDone := safe == math.MaxInt64
		if !allDone {
			through = safe
		}
		var objs []rebalancer.Object
		for _, st := range states {
			n := 0
			for n < len(st.buf) && st.buf[n].ScanID <= safe {
				n++
			}
			objs = append(objs, st.buf[:n]...)
			st.buf = slices.Delete(st.buf, 0, n)
		}
		if len(states) > 1 {
			slices.SortStableFunc(objs, func(a, b rebalancer.Object) int { return cmp.Compare(a.ScanID, b.ScanID) })
		}
		prog.Through, prog.Done = through, allDone
		prog.Found += int64(len(objs))
		if len(objs) > 0 || c.onProgress != nil {
			select {
			case out <- batch{objs: objs, prog: prog}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if allDone {
			break
		}
		var next *streamState
		for _, st := range states {
			if !st.done && (next == nil || st.pos < next.pos) {
				next = st
			}
		}
		p, err := c.fetch(ctx, shard, next.s, next.pos)
		if err != nil {
			return err
		}
		prog.Rows += p.rows
		next.buf = append(next.buf, p.objs...)
		next.pos, next.done = max(p.last, next.pos), p.done
		if c.endID > 0 && next.pos >= c.endID {
			next.done = true
		}
		for _, e := range p.bad {
			if len(bad) < maxRowErrors {
				bad = append(bad, e)
			}
			badCount++
		}
	}
	c.log.Info("shard scanned", "shard", shard, "shark", c.m.shark, "found", prog.Found, "rows", prog.Rows,
		"through", prog.Through, "bad_rows", badCount, "elapsed", time.Since(start).Round(time.Millisecond))
	if badCount > 0 {
		if badCount > len(bad) {
			bad = append(bad, fmt.Errorf("and %d more", badCount-len(bad)))
		}
		return fmt.Errorf("%d rows naming the shark could not be read: %w", badCount, errors.Join(bad...))
	}
	return nil
}

// fetch reads a stream's next piece, retrying transient failures with
// exponential backoff.
func (c *common) fetch(ctx context.Context, shard int, s stream, after int64) (piece, error) {
	var p piece
	err := c.retry(ctx, shard, s.column()+" after "+fmt.Sprint(after), func() error {
		var err error
		p, err = s.fetch(ctx, after)
		return err
	})
	return p, err
}

// retry runs f until it succeeds, fails for good, or has failed
// transiently as many times as the settings allow. The error names the
// query.
func (c *common) retry(ctx context.Context, shard int, what string, f func() error) error {
	p := c.policy
	p.OnRetry = func(n int, wait time.Duration, err error) {
		c.log.Warn("shard query failed, retrying", "shard", shard, "query", what, "attempt", n+1, "wait", wait, "err", err)
	}
	if err := retry.Do(ctx, p, func(context.Context) error { return f() }); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
