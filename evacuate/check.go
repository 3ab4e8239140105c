package evacuate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
)

// MaxSharkChecks is how many shark checks run at once: each one scans
// every metadata shard, as a job's discovery does.
const MaxSharkChecks = 2

// ErrChecksBusy refuses a shark check while MaxSharkChecks run.
var ErrChecksBusy = fmt.Errorf("%d shark checks are running already: try again when one has finished", MaxSharkChecks)

// SharkCheck answers "is this shark safe to retire?" from a fresh
// discovery: what metadata still names the shark, why the jobs left it
// there, and what still acts on the shark.
type SharkCheck struct {
	// Shark is the shark's state when the scan ended.
	Shark SharkStatus
	// Safe is true when the scan found no metadata naming the shark, no
	// evacuation of it is running, and it is out of service (draining,
	// drained or blocklisted), so that no job puts a copy back on it.
	Safe bool
	// Objects is the number of metadata records naming the shark: one per
	// key, so an object under two keys (a snaplink) counts twice.
	Objects int64
	// Groups break Objects down by what the latest jobs recorded of each,
	// largest first.
	Groups []CheckGroup
	// Running are the jobs on the shark that have not ended (dry runs
	// included; only evacuations keep Safe false).
	Running []JobRecord
	// Latest is the latest evacuation of the shark (not a dry run), if
	// any: the job a retry would retry.
	Latest *JobRecord
	// V2NotScanned, when the engine's source does not discover buckets
	// (v2) objects (Config.Buckets.Scanned is false), says why: Safe then
	// speaks for v1 objects only, and the shark may still hold v2 objects.
	V2NotScanned string
	// Started and Finished bound the scan.
	Started, Finished time.Time
}

// The kinds of CheckGroup.
const (
	CheckSkipped     = "skipped"       // a job skipped it; Reason is the skip reason
	CheckError       = "error"         // a job left it in error; Reason is the error kind
	CheckUnprocessed = "not_processed" // a job found it and did not finish with it; Reason is its status
	CheckMoved       = "moved"         // a job moved it, yet this key names the shark (another key of the object, or written back since)
	CheckDryRun      = "dry_run"       // only a dry run found it
	CheckExcluded    = "excluded"      // under a key prefix the latest evacuation left out; Reason is the prefix
	CheckNotFound    = "not_found"     // no job found it: written since the latest evacuation's scan, or never evacuated
)

// CheckGroup is the objects of a check that the latest jobs recorded alike.
type CheckGroup struct {
	Kind   string
	Reason string
	// Job is the job that recorded them (none for CheckNotFound, and the
	// latest evacuation for CheckExcluded).
	Job     string
	Objects int64
	// Sources counts the objects by the shark the job last read their
	// copy from, when it recorded one.
	Sources  map[string]int64
	Examples []CheckExample
}

// CheckExample is one object of a CheckGroup.
type CheckExample struct {
	ID    string
	Key   string
	Shard int
	// Detail and Source are what the job recorded of it: the underlying
	// cause of a skip or error, and the shark its copy was read from.
	Detail string
	Source string
}

// CheckProgress is how far a shark check's scan is.
type CheckProgress struct {
	Objects int64 // metadata records naming the shark found so far
	Elapsed time.Duration
}

// CheckOptions tune a shark check.
type CheckOptions struct {
	// Examples is how many objects each group lists (default 5, at most
	// 100).
	Examples int
	// Progress, when set, is called every ProgressInterval (default 2s)
	// while the scan runs, from a goroutine of the check's own.
	Progress         func(CheckProgress)
	ProgressInterval time.Duration
}

// checkBatch is how many objects the check classifies at a time.
const checkBatch = 500

