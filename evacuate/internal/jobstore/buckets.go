package jobstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/mdapi"
)

// Buckets (v2) objects share a job with v1 objects. Their keys are
// mdapi.Locator keys ("v2/..."), so the store tells the kinds apart by key:
// it keeps their counters apart (counts_v2), keys their discovery
// checkpoints apart, and remembers, per multipart upload, where its parts
// go and what became of its record.

func isV2(key string) bool { return mdapi.IsKey(key) }

// V2CheckpointOffset is added to a buckets shard's number to make the key
// of its discovery checkpoint: v1 shard 1 and buckets shard 1 are
// different databases. It is sharkspotter.V2CheckpointOffset (a test
// checks), which this package cannot import (it links lib/pq).
const V2CheckpointOffset = 1_000_000

// CheckpointShard is the key of the checkpoint an object advances: its
// shard for a v1 object, V2CheckpointOffset plus its shard for a v2 one, as
// sharkspotter.Multi reads DiscoverRequest.After.
func CheckpointShard(o rebalancer.Object) int {
	if isV2(o.Key) {
		return V2CheckpointOffset + o.Shard
	}
	return o.Shard
}

// updateReturning runs an UPDATE of objects ending in "RETURNING id, key"
// and returns how many rows it changed and the ids of the v2 objects among
// them, whose counters move in counts_v2 as well.
func updateReturning(ctx context.Context, tx *sqlx.Tx, q string, args ...any) (n int, v2 []string, err error) {
	rows, err := tx.QueryContext(ctx, tx.Rebind(q), args...)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, key string
		if err := rows.Scan(&id, &key); err != nil {
			return 0, nil, err
		}
		n++
		if isV2(key) {
			v2 = append(v2, id)
		}
	}
	return n, v2, rows.Err()
}

// CountsV2 returns the counters of a job's v2 objects alone.
func (s *Store) CountsV2(ctx context.Context, jobID string) ([]Count, error) {
	var out []Count
	if err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT status, reason, n, bytes FROM counts_v2 WHERE job_id = ? AND n <> 0 ORDER BY status, reason`), jobID); err != nil {
		return nil, fmt.Errorf("job %s v2 counts: %w", jobID, err)
	}
	return out, nil
}

// RecountV2 is Recount for the v2 objects of a job.
func (s *Store) RecountV2(ctx context.Context, jobID string) ([]Count, error) {
	var out []Count
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT status,
		COALESCE(skipped_reason, error, '') AS reason, COUNT(*) AS n, COALESCE(SUM(content_length), 0) AS bytes
		FROM objects WHERE job_id = ? AND key LIKE 'v2/%' GROUP BY status, COALESCE(skipped_reason, error, '') ORDER BY status, reason`), jobID)
	if err != nil {
		return nil, fmt.Errorf("job %s v2 recount: %w", jobID, err)
	}
	return out, nil
}

// SetJobBuckets records whether a job's discovery looks for v2 objects,
// and if not, why (note).
func (s *Store) SetJobBuckets(ctx context.Context, jobID string, scanned bool, note string) error {
	v := 0
	if scanned {
		v = 1
	}
	return s.write(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO job_buckets (job_id, scanned, note) VALUES (?, ?, ?)
			ON CONFLICT (job_id) DO UPDATE SET scanned = excluded.scanned, note = excluded.note`), jobID, v, note)
		if err != nil {
			return fmt.Errorf("job %s: record v2 discovery: %w", jobID, err)
		}
		return nil
	})
}

// JobBuckets returns what SetJobBuckets recorded; known is false when
// nothing was (a job whose discovery has not started, or older than this
// record).
func (s *Store) JobBuckets(ctx context.Context, jobID string) (scanned bool, note string, known bool, err error) {
	var row struct {
		Scanned int    `db:"scanned"`
		Note    string `db:"note"`
	}
	err = s.db.GetContext(ctx, &row, s.db.Rebind(`SELECT scanned, note FROM job_buckets WHERE job_id = ?`), jobID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, "", false, nil
	case err != nil:
		return false, "", false, fmt.Errorf("job %s: v2 discovery: %w", jobID, err)
	}
	return row.Scanned != 0, row.Note, true, nil
}

// UploadRow is a multipart upload whose parts a job moves: the upload
// (mdapi.Upload's String), the key of one of its parts (to find the
// record with), the destination every part goes to, and what became of
// the record (Outcome, empty until the job's end tried to fix it).
type UploadRow struct {
	Upload   string `db:"upload"`
	PartKey  string `db:"part_key"`
	DestDC   string `db:"dest_datacenter"`
	Dest     string `db:"dest_shark"`
	Outcome  string `db:"outcome"`
	Detail   string `db:"detail"`
	Modified int64  `db:"updated_at"`
}

// Node is the upload's destination.
func (u *UploadRow) Node() rebalancer.StorageNode {
	return rebalancer.StorageNode{Datacenter: u.DestDC, MantaStorageID: u.Dest}
}

// PinUpload records dest as the destination of every part of upload, unless
// one is recorded already, and returns the one recorded.
func (s *Store) PinUpload(ctx context.Context, jobID, upload, partKey string, dest rebalancer.StorageNode) (rebalancer.StorageNode, error) {
	var got UploadRow
	err := s.write(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO job_uploads (job_id, upload, part_key, dest_shark, dest_datacenter, updated_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, upload) DO NOTHING`), jobID, upload, partKey, dest.MantaStorageID, dest.Datacenter, now())
		if err != nil {
			return err
		}
		return tx.GetContext(ctx, &got, tx.Rebind(`SELECT `+uploadColumns+` FROM job_uploads WHERE job_id = ? AND upload = ?`), jobID, upload)
	})
	if err != nil {
		return rebalancer.StorageNode{}, fmt.Errorf("job %s: pin upload %s to %s: %w", jobID, upload, dest.MantaStorageID, err)
	}
	return got.Node(), nil
}

