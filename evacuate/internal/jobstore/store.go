// Package jobstore is the evacuation engine's job store: jobs, the fate of
// every object they touch, the assignments in flight and exact per-job
// counters, in SQLite or PostgreSQL through the same SQL (sqlx, with the
// bind style of the database). It opens a database it is given: the
// drivers are linked by the packages that open one (evacuate/sqlitestore,
// evacuate/pgstore), so that a program links only the driver it uses.
package jobstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/TritonDataCenter/rebalancer"
)

// Store keeps evacuation jobs and the fate of every object they touch.
//
// Every change of an object's status goes through a statement guarded by the
// status it is leaving ("... WHERE status = 'assigned'"), in the same
// transaction as the per-job counters it moves. The counters are therefore
// exact at all times, and reading a job's status is a small query however
// many millions of objects it has.
type Store struct {
	db       *sqlx.DB
	postgres bool
	// SQLite allows one writer at a time. Serializing write transactions in
	// process avoids lock-upgrade deadlocks and busy retries; PostgreSQL
	// needs no such lock.
	writeMu sync.Mutex

	// path is the SQLite file and file what it was when opened: Check
	// notices the file deleted or replaced under the open store, which
	// SQLite itself would not (it goes on writing to the unlinked file).
	path string
	file os.FileInfo
	name string // for messages

	identity string // store_meta's, fixed when the store was created
	mark     *mark  // the record of the store kept outside it, if any
}

// Errors of the store.
var (
	// ErrJobNotFound is returned for an unknown job id.
	ErrJobNotFound = errors.New("job not found")
	// ErrStoreReplaced is matched by the error of opening a job store
	// that does not match its mark file (see MarkOptions).
	ErrStoreReplaced = errors.New("job store does not match its mark file")
)

// DB is a database for a store, opened by its driver.
type DB struct {
	// DB is the database; the store closes it.
	DB *sql.DB
	// Postgres says it is PostgreSQL; otherwise it is SQLite.
	Postgres bool
	// File, for SQLite, is the database file: Check fails once it is
	// deleted or replaced.
	File string
	// Name names the store in messages and in its mark file (without a
	// password); empty means File, or "(PostgreSQL)".
	Name string
}

