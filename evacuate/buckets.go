package evacuate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
	"github.com/TritonDataCenter/rebalancer/mdapi"
)

// Buckets (v2) objects go through the same pipeline as v1 objects, told
// apart by their key (mdapi.IsKey: "v2/<vnode>/<owner>/<bucket_id>/<name>"):
// their metadata is updated through buckets-mdapi (Config.Metadata routes
// them, see mdapi.Router), their errors have the mdapi_ kinds of the legacy
// status document, their counters are kept apart as well (Status.Buckets),
// and the parts of a multipart upload leaving the shark all go to one
// destination, after which the upload's record is rewritten to name it
// (Buckets.Uploads). See docs/buckets-mdapi.md.

// Buckets says what the engine does about buckets (v2) objects.
type Buckets struct {
	// Scanned says that the jobs' object sources discover v2 objects as
	// well as v1 ones (a sharkspotter.Multi with a buckets scanner, say).
	// Each job records it when its discovery starts. A job that did not
	// look for v2 objects says so in its status and its end-of-job log:
	// the shark may still hold v2 objects it did not even count.
	Scanned bool
	// NotScanned, when Scanned is false, says why, for operators (the
	// manager: "no buckets-mdapi shards are configured (mdapi.shards)").
	// Empty means DefaultNotScanned.
	NotScanned string
	// Uploads, when set, returns what fixes the records of the multipart
	// uploads whose parts a job moved (an *mdapi.UploadFixer, whose ring
	// and vnode map it lists afresh). A job calls it once, as it ends, if
	// it has records to fix. Without it the records are not fixed, and the
	// job says so.
	Uploads func(ctx context.Context) (UploadFixer, error)
}

// DefaultNotScanned is why a job did not look for v2 objects when
// Buckets.NotScanned does not say.
const DefaultNotScanned = "the engine's object source discovers v1 (Moray) objects only (evacuate.Config.Buckets.Scanned is false)"

// UploadFixer rewrites the records of multipart uploads whose parts moved;
// *mdapi.UploadFixer is one.
type UploadFixer interface {
	FixMoved(ctx context.Context, moves []mdapi.PartMove) []mdapi.UploadResult
}

// PinnedPlacement is a rebalancer.Placement that can also place an object
// on a destination chosen beforehand, applying its rules and reserving room
// there as Place does: the engine sends every part of a multipart upload
// that leaves the shark to the destination of the first one placed, since
// buckets-api assembles an upload on each shark from the parts that shark
// holds. storinfo.Placement is one. With a Placement that is not, the
// engine checks only that the destination holds no copy of the part and is
// not to be avoided, reserves nothing, and still calls Release for the
// part's bytes.
type PinnedPlacement interface {
	rebalancer.Placement
	// PlaceOn places obj, leaving from, on dest (a storage id), or returns
	// a *rebalancer.SkipError saying why dest cannot take it. avoid is as
	// for Place.
	PlaceOn(ctx context.Context, obj rebalancer.Object, from rebalancer.StorageNode, dest string, avoid []string) (rebalancer.StorageNode, error)
}

// Upload record outcomes besides mdapi.UploadOutcome's names (fixed,
// already_fixed, finished, not_listed).
const (
	// UploadPartsLeft: some parts of the upload on the shark did not
	// move, so its record keeps naming the shark, which still holds them
	// all; a retry of the job fixes it once they have moved.
	UploadPartsLeft = "parts_left"
	// UploadFailed: the record could not be fixed (Detail says why); a
	// retry of the job tries again.
	UploadFailed = "failed"
)

// uploadsDone are the outcomes after which a record needs nothing more.
var uploadsDone = []string{mdapi.UploadFixed.String(), mdapi.UploadAlreadyFixed.String(), mdapi.UploadFinished.String(), mdapi.UploadNotListed.String()}

// isV2 reports whether an object is a buckets (v2) one.
func isV2(o *rebalancer.Object) bool { return mdapi.IsKey(o.Key) }

// errorKinds are the error kinds of a metadata update, by the kind of
// object: moray_* for v1, mdapi_* for v2, as the legacy status document
// groups them.
type errorKinds struct{ notFound, etagMismatch, updateFailed rebalancer.ObjectErrorKind }

