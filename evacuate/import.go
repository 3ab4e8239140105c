package evacuate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
)

// ErrJobExists is returned by Store.ImportJob for a job id the store
// already has.
var ErrJobExists = jobstore.ErrJobExists

// ImportedJob is a finished evacuation job recorded by another rebalancer
// (the legacy manager keeps its jobs in PostgreSQL databases of its own),
// for Store.ImportJob to write into the store whole, so that an engine
// lists it, shows its status and objects and retries it as any job of its
// own.
type ImportedJob struct {
	ID string
	// State must be terminal (stopped, complete or failed): the engine
	// cannot resume a job whose assignments it never saw.
	State rebalancer.JobState
	// From is the evacuated shark; its Datacenter may be "" when the job
	// never started.
	From rebalancer.StorageNode
	// Options are the job's options (zero fields: DefaultOptions), which a
	// retry starts from.
	Options Options
	// Error says why the job ended, or anything else its readers should
	// know of it; "" for none.
	Error string
	// CreatedAt orders the job among the others (Engine.Jobs lists them
	// oldest first). Its start and end times are unknown, left zero.
	CreatedAt time.Time
	// Objects calls visit for every object the job recorded, once each,
	// in the order the job's object listing should follow. An error from
	// visit must be returned.
	Objects func(ctx context.Context, visit func(ImportedObject) error) error
	// Duplicates calls visit for every extra occurrence of an object id
	// that the job found (nil for none).
	Duplicates func(ctx context.Context, visit func(ImportedDuplicate) error) error
}

// ImportedObject is one object of an imported job, as that job left it.
type ImportedObject struct {
	ID string
	// Metadata is the object's metadata as the job read it, kept
	// verbatim. Its key and size are derived from it; metadata that does
	// not parse is kept too (a job records such objects as errors), with
	// no key, or the key it could read.
	Metadata json.RawMessage
	Shard    int
	Etag     string
	Status   rebalancer.ObjectStatus
	// SkipReason, for a skipped object, and Error, for an object in
	// error, say why; zero when the job did not record why. Neither may be
	// set on an object in another status: Detail can tell such a leftover.
	SkipReason rebalancer.SkipReason
	Error      rebalancer.ObjectErrorKind
	// Detail explains the object's status for people.
	Detail string
	// Dest and AssignmentID are where and in which assignment the job
	// last tried to copy the object ("" for none).
	Dest         rebalancer.StorageNode
	AssignmentID string
}

// ImportedDuplicate is an object id that a job found again under Key on
// Shard, besides the object it recorded.
type ImportedDuplicate struct {
	ID    string
	Key   string
	Shard int
}

// ImportResult is what Store.ImportJob wrote.
type ImportResult struct {
	Objects    int64
	Duplicates int64
}

// ImportJob writes a job recorded elsewhere into the store, with all its
// objects and duplicates and the exact counters they make, in one
// transaction: an import interrupted at any point leaves nothing behind,
// and can simply be run again. A job id the store already has gives an
// error matching ErrJobExists before any object is read, which makes
// importing the same job again a cheap no-op.
//
// Imported objects are numbered in the order Objects gives them, and keep
// their statuses, reasons and destinations. A retry of an imported job
// (Engine.RetryJob) takes every object that is not complete, with its
// metadata read again, as for any job.
//
// On SQLite, the transaction keeps the store's only writer busy for the
// whole job: jobs running on the same store wait for it.
func (s *Store) ImportJob(ctx context.Context, j ImportedJob) (ImportResult, error) {
	switch {
	case j.ID == "":
		return ImportResult{}, errors.New("import: a job id is required")
	case !j.State.Terminal():
		return ImportResult{}, fmt.Errorf("import job %s: state %v is not terminal: only finished jobs can be imported", j.ID, j.State)
	case j.From.MantaStorageID == "":
		return ImportResult{}, fmt.Errorf("import job %s: the shark it evacuates is required", j.ID)
	case j.Objects == nil:
		return ImportResult{}, fmt.Errorf("import job %s: Objects is required", j.ID)
	}
	opts, err := json.Marshal(j.Options.withDefaults(DefaultOptions()))
	if err != nil {
		return ImportResult{}, err
	}
	var seq int64
	n, err := s.s.Import(ctx, jobstore.Imported{
		Job: jobstore.Job{ID: j.ID, Action: rebalancer.JobEvacuate, State: j.State, From: j.From, Options: opts,
			Error: j.Error, CreatedAt: j.CreatedAt},
		Objects: func(add func(jobstore.ObjectRow) error) error {
			return j.Objects(ctx, func(o ImportedObject) error {
				seq++
				row, err := importedRow(o, seq)
				if err != nil {
					return err
				}
				return add(row)
			})
		},
		Duplicates: func(add func(jobstore.DuplicateRow) error) error {
			if j.Duplicates == nil {
				return nil
			}
			return j.Duplicates(ctx, func(d ImportedDuplicate) error {
				return add(jobstore.DuplicateRow(d))
			})
		},
	})
	return ImportResult(n), err
}

// HasJob reports whether the store has a job with this id (an importer's
// check before it reads anything of a job).
func (s *Store) HasJob(ctx context.Context, id string) (bool, error) { return s.s.HasJob(ctx, id) }

// importedRow is the stored row of an imported object.
func importedRow(o ImportedObject, seq int64) (jobstore.ObjectRow, error) {
	if o.ID == "" && len(o.Metadata) == 0 {
		return jobstore.ObjectRow{}, errors.New("an imported object needs an id or metadata")
	}
	if !slices.Contains(rebalancer.ObjectStatuses(), o.Status) {
		return jobstore.ObjectRow{}, fmt.Errorf("object %s: invalid status %v", o.ID, o.Status)
	}
	row := jobstore.ObjectRow{ID: o.ID, Seq: seq, Shard: o.Shard, Etag: o.Etag, Metadata: string(o.Metadata),
		Status: o.Status.String(), Detail: o.Detail, DestShark: o.Dest.MantaStorageID, DestDC: o.Dest.Datacenter,
		AssignmentID: o.AssignmentID}
	switch {
	case o.SkipReason != 0 && o.Status != rebalancer.ObjectSkipped:
		return row, fmt.Errorf("object %s: a skip reason (%v) on an object %v", o.ID, o.SkipReason, o.Status)
	case o.Error != 0 && o.Status != rebalancer.ObjectError:
		return row, fmt.Errorf("object %s: an error (%v) on an object %v", o.ID, o.Error, o.Status)
	case o.SkipReason != 0:
		if !o.SkipReason.Valid() {
			return row, fmt.Errorf("object %s: invalid skip reason %v", o.ID, o.SkipReason)
		}
		r := o.SkipReason.String()
		row.SkippedReason = &r
	case o.Error != 0:
		e := o.Error.String()
		if _, err := rebalancer.ParseObjectErrorKind(e); err != nil {
			return row, fmt.Errorf("object %s: invalid error kind %v", o.ID, o.Error)
		}
		row.Error = &e
	}
	obj, err := rebalancer.ParseObject(o.Metadata)
	var bad *rebalancer.BadObjectError
	switch {
	case err == nil:
		row.Key, row.ContentLength = obj.Key, obj.ContentLength
	case errors.As(err, &bad):
		row.Key = bad.Key // what could be read of it, if anything
	}
	return row, nil
}
