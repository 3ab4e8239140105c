package jobstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/TritonDataCenter/rebalancer"
)

// ObjectRow is one object of a job as stored.
type ObjectRow struct {
	ID            string  `db:"id"`
	Seq           int64   `db:"seq"`
	Key           string  `db:"key"`
	Shard         int     `db:"shard"`
	ScanID        int64   `db:"scan_id"`
	Etag          string  `db:"etag"`
	Metadata      string  `db:"object"`
	ContentLength int64   `db:"content_length"`
	Status        string  `db:"status"`
	SkippedReason *string `db:"skipped_reason"`
	Error         *string `db:"error"`
	Detail        string  `db:"detail"`
	DestShark     string  `db:"dest_shark"`
	DestDC        string  `db:"dest_datacenter"`
	AssignmentID  string  `db:"assignment_id"`
	Avoid         string  `db:"avoid"`
	Attempts      int     `db:"attempts"`
	SourceShark   string  `db:"source_shark"`
}

// Object rebuilds the discovered object from the stored metadata.
func (r *ObjectRow) Object() (rebalancer.Object, error) {
	o, err := rebalancer.ParseObject(json.RawMessage(r.Metadata))
	if err != nil {
		return o, err
	}
	o.Shard, o.Etag, o.ScanID = r.Shard, r.Etag, r.ScanID
	return o, nil
}

// Dest is the destination the object was assigned to.
func (r *ObjectRow) Dest() rebalancer.StorageNode {
	return rebalancer.StorageNode{Datacenter: r.DestDC, MantaStorageID: r.DestShark}
}

// Avoided returns the destinations this object must not be placed on again.
func (r *ObjectRow) Avoided() []string {
	if r.Avoid == "" {
		return nil
	}
	return strings.Split(r.Avoid, ",")
}

const objectColumns = `id, seq, key, shard, scan_id, etag, object, content_length, status, skipped_reason,
	error, detail, dest_shark, dest_datacenter, assignment_id, avoid, attempts, source_shark`

// counter accumulates the counter moves of one transaction.
type counter map[[2]string][2]int64

func (c counter) add(status rebalancer.ObjectStatus, reason string, n, bytes int64) {
	k := [2]string{status.String(), reason}
	v := c[k]
	c[k] = [2]int64{v[0] + n, v[1] + bytes}
}

func (c counter) apply(ctx context.Context, tx *sqlx.Tx, jobID string) error {
	return c.applyTo(ctx, tx, jobID, "counts")
}

// applyTo moves the counters of table, counts or counts_v2.
func (c counter) applyTo(ctx context.Context, tx *sqlx.Tx, jobID, table string) error {
	keys := make([][2]string, 0, len(c))
	for k, v := range c {
		if v != [2]int64{} {
			keys = append(keys, k)
		}
	}
	// A fixed order keeps concurrent PostgreSQL transactions from
	// deadlocking on the counter rows.
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || (keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1])
	})
	q := tx.Rebind(`INSERT INTO ` + table + ` (job_id, status, reason, n, bytes) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (job_id, status, reason) DO UPDATE SET n = ` + table + `.n + excluded.n, bytes = ` + table + `.bytes + excluded.bytes`)
	for _, k := range keys {
		v := c[k]
		if _, err := tx.ExecContext(ctx, q, jobID, k[0], k[1], v[0], v[1]); err != nil {
			return fmt.Errorf("job %s counters: %w", jobID, err)
		}
	}
	return nil
}

// allocSeq reserves n consecutive sequence numbers for a job and returns the
// first. Sequence numbers order the objects waiting to be placed.
func allocSeq(ctx context.Context, tx *sqlx.Tx, jobID string, n int) (int64, error) {
	var last int64
	err := tx.GetContext(ctx, &last, tx.Rebind(`UPDATE jobs SET next_seq = next_seq + ? WHERE id = ? RETURNING next_seq`), n, jobID)
	if err != nil {
		return 0, fmt.Errorf("job %s: allocate sequence: %w", jobID, err)
	}
	return last - int64(n) + 1, nil
}