// CheckShark tells whether a shark is safe to retire. It discovers afresh,
// with the engine's object source (every object kind it is configured for,
// and no key prefix left out), every metadata record that names the shark,
// and looks each one up in the shark's jobs, latest first, to say why it
// is still there. It writes nothing: no job, no state.
//
// A shark no one knows gives an *UnknownSharkError, and ErrChecksBusy is
// returned while MaxSharkChecks run. A scan that fails returns its error:
// a check that did not see everything cannot say the shark is safe.
func (e *Engine) CheckShark(ctx context.Context, shark string, opts CheckOptions) (SharkCheck, error) {
	shark = strings.TrimSpace(shark)
	if opts.Examples <= 0 {
		opts.Examples = 5
	}
	opts.Examples = min(opts.Examples, 100)
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 2 * time.Second
	}
	st, err := e.SharkStatus(ctx, shark)
	if err != nil {
		return SharkCheck{}, err
	}
	if e.cfg.Source == nil {
		return SharkCheck{}, errors.New("no object source configured: shark checks discover objects with it")
	}
	select {
	case e.checks <- struct{}{}:
		defer func() { <-e.checks }()
	default:
		return SharkCheck{}, ErrChecksBusy
	}

	jobs, err := e.sharkJobs(ctx, shark)
	if err != nil {
		return SharkCheck{}, err
	}
	// The source of a job that leaves nothing out; the ID is the check's,
	// for the source's logs.
	from := rebalancer.StorageNode{MantaStorageID: shark, Datacenter: st.Datacenter}
	src, err := e.cfg.Source(JobRecord{ID: "shark-check", Action: rebalancer.JobEvacuate, From: from,
		Options: Options{ExcludeKeyPrefixes: []string{"none"}}})
	if err != nil {
		return SharkCheck{}, fmt.Errorf("shark %s: object source: %w", shark, err)
	}

	c := &checker{e: e, jobs: jobs, examples: opts.Examples, groups: map[checkKey]*CheckGroup{}}
	out := SharkCheck{Started: time.Now()}
	stopProgress := c.progress(ctx, out.Started, opts)
	err = src.Discover(ctx, rebalancer.DiscoverRequest{Shark: shark}, func(o rebalancer.Object) error {
		c.found.Add(1)
		// Keep what classifying needs, not the metadata.
		c.batch = append(c.batch, rebalancer.Object{ID: o.ID, Key: o.Key, Shard: o.Shard})
		if len(c.batch) < checkBatch {
			return nil
		}
		return c.classify(ctx)
	})
	if err == nil {
		err = c.classify(ctx)
	}
	stopProgress()
	if err != nil {
		return SharkCheck{}, fmt.Errorf("shark %s: check: %w", shark, err)
	}
	out.Finished = time.Now()
	out.Objects = c.found.Load()
	if !e.cfg.Buckets.Scanned {
		out.V2NotScanned = cmp.Or(e.cfg.Buckets.NotScanned, DefaultNotScanned)
	}
	for _, g := range c.groups {
		out.Groups = append(out.Groups, *g)
	}
	slices.SortFunc(out.Groups, func(a, b CheckGroup) int {
		return cmp.Or(cmp.Compare(b.Objects, a.Objects), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Job, b.Job))
	})

	// What acts on the shark now, after the scan.
	if out.Shark, err = e.SharkStatus(ctx, shark); err != nil {
		return SharkCheck{}, err
	}
	if jobs, err = e.sharkJobs(ctx, shark); err != nil {
		return SharkCheck{}, err
	}
	evacuating := false
	for i := range jobs {
		j := &jobs[i]
		if !j.State.Terminal() {
			out.Running = append(out.Running, *j)
			evacuating = evacuating || !j.Options.DryRun
		}
		if out.Latest == nil && !j.Options.DryRun {
			out.Latest = j
		}
	}
	outOfService := out.Shark.State != SharkInService || out.Shark.Blocklisted
	out.Safe = out.Objects == 0 && !evacuating && outOfService
	return out, nil
}

// sharkJobs returns the jobs on shark: evacuations newest first, then dry
// runs newest first.
func (e *Engine) sharkJobs(ctx context.Context, shark string) ([]JobRecord, error) {
	all, err := e.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	var out []JobRecord
	for _, j := range all {
		if j.From.MantaStorageID == shark {
			out = append(out, j)
		}
	}
	slices.SortStableFunc(out, func(a, b JobRecord) int {
		if a.Options.DryRun != b.Options.DryRun {
			if a.Options.DryRun {
				return 1
			}
			return -1
		}
		return b.CreatedAt.Compare(a.CreatedAt)
	})
	return out, nil
}

