package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite" // SQLite driver (no cgo)

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/sqlitedsn"
)

// Errors from the store that the HTTP layer turns into status codes.
var (
	errNotFound    = errors.New("assignment not found")
	errNotComplete = errors.New("assignment is not complete")
	errExists      = errors.New("assignment already exists")
)

// store keeps assignments and the status of every task in one SQLite
// database. Its invariants are what make a "Complete" reply trustworthy:
//
//   - a task's final status is written (rows affected checked) before it is
//     counted anywhere, and counted in the same transaction;
//   - an assignment becomes complete only in a transaction that finds no
//     pending task left in it;
//   - reasons are stored in one canonical form (the legacy JSON); one that
//     cannot be read back is reported as AssignmentError, never as some
//     plausible other reason (seed CRIT-6).
type store struct {
	db *sql.DB
	// SQLite has one writer at a time; serializing writers in process
	// avoids busy retries between our own goroutines.
	wmu sync.Mutex
	// recordTask and countTasks are recordBatch's statements, prepared on
	// first use (under wmu) and kept: parsing them took a third of a
	// record's time.
	recordTask, countTasks *sql.Stmt
	now                    func() time.Time
	// fault, when set (tests only), is called before each write and its
	// error returned as the write's.
	fault func(op string) error
}

// Database spellings of assignment and task states.
const (
	originPost   = "post"
	originLegacy = "legacy"

	stateScheduled = "scheduled"
	stateRunning   = "running"
	stateComplete  = "complete"

	taskPending  = "pending"
	taskComplete = "complete"
	taskFailed   = "failed"
)

// schema is applied when user_version is 0. Later changes append
// migrations and bump user_version.
const schema = `
CREATE TABLE assignments (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	id           TEXT NOT NULL UNIQUE,
	state        TEXT NOT NULL CHECK (state IN ('scheduled', 'running', 'complete')),
	total        INTEGER NOT NULL,
	done         INTEGER NOT NULL DEFAULT 0, -- processed tasks, failed ones included (legacy "complete")
	failed       INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL,           -- Unix milliseconds
	started_at   INTEGER,
	completed_at INTEGER,
	origin       TEXT NOT NULL DEFAULT 'post' -- 'post' or 'legacy' (imported at startup)
);
CREATE INDEX assignments_state ON assignments (state, completed_at);
CREATE TABLE tasks (
	aseq             INTEGER NOT NULL REFERENCES assignments (seq) ON DELETE CASCADE,
	idx              INTEGER NOT NULL, -- position in the payload
	object_id        TEXT NOT NULL,
	owner            TEXT NOT NULL,
	md5sum           TEXT NOT NULL,
	datacenter       TEXT NOT NULL,
	manta_storage_id TEXT NOT NULL,
	bucket_id        TEXT,
	object_name_hash TEXT,
	state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'complete', 'failed')),
	reason           TEXT,    -- legacy JSON of the skip reason, when failed
	detail           TEXT,    -- what went wrong, for operators reading the database
	done_order       INTEGER, -- 1 for the first task processed, 2 for the next...
	PRIMARY KEY (aseq, idx)
) WITHOUT ROWID;
CREATE UNIQUE INDEX tasks_object ON tasks (aseq, object_id);
PRAGMA user_version = 1;
`

// errCorrupt marks a state database that SQLite finds damaged, or that is
// not a database at all.
var errCorrupt = errors.New("database is corrupt")

// SQLite primary result codes that mean the file itself is damaged, as
// opposed to one that cannot be opened or read (permissions, I/O).
const (
	sqliteCorrupt = 11 // SQLITE_CORRUPT
	sqliteNotADB  = 26 // SQLITE_NOTADB
)