// RecordResult says what RecordDiscovered did with a batch.
type RecordResult struct {
	Inserted   int // new objects, now unprocessed
	Duplicates int // object ids already recorded from another key or shard
	Repeats    int // objects already recorded from this very key and shard (a rescan)
}

// RecordDiscovered stores a batch of discovered objects as unprocessed. An
// object id already in the job is not inserted again: when it comes from
// another key or shard it is recorded as a duplicate (the legacy duplicates
// table), and when it is the same record seen again (discovery resumed from
// a checkpoint) it is ignored. Per-shard checkpoints advance to the highest
// scan id in the batch, keyed by CheckpointShard.
func (s *Store) RecordDiscovered(ctx context.Context, jobID string, objs []rebalancer.Object) (RecordResult, error) {
	var res RecordResult
	if len(objs) == 0 {
		return res, nil
	}
	err := s.write(ctx, func(tx *sqlx.Tx) error {
		res = RecordResult{}
		first, err := allocSeq(ctx, tx, jobID, len(objs))
		if err != nil {
			return err
		}
		t := now()
		cnt, cnt2 := counter{}, counter{}
		var conflicts []rebalancer.Object
		insert := tx.Rebind(`INSERT INTO objects (job_id, id, seq, key, shard, scan_id, etag, object, content_length, status, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, id) DO NOTHING`)
		for i, o := range objs {
			r, err := tx.ExecContext(ctx, insert, jobID, o.ID, first+int64(i), o.Key, o.Shard, o.ScanID, o.Etag,
				string(o.Metadata), o.ContentLength, rebalancer.ObjectUnprocessed.String(), t)
			if err != nil {
				return fmt.Errorf("job %s: record object %s: %w", jobID, o.ID, err)
			}
			if n, _ := r.RowsAffected(); n == 1 {
				res.Inserted++
				cnt.add(rebalancer.ObjectUnprocessed, "", 1, o.ContentLength)
				if isV2(o.Key) {
					cnt2.add(rebalancer.ObjectUnprocessed, "", 1, o.ContentLength)
				}
			} else {
				conflicts = append(conflicts, o)
			}
		}
		for _, o := range conflicts {
			var prev struct {
				Key   string `db:"key"`
				Shard int    `db:"shard"`
			}
			if err := tx.GetContext(ctx, &prev, tx.Rebind(`SELECT key, shard FROM objects WHERE job_id = ? AND id = ?`), jobID, o.ID); err != nil {
				return fmt.Errorf("job %s: object %s: %w", jobID, o.ID, err)
			}
			if prev.Key == o.Key && prev.Shard == o.Shard {
				res.Repeats++
				continue
			}
			r, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO duplicates (job_id, id, key, shard) VALUES (?, ?, ?, ?)
				ON CONFLICT (job_id, id, key, shard) DO NOTHING`), jobID, o.ID, o.Key, o.Shard)
			if err != nil {
				return fmt.Errorf("job %s: record duplicate %s: %w", jobID, o.ID, err)
			}
			if n, _ := r.RowsAffected(); n == 1 {
				res.Duplicates++
			} else {
				res.Repeats++
			}
		}
		through := map[int]int64{}
		for _, o := range objs {
			if k := CheckpointShard(o); o.ScanID > through[k] {
				through[k] = o.ScanID
			}
		}
		for shard, id := range through {
			_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO job_shards (job_id, shard, through) VALUES (?, ?, ?)
				ON CONFLICT (job_id, shard) DO UPDATE SET through = CASE WHEN excluded.through > job_shards.through
				THEN excluded.through ELSE job_shards.through END`), jobID, shard, id)
			if err != nil {
				return fmt.Errorf("job %s: checkpoint shard %d: %w", jobID, shard, err)
			}
		}
		if err := cnt2.applyTo(ctx, tx, jobID, "counts_v2"); err != nil {
			return err
		}
		return cnt.apply(ctx, tx, jobID)
	})
	return res, err
}