// checker classifies the objects a shark check finds.
type checker struct {
	e        *Engine
	jobs     []JobRecord // the shark's, in sharkJobs order
	examples int

	found  atomic.Int64
	batch  []rebalancer.Object
	groups map[checkKey]*CheckGroup
}

type checkKey struct{ kind, reason, job string }

// classify looks the batch up in the jobs, latest first, and counts each
// object in its group.
func (c *checker) classify(ctx context.Context) error {
	if len(c.batch) == 0 {
		return nil
	}
	left := make(map[string][]rebalancer.Object, len(c.batch)) // by id: a snaplink's keys share it
	for _, o := range c.batch {
		left[o.ID] = append(left[o.ID], o)
	}
	c.batch = c.batch[:0]
	for _, j := range c.jobs {
		if len(left) == 0 {
			break
		}
		ids := make([]string, 0, len(left))
		for id := range left {
			ids = append(ids, id)
		}
		rows, err := c.e.store.ObjectsByID(ctx, j.ID, ids)
		if err != nil {
			return err
		}
		for i := range rows {
			row := &rows[i]
			for _, o := range left[row.ID] {
				c.add(c.groupOf(j, row, o), o, row)
			}
			delete(left, row.ID)
		}
	}
	var latest *JobRecord
	for i := range c.jobs {
		if !c.jobs[i].Options.DryRun {
			latest = &c.jobs[i]
			break
		}
	}
	for _, objs := range left {
		for _, o := range objs {
			k := checkKey{kind: CheckNotFound}
			if latest != nil {
				for _, p := range latest.Options.Exclusions() {
					if strings.Contains(o.Key, p) {
						k = checkKey{kind: CheckExcluded, reason: p, job: latest.ID}
						break
					}
				}
			}
			c.add(k, o, nil)
		}
	}
	return nil
}

// groupOf says what a job's record of an object makes of it.
func (c *checker) groupOf(j JobRecord, row *jobstore.ObjectRow, o rebalancer.Object) checkKey {
	if j.Options.DryRun {
		return checkKey{kind: CheckDryRun, job: j.ID}
	}
	switch row.Status {
	case rebalancer.ObjectSkipped.String():
		return checkKey{kind: CheckSkipped, reason: deref(row.SkippedReason), job: j.ID}
	case rebalancer.ObjectError.String():
		return checkKey{kind: CheckError, reason: deref(row.Error), job: j.ID}
	case rebalancer.ObjectComplete.String():
		return checkKey{kind: CheckMoved, job: j.ID}
	}
	return checkKey{kind: CheckUnprocessed, reason: row.Status, job: j.ID}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (c *checker) add(k checkKey, o rebalancer.Object, row *jobstore.ObjectRow) {
	g := c.groups[k]
	if g == nil {
		g = &CheckGroup{Kind: k.kind, Reason: k.reason, Job: k.job}
		c.groups[k] = g
	}
	g.Objects++
	if row != nil && row.SourceShark != "" {
		if g.Sources == nil {
			g.Sources = map[string]int64{}
		}
		g.Sources[row.SourceShark]++
	}
	if len(g.Examples) < c.examples {
		ex := CheckExample{ID: o.ID, Key: o.Key, Shard: o.Shard}
		if row != nil {
			ex.Detail, ex.Source = row.Detail, row.SourceShark
		}
		g.Examples = append(g.Examples, ex)
	}
}

// progress reports the scan's progress every interval until the returned
// function is called.
func (c *checker) progress(ctx context.Context, start time.Time, opts CheckOptions) (stop func()) {
	if opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(opts.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case now := <-t.C:
				opts.Progress(CheckProgress{Objects: c.found.Load(), Elapsed: now.Sub(start)})
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
