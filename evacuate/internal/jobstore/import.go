package jobstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/TritonDataCenter/rebalancer"
)

// ErrJobExists is returned by Import for a job id the store already has.
var ErrJobExists = errors.New("job already in the store")

// Imported is a finished job recorded elsewhere (the legacy manager's job
// databases), to be written whole: its row, every object and duplicate,
// and the counters they make.
type Imported struct {
	// Job is the job's row. Its CreatedAt is kept (not the time of the
	// import), and its DiscoveryDone is set: everything the job found is
	// in Objects.
	Job Job
	// Objects calls add for each object; Seq, status, reasons and
	// everything else are as given, the counters follow from them.
	Objects func(add func(ObjectRow) error) error
	// Duplicates calls add for each extra occurrence of an object id.
	Duplicates func(add func(DuplicateRow) error) error
}

// ImportCounts is what Import wrote.
type ImportCounts struct {
	Objects    int64
	Duplicates int64 // rows (an id once per key and shard)
}

// importBatch is how many rows one INSERT carries: 17 parameters each,
// well under SQLite's and PostgreSQL's limits.
const importBatch = 200

// Import writes a job and everything it recorded in one transaction: a
// job is in the store whole or not at all, so an import interrupted
// (killed, the store failing, an error from Objects) leaves nothing
// behind, and running it again writes it from the start. A job whose id
// the store has gives ErrJobExists before Objects is called (on
// PostgreSQL, after waiting for another import of it to end).
//
// On SQLite the transaction holds the store's only writer for as long as
// the import takes: jobs running in the same store wait meanwhile.
func (s *Store) Import(ctx context.Context, imp Imported) (ImportCounts, error) {
	j := imp.Job
	var n ImportCounts
	err := s.write(ctx, func(tx *sqlx.Tx) error {
		n = ImportCounts{}
		t := now()
		// The row first: a second import of the job, concurrent on
		// PostgreSQL, waits here for the first to commit and then finds
		// the job there.
		res, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO jobs
			(id, action, state, from_shark, from_datacenter, options, retry_of, error, discovery_done,
			 created_at, updated_at, started_at, finished_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
			j.ID, j.Action.String(), j.State.String(), j.From.MantaStorageID, j.From.Datacenter, string(j.Options),
			j.RetryOf, j.Error, ms(j.CreatedAt), t, ms(j.StartedAt), ms(j.FinishedAt))
		if err != nil {
			return fmt.Errorf("import job %s: %w", j.ID, err)
		}
		if err := oneRow(res, fmt.Errorf("import job %s: %w", j.ID, ErrJobExists)); err != nil {
			return err
		}
		cnt := counter{}
		objs := newBatchInsert(tx, `INSERT INTO objects (job_id, id, seq, key, shard, scan_id, etag, object, content_length,
			status, skipped_reason, error, detail, dest_shark, dest_datacenter, assignment_id, updated_at) VALUES `, 17)
		var lastSeq int64
		err = imp.Objects(func(o ObjectRow) error {
			st, err := rebalancer.ParseObjectStatus(o.Status)
			if err != nil {
				return fmt.Errorf("object %s: %w", o.ID, err)
			}
			reason := ""
			switch {
			case o.SkippedReason != nil:
				reason = *o.SkippedReason
			case o.Error != nil:
				reason = *o.Error
			}
			cnt.add(st, reason, 1, o.ContentLength)
			lastSeq = max(lastSeq, o.Seq)
			n.Objects++
			return objs.add(ctx, j.ID, o.ID, o.Seq, o.Key, o.Shard, o.ScanID, o.Etag, o.Metadata, o.ContentLength,
				o.Status, o.SkippedReason, o.Error, o.Detail, o.DestShark, o.DestDC, o.AssignmentID, t)
		})
		if err == nil {
			err = objs.flush(ctx)
		}
		if err != nil {
			return fmt.Errorf("import job %s: objects: %w", j.ID, err)
		}
		dups := newBatchInsert(tx, `INSERT INTO duplicates (job_id, id, key, shard) VALUES `, 4)
		dups.suffix = ` ON CONFLICT (job_id, id, key, shard) DO NOTHING`
		err = imp.Duplicates(func(d DuplicateRow) error {
			n.Duplicates++
			return dups.add(ctx, j.ID, d.ID, d.Key, d.Shard)
		})
		if err == nil {
			err = dups.flush(ctx)
		}
		if err != nil {
			return fmt.Errorf("import job %s: duplicates: %w", j.ID, err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET next_seq = ? WHERE id = ?`), lastSeq, j.ID); err != nil {
			return fmt.Errorf("import job %s: %w", j.ID, err)
		}
		if err := cnt.apply(ctx, tx, j.ID); err != nil {
			return err
		}
		return importSharkState(ctx, tx, j)
	})
	if err != nil {
		return ImportCounts{}, err
	}
	s.mark.jobCreated()
	return n, nil
}

// importSharkState leaves the shark of an imported evacuation as a job of
// this store would have (sharks.go): drained if the evacuation completed,
// draining otherwise, so that no job here places copies on a shark the
// legacy emptied. It does so only for the latest evacuation of the shark
// in the store, and never over a state an operator set.
func importSharkState(ctx context.Context, tx *sqlx.Tx, j Job) error {
	shark := j.From.MantaStorageID
	if j.Action != rebalancer.JobEvacuate || shark == "" {
		return nil
	}
	var later int
	err := tx.GetContext(ctx, &later, tx.Rebind(`SELECT COUNT(*) FROM jobs WHERE from_shark = ? AND id <> ?
		AND options NOT LIKE '%"dry_run":true%' AND created_at > ?`), shark, j.ID, ms(j.CreatedAt))
	if err != nil {
		return fmt.Errorf("import job %s: shark %s: %w", j.ID, shark, err)
	}
	if later > 0 {
		return nil
	}
	var by []string
	if err := tx.SelectContext(ctx, &by, tx.Rebind(`SELECT changed_by FROM sharks WHERE shark = ?`), shark); err != nil {
		return fmt.Errorf("import job %s: shark %s: %w", j.ID, shark, err)
	}
	if len(by) > 0 && by[0] == ByOperator {
		return nil
	}
	state := SharkDraining
	if j.State == rebalancer.JobComplete {
		state = SharkDrained
	}
	return setShark(ctx, tx, SharkRecord{Shark: shark, State: state, JobID: j.ID, ChangedBy: ByJob,
		Reason: "evacuated by the legacy rebalancer (imported)"})
}

// HasJob reports whether the store has a job with this id.
func (s *Store) HasJob(ctx context.Context, id string) (bool, error) {
	var exists bool
	if err := s.db.GetContext(ctx, &exists, s.db.Rebind(`SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?)`), id); err != nil {
		return false, fmt.Errorf("job %s: %w", id, err)
	}
	return exists, nil
}

// ms is a time in milliseconds since the epoch, 0 for the zero time (the
// store's "unknown").
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// batchInsert gathers rows into multi-row INSERTs: an import writes
// millions of rows, and one statement per row would take several times
// as long.
type batchInsert struct {
	tx     *sqlx.Tx
	head   string // "INSERT INTO t (cols) VALUES "
	suffix string // after the rows (ON CONFLICT ...)
	cols   int
	args   []any
}

func newBatchInsert(tx *sqlx.Tx, head string, cols int) *batchInsert {
	return &batchInsert{tx: tx, head: head, cols: cols}
}

func (b *batchInsert) add(ctx context.Context, row ...any) error {
	b.args = append(b.args, row...)
	if len(b.args) >= importBatch*b.cols {
		return b.flush(ctx)
	}
	return nil
}

func (b *batchInsert) flush(ctx context.Context) error {
	rows := len(b.args) / b.cols
	if rows == 0 {
		return nil
	}
	one := "(?" + strings.Repeat(", ?", b.cols-1) + ")"
	q := b.head + one + strings.Repeat(", "+one, rows-1) + b.suffix
	if _, err := b.tx.ExecContext(ctx, b.tx.Rebind(q), b.args...); err != nil {
		return err
	}
	b.args = b.args[:0]
	return nil
}