// Unprocessed returns up to limit objects waiting to be placed whose
// sequence number is above after, in sequence order.
func (s *Store) Unprocessed(ctx context.Context, jobID string, after int64, limit int) ([]ObjectRow, error) {
	var rows []ObjectRow
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+objectColumns+` FROM objects
		WHERE job_id = ? AND status = ? AND seq > ? ORDER BY seq LIMIT ?`),
		jobID, rebalancer.ObjectUnprocessed.String(), after, limit)
	if err != nil {
		return nil, fmt.Errorf("job %s: read unprocessed objects: %w", jobID, err)
	}
	return rows, nil
}

// assignmentObjectsQuery reads an assignment's objects in a status. The
// status is concatenated with an empty string to keep SQLite on
// objects_assignment: with a plain status test it walks every object of
// the job in that status (see whereIDsInStatus).
const assignmentObjectsQuery = `SELECT ` + objectColumns + ` FROM objects
	WHERE job_id = ? AND assignment_id = ? AND status || '' = ? ORDER BY seq`

// AssignmentObjects returns the objects of an assignment that are in status.
func (s *Store) AssignmentObjects(ctx context.Context, jobID, assignmentID string, status rebalancer.ObjectStatus) ([]ObjectRow, error) {
	var rows []ObjectRow
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(assignmentObjectsQuery), jobID, assignmentID, status.String())
	if err != nil {
		return nil, fmt.Errorf("job %s assignment %s: read objects: %w", jobID, assignmentID, err)
	}
	return rows, nil
}

// ObjectsInStatus returns up to limit objects in status with seq above after.
func (s *Store) ObjectsInStatus(ctx context.Context, jobID string, status rebalancer.ObjectStatus, after int64, limit int) ([]ObjectRow, error) {
	var rows []ObjectRow
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+objectColumns+` FROM objects
		WHERE job_id = ? AND status = ? AND seq > ? ORDER BY seq LIMIT ?`), jobID, status.String(), after, limit)
	if err != nil {
		return nil, fmt.Errorf("job %s: read %s objects: %w", jobID, status, err)
	}
	return rows, nil
}

// GetObject reads one object of a job.
func (s *Store) GetObject(ctx context.Context, jobID, id string) (ObjectRow, error) {
	var r ObjectRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+objectColumns+` FROM objects WHERE job_id = ? AND id = ?`), jobID, id)
	if err != nil {
		return r, fmt.Errorf("job %s object %s: %w", jobID, id, err)
	}
	return r, nil
}

// Change moves one object from the status a transition expects to To.
type Change struct {
	ID    string
	Bytes int64 // the object's content length, for the byte counters
	To    rebalancer.ObjectStatus

	Skip   rebalancer.SkipReason      // why, when To is ObjectSkipped
	Error  rebalancer.ObjectErrorKind // why, when To is ObjectError
	Detail string                     // a human explanation, for skipped and error objects
	// Source is the shark the object's copy was read from, for a skip or
	// an error that came of reading it; "" when none was read.
	Source string

	// Requeue, with To ObjectUnprocessed: the object goes back to be placed
	// again (attempts+1), never again on Avoid.
	Avoid string

	// Refresh, when set, replaces the object's stored etag and metadata
	// (after re-reading it from Moray).
	Refresh *rebalancer.Object
}

func (c *Change) reason() (string, error) {
	switch c.To {
	case rebalancer.ObjectSkipped:
		if !c.Skip.Valid() {
			return "", fmt.Errorf("object %s skipped without a valid reason", c.ID)
		}
		return c.Skip.String(), nil
	case rebalancer.ObjectError:
		if c.Error == 0 {
			return "", fmt.Errorf("object %s in error without a kind", c.ID)
		}
		return c.Error.String(), nil
	}
	return "", nil
}

