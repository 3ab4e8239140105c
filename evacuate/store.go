package evacuate

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
)

// Store is a job store: the jobs, the fate of every object they touch,
// the assignments in flight and exact per-job counters, in a SQLite file
// or a PostgreSQL database, through the same SQL. A manager's restart
// finds every job and object where it was.
//
// Open one with package sqlitestore or pgstore, which link the driver of
// their database, so that a program links only the one it uses; or, with
// a driver of your own for one of these databases, with OpenStore. A
// Store is safe for concurrent use; give it to one Engine at a time.
type Store struct{ s *jobstore.Store }

// Dialect is the SQL dialect of a job store's database.
type Dialect int

// The dialects a job store speaks.
const (
	SQLite     Dialect = iota + 1 // a SQLite file (package sqlitestore)
	PostgreSQL                    // a PostgreSQL database (package pgstore)
)

// StoreDB is a database for a job store, as its driver opened it.
type StoreDB struct {
	// DB is the database. The store takes it over: Store.Close closes it.
	DB *sql.DB
	// Dialect is its SQL dialect, which decides the bind style and
	// whether write transactions are serialised (SQLite has one writer).
	Dialect Dialect
	// File, for SQLite, is the database file: Store.Check fails once it
	// is deleted or replaced under the open store, which SQLite itself
	// does not notice (it goes on writing to the unlinked file).
	File string
	// Name names the store in errors and in its mark file; it must not
	// hold a password. Empty means File, or "(PostgreSQL)".
	Name string
}

// StoreOptions guard a job store against being silently swapped.
//
// A store replaced by an empty one (a SQLite file deleted or restored from
// an old copy, a PostgreSQL database recreated) looks like a fresh install:
// a manager started on it would forget every job it had, and the operator
// would see no job where there were some. So a small mark file, kept
// outside the store, records the store's identity (a random id drawn when
// the store was created, in its store_meta table) and the number of jobs
// it held. Opening a store that is not the one marked, or that holds fewer
// jobs than the mark says, fails with an error wrapping ErrStoreReplaced,
// unless AcceptEmpty is set.
//
// The mark is written (atomically) when the store is first opened with it
// and after every job created; a crash in between leaves it behind the
// store, never ahead, so it never refuses a good store. A store copied
// whole (pg_dump and restore, a SQLite file moved with its mark) keeps its
// identity and is accepted.
type StoreOptions struct {
	// MarkFile is where the mark is kept; "" keeps none.
	// sqlitestore.DefaultMarkFile gives the usual place for a SQLite
	// store. It must be outside the store's own database (for PostgreSQL,
	// a local file).
	MarkFile string
	// AcceptEmpty opens a store that does not match its mark anyway and
	// marks it as the store from now on: the jobs the mark remembers are
	// forgotten. For an operator who replaced the store on purpose.
	AcceptEmpty bool
	// Logger receives the warning when AcceptEmpty was needed
	// (slog.Default when nil).
	Logger *slog.Logger
}

// Errors of the job store.
var (
	// ErrJobNotFound is returned for an unknown job id.
	ErrJobNotFound = jobstore.ErrJobNotFound
	// ErrStoreReplaced is matched by the error of opening a job store
	// that does not match its mark file (see StoreOptions).
	ErrStoreReplaced = jobstore.ErrStoreReplaced
)

// OpenStore opens a job store on db, creating and migrating its tables as
// needed, and checks it against its mark file when opts names one. On
// error, db is closed.
func OpenStore(ctx context.Context, db StoreDB, opts StoreOptions) (*Store, error) {
	if db.DB == nil || (db.Dialect != SQLite && db.Dialect != PostgreSQL) {
		if db.DB != nil {
			db.DB.Close()
		}
		return nil, errors.New("evacuate: OpenStore needs a database and its dialect")
	}
	s, err := jobstore.Open(ctx, jobstore.DB{DB: db.DB, Postgres: db.Dialect == PostgreSQL, File: db.File, Name: db.Name},
		jobstore.MarkOptions{File: opts.MarkFile, AcceptEmpty: opts.AcceptEmpty, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return &Store{s: s}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.s.Close() }

// Check reports whether the job store works now: a SQLite file is still the
// one opened (not deleted or replaced), the database takes a write, and
// the mark file, if any, could be kept up to date. Every error names the
// store and what is wrong with it.
func (s *Store) Check(ctx context.Context) error { return s.s.Check(ctx) }

// JobRecord is a job as stored.
type JobRecord struct {
	ID            string
	Action        rebalancer.JobAction
	State         rebalancer.JobState
	From          rebalancer.StorageNode
	Options       Options
	RetryOf       string
	Error         string
	DiscoveryDone bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
	StartedAt     time.Time
	FinishedAt    time.Time
}

// jobRecord is the engine's view of a stored job.
func jobRecord(j jobstore.Job) (JobRecord, error) {
	r := JobRecord{ID: j.ID, Action: j.Action, State: j.State, From: j.From, RetryOf: j.RetryOf, Error: j.Error,
		DiscoveryDone: j.DiscoveryDone, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt}
	if err := json.Unmarshal(j.Options, &r.Options); err != nil {
		return r, fmt.Errorf("job %s options: %w", j.ID, err)
	}
	return r, nil
}

// storedJob is a job as the store keeps it.
func storedJob(r JobRecord) (jobstore.Job, error) {
	opts, err := json.Marshal(r.Options)
	return jobstore.Job{ID: r.ID, Action: r.Action, State: r.State, From: r.From, Options: opts, RetryOf: r.RetryOf}, err
}

// getJob reads a stored job.
func getJob(ctx context.Context, s *jobstore.Store, id string) (JobRecord, error) {
	j, err := s.GetJob(ctx, id)
	if err != nil {
		return JobRecord{}, err
	}
	return jobRecord(j)
}

// Count is one counter of a job: objects (and their bytes) in a status, for
// one reason when the status is skipped or error.
type Count struct {
	Status string
	Reason string
	N      int64
	Bytes  int64
}

// getCounts reads a job's counters.
func getCounts(ctx context.Context, s *jobstore.Store, jobID string) ([]Count, error) {
	cs, err := s.Counts(ctx, jobID)
	if err != nil {
		return nil, err
	}
	out := make([]Count, len(cs))
	for i, c := range cs {
		out[i] = Count(c)
	}
	return out, nil
}
