package evacuate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
	"github.com/TritonDataCenter/rebalancer/mdapi"
)

// feed is the placement stage: it reads unprocessed objects in discovery
// order, picks a source and a destination for each, groups them into one open
// assignment per destination, and hands each assignment to a poster when it
// is full or its oldest task has waited FlushAge. Objects that cannot move
// are recorded as skipped or in error on the way.
func (r *runner) feed(ctx context.Context) error {
	f := &feeder{r: r, open: map[string]*assignment{}, dryRun: map[string]rebalancer.StorageNode{}, sent: map[string]int{},
		pins: map[mdapi.Upload]rebalancer.StorageNode{}}
	defer f.abandon()
	tick := time.NewTicker(max(r.job.Options.FlushAge.D()/4, 20*time.Millisecond))
	defer tick.Stop()
	var cursor int64
	for {
		if !r.active(ctx) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Stopping: what is not yet handed to an agent stays
			// unprocessed, to be retried by a later job.
			f.abandon()
			if err := f.commit(ctx); err != nil {
				return err
			}
			r.feederStoppedFlag.Store(true)
			<-ctx.Done()
			return nil
		}
		discovered := r.discoveryFinished.Load()
		rows, err := r.store.Unprocessed(ctx, r.job.ID, cursor, 256)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			if err := f.commit(ctx); err != nil {
				return err
			}
			if err := f.flushAged(ctx, time.Now()); err != nil {
				return err
			}
			if discovered && r.job.Options.DryRun {
				r.feederDrained.Store(true)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-r.feedWake:
			case <-tick.C:
			}
			continue
		}
		for i := range rows {
			cursor = rows[i].Seq
			if err := f.place(ctx, &rows[i], tick.C); err != nil {
				return err
			}
		}
		if err := f.commit(ctx); err != nil {
			return err
		}
		if err := f.flushAged(ctx, time.Now()); err != nil {
			return err
		}
	}
}

// feeder is the placement stage's state.
type feeder struct {
	r       *runner
	open    map[string]*assignment            // by destination
	pending []jobstore.Change                 // skips and errors not yet recorded
	dryRun  map[string]rebalancer.StorageNode // planned destinations not yet recorded
	sent    map[string]int                    // assignments handed to posters, by destination

	// pins are where the parts of each multipart upload go (uploadPin).
	pins map[mdapi.Upload]rebalancer.StorageNode
}

// limit is how many tasks the next assignment to dest takes before it is
// sent: two for the first, twice as many for each next one, up to
// MaxTasksPerAssignment. An agent reports an assignment only once all of
// its tasks are done, so a full first assignment of large objects would
// hold back the job's first copies (and their metadata) for as long as
// it takes to copy them all; small first ones have the first copies
// verified and recorded within a second of the start, at any object
// size, for a few more assignments per destination. (Two rather than
// one: an assignment of one object has its metadata updated on its own,
// not in a batch.)
func (f *feeder) limit(dest string) int {
	n := f.r.job.Options.MaxTasksPerAssignment
	if s := f.sent[dest]; s < 16 {
		n = min(n, 2<<s)
	}
	return n
}