// openStore opens the state database in dir, creating it if needed.
//
// A database that fails SQLite's quick_check, or is not a database, is
// moved aside with its -wal and -shm files (renamed
// agent.db.corrupt-{UTC time}, kept for inspection) and an empty one is
// created in its place, with an error in the log. That loses no copy: the
// database only remembers what managers asked for and what was done,
// a manager that asks about an assignment it no longer finds posts it
// again, and objects already copied are then found on disk, verified, and
// not downloaded again. A database that cannot be opened for any other
// reason (permissions, I/O) stops the agent instead.
func openStore(ctx context.Context, dir string, log *slog.Logger) (*store, error) {
	path := filepath.Join(dir, DBFileName)
	err := checkDB(ctx, path)
	if err != nil && !errors.Is(err, errCorrupt) {
		log.Warn("cannot check the state database read-only; opening it for writing", "path", path, "err", err)
	}
	if !errors.Is(err, errCorrupt) {
		var s *store
		if s, err = openDB(ctx, path); !errors.Is(err, errCorrupt) {
			return s, err
		}
	}
	aside, merr := moveAside(dir, DBFileName, time.Now())
	if merr != nil {
		return nil, fmt.Errorf("%w; cannot move it aside: %w", err, merr)
	}
	log.Error("state database is corrupt: moved it aside and started with an empty one; the assignments it held are forgotten "+
		"(managers post them again, and copies already on disk are verified, not downloaded again)",
		"path", path, "moved_to", aside, "err", err)
	return openDB(ctx, path)
}

func openDB(ctx context.Context, path string) (*store, error) {
	// synchronous NORMAL (sqlitedsn) is enough: a task is recorded only
	// after its file and directory are fsynced, so a power loss can at
	// worst forget a result, and a forgotten result means the task is
	// redone, never that a copy is claimed that is not on disk.
	db, err := sql.Open("sqlite", sqlitedsn.ReadWrite(path, false))
	if err != nil {
		return nil, fmt.Errorf("open agent database %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	s := &store{db: db, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open agent database %s: %w", path, corruptOr(err))
	}
	return s, nil
}

// checkDB runs SQLite's quick_check on the database at path, if there is
// one: it reads every page (it skips only the comparison of indexes with
// their tables that integrity_check adds). A damaged database or a file
// that is not one gives errCorrupt. The connection is read-only so that a
// corrupt database is kept as it was found: a writer would fold the WAL
// into it, and delete the WAL, on closing.
func checkDB(ctx context.Context, path string) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := sql.Open("sqlite", sqlitedsn.ReadOnly(path))
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check(10)")
	if err != nil {
		return corruptOr(err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return corruptOr(err)
		}
		if p != "ok" {
			problems = append(problems, p)
		}
	}
	if err := rows.Err(); err != nil {
		return corruptOr(err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: quick_check: %s", errCorrupt, strings.Join(problems, "; "))
	}
	return nil
}

// corruptOr marks err with errCorrupt when SQLite says the file is damaged
// or not a database.
func corruptOr(err error) error {
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		if c := se.Code() & 0xff; c == sqliteCorrupt || c == sqliteNotADB {
			return fmt.Errorf("%w: %w", errCorrupt, err)
		}
	}
	return err
}

// moveAside renames the database name in dir, with its WAL, shared-memory
// and journal files, to name.corrupt-{time}[-wal|-shm|-journal] (so that
// sqlite3 opens the kept copy with its WAL), and returns the new path of
// the database. The main file goes last: a WAL left beside a new database
// would be applied to it.
func moveAside(dir, name string, now time.Time) (string, error) {
	aside := name + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	for i := 2; ; i++ {
		if _, err := os.Lstat(filepath.Join(dir, aside)); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s.corrupt-%s-%d", name, now.UTC().Format("20060102T150405Z"), i)
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal", ""} {
		err := os.Rename(filepath.Join(dir, name+suffix), filepath.Join(dir, aside+suffix))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return "", err
	}
	defer d.Close()
	return filepath.Join(dir, aside), d.Sync()
}

func (s *store) close() error {
	for _, st := range []*sql.Stmt{s.recordTask, s.countTasks} {
		if st != nil {
			st.Close()
		}
	}
	return s.db.Close()
}

func (s *store) migrate(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	switch v {
	case 0:
		return s.write(ctx, "migrate", func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, schema)
			return err
		})
	case 1:
		return nil
	}
	return fmt.Errorf("database schema version %d is newer than this agent understands (1)", v)
}