// ErrStatusChanged means an object was not in the status a transition
// expected: another part of the engine moved it, which is a bug to surface,
// never to paper over.
var ErrStatusChanged = fmt.Errorf("object status changed concurrently")

// Transition applies changes to objects that are all in status from, in one
// transaction with their counters.
func (s *Store) Transition(ctx context.Context, jobID string, from rebalancer.ObjectStatus, changes []Change) error {
	return s.write(ctx, func(tx *sqlx.Tx) error {
		return transition(ctx, tx, jobID, from, changes)
	})
}

// FinishAssignment records an assignment's outcome: changes to its
// objects, which are all assigned, and the assignment done, in one
// transaction.
func (s *Store) FinishAssignment(ctx context.Context, jobID, assignmentID string, changes []Change) error {
	return s.write(ctx, func(tx *sqlx.Tx) error {
		if err := transition(ctx, tx, jobID, rebalancer.ObjectAssigned, changes); err != nil {
			return err
		}
		return setAssignmentState(ctx, tx, jobID, assignmentID, AssignmentDone)
	})
}

func transition(ctx context.Context, tx *sqlx.Tx, jobID string, from rebalancer.ObjectStatus, changes []Change) error {
	t := now()
	cnt, cnt2 := counter{}, counter{}
	bySource := sourceCounter{}
	// Group the plain changes so that the hot paths (assigned to
	// post_processing, to complete) are one statement per group.
	type group struct {
		to             rebalancer.ObjectStatus
		skip, errKind  any
		detail, source string
	}
	groups := map[group][]Change{}
	var single []Change
	for _, c := range changes {
		reason, err := c.reason()
		if err != nil {
			return err
		}
		cnt.add(from, "", -1, -c.Bytes)
		cnt.add(c.To, reason, 1, c.Bytes)
		if c.To == rebalancer.ObjectSkipped || c.To == rebalancer.ObjectError {
			bySource[[3]string{c.Source, c.To.String(), reason}]++
		}
		if c.Refresh != nil || (c.To == rebalancer.ObjectUnprocessed) {
			single = append(single, c)
			continue
		}
		g := group{to: c.To, detail: c.Detail, source: c.Source}
		if c.To == rebalancer.ObjectSkipped {
			g.skip = reason
		}
		if c.To == rebalancer.ObjectError {
			g.errKind = reason
		}
		groups[g] = append(groups[g], c)
	}
	for g, cs := range groups {
		for start := 0; start < len(cs); start += 500 {
			chunk := cs[start:min(start+500, len(cs))]
			args := []any{g.to.String(), g.skip, g.errKind, g.detail, g.source, t, jobID}
			for _, c := range chunk {
				args = append(args, c.ID)
			}
			args = append(args, from.String())
			q := `UPDATE objects SET status = ?, skipped_reason = ?, error = ?, detail = ?, source_shark = ?, updated_at = ?
				WHERE ` + whereIDsInStatus(len(chunk)) + ` RETURNING id, key`
			n, v2, err := updateReturning(ctx, tx, q, args...)
			if err != nil {
				return fmt.Errorf("job %s: move %d objects %s -> %s: %w", jobID, len(chunk), from, g.to, err)
			}
			if n != len(chunk) {
				return fmt.Errorf("job %s: move %d objects %s -> %s matched %d: %w", jobID, len(chunk), from, g.to, n, ErrStatusChanged)
			}
			if len(v2) > 0 {
				reason := ""
				if g.skip != nil {
					reason = g.skip.(string)
				} else if g.errKind != nil {
					reason = g.errKind.(string)
				}
				bytes := make(map[string]int64, len(chunk))
				for _, c := range chunk {
					bytes[c.ID] = c.Bytes
				}
				for _, id := range v2 {
					cnt2.add(from, "", -1, -bytes[id])
					cnt2.add(g.to, reason, 1, bytes[id])
				}
			}
		}
	}
	var seq int64
	requeues := 0
	for _, c := range single {
		if c.To == rebalancer.ObjectUnprocessed {
			requeues++
		}
	}
	if requeues > 0 {
		var err error
		if seq, err = allocSeq(ctx, tx, jobID, requeues); err != nil {
			return err
		}
	}
	for _, c := range single {
		reason, _ := c.reason()
		var skip, errKind any
		if c.To == rebalancer.ObjectSkipped {
			skip = reason
		}
		if c.To == rebalancer.ObjectError {
			errKind = reason
		}
		set := `status = ?, skipped_reason = ?, error = ?, detail = ?, source_shark = ?, updated_at = ?`
		args := []any{c.To.String(), skip, errKind, c.Detail, c.Source, t}
		if c.To == rebalancer.ObjectUnprocessed {
			set += `, seq = ?, attempts = attempts + 1, assignment_id = '', dest_shark = '', dest_datacenter = '',
				avoid = CASE WHEN avoid = '' THEN ? ELSE avoid || ',' || ? END`
			args = append(args, seq, c.Avoid, c.Avoid)
			if c.Avoid == "" {
				set = strings.Replace(set, `avoid = CASE WHEN avoid = '' THEN ? ELSE avoid || ',' || ? END`, `avoid = avoid`, 1)
				args = args[:len(args)-2]
			}
			seq++
		}
		if c.Refresh != nil {
			set += `, etag = ?, object = ?, content_length = ?`
			args = append(args, c.Refresh.Etag, string(c.Refresh.Metadata), c.Refresh.ContentLength)
		}
		args = append(args, jobID, from.String(), c.ID)
		n, v2, err := updateReturning(ctx, tx, `UPDATE objects SET `+set+` WHERE job_id = ? AND status = ? AND id = ? RETURNING id, key`, args...)
		if err != nil {
			return fmt.Errorf("job %s: object %s %s -> %s: %w", jobID, c.ID, from, c.To, err)
		}
		if n != 1 {
			return fmt.Errorf("job %s: object %s %s -> %s: %w", jobID, c.ID, from, c.To, ErrStatusChanged)
		}
		if len(v2) > 0 {
			cnt2.add(from, "", -1, -c.Bytes)
			cnt2.add(c.To, reason, 1, c.Bytes)
		}
	}
	if err := cnt2.applyTo(ctx, tx, jobID, "counts_v2"); err != nil {
		return err
	}
	if err := cnt.apply(ctx, tx, jobID); err != nil {
		return err
	}
	return bySource.apply(ctx, tx, jobID)
}