func errorKindsOf(o *rebalancer.Object) errorKinds {
	if isV2(o) {
		return errorKinds{rebalancer.ErrorMdapiObjectNotFound, rebalancer.ErrorMdapiEtagMismatch, rebalancer.ErrorMdapiUpdateFailed}
	}
	return errorKinds{rebalancer.ErrorMorayObjectNotFound, rebalancer.ErrorMorayEtagMismatch, rebalancer.ErrorMorayUpdateFailed}
}

// tierUnusable reports whether a v2 update failed because buckets-mdapi
// cannot move objects at all: a server without sharks in updateobject
// (upstream buckets-mdapi), or none configured.
func tierUnusable(err error) bool {
	return errors.Is(err, mdapi.ErrUnsupported) || errors.Is(err, mdapi.ErrNotConfigured)
}

// setV2Down records that v2 metadata cannot be updated in this run: the
// job updates no more v2 objects, copies none, and ends Failed.
func (r *runner) setV2Down(err error) {
	if r.v2Down.CompareAndSwap(nil, &err) {
		r.log.Error("buckets (v2) metadata cannot be updated; the job's remaining v2 objects are left on the shark", "err", err)
	}
}

// v2DownErr returns why v2 metadata cannot be updated, or nil.
func (r *runner) v2DownErr() error {
	if p := r.v2Down.Load(); p != nil {
		return *p
	}
	return nil
}

// v2DownDetail is the detail of a v2 object not moved because of err.
func v2DownDetail(err error, what string) string {
	return fmt.Sprintf("%s: buckets-mdapi cannot update v2 metadata in this job (%v); retry the job once it can", what, err)
}

// v2Failure says why the job must not end Complete because of its v2
// objects, or "".
func (r *runner) v2Failure(ctx context.Context) string {
	err := r.v2DownErr()
	if err == nil {
		return ""
	}
	var n int64
	if cs, cerr := r.store.CountsV2(ctx, r.job.ID); cerr == nil {
		for _, c := range cs {
			if c.Status != rebalancer.ObjectComplete.String() {
				n += c.N
			}
		}
	}
	hint := "retry the job once buckets-mdapi is reachable"
	if errors.Is(err, mdapi.ErrUnsupported) {
		hint = "moving v2 objects needs a buckets-mdapi built from branch MANTA-5484 or later (docs/buckets-mdapi.md); retry the job then"
	}
	return fmt.Sprintf("buckets (v2) metadata could not be updated: %v; %d v2 objects not moved; %s", err, n, hint)
}

// uploadPin returns the destination of the upload's parts, if one is set.
func (f *feeder) uploadPin(ctx context.Context, up mdapi.Upload) (rebalancer.StorageNode, bool, error) {
	if d, ok := f.pins[up]; ok {
		return d, true, nil
	}
	if f.r.job.Options.DryRun {
		return rebalancer.StorageNode{}, false, nil
	}
	d, ok, err := f.r.store.UploadPin(ctx, f.r.job.ID, up.String())
	if ok {
		f.pins[up] = d
	}
	return d, ok, err
}

// pinUpload makes dest the destination of every later part of the
// upload, in the job store so that a restarted job keeps it.
func (f *feeder) pinUpload(ctx context.Context, up mdapi.Upload, partKey string, dest rebalancer.StorageNode) error {
	if !f.r.job.Options.DryRun {
		var err error
		if dest, err = f.r.store.PinUpload(ctx, f.r.job.ID, up.String(), partKey, dest); err != nil {
			return err
		}
	}
	f.pins[up] = dest
	return nil
}

