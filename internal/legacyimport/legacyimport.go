// Package legacyimport imports the jobs of the legacy (Rust) rebalancer
// manager into a job store, so that after an upgrade in place the manager
// lists them, shows their status and objects, and retries them, as it does
// its own jobs.
//
// Each row of the legacy jobs table becomes a finished job under the same
// uuid, with every row of its job database (package legacydb reads them,
// read-only): each object with its status, skip reason, error, shard,
// etag, destination and metadata verbatim, and its duplicates. An imported
// job shows the counts the legacy showed for it (GET /jobs/{uuid}), in the
// state the legacy shows after a restart: a job it was running (or
// setting up) when it stopped is failed, with a note saying so.
//
// Importing is idempotent and atomic per job: a job already in the store
// is left as it is (running the import twice imports nothing new), and a
// job is written in one transaction, so that one interrupted half way is
// not in the store at all and is imported whole by the next run. What
// cannot be imported is reported and left out: a job with the action
// "none" (the legacy never ran one, and has no status for it), a job whose
// database is missing (the legacy cannot show it either), a database
// without a job row (the legacy never listed it), and a job whose database
// holds values the project cannot represent (a *legacydb.ValueError names
// the row and column).
//
// Differences with the legacy that outlive the import (a retry takes the
// objects left assigned or post_processing too) are in
// docs/compatibility.md; the legacy databases in docs/legacy-jobs.md.
package legacyimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/legacydb"
)

// Config says how to import.
type Config struct {
	// Options are the options the imported jobs carry, from which a retry
	// of one starts (the manager's configured options; zero fields:
	// evacuate.DefaultOptions). The legacy kept no options per job.
	Options evacuate.Options
	// Progress, when set, is called as each job is imported: when it
	// starts, every ProgressEvery while its objects are written, and
	// when it is done.
	Progress func(Progress)
	// ProgressEvery is how often a job being imported reports (default 5s).
	ProgressEvery time.Duration
}

// Progress is where the import of one job is.
type Progress struct {
	Job   string
	N, Of int // the job's place in the legacy list, from 1
	// State is the state the job is imported in, and Shark the shark it
	// evacuated.
	State   rebalancer.JobState
	Shark   string
	Objects int64 // objects read and written so far
	Done    bool
}

// String is a progress line for people.
func (p Progress) String() string {
	head := fmt.Sprintf("legacy job %d of %d, %s (%s, %s)", p.N, p.Of, p.Job, p.State, p.Shark)
	switch {
	case p.Done:
		return fmt.Sprintf("%s: %s objects imported", head, commas(p.Objects))
	case p.Objects == 0:
		return head + ": importing"
	}
	return fmt.Sprintf("%s: %s objects so far", head, commas(p.Objects))
}

// Outcome is what became of a legacy job.
type Outcome int

const (
	// Imported: written into the store by this run.
	Imported Outcome = iota + 1
	// Present: already in the store (imported by an earlier run).
	Present
	// Skipped: it cannot be imported, for a reason of the legacy's own
	// (Result.Why says which); not an error.
	Skipped
	// Failed: it could not be read or written (Result.Err says why).
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Imported:
		return "imported"
	case Present:
		return "present"
	case Skipped:
		return "skipped"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is what became of one legacy job.
type Result struct {
	ID      string
	Outcome Outcome
	// State is the job's state in the store: the legacy's, after its
	// restart (legacydb.StateAfterRestart).
	State rebalancer.JobState
	Shark string
	// Objects and Duplicates are what this run wrote (Imported only).
	Objects, Duplicates int64
	Why                 string // Skipped: why
	Err                 error  // Failed: why
}

// Summary is what an import did.
type Summary struct {
	// Jobs has every row of the legacy jobs table, in the legacy's order
	// (database creation), with what became of it.
	Jobs []Result
	// Orphans are databases named like a legacy job that have no row in
	// the jobs table: jobs whose creation failed half way, which the
	// legacy never listed. They are not imported.
	Orphans []string
}

// Count returns how many jobs had outcome o.
func (s *Summary) Count(o Outcome) int {
	n := 0
	for _, r := range s.Jobs {
		if r.Outcome == o {
			n++
		}
	}
	return n
}

// Write prints the summary for people: a line per job, then the totals.
func (s *Summary) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var objects, dups int64
	for _, r := range s.Jobs {
		what := ""
		switch r.Outcome {
		case Imported:
			objects += r.Objects
			dups += r.Duplicates
			what = fmt.Sprintf("%s\t%s\t%s objects, %s duplicates", r.State.Title(), r.Shark, commas(r.Objects), commas(r.Duplicates))
		case Present:
			what = "already in the job store"
		case Skipped:
			what = r.Why
		case Failed:
			what = r.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.ID, r.Outcome, what)
	}
	for _, o := range s.Orphans {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", o, "not a job", "a database without a row in the jobs table (its creation failed; the legacy never listed it)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d imported (%s objects, %s duplicates), %d already imported, %d skipped, %d failed, of %d legacy jobs.\n",
		s.Count(Imported), commas(objects), commas(dups), s.Count(Present), s.Count(Skipped), s.Count(Failed), len(s.Jobs))
	return err
}