// sourceCounter accumulates the moves of one transaction into skipped and
// error, by source shark, status and reason. Objects never leave these
// statuses within a job, so the counters only grow.
type sourceCounter map[[3]string]int64

func (c sourceCounter) apply(ctx context.Context, tx *sqlx.Tx, jobID string) error {
	keys := make([][3]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	// A fixed order, as for counter.
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		return a[0] < b[0] || a[0] == b[0] && (a[1] < b[1] || a[1] == b[1] && a[2] < b[2])
	})
	q := tx.Rebind(`INSERT INTO source_counts (job_id, source, status, reason, n) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (job_id, source, status, reason) DO UPDATE SET n = source_counts.n + excluded.n`)
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, q, jobID, k[0], k[1], k[2], c[k]); err != nil {
			return fmt.Errorf("job %s counters by source: %w", jobID, err)
		}
	}
	return nil
}

// SourceCount is the number of a job's objects skipped or in error for
// one reason after reading from one source shark ("": none, or unknown).
type SourceCount struct {
	Source string `db:"source"`
	Status string `db:"status"`
	Reason string `db:"reason"`
	N      int64  `db:"n"`
}

// SourceCounts returns a job's skip and error counters by source shark.
func (s *Store) SourceCounts(ctx context.Context, jobID string) ([]SourceCount, error) {
	var out []SourceCount
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT source, status, reason, n FROM source_counts
		WHERE job_id = ? AND n <> 0 ORDER BY source, status, reason`), jobID)
	if err != nil {
		return nil, fmt.Errorf("job %s counts by source: %w", jobID, err)
	}
	return out, nil
}

// RecountSources computes SourceCounts from the objects, the slow way, for
// tests.
func (s *Store) RecountSources(ctx context.Context, jobID string) ([]SourceCount, error) {
	var out []SourceCount
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT source_shark AS source, status,
		COALESCE(skipped_reason, error, '') AS reason, COUNT(*) AS n
		FROM objects WHERE job_id = ? AND status IN (?, ?)
		GROUP BY source_shark, status, COALESCE(skipped_reason, error, '') ORDER BY source, status, reason`),
		jobID, rebalancer.ObjectError.String(), rebalancer.ObjectSkipped.String())
	if err != nil {
		return nil, fmt.Errorf("job %s recount by source: %w", jobID, err)
	}
	return out, nil
}