const uploadColumns = `upload, part_key, dest_shark, dest_datacenter, outcome, detail, updated_at`

// UploadPin returns the destination recorded for upload, if any.
func (s *Store) UploadPin(ctx context.Context, jobID, upload string) (rebalancer.StorageNode, bool, error) {
	var got UploadRow
	err := s.db.GetContext(ctx, &got, s.db.Rebind(`SELECT `+uploadColumns+` FROM job_uploads WHERE job_id = ? AND upload = ?`), jobID, upload)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return rebalancer.StorageNode{}, false, nil
	case err != nil:
		return rebalancer.StorageNode{}, false, fmt.Errorf("job %s: upload %s: %w", jobID, upload, err)
	}
	return got.Node(), true, nil
}

// Uploads returns a job's uploads, in upload order.
func (s *Store) Uploads(ctx context.Context, jobID string) ([]UploadRow, error) {
	var out []UploadRow
	if err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT `+uploadColumns+` FROM job_uploads WHERE job_id = ? ORDER BY upload`), jobID); err != nil {
		return nil, fmt.Errorf("job %s: uploads: %w", jobID, err)
	}
	return out, nil
}

// SetUploadOutcome records what became of an upload's record.
func (s *Store) SetUploadOutcome(ctx context.Context, jobID, upload, outcome, detail string) error {
	return s.write(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE job_uploads SET outcome = ?, detail = ?, updated_at = ? WHERE job_id = ? AND upload = ?`),
			outcome, detail, now(), jobID, upload)
		if err != nil {
			return fmt.Errorf("job %s: upload %s: %w", jobID, upload, err)
		}
		return oneRow(res, fmt.Errorf("job %s: upload %s not recorded", jobID, upload))
	})
}

// UploadOutcomes counts a job's uploads by outcome ("" for those not yet
// tried).
func (s *Store) UploadOutcomes(ctx context.Context, jobID string) (map[string]int64, error) {
	var rows []struct {
		Outcome string `db:"outcome"`
		N       int64  `db:"n"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT outcome, COUNT(*) AS n FROM job_uploads WHERE job_id = ? GROUP BY outcome`), jobID); err != nil {
		return nil, fmt.Errorf("job %s: upload outcomes: %w", jobID, err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Outcome] = r.N
	}
	return out, nil
}

// InheritUploads gives job the uploads of the job it retries whose record
// is not done with (outcome not among done), with their destinations, so
// that the retry sends their remaining parts where the others went and
// fixes their records. It is idempotent.
func (s *Store) InheritUploads(ctx context.Context, jobID, retryOf string, done []string) error {
	return s.write(ctx, func(tx *sqlx.Tx) error {
		q, args, err := sqlx.In(`INSERT INTO job_uploads (job_id, upload, part_key, dest_shark, dest_datacenter, updated_at)
			SELECT ?, upload, part_key, dest_shark, dest_datacenter, ? FROM job_uploads WHERE job_id = ? AND outcome NOT IN (?)
			ON CONFLICT (job_id, upload) DO NOTHING`, jobID, now(), retryOf, done)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return fmt.Errorf("job %s: uploads of job %s: %w", jobID, retryOf, err)
		}
		return nil
	})
}