// Open opens a store on db, creating and migrating its tables as needed,
// and checks it against its mark file when mark names one. On error, db
// is closed.
func Open(ctx context.Context, db DB, mark MarkOptions) (*Store, error) {
	driver := "sqlite"
	if db.Postgres {
		driver = "postgres" // for sqlx's bind style ($1 rather than ?)
	}
	s := &Store{db: sqlx.NewDb(db.DB, driver), postgres: db.Postgres, path: db.File, name: db.Name}
	if s.name == "" {
		s.name = s.path
		if s.name == "" {
			s.name = "(PostgreSQL)"
		}
	}
	if err := s.open(ctx, mark); err != nil {
		db.DB.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) open(ctx context.Context, mark MarkOptions) error {
	if s.path != "" {
		var err error
		if s.file, err = os.Stat(s.path); err != nil {
			return fmt.Errorf("job store: %w", err)
		}
	}
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("open job store %s: %w", s.name, err)
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	return s.checkMark(ctx, mark)
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// migrations are applied in order; each runs once, recorded in
// schema_migrations. Append, never edit.
var migrations = []string{
	`CREATE TABLE jobs (
		id              TEXT PRIMARY KEY,
		action          TEXT NOT NULL,
		state           TEXT NOT NULL,
		from_shark      TEXT NOT NULL,
		from_datacenter TEXT NOT NULL DEFAULT '',
		options         TEXT NOT NULL,
		retry_of        TEXT NOT NULL DEFAULT '',
		error           TEXT NOT NULL DEFAULT '',
		discovery_done  INTEGER NOT NULL DEFAULT 0,
		next_seq        BIGINT NOT NULL DEFAULT 0,
		created_at      BIGINT NOT NULL,
		updated_at      BIGINT NOT NULL,
		started_at      BIGINT NOT NULL DEFAULT 0,
		finished_at     BIGINT NOT NULL DEFAULT 0
	)`,
	// objects is the legacy evacuateobjects table, one per store rather than
	// one database per job, plus what the engine needs to resume and retry.
	`CREATE TABLE objects (
		job_id          TEXT NOT NULL,
		id              TEXT NOT NULL,
		seq             BIGINT NOT NULL,
		key             TEXT NOT NULL,
		shard           INTEGER NOT NULL,
		scan_id         BIGINT NOT NULL DEFAULT 0,
		etag            TEXT NOT NULL,
		object          TEXT NOT NULL,
		content_length  BIGINT NOT NULL DEFAULT 0,
		status          TEXT NOT NULL,
		skipped_reason  TEXT,
		error           TEXT,
		detail          TEXT NOT NULL DEFAULT '',
		dest_shark      TEXT NOT NULL DEFAULT '',
		dest_datacenter TEXT NOT NULL DEFAULT '',
		assignment_id   TEXT NOT NULL DEFAULT '',
		avoid           TEXT NOT NULL DEFAULT '',
		attempts        INTEGER NOT NULL DEFAULT 0,
		updated_at      BIGINT NOT NULL,
		PRIMARY KEY (job_id, id)
	)`,
	`CREATE INDEX objects_status ON objects (job_id, status, seq)`,
	`CREATE INDEX objects_assignment ON objects (job_id, assignment_id)`,
	`CREATE TABLE duplicates (
		job_id TEXT NOT NULL,
		id     TEXT NOT NULL,
		key    TEXT NOT NULL,
		shard  INTEGER NOT NULL,
		PRIMARY KEY (job_id, id, key, shard)
	)`,
	`CREATE TABLE assignments (
		job_id          TEXT NOT NULL,
		id              TEXT NOT NULL,
		dest_shark      TEXT NOT NULL,
		dest_datacenter TEXT NOT NULL,
		state           TEXT NOT NULL,
		tasks           INTEGER NOT NULL,
		bytes           BIGINT NOT NULL,
		posts           INTEGER NOT NULL DEFAULT 0,
		created_at      BIGINT NOT NULL,
		posted_at       BIGINT NOT NULL DEFAULT 0,
		PRIMARY KEY (job_id, id)
	)`,
	`CREATE INDEX assignments_state ON assignments (job_id, state)`,
	// counts holds exact per-job counters by status and reason (skip reason
	// or error kind; '' otherwise), moved in the same transactions as the
	// objects they count.
	`CREATE TABLE counts (
		job_id TEXT NOT NULL,
		status TEXT NOT NULL,
		reason TEXT NOT NULL,
		n      BIGINT NOT NULL,
		bytes  BIGINT NOT NULL,
		PRIMARY KEY (job_id, status, reason)
	)`,
	`CREATE TABLE job_shards (
		job_id  TEXT NOT NULL,
		shard   INTEGER NOT NULL,
		through BIGINT NOT NULL,
		PRIMARY KEY (job_id, shard)
	)`,
	// store_meta is one row: the store's identity, drawn when it was
	// created (or first opened by a version that knows it), which its mark
	// file repeats; checked_at is what Check writes to prove the store
	// writable.
	`CREATE TABLE store_meta (
		id         INTEGER PRIMARY KEY,
		identity   TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		checked_at BIGINT NOT NULL DEFAULT 0
	)`,
	// counts_v2 is counts for the buckets (v2) objects of a job alone (keys
	// starting "v2/"): the job's v1 counts are counts less these. Moved in
	// the same transactions as counts.
	`CREATE TABLE counts_v2 (
		job_id TEXT NOT NULL,
		status TEXT NOT NULL,
		reason TEXT NOT NULL,
		n      BIGINT NOT NULL,
		bytes  BIGINT NOT NULL,
		PRIMARY KEY (job_id, status, reason)
	)`,
	// job_uploads holds, per multipart upload whose parts a job moves, the
	// destination every part goes to (pinned when the first part is
	// placed) and what became of the upload's record.
	`CREATE TABLE job_uploads (
		job_id          TEXT NOT NULL,
		upload          TEXT NOT NULL,
		part_key        TEXT NOT NULL,
		dest_shark      TEXT NOT NULL,
		dest_datacenter TEXT NOT NULL,
		outcome         TEXT NOT NULL DEFAULT '',
		detail          TEXT NOT NULL DEFAULT '',
		updated_at      BIGINT NOT NULL,
		PRIMARY KEY (job_id, upload)
	)`,
	// job_buckets says whether a job's discovery looked for buckets (v2)
	// objects, and if not why.
	`CREATE TABLE job_buckets (
		job_id  TEXT PRIMARY KEY,
		scanned INTEGER NOT NULL,
		note    TEXT NOT NULL DEFAULT ''
	)`,
	// sharks holds each shark's lifecycle state (sharks.go); a shark
	// without a row is in service.
	`CREATE TABLE sharks (
		shark      TEXT PRIMARY KEY,
		state      TEXT NOT NULL,
		job_id     TEXT NOT NULL DEFAULT '',
		changed_by TEXT NOT NULL,
		reason     TEXT NOT NULL DEFAULT '',
		updated_at BIGINT NOT NULL
	)`,
	// The sharks that jobs evacuated before states were kept: each one's
	// latest real evacuation (not a dry run; its shark found) leaves it
	// drained if it completed, draining otherwise. A dry run's options
	// hold "dry_run":true, as Go's encoder writes it.
	`INSERT INTO sharks (shark, state, job_id, changed_by, reason, updated_at)
		SELECT from_shark, CASE WHEN state = 'complete' THEN 'drained' ELSE 'draining' END, id, 'job',
			'evacuated before shark states were kept', updated_at
		FROM jobs j
		WHERE from_datacenter <> '' AND options NOT LIKE '%"dry_run":true%' AND NOT EXISTS (
			SELECT 1 FROM jobs k WHERE k.from_shark = j.from_shark AND k.from_datacenter <> ''
			AND k.options NOT LIKE '%"dry_run":true%'
			AND (k.created_at > j.created_at OR (k.created_at = j.created_at AND k.id > j.id)))`,
	// source_shark is the copy a skipped or failed object was read from
	// (empty when there was none to read, or the failure was not a copy's).
	`ALTER TABLE objects ADD COLUMN source_shark TEXT NOT NULL DEFAULT ''`,
	// source_counts are exact per-job counters of skipped and errored
	// objects by source shark, moved with counts.
	`CREATE TABLE source_counts (
		job_id TEXT NOT NULL,
		source TEXT NOT NULL,
		status TEXT NOT NULL,
		reason TEXT NOT NULL,
		n      BIGINT NOT NULL,
		PRIMARY KEY (job_id, source, status, reason)
	)`,
	// Objects skipped or in error before sources were recorded count under
	// an unknown ('') source.
	`INSERT INTO source_counts (job_id, source, status, reason, n)
		SELECT job_id, '', status, COALESCE(skipped_reason, error, ''), COUNT(*) FROM objects
		WHERE status IN ('skipped', 'error') GROUP BY job_id, status, COALESCE(skipped_reason, error, '')`,
}

func (s *Store) migrate(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return fmt.Errorf("job store migrations: %w", err)
	}
	var have int
	if err := s.db.GetContext(ctx, &have, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`); err != nil {
		return fmt.Errorf("job store migrations: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("job store schema version %d is newer than this program knows (%d)", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		err := s.tx(ctx, func(tx *sqlx.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO schema_migrations (version) VALUES (?)`), v)
			return err
		})
		if err != nil {
			return fmt.Errorf("job store migration %d: %w", v, err)
		}
	}
	err := s.tx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO store_meta (id, identity, created_at) VALUES (1, ?, ?)
			ON CONFLICT (id) DO NOTHING`), uuid.NewString(), now())
		if err != nil {
			return err
		}
		return tx.GetContext(ctx, &s.identity, `SELECT identity FROM store_meta WHERE id = 1`)
	})
	if err != nil {
		return fmt.Errorf("job store identity: %w", err)
	}
	return nil
}

// Check reports whether the job store works now: a SQLite file is still the
// one opened (not deleted or replaced), the database takes a write, and
// the mark file, if any, could be kept up to date. Every error names the
// store and what is wrong with it.
func (s *Store) Check(ctx context.Context) error {
	if s.path != "" {
		fi, err := os.Stat(s.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("job store file %s was deleted while in use: nothing recorded since is kept", s.path)
		case err != nil:
			return fmt.Errorf("job store file %s: %w", s.path, err)
		case !os.SameFile(fi, s.file):
			return fmt.Errorf("job store file %s was replaced while in use: nothing recorded since is kept", s.path)
		}
	}
	err := s.write(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE store_meta SET checked_at = ? WHERE id = 1`), now())
		if err != nil {
			return err
		}
		return oneRow(res, errors.New("its identity row is missing"))
	})
	if err != nil {
		return fmt.Errorf("job store %s: %w", s.name, err)
	}
	return s.mark.failure()
}