// ObjectsByID returns the objects of a job among ids (at most 500), in no
// particular order; ids the job does not have are left out.
func (s *Store) ObjectsByID(ctx context.Context, jobID string, ids []string) ([]ObjectRow, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	q, args, err := sqlx.In(`SELECT `+objectColumns+` FROM objects WHERE job_id = ? AND id IN (?)`, jobID, ids)
	if err != nil {
		return nil, err
	}
	var rows []ObjectRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(q), args...); err != nil {
		return nil, fmt.Errorf("job %s: read %d objects by id: %w", jobID, len(ids), err)
	}
	return rows, nil
}

// AssignmentRecord is an assignment as stored: a batch of objects for one
// destination, and how far it got.
type AssignmentRecord struct {
	ID      string                 `db:"id"`
	Dest    rebalancer.StorageNode `db:"-"`
	State   string                 `db:"state"`
	Tasks   int                    `db:"tasks"`
	Bytes   int64                  `db:"bytes"`
	Posts   int                    `db:"posts"`
	Created int64                  `db:"created_at"`
	Posted  int64                  `db:"posted_at"`

	DestShark string `db:"dest_shark"`
	DestDC    string `db:"dest_datacenter"`
}

// Assignment states.
const (
	AssignmentCreated = "created" // stored; not yet accepted by its agent
	AssignmentPosted  = "posted"  // accepted by the agent; being polled
	AssignmentDone    = "done"    // results recorded
)

// whereIDsInStatus is the WHERE clause of a batch update of n objects of a
// job by id, guarded by their current status; its arguments are the job
// id, the n ids, then the status.
//
// The status is concatenated with an empty string on purpose: given a plain
// "status = ?", SQLite (without statistics) walks the objects_status index
// over every object of the job in that status, for every batch, instead of
// looking each id up in the primary key, which makes a job quadratic in its
// size (measured by rebalancer-bench's rss bench: 780 objects/s at 100k
// objects against 4,100 at 10k). PostgreSQL plans it the same either way.
func whereIDsInStatus(n int) string {
	return `job_id = ? AND id IN (?` + strings.Repeat(",?", n-1) + `) AND status || '' = ?`
}