// place handles one unprocessed object. It returns an error only when the
// job cannot go on (the store failed, or ctx ended).
func (f *feeder) place(ctx context.Context, row *jobstore.ObjectRow, tick <-chan time.Time) error {
	r := f.r
	from := r.job.From
	obj, err := row.Object()
	if err != nil {
		f.pending = append(f.pending, badObject(row, err))
		return nil
	}
	v2 := isV2(&obj)
	switch {
	case obj.IsBucket && !v2:
		// A Moray record with a bucket_id: the legacy took it for a
		// buckets object and sent its update to buckets-mdapi, which does
		// not hold it. Buckets (v2) objects come from buckets discovery,
		// with their own keys; this one is left alone and reported.
		f.pending = append(f.pending, jobstore.Change{ID: row.ID, Bytes: row.ContentLength, To: rebalancer.ObjectError,
			Error: rebalancer.ErrorMetadataUpdateFailed, Detail: "Moray object with a bucket_id member: neither a v1 object nor a buckets-mdapi one; not moved"})
		return nil
	case v2 && r.v2DownErr() != nil:
		// Its metadata could not be updated: a copy would be an orphan.
		f.pending = append(f.pending, jobstore.Change{ID: row.ID, Bytes: row.ContentLength, To: rebalancer.ObjectError,
			Error: rebalancer.ErrorMdapiUpdateFailed, Detail: v2DownDetail(r.v2DownErr(), "not copied")})
		return nil
	}
	src, ok := chooseSource(obj, from.MantaStorageID, row.Attempts, r.fl.sourceRoom)
	if !ok {
		f.pending = append(f.pending, jobstore.Change{ID: row.ID, Bytes: row.ContentLength, To: rebalancer.ObjectSkipped,
			Skip: rebalancer.SkipSourceIsEvacShark, Detail: "no copy other than the one on the evacuated shark"})
		return nil
	}
	// Wait for room in the job's flight; flush what is open first, since
	// only finishing assignments make room.
	for {
		ok, changed := r.fl.room(src.MantaStorageID)
		if ok {
			break
		}
		if err := f.flushAll(ctx); err != nil {
			return err
		}
		if err := f.commit(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-tick:
		}
	}
	// The parts of a multipart upload leaving the shark all go where the
	// first went (see PinnedPlacement).
	up, _, isPart := mdapi.UploadOf(obj.Key)
	var pin rebalancer.StorageNode
	pinned := false
	if isPart {
		if pin, pinned, err = f.uploadPin(ctx, up); err != nil {
			return err
		}
	}
	var dest rebalancer.StorageNode
	for attempt := 0; ; attempt++ {
		if pinned {
			dest, err = r.placeOn(ctx, obj, pin, row.Avoided())
		} else {
			dest, err = r.placeObject(ctx, obj, row.Avoided())
		}
		if err == nil {
			break
		}
		var skip *rebalancer.SkipError
		if errors.As(err, &skip) {
			detail := skip.Error()
			if pinned {
				detail = fmt.Sprintf("part of multipart upload %s, whose parts go to %s: %s", up, pin.MantaStorageID, detail)
			}
			f.pending = append(f.pending, jobstore.Change{ID: row.ID, Bytes: row.ContentLength, To: rebalancer.ObjectSkipped, Skip: skip.Reason,
				Detail: detail, Source: src.MantaStorageID})
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// No capacity information, or a placement failure that may pass:
		// keep what is open moving and try again.
		r.failures.Log(ctx, slog.LevelWarn, "cannot place objects yet; retrying", err, "object", row.ID, "attempt", attempt+1)
		if err := f.flushAll(ctx); err != nil {
			return err
		}
		if err := f.commit(ctx); err != nil {
			return err
		}
		if !retry.Sleep(ctx, time.Second) {
			return ctx.Err()
		}
		if !r.active(ctx) {
			return nil
		}
	}
	if isPart && !pinned {
		if err := f.pinUpload(ctx, up, obj.Key, dest); err != nil {
			r.e.cfg.Placement.Release(dest, row.ContentLength, false)
			return err
		}
	}
	if r.job.Options.DryRun {
		f.dryRun[row.ID] = dest
		r.noteDryRun(dest.MantaStorageID, row.ContentLength)
		return nil
	}
	p := &planned{row: row, obj: obj, task: obj.Task(src), source: src.MantaStorageID}
	a := f.open[dest.MantaStorageID]
	if a == nil {
		a = &assignment{id: uuid.NewString(), dest: dest, objects: map[string]*planned{}}
		f.open[dest.MantaStorageID] = a
	}
	a.add(p)
	r.fl.take(p)
	if len(a.order) >= f.limit(dest.MantaStorageID) {
		return f.flush(ctx, a)
	}
	return nil
}

// placeObject asks the placement for a destination that is not in avoid,
// not draining or drained, and not evacuated by another running job: a
// copy put on a shark on its way out would have to move again, and one put
// there after its own job scanned past the object would leave the metadata
// naming it. A SharkExcluder placement knows these sharks already; any
// other gets them in avoid. Either way a destination that is one of them
// (its state changed since the placement last heard, say) is given back
// and another asked for.
func (r *runner) placeObject(ctx context.Context, obj rebalancer.Object, avoid []string) (rebalancer.StorageNode, error) {
	if _, ok := r.e.cfg.Placement.(SharkExcluder); !ok {
		if ex := r.e.exclusions(r.job.ID); len(ex) > 0 {
			avoid = append(slices.Clip(avoid), ex...)
		}
	}
	for range maxExcludedPlacements {
		dest, err := r.e.cfg.Placement.Place(ctx, obj, r.job.From, avoid)
		if err != nil || !r.e.excluded(dest.MantaStorageID, r.job.ID) {
			return dest, err
		}
		r.e.cfg.Placement.Release(dest, max(obj.ContentLength, 0), false)
		avoid = append(slices.Clip(avoid), dest.MantaStorageID)
	}
	return rebalancer.StorageNode{}, fmt.Errorf("object %s: the placement chose %d sharks out of service in a row", obj.ID, maxExcludedPlacements)
}

// maxExcludedPlacements bounds the destinations placeObject gives back
// for one object, against a Placement that ignores avoid.
const maxExcludedPlacements = 100

// chooseSource picks the copy an agent should read: one not on the evacuated
// shark, rotating with the attempt number so that a retry reads another copy
// when there is one, and preferring a source with room.
func chooseSource(obj rebalancer.Object, evacuating string, attempt int, hasRoom func(string) bool) (rebalancer.StorageNode, bool) {
	var cands []rebalancer.StorageNode
	for _, s := range obj.Sharks {
		if s.MantaStorageID == evacuating {
			continue
		}
		dup := false
		for _, c := range cands {
			dup = dup || c.MantaStorageID == s.MantaStorageID
		}
		if !dup {
			cands = append(cands, s)
		}
	}
	if len(cands) == 0 {
		return rebalancer.StorageNode{}, false
	}
	start := attempt % len(cands)
	for i := range cands {
		c := cands[(start+i)%len(cands)]
		if hasRoom == nil || hasRoom(c.MantaStorageID) {
			return c, true
		}
	}
	return cands[start], true
}

// flush stores an open assignment and hands it to a poster.
func (f *feeder) flush(ctx context.Context, a *assignment) error {
	delete(f.open, a.dest.MantaStorageID)
	changes := make([]jobstore.Change, len(a.order))
	for i, p := range a.order {
		changes[i] = jobstore.Change{ID: p.row.ID, Bytes: p.row.ContentLength, To: rebalancer.ObjectAssigned}
	}
	rec := jobstore.AssignmentRecord{ID: a.id, Dest: a.dest, Tasks: len(a.order), Bytes: a.bytes}
	if err := f.r.store.Assign(ctx, f.r.job.ID, rec, changes); err != nil {
		f.release(a)
		return err
	}
	f.sent[a.dest.MantaStorageID]++
	f.r.fl.adopt(a)
	f.r.startPost(ctx, a)
	return nil
}

func (f *feeder) flushAll(ctx context.Context) error {
	for _, a := range f.open {
		if err := f.flush(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

func (f *feeder) flushAged(ctx context.Context, now time.Time) error {
	for _, a := range f.open {
		if now.Sub(a.born) >= f.r.job.Options.FlushAge.D() {
			if err := f.flush(ctx, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// release gives back the reservations and capacity of an assignment that
// will not be sent.
func (f *feeder) release(a *assignment) {
	f.r.e.cfg.Placement.Release(a.dest, a.bytes, false)
	f.r.fl.give(a.order)
}

// abandon releases every open assignment; their objects stay unprocessed.
func (f *feeder) abandon() {
	for _, a := range f.open {
		f.release(a)
	}
	clear(f.open)
}

// commit records the skips, errors and dry-run plans gathered so far.
func (f *feeder) commit(ctx context.Context) error {
	if len(f.pending) > 0 {
		if err := f.r.store.Transition(ctx, f.r.job.ID, rebalancer.ObjectUnprocessed, f.pending); err != nil {
			return err
		}
		f.r.objectsEnded(ctx, "placement", f.pending)
		f.pending = f.pending[:0]
	}
	if len(f.dryRun) > 0 {
		if err := f.r.store.PlanDestination(ctx, f.r.job.ID, f.dryRun); err != nil {
			return err
		}
		clear(f.dryRun)
	}
	return nil
}