// tx runs fn in a transaction. Callers that write must hold writeMu (the
// exported methods take it through write).
func (s *Store) tx(ctx context.Context, fn func(*sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// write runs fn in a write transaction.
func (s *Store) write(ctx context.Context, fn func(*sqlx.Tx) error) error {
	if !s.postgres {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	return s.tx(ctx, fn)
}

func now() int64 { return time.Now().UnixMilli() }

// Job is a job as stored. Its options are the engine's, as JSON.
type Job struct {
	ID            string
	Action        rebalancer.JobAction
	State         rebalancer.JobState
	From          rebalancer.StorageNode
	Options       json.RawMessage
	RetryOf       string
	Error         string
	DiscoveryDone bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
	StartedAt     time.Time
	FinishedAt    time.Time
}

type jobRow struct {
	ID             string `db:"id"`
	Action         string `db:"action"`
	State          string `db:"state"`
	FromShark      string `db:"from_shark"`
	FromDatacenter string `db:"from_datacenter"`
	Options        string `db:"options"`
	RetryOf        string `db:"retry_of"`
	Error          string `db:"error"`
	DiscoveryDone  int    `db:"discovery_done"`
	NextSeq        int64  `db:"next_seq"`
	CreatedAt      int64  `db:"created_at"`
	UpdatedAt      int64  `db:"updated_at"`
	StartedAt      int64  `db:"started_at"`
	FinishedAt     int64  `db:"finished_at"`
}

func millis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func (r jobRow) record() (Job, error) {
	j := Job{
		ID: r.ID, From: rebalancer.StorageNode{Datacenter: r.FromDatacenter, MantaStorageID: r.FromShark},
		RetryOf: r.RetryOf, Error: r.Error, DiscoveryDone: r.DiscoveryDone != 0,
		CreatedAt: millis(r.CreatedAt), UpdatedAt: millis(r.UpdatedAt), StartedAt: millis(r.StartedAt), FinishedAt: millis(r.FinishedAt),
	}
	var err error
	if j.Action, err = rebalancer.ParseJobAction(r.Action); err != nil {
		return j, fmt.Errorf("job %s: %w", r.ID, err)
	}
	if j.State, err = rebalancer.ParseJobState(r.State); err != nil {
		return j, fmt.Errorf("job %s: %w", r.ID, err)
	}
	j.Options = json.RawMessage(r.Options)
	return j, nil
}

// CreateJob stores a new job.
func (s *Store) CreateJob(ctx context.Context, j Job) error {
	err := s.write(ctx, func(tx *sqlx.Tx) error { return createJob(ctx, tx, j) })
	if err == nil {
		s.mark.jobCreated()
	}
	return err
}

func createJob(ctx context.Context, tx *sqlx.Tx, j Job) error {
	t := now()
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO jobs
		(id, action, state, from_shark, from_datacenter, options, retry_of, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		j.ID, j.Action.String(), j.State.String(), j.From.MantaStorageID, j.From.Datacenter,
		string(j.Options), j.RetryOf, t, t)
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.ID, err)
	}
	return nil
}

const jobColumns = `id, action, state, from_shark, from_datacenter, options, retry_of, error,
	discovery_done, next_seq, created_at, updated_at, started_at, finished_at`

// GetJob reads one job.
func (s *Store) GetJob(ctx context.Context, id string) (Job, error) {
	var r jobRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+jobColumns+` FROM jobs WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job %s: %w", id, ErrJobNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", id, err)
	}
	return r.record()
}

// ListJobs returns every job, oldest first.
func (s *Store) ListJobs(ctx context.Context) ([]Job, error) {
	var rows []jobRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+jobColumns+` FROM jobs ORDER BY created_at, id`); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out := make([]Job, 0, len(rows))
	for _, r := range rows {
		j, err := r.record()
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// SetJobState moves a job to state, recording errMsg when it is not empty.
func (s *Store) SetJobState(ctx context.Context, id string, state rebalancer.JobState, errMsg string) error {
	return s.write(ctx, func(tx *sqlx.Tx) error { return setJobState(ctx, tx, id, state, errMsg) })
}

func setJobState(ctx context.Context, tx *sqlx.Tx, id string, state rebalancer.JobState, errMsg string) error {
	t := now()
	q := `UPDATE jobs SET state = ?, updated_at = ?`
	args := []any{state.String(), t}
	if errMsg != "" {
		q += `, error = ?`
		args = append(args, errMsg)
	}
	switch {
	case state == rebalancer.JobRunning:
		q += `, started_at = CASE WHEN started_at = 0 THEN ? ELSE started_at END, finished_at = 0`
		args = append(args, t)
	case state.Terminal():
		q += `, finished_at = ?`
		args = append(args, t)
	}
	res, err := tx.ExecContext(ctx, tx.Rebind(q+` WHERE id = ?`), append(args, id)...)
	if err != nil {
		return fmt.Errorf("job %s: set state %s: %w", id, state, err)
	}
	return oneRow(res, fmt.Errorf("job %s: %w", id, ErrJobNotFound))
}

// SetJobSource records the evacuated shark's datacenter once it is known.
func (s *Store) SetJobSource(ctx context.Context, id string, from rebalancer.StorageNode) error {
	return s.write(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET from_shark = ?, from_datacenter = ?, updated_at = ? WHERE id = ?`),
			from.MantaStorageID, from.Datacenter, now(), id)
		if err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		return oneRow(res, fmt.Errorf("job %s: %w", id, ErrJobNotFound))
	})
}

// SetJobOptions replaces a job's stored options (the tunables an operator
// may change while it runs).
func (s *Store) SetJobOptions(ctx context.Context, id string, options json.RawMessage) error {
	return s.write(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET options = ?, updated_at = ? WHERE id = ?`), string(options), now(), id)
		if err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		return oneRow(res, fmt.Errorf("job %s: %w", id, ErrJobNotFound))
	})
}

// SetDiscoveryDone records that discovery finished.
func (s *Store) SetDiscoveryDone(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET discovery_done = 1, updated_at = ? WHERE id = ?`), now(), id)
		return err
	})
}

func oneRow(res sql.Result, notFound error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return notFound
	}
	return nil
}

// Checkpoints returns, per shard, the highest scan id recorded in discovery.
func (s *Store) Checkpoints(ctx context.Context, jobID string) (map[int]int64, error) {
	var rows []struct {
		Shard   int   `db:"shard"`
		Through int64 `db:"through"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT shard, through FROM job_shards WHERE job_id = ?`), jobID); err != nil {
		return nil, fmt.Errorf("job %s checkpoints: %w", jobID, err)
	}
	out := make(map[int]int64, len(rows))
	for _, r := range rows {
		out[r.Shard] = r.Through
	}
	return out, nil
}