// Assign stores a new assignment and moves its objects from unprocessed to
// assigned, in one transaction.
func (s *Store) Assign(ctx context.Context, jobID string, a AssignmentRecord, objs []Change) error {
	return s.write(ctx, func(tx *sqlx.Tx) error {
		t := now()
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO assignments (job_id, id, dest_shark, dest_datacenter, state, tasks, bytes, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), jobID, a.ID, a.Dest.MantaStorageID, a.Dest.Datacenter, AssignmentCreated, a.Tasks, a.Bytes, t)
		if err != nil {
			return fmt.Errorf("job %s: store assignment %s: %w", jobID, a.ID, err)
		}
		cnt, cnt2 := counter{}, counter{}
		for start := 0; start < len(objs); start += 500 {
			chunk := objs[start:min(start+500, len(objs))]
			args := []any{rebalancer.ObjectAssigned.String(), a.ID, a.Dest.MantaStorageID, a.Dest.Datacenter, t, jobID}
			for _, c := range chunk {
				args = append(args, c.ID)
				cnt.add(rebalancer.ObjectUnprocessed, "", -1, -c.Bytes)
				cnt.add(rebalancer.ObjectAssigned, "", 1, c.Bytes)
			}
			args = append(args, rebalancer.ObjectUnprocessed.String())
			n, v2, err := updateReturning(ctx, tx, `UPDATE objects SET status = ?, assignment_id = ?, dest_shark = ?, dest_datacenter = ?, updated_at = ?
				WHERE `+whereIDsInStatus(len(chunk))+` RETURNING id, key`, args...)
			if err != nil {
				return fmt.Errorf("job %s: assign objects to %s: %w", jobID, a.ID, err)
			}
			if n != len(chunk) {
				return fmt.Errorf("job %s: assign %d objects to %s matched %d: %w", jobID, len(chunk), a.ID, n, ErrStatusChanged)
			}
			if len(v2) > 0 {
				bytes := make(map[string]int64, len(chunk))
				for _, c := range chunk {
					bytes[c.ID] = c.Bytes
				}
				for _, id := range v2 {
					cnt2.add(rebalancer.ObjectUnprocessed, "", -1, -bytes[id])
					cnt2.add(rebalancer.ObjectAssigned, "", 1, bytes[id])
				}
			}
		}
		if err := cnt2.applyTo(ctx, tx, jobID, "counts_v2"); err != nil {
			return err
		}
		return cnt.apply(ctx, tx, jobID)
	})
}

// setAssignmentState records an assignment's progress inside a transaction.
func setAssignmentState(ctx context.Context, tx *sqlx.Tx, jobID, id, state string) error {
	q := `UPDATE assignments SET state = ?`
	args := []any{state}
	if state == AssignmentPosted {
		q += `, posted_at = ?, posts = posts + 1`
		args = append(args, now())
	}
	res, err := tx.ExecContext(ctx, tx.Rebind(q+` WHERE job_id = ? AND id = ?`), append(args, jobID, id)...)
	if err != nil {
		return fmt.Errorf("job %s: assignment %s: %w", jobID, id, err)
	}
	return oneRow(res, fmt.Errorf("job %s: assignment %s not found", jobID, id))
}

// SetAssignmentState records an assignment's progress.
func (s *Store) SetAssignmentState(ctx context.Context, jobID, id, state string) error {
	return s.write(ctx, func(tx *sqlx.Tx) error { return setAssignmentState(ctx, tx, jobID, id, state) })
}

// Assignments lists a job's assignments that are in one of states.
func (s *Store) Assignments(ctx context.Context, jobID string, states ...string) ([]AssignmentRecord, error) {
	q, args, err := sqlx.In(`SELECT id, dest_shark, dest_datacenter, state, tasks, bytes, posts, created_at, posted_at
		FROM assignments WHERE job_id = ? AND state IN (?) ORDER BY created_at, id`, jobID, states)
	if err != nil {
		return nil, err
	}
	var out []AssignmentRecord
	if err := s.db.SelectContext(ctx, &out, s.db.Rebind(q), args...); err != nil {
		return nil, fmt.Errorf("job %s: list assignments: %w", jobID, err)
	}
	for i := range out {
		out[i].Dest = rebalancer.StorageNode{Datacenter: out[i].DestDC, MantaStorageID: out[i].DestShark}
	}
	return out, nil
}

// Count is one counter of a job: objects (and their bytes) in a status, for
// one reason when the status is skipped or error.
type Count struct {
	Status string `db:"status"`
	Reason string `db:"reason"`
	N      int64  `db:"n"`
	Bytes  int64  `db:"bytes"`
}