// write runs fn in a write transaction.
func (s *store) write(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.fault != nil {
		if err := s.fault(op); err != nil {
			return err
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func execOne(ctx context.Context, tx *sql.Tx, what string, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n != 1 {
		return fmt.Errorf("%s: %d rows changed, expected 1", what, n)
	}
	return nil
}

// execStmt is execOne for a prepared statement.
func execStmt(ctx context.Context, stmt *sql.Stmt, what string, args ...any) error {
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n != 1 {
		return fmt.Errorf("%s: %d rows changed, expected 1", what, n)
	}
	return nil
}

func (s *store) millis() int64 { return s.now().UnixMilli() }

// exists reports whether the id is known in any state.
func (s *store) exists(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, "SELECT 1 FROM assignments WHERE id = ?", id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// ping checks that the database answers queries.
func (s *store) ping(ctx context.Context) error {
	var n int
	return s.db.QueryRowContext(ctx, "SELECT count(*) FROM assignments WHERE seq < 0").Scan(&n)
}

// newAssignment is what insert stores. Tasks imported from a legacy agent
// (origin originLegacy) keep their statuses, so that finished work is
// brought over as it was; any other must be pending.
type newAssignment struct {
	id     string
	tasks  []rebalancer.Task
	state  string
	origin string
}

// insert stores a new assignment and its tasks in one transaction. An id
// that exists already gives errExists.
func (s *store) insert(ctx context.Context, a newAssignment) error {
	return s.write(ctx, "insert", func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM assignments WHERE id = ?", a.id).Scan(&one)
		if err == nil {
			return errExists
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		done, failed := 0, 0
		for _, t := range a.tasks {
			if t.Status.State != rebalancer.TaskPending {
				done++
			}
			if t.Status.State == rebalancer.TaskFailed {
				failed++
			}
		}
		now := s.millis()
		var completed any
		if a.state == stateComplete {
			completed = now
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO assignments (id, state, total, done, failed, created_at, completed_at, origin)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, a.id, a.state, len(a.tasks), done, failed, now, completed, a.origin)
		if err != nil {
			return fmt.Errorf("insert assignment: %w", err)
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO tasks (aseq, idx, object_id, owner, md5sum, datacenter,
			manta_storage_id, bucket_id, object_name_hash, state, reason, done_order) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		order := 0
		for i, t := range a.tasks {
			if a.origin != originLegacy && t.Status.State != rebalancer.TaskPending {
				// Only the legacy importer brings results over, from the
				// legacy agent's own files; a posted task never carries one.
				return fmt.Errorf("task %d (%s): a new assignment's task must be pending, is %v", i, t.ObjectID, t.Status)
			}
			state, reason, err := encodeStatus(t.Status)
			if err != nil {
				return fmt.Errorf("task %d (%s): %w", i, t.ObjectID, err)
			}
			var doneOrder any
			if state != taskPending {
				order++
				doneOrder = order
			}
			if _, err := stmt.ExecContext(ctx, seq, i, t.ObjectID, t.Owner, t.MD5Sum, t.Source.Datacenter,
				t.Source.MantaStorageID, nullable(t.BucketID), nullable(t.ObjectNameHash), state, reason, doneOrder); err != nil {
				return fmt.Errorf("insert task %d (%s): %w", i, t.ObjectID, err)
			}
		}
		return nil
	})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func encodeStatus(st rebalancer.TaskStatus) (state string, reason any, err error) {
	switch st.State {
	case rebalancer.TaskPending:
		return taskPending, nil, nil
	case rebalancer.TaskComplete:
		return taskComplete, nil, nil
	case rebalancer.TaskFailed:
		b, err := st.Reason.MarshalJSON()
		if err != nil {
			return "", nil, err
		}
		return taskFailed, string(b), nil
	}
	return "", nil, fmt.Errorf("invalid task status %v", st)
}

// pendingTask is a task still to be done, with its position.
type pendingTask struct {
	idx  int
	task rebalancer.Task
}

// start marks an assignment running and returns its sequence number and
// the tasks that have no final status yet.
func (s *store) start(ctx context.Context, id string) (int64, []pendingTask, error) {
	var seq int64
	err := s.write(ctx, "start", func(tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, "SELECT seq, state FROM assignments WHERE id = ?", id).Scan(&seq, &state)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		if state == stateComplete {
			return fmt.Errorf("assignment is already complete")
		}
		return execOne(ctx, tx, "mark running", "UPDATE assignments SET state = 'running', started_at = ? WHERE seq = ? AND state <> 'complete'",
			s.millis(), seq)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("start assignment %s: %w", id, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT idx, object_id, owner, md5sum, datacenter, manta_storage_id,
		coalesce(bucket_id, ''), coalesce(object_name_hash, '') FROM tasks WHERE aseq = ? AND state = 'pending' ORDER BY idx`, seq)
	if err != nil {
		return 0, nil, fmt.Errorf("read tasks of assignment %s: %w", id, err)
	}
	defer rows.Close()
	var out []pendingTask
	for rows.Next() {
		var p pendingTask
		t := &p.task
		if err := rows.Scan(&p.idx, &t.ObjectID, &t.Owner, &t.MD5Sum, &t.Source.Datacenter, &t.Source.MantaStorageID,
			&t.BucketID, &t.ObjectNameHash); err != nil {
			return 0, nil, fmt.Errorf("read tasks of assignment %s: %w", id, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("read tasks of assignment %s: %w", id, err)
	}
	return seq, out, nil
}

// result is a task's final status, as record stores it.
type result struct {
	idx    int // the task's position in the payload
	status rebalancer.TaskStatus
	detail string // what went wrong, for operators reading the database
}

// record stores a task's final status and counts it, in one transaction.
// A task that is not pending any more is an error (it would be counted
// twice).
func (s *store) record(ctx context.Context, seq int64, idx int, st rebalancer.TaskStatus, detail string) error {
	return s.recordAll(ctx, seq, []result{{idx: idx, status: st, detail: detail}})
}

// recordAll stores the final statuses of tasks of one assignment and
// counts them, all in one transaction: either every one is recorded or
// none is. A task that is not pending any more is an error (it would be
// counted twice), and fails the whole transaction.
func (s *store) recordAll(ctx context.Context, seq int64, results []result) error {
	return s.recordBatch(ctx, []assignmentResults{{seq: seq, results: results}})
}

// assignmentResults are results of one assignment.
type assignmentResults struct {
	seq     int64
	results []result
}

// recordBatch is recordAll for the results of several assignments, in
// one transaction.
func (s *store) recordBatch(ctx context.Context, batch []assignmentResults) error {
	type row struct {
		state  string
		reason any
	}
	rows := make([][]row, len(batch))
	for g, a := range batch {
		rows[g] = make([]row, len(a.results))
		for i, r := range a.results {
			state, reason, err := encodeStatus(r.status)
			if err != nil {
				return err
			}
			if state == taskPending {
				return errors.New("cannot record a pending status")
			}
			rows[g][i] = row{state: state, reason: reason}
		}
	}
	return s.write(ctx, "record", func(tx *sql.Tx) error {
		if err := s.prepareRecord(ctx); err != nil {
			return err
		}
		record, count := tx.StmtContext(ctx, s.recordTask), tx.StmtContext(ctx, s.countTasks)
		for g, a := range batch {
			failed := 0
			for i, r := range a.results {
				// done_order numbers tasks in the order they are recorded.
				if err := execStmt(ctx, record, "record task", rows[g][i].state, rows[g][i].reason, nullable(r.detail),
					i+1, a.seq, a.seq, r.idx); err != nil {
					return err
				}
				if rows[g][i].state == taskFailed {
					failed++
				}
			}
			if err := execStmt(ctx, count, "count tasks", len(a.results), failed, a.seq); err != nil {
				return err
			}
		}
		return nil
	})
}

// prepareRecord prepares recordBatch's statements once. Call it under
// wmu.
func (s *store) prepareRecord(ctx context.Context) error {
	if s.countTasks != nil {
		return nil
	}
	record, err := s.db.PrepareContext(ctx, `UPDATE tasks SET state = ?, reason = ?, detail = ?,
		done_order = (SELECT done + ? FROM assignments WHERE seq = ?) WHERE aseq = ? AND idx = ? AND state = 'pending'`)
	if err != nil {
		return err
	}
	count, err := s.db.PrepareContext(ctx, "UPDATE assignments SET done = done + ?, failed = failed + ? WHERE seq = ? AND state = 'running'")
	if err != nil {
		record.Close()
		return err
	}
	s.recordTask, s.countTasks = record, count
	return nil
}

// complete marks an assignment complete, after checking in the same
// transaction that none of its tasks is pending. Counters are taken from
// the tasks themselves.
func (s *store) complete(ctx context.Context, seq int64) (rebalancer.AssignmentStats, error) {
	var st rebalancer.AssignmentStats
	err := s.write(ctx, "complete", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT state, count(*) FROM tasks WHERE aseq = ? GROUP BY state", seq)
		if err != nil {
			return err
		}
		counts := map[string]int{}
		for rows.Next() {
			var state string
			var n int
			if err := rows.Scan(&state, &n); err != nil {
				rows.Close()
				return err
			}
			counts[state] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if n := counts[taskPending]; n > 0 {
			return fmt.Errorf("%d tasks are still pending", n)
		}
		var total int
		if err := tx.QueryRowContext(ctx, "SELECT total FROM assignments WHERE seq = ?", seq).Scan(&total); err != nil {
			return err
		}
		done := counts[taskComplete] + counts[taskFailed]
		if done != total {
			return fmt.Errorf("%d tasks processed of %d", done, total)
		}
		st = rebalancer.AssignmentStats{
			State:    rebalancer.AssignmentState{Phase: rebalancer.AssignmentComplete},
			Failed:   counts[taskFailed],
			Complete: done,
			Total:    total,
		}
		return execOne(ctx, tx, "mark complete", `UPDATE assignments SET state = 'complete', done = ?, failed = ?,
			completed_at = ? WHERE seq = ? AND state = 'running'`, done, counts[taskFailed], s.millis(), seq)
	})
	return st, err
}

// get returns an assignment as GET /assignments/{id} shows it.
func (s *store) get(ctx context.Context, id string) (rebalancer.Assignment, error) {
	var (
		seq                 int64
		state               string
		total, done, failed int
		out                 = rebalancer.Assignment{UUID: id}
	)
	err := s.db.QueryRowContext(ctx, "SELECT seq, state, total, done, failed FROM assignments WHERE id = ?", id).
		Scan(&seq, &state, &total, &done, &failed)
	if errors.Is(err, sql.ErrNoRows) {
		return out, errNotFound
	}
	if err != nil {
		return out, fmt.Errorf("read assignment %s: %w", id, err)
	}
	out.Stats = rebalancer.AssignmentStats{Failed: failed, Complete: done, Total: total}
	switch state {
	case stateScheduled:
		out.Stats.State.Phase = rebalancer.AssignmentScheduled
	case stateRunning:
		out.Stats.State.Phase = rebalancer.AssignmentRunning
	case stateComplete:
		out.Stats.State.Phase = rebalancer.AssignmentComplete
		if failed > 0 {
			if out.Stats.State.Failed, err = s.failedTasks(ctx, seq); err != nil {
				return out, fmt.Errorf("read failed tasks of assignment %s: %w", id, err)
			}
		}
	default:
		return out, fmt.Errorf("assignment %s has unknown state %q", id, state)
	}
	return out, nil
}

// failedTasks returns an assignment's failed tasks in the order they were
// processed, as the legacy agent lists them.
func (s *store) failedTasks(ctx context.Context, seq int64) ([]rebalancer.Task, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT object_id, owner, md5sum, datacenter, manta_storage_id,
		coalesce(bucket_id, ''), coalesce(object_name_hash, ''), coalesce(reason, ''), coalesce(detail, '') FROM tasks
		WHERE aseq = ? AND state = 'failed' ORDER BY done_order, idx`, seq)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []rebalancer.Task{}
	for rows.Next() {
		var t rebalancer.Task
		var reason, detail string
		if err := rows.Scan(&t.ObjectID, &t.Owner, &t.MD5Sum, &t.Source.Datacenter, &t.Source.MantaStorageID,
			&t.BucketID, &t.ObjectNameHash, &reason, &detail); err != nil {
			return nil, err
		}
		t.Status = rebalancer.TaskFailedWith(decodeReason(reason))
		// The cause travels with the reason, so that the manager can tell
		// an operator more than "source_other_error".
		t.Detail = rebalancer.TruncateDetail(detail)
		out = append(out, t)
	}
	return out, rows.Err()
}

// decodeReason reads a stored reason. One that cannot be read is reported
// as AssignmentError: distinct from anything the download itself produces,
// and never a plausible wrong reason (seed CRIT-6).
func decodeReason(s string) rebalancer.SkipReason {
	var r rebalancer.SkipReason
	if err := json.Unmarshal([]byte(s), &r); err != nil || !r.Valid() {
		return rebalancer.SkipAssignmentError
	}
	return r
}

// remove deletes a complete assignment.
func (s *store) remove(ctx context.Context, id string) error {
	return s.write(ctx, "delete", func(tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, "SELECT state FROM assignments WHERE id = ?", id).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		if state != stateComplete {
			return errNotComplete
		}
		return execOne(ctx, tx, "delete assignment", "DELETE FROM assignments WHERE id = ? AND state = 'complete'", id)
	})
}

// resumable returns the ids of every scheduled or running assignment in
// the order they were accepted, after marking running ones scheduled
// again (nothing runs at startup).
func (s *store) resumable(ctx context.Context) ([]string, error) {
	err := s.write(ctx, "reset", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE assignments SET state = 'scheduled' WHERE state = 'running'")
		return err
	})
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT id FROM assignments WHERE state = 'scheduled' ORDER BY seq")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// prune deletes assignments completed before cutoff and returns how many.
func (s *store) prune(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, "prune", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM assignments WHERE state = 'complete' AND completed_at < ?", cutoff.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// Summary describes one assignment in GET /assignments.
type Summary struct {
	UUID      string     `json:"uuid"`
	State     string     `json:"state"` // "Scheduled", "Running" or "Complete"
	Total     int        `json:"total"`
	Complete  int        `json:"complete"` // processed, failed ones included
	Failed    int        `json:"failed"`
	Created   time.Time  `json:"created"`
	Completed *time.Time `json:"completed,omitempty"`
}

// List is one page of GET /assignments. Next, when set, is the after=
// value that fetches the following page.
type List struct {
	Assignments []Summary `json:"assignments"`
	Next        string    `json:"next,omitempty"`
}

// list returns up to limit assignments accepted after the one with
// sequence number after, optionally only those in state.
func (s *store) list(ctx context.Context, after int64, limit int, state string) ([]Summary, int64, error) {
	q := "SELECT seq, id, state, total, done, failed, created_at, completed_at FROM assignments WHERE seq > ?"
	args := []any{after}
	if state != "" {
		q += " AND state = ?"
		args = append(args, state)
	}
	q += " ORDER BY seq LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []Summary{}
	var last int64
	for rows.Next() {
		var (
			sum       Summary
			created   int64
			completed sql.NullInt64
		)
		if err := rows.Scan(&last, &sum.UUID, &sum.State, &sum.Total, &sum.Complete, &sum.Failed, &created, &completed); err != nil {
			return nil, 0, err
		}
		sum.State = strings.ToUpper(sum.State[:1]) + sum.State[1:]
		sum.Created = time.UnixMilli(created).UTC()
		if completed.Valid {
			t := time.UnixMilli(completed.Int64).UTC()
			sum.Completed = &t
		}
		out = append(out, sum)
	}
	return out, last, rows.Err()
}