// Import imports every job of the legacy manager that r reads into st,
// one job at a time, in the legacy's order. It returns an error only when
// the legacy jobs cannot be listed, or ctx ends (with what was done so
// far); what became of each job, failures included, is in the Summary.
func Import(ctx context.Context, r *legacydb.Reader, st *evacuate.Store, cfg Config) (Summary, error) {
	var sum Summary
	jobs, err := r.Jobs(ctx)
	if err != nil {
		return sum, err
	}
	if sum.Orphans, err = r.OrphanDatabases(ctx); err != nil {
		return sum, err
	}
	created := creationTimes(jobs)
	for i, j := range jobs {
		res := importJob(ctx, r, st, j, created[i], cfg, i+1, len(jobs))
		sum.Jobs = append(sum.Jobs, res)
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
	}
	return sum, nil
}

// importJob imports one legacy job.
func importJob(ctx context.Context, r *legacydb.Reader, st *evacuate.Store, j legacydb.Job, created time.Time, cfg Config, n, of int) Result {
	res := Result{ID: j.ID}
	failed := func(err error) Result {
		res.Outcome, res.Err = Failed, err
		return res
	}
	switch {
	case j.Err != nil:
		return failed(j.Err)
	case j.Action != rebalancer.JobEvacuate:
		res.Outcome, res.Why = Skipped, fmt.Sprintf("action %s: the legacy never runs such a job and has no status for it", j.Action)
		return res
	}
	if ok, err := st.HasJob(ctx, j.ID); err != nil {
		return failed(err)
	} else if ok {
		res.Outcome = Present
		return res
	}
	if !j.HasDatabase {
		res.Outcome, res.Why = Skipped, "its job database does not exist (the legacy answers 400 Could not find job UUID for it)"
		return res
	}
	db, err := r.OpenJob(ctx, j.ID)
	if err != nil {
		return failed(err)
	}
	defer db.Close()
	from, err := db.FromShark(ctx)
	if err != nil {
		return failed(err)
	}
	res.State, res.Shark = legacydb.StateAfterRestart(j.State), from.MantaStorageID
	p := progress{cfg: cfg, at: Progress{Job: j.ID, N: n, Of: of, State: res.State, Shark: res.Shark}}
	p.report(true)
	imported, err := st.ImportJob(ctx, evacuate.ImportedJob{
		ID:        j.ID,
		State:     res.State,
		From:      from,
		Options:   cfg.Options,
		Error:     stoppedNote(j.State),
		CreatedAt: created,
		Objects: func(ctx context.Context, visit func(evacuate.ImportedObject) error) error {
			return db.Objects(ctx, "", func(o legacydb.Object) error {
				p.at.Objects++
				p.report(false)
				return visit(object(o))
			})
		},
		Duplicates: func(ctx context.Context, visit func(evacuate.ImportedDuplicate) error) error {
			return db.Duplicates(ctx, func(d legacydb.Duplicate) error {
				for _, shard := range distinctShards(d.Shards) {
					if err := visit(evacuate.ImportedDuplicate{ID: d.ID, Key: d.Key, Shard: shard}); err != nil {
						return err
					}
				}
				return nil
			})
		},
	})
	switch {
	case errors.Is(err, evacuate.ErrJobExists):
		// Imported meanwhile by another run.
		res.Outcome = Present
		return res
	case err != nil:
		return failed(err)
	}
	p.at.Done = true
	p.report(true)
	res.Outcome, res.Objects, res.Duplicates = Imported, imported.Objects, imported.Duplicates
	return res
}