// Counts returns a job's counters.
func (s *Store) Counts(ctx context.Context, jobID string) ([]Count, error) {
	var out []Count
	if err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT status, reason, n, bytes FROM counts WHERE job_id = ? AND n <> 0 ORDER BY status, reason`), jobID); err != nil {
		return nil, fmt.Errorf("job %s counts: %w", jobID, err)
	}
	return out, nil
}

// Recount computes a job's counters from its objects, the slow way. Tests
// and the verify command compare it with Counts.
func (s *Store) Recount(ctx context.Context, jobID string) ([]Count, error) {
	var out []Count
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT status,
		COALESCE(skipped_reason, error, '') AS reason, COUNT(*) AS n, COALESCE(SUM(content_length), 0) AS bytes
		FROM objects WHERE job_id = ? GROUP BY status, COALESCE(skipped_reason, error, '') ORDER BY status, reason`), jobID)
	if err != nil {
		return nil, fmt.Errorf("job %s recount: %w", jobID, err)
	}
	return out, nil
}

// DuplicateRow is one extra occurrence of an object id.
type DuplicateRow struct {
	ID    string `db:"id"`
	Key   string `db:"key"`
	Shard int    `db:"shard"`
}

// Duplicates returns the number of distinct duplicated object ids of a job
// and up to limit of its duplicate rows.
func (s *Store) Duplicates(ctx context.Context, jobID string, limit int) (int64, []DuplicateRow, error) {
	var n int64
	if err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(DISTINCT id) FROM duplicates WHERE job_id = ?`), jobID); err != nil {
		return 0, nil, fmt.Errorf("job %s duplicates: %w", jobID, err)
	}
	var rows []DuplicateRow
	if limit > 0 {
		if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT id, key, shard FROM duplicates WHERE job_id = ? ORDER BY id, key LIMIT ?`), jobID, limit); err != nil {
			return 0, nil, fmt.Errorf("job %s duplicates: %w", jobID, err)
		}
	}
	return n, rows, nil
}

// Destinations sums a job's objects per destination (planned or actual) in
// the given statuses: the dry-run report.
func (s *Store) Destinations(ctx context.Context, jobID string, statuses ...rebalancer.ObjectStatus) (map[string][2]int64, error) {
	names := make([]string, len(statuses))
	for i, st := range statuses {
		names[i] = st.String()
	}
	q, args, err := sqlx.In(`SELECT dest_shark, COUNT(*) AS n, COALESCE(SUM(content_length), 0) AS bytes FROM objects
		WHERE job_id = ? AND dest_shark <> '' AND status IN (?) GROUP BY dest_shark`, jobID, names)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Dest  string `db:"dest_shark"`
		N     int64  `db:"n"`
		Bytes int64  `db:"bytes"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(q), args...); err != nil {
		return nil, fmt.Errorf("job %s destinations: %w", jobID, err)
	}
	out := make(map[string][2]int64, len(rows))
	for _, r := range rows {
		out[r.Dest] = [2]int64{r.N, r.Bytes}
	}
	return out, nil
}

// PlanDestination records the destination a dry run would use for an
// unprocessed object.
func (s *Store) PlanDestination(ctx context.Context, jobID string, plans map[string]rebalancer.StorageNode) error {
	return s.write(ctx, func(tx *sqlx.Tx) error {
		q := tx.Rebind(`UPDATE objects SET dest_shark = ?, dest_datacenter = ? WHERE job_id = ? AND id = ? AND status = ?`)
		for id, d := range plans {
			if _, err := tx.ExecContext(ctx, q, d.MantaStorageID, d.Datacenter, jobID, id, rebalancer.ObjectUnprocessed.String()); err != nil {
				return fmt.Errorf("job %s: plan %s: %w", jobID, id, err)
			}
		}
		return nil
	})
}