// placeOn places an upload's part on the destination of its upload.
func (r *runner) placeOn(ctx context.Context, obj rebalancer.Object, dest rebalancer.StorageNode, avoid []string) (rebalancer.StorageNode, error) {
	// The sharks out of service (draining, drained, evacuated by another
	// job) are never a destination, pinned or not: a SharkExcluder
	// placement knows them, any other is told through avoid.
	if ex := r.e.exclusions(r.job.ID); len(ex) > 0 {
		avoid = append(slices.Clip(avoid), ex...)
	}
	if pp, ok := r.e.cfg.Placement.(PinnedPlacement); ok {
		return pp.PlaceOn(ctx, obj, r.job.From, dest.MantaStorageID, avoid)
	}
	switch {
	case dest.MantaStorageID == r.job.From.MantaStorageID || obj.HasShark(dest.MantaStorageID):
		return rebalancer.StorageNode{}, &rebalancer.SkipError{Reason: rebalancer.SkipObjectAlreadyOnDestShark,
			Err: fmt.Errorf("object %s already has a copy on %s", obj.ID, dest.MantaStorageID)}
	case slices.Contains(avoid, dest.MantaStorageID):
		return rebalancer.StorageNode{}, &rebalancer.SkipError{Reason: rebalancer.SkipDestinationUnreachable,
			Err: fmt.Errorf("object %s may not go to %s (it failed there, or the shark is out of service)", obj.ID, dest.MantaStorageID)}
	}
	return dest, nil
}

// fixUploads rewrites, as a job ends, the records of the multipart uploads
// whose parts it moved, so that they name the shark the parts went to: for
// each upload whose every part the job found on the shark is complete.
// Those with parts left keep naming the shark (which still holds every
// part) until a retry moves the rest. It returns why some record could not
// be fixed, if one could not: the job must not end Complete then, since
// the upload could not be completed once the shark is gone.
func (r *runner) fixUploads(ctx context.Context) (string, error) {
	rows, err := r.store.Uploads(ctx, r.job.ID)
	if err != nil {
		return "", err
	}
	var todo []jobstore.UploadRow
	for _, u := range rows {
		if !slices.Contains(uploadsDone, u.Outcome) {
			todo = append(todo, u)
		}
	}
	if len(todo) == 0 {
		return "", nil
	}
	left, err := r.uploadsWithPartsLeft(ctx)
	if err != nil {
		return "", err
	}
	var fixer UploadFixer
	var fixerErr error
	if r.e.cfg.Buckets.Uploads == nil {
		fixerErr = errors.New("the engine has no upload record fixer (evacuate.Config.Buckets.Uploads)")
	}
	failed, firstErr := 0, ""
	for _, u := range todo {
		outcome, detail := "", ""
		switch {
		case left[u.Upload] > 0:
			outcome, detail = UploadPartsLeft, fmt.Sprintf("%d parts of the upload are still on the shark; its record names the shark until they move", left[u.Upload])
		case r.v2DownErr() != nil:
			outcome, detail = UploadFailed, v2DownDetail(r.v2DownErr(), "record not fixed")
		default:
			if fixer == nil && fixerErr == nil {
				fixer, fixerErr = r.e.cfg.Buckets.Uploads(ctx)
				if fixerErr == nil && fixer == nil {
					fixerErr = errors.New("no upload record fixer")
				}
			}
			if fixerErr != nil {
				outcome, detail = UploadFailed, "record not fixed: "+fixerErr.Error()
				break
			}
			res := r.fixUpload(ctx, fixer, u)
			switch {
			case ctx.Err() != nil:
				return "", ctx.Err()
			case len(res) != 1:
				outcome, detail = UploadFailed, fmt.Sprintf("record not fixed: the fixer returned %d results for one upload", len(res))
			case res[0].Err != nil:
				outcome, detail = UploadFailed, "record not fixed: "+res[0].Err.Error()
			default:
				outcome = res[0].Outcome.String()
				detail = fmt.Sprintf("record %s on buckets-mdapi shard %d", res[0].Record.Key(), res[0].Shard)
			}
		}
		if outcome == UploadFailed {
			failed++
			if firstErr == "" {
				firstErr = fmt.Sprintf("upload %s: %s", u.Upload, detail)
			}
			r.log.Warn("multipart upload record not fixed", "upload", u.Upload, "dest", u.Dest, "err", detail)
		}
		if err := r.store.SetUploadOutcome(ctx, r.job.ID, u.Upload, outcome, detail); err != nil {
			return "", err
		}
	}
	if failed > 0 {
		return fmt.Sprintf("%d multipart upload records still name %s (first: %s); retry the job to fix them", failed, r.job.From.MantaStorageID, firstErr), nil
	}
	return "", nil
}