// progress reports one job's progress at most every ProgressEvery.
type progress struct {
	cfg  Config
	at   Progress
	last time.Time
}

func (p *progress) report(now bool) {
	if p.cfg.Progress == nil {
		return
	}
	every := p.cfg.ProgressEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	if !now && time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	p.cfg.Progress(p.at)
}

// stoppedNote is the error an imported job carries when the legacy manager
// stopped while it ran: the legacy then shows it failed (legacydb
// StateAfterRestart) but records no reason.
func stoppedNote(s rebalancer.JobState) string {
	switch s {
	case rebalancer.JobInit, rebalancer.JobSetup:
		return "imported from the legacy rebalancer: it had not started when the legacy manager stopped, " +
			"which fails such jobs when it restarts"
	case rebalancer.JobRunning:
		return "imported from the legacy rebalancer: it was running when the legacy manager stopped, " +
			"which fails such jobs when it restarts; its objects left assigned or post_processing can be retried"
	}
	return ""
}

// object is a legacy row as the store keeps it. A reason the row's status
// does not call for (the legacy does not always clear one when an object
// moves on) is kept in the detail rather than the columns, so that the
// counts and breakdowns are those the legacy shows.
func object(o legacydb.Object) evacuate.ImportedObject {
	io := evacuate.ImportedObject{ID: o.ID, Metadata: o.Object, Shard: o.Shard, Etag: o.Etag, Status: o.Status,
		Dest: rebalancer.StorageNode{MantaStorageID: o.DestShark}, AssignmentID: o.AssignmentID}
	var stale []string
	if o.SkipReason != 0 {
		if o.Status == rebalancer.ObjectSkipped {
			io.SkipReason = o.SkipReason
		} else {
			stale = append(stale, "skipped_reason "+o.SkipReason.String())
		}
	}
	if o.Error != 0 {
		if o.Status == rebalancer.ObjectError {
			io.Error = o.Error
		} else {
			stale = append(stale, "error "+o.Error.String())
		}
	}
	if len(stale) > 0 {
		io.Detail = "the legacy job database also had " + strings.Join(stale, " and ") + " on this object, left from an earlier status"
	}
	return io
}

// distinctShards are the shards of a legacy duplicates row, each once, in
// the order first met. The legacy appends a shard each time it meets the
// id again; the store keeps an occurrence per key and shard. A row
// without shards (the legacy always writes one) is kept as shard 0, so
// that it still counts as a duplicate.
func distinctShards(shards []int) []int {
	if len(shards) == 0 {
		return []int{0}
	}
	var out []int
	for _, s := range shards {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// creationTimes returns the creation time each job gets in the store, so
// that the store lists them in the legacy's order (the order of their
// databases' creation): the time the reader found, when it comes after
// the job before's, else a millisecond after that one. The reader's times
// are in whole seconds (the modification time of the database's
// PG_VERSION file), so jobs created within a second would otherwise tie.
// Jobs at the head of the list whose time is unknown come a millisecond
// apart before the first known one; when no time is known at all, the
// jobs get the first milliseconds of 1970, in order: older than any job
// of this manager, as they are.
func creationTimes(jobs []legacydb.Job) []time.Time {
	out := make([]time.Time, len(jobs))
	first := -1
	for i, j := range jobs {
		if !j.Created.IsZero() {
			first = i
			break
		}
	}
	if first < 0 {
		for i := range out {
			out[i] = time.UnixMilli(int64(i + 1)).UTC()
		}
		return out
	}
	for i := range jobs {
		switch {
		case i < first:
			out[i] = jobs[first].Created.Add(-time.Duration(first-i) * time.Millisecond)
		case i == first:
			out[i] = jobs[i].Created
		case jobs[i].Created.After(out[i-1]):
			out[i] = jobs[i].Created
		default:
			out[i] = out[i-1].Add(time.Millisecond)
		}
	}
	return out
}

// commas writes n with thousands separators.
func commas(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + commas(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