// fixUpload fixes one upload's record, retrying transient failures (a
// lost connection, an overloaded buckets-mdapi) for the job's
// MetadataRetryWindow, as a metadata update: a fix is conditional and
// idempotent, so one whose reply was lost finds the record fixed.
func (r *runner) fixUpload(ctx context.Context, fixer UploadFixer, u jobstore.UploadRow) []mdapi.UploadResult {
	var res []mdapi.UploadResult
	retry.Do(ctx, retry.Policy{
		MaxElapsed: r.job.Options.MetadataRetryWindow.D(),
		Backoff:    metadataBackoff,
		Retryable:  mdapi.IsTransient,
	}, func(ctx context.Context) error {
		res = fixer.FixMoved(ctx, []mdapi.PartMove{{Key: u.PartKey, From: r.job.From.MantaStorageID, To: u.Node()}})
		if len(res) == 1 && res[0].Err != nil {
			return res[0].Err
		}
		return nil
	})
	return res
}

// uploadsWithPartsLeft counts, per upload, the job's parts that are not
// complete.
func (r *runner) uploadsWithPartsLeft(ctx context.Context) (map[string]int, error) {
	left := map[string]int{}
	for _, status := range rebalancer.ObjectStatuses() {
		if status == rebalancer.ObjectComplete {
			continue
		}
		var after int64
		for {
			rows, err := r.store.ObjectsInStatus(ctx, r.job.ID, status, after, 1000)
			if err != nil {
				return nil, err
			}
			for _, row := range rows {
				after = row.Seq
				if strings.HasPrefix(row.Key, mdapi.KeyPrefix) {
					if up, _, ok := mdapi.UploadOf(row.Key); ok {
						left[up.String()]++
					}
				}
			}
			if len(rows) < 1000 {
				break
			}
		}
	}
	return left, nil
}

// recordBuckets records whether the job's discovery looks for v2 objects:
// as the engine is configured, or, for a retry job, as the job it retries
// did.
func (r *runner) recordBuckets(ctx context.Context) error {
	scanned, note := r.e.cfg.Buckets.Scanned, r.e.cfg.Buckets.NotScanned
	if note == "" {
		note = DefaultNotScanned
	}
	if scanned {
		note = ""
	}
	if r.job.RetryOf != "" {
		s, n, known, err := r.store.JobBuckets(ctx, r.job.RetryOf)
		if err != nil {
			return err
		}
		scanned, note = s, n
		if !known {
			scanned, note = false, "the job it retries ("+r.job.RetryOf+") did not record whether it looked for them"
		}
	}
	return r.store.SetJobBuckets(ctx, r.job.ID, scanned, note)
}

// BucketsStatus is what a job did about buckets (v2) objects.
type BucketsStatus struct {
	// Known is false while the job's discovery has not started (or for a
	// job recorded by a version that did not keep it).
	Known bool
	// Scanned says whether the job's discovery looked for v2 objects;
	// when it did not, NotScanned says why.
	Scanned    bool
	NotScanned string
	// Counts are the job's counters of v2 objects alone: Status.Counts
	// less these are its v1 objects'.
	Counts []Count
	// Uploads counts the multipart uploads whose parts the job moved, by
	// what became of their records: mdapi.UploadOutcome's names (fixed,
	// already_fixed, finished, not_listed), UploadPartsLeft, UploadFailed,
	// and "pending" before the job's end looked at them.
	Uploads map[string]int64
}

// bucketsStatus reads a job's BucketsStatus.
func (e *Engine) bucketsStatus(ctx context.Context, id string) (BucketsStatus, error) {
	var b BucketsStatus
	var err error
	if b.Scanned, b.NotScanned, b.Known, err = e.store.JobBuckets(ctx, id); err != nil {
		return b, err
	}
	cs, err := e.store.CountsV2(ctx, id)
	if err != nil {
		return b, err
	}
	for _, c := range cs {
		b.Counts = append(b.Counts, Count(c))
	}
	ups, err := e.store.UploadOutcomes(ctx, id)
	if err != nil {
		return b, err
	}
	for outcome, n := range ups {
		if b.Uploads == nil {
			b.Uploads = map[string]int64{}
		}
		if outcome == "" {
			outcome = "pending"
		}
		b.Uploads[outcome] += n
	}
	return b, nil
}
