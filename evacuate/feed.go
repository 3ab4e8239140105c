package evacuate

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
)

// feed is the placement stage: it reads unprocessed objects in discovery
// order, picks a source and a destination for each, groups them into one open
// assignment per destination, and hands each assignment to a poster when it
// is full or its oldest task has waited FlushAge. Objects that cannot move
// are recorded as skipped or in error on the way.
func (r *runner) feed(ctx context.Context) error {
	f := &feeder{r: r, open: map[string]*assignment{}, dryRun: map[string]rebalancer.StorageNode{}, sent: map[string]int{}}
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
	if obj.IsBucket {
		// The metadata of buckets (v2) objects lives in buckets-mdapi, which
		// this rebalancer does not update yet: copying them would only make
		// orphan copies.
		f.pending = append(f.pending, jobstore.Change{ID: row.ID, Bytes: row.ContentLength, To: rebalancer.ObjectError,
			Error: rebalancer.ErrorMetadataUpdateFailed, Detail: "buckets (v2) object: metadata updates through buckets-mdapi are not supported"})
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
	var dest rebalancer.StorageNode
	for attempt := 0; ; attempt++ {
		dest, err = r.placeObject(ctx, obj, row.Avoided())
		if err == nil {
			break
		}
		var skip *rebalancer.SkipError
		if errors.As(err, &skip) {
			f.pending = append(f.pending, jobstore.Change{ID: row.ID, Bytes: row.ContentLength, To: rebalancer.ObjectSkipped, Skip: skip.Reason, Detail: skip.Error()})
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// No capacity information, or a placement failure that may pass:
		// keep what is open moving and try again.
		if attempt%10 == 0 {
			r.log.Warn("cannot place objects yet; retrying", "object", row.ID, "err", err)
		}
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

// placeObject asks the placement for a destination that is not in avoid
// and that no other running job is evacuating: a copy put there would
// leave the metadata naming a shark on its way out, after its own job may
// already have scanned past the object.
func (r *runner) placeObject(ctx context.Context, obj rebalancer.Object, avoid []string) (rebalancer.StorageNode, error) {
	if others := r.e.evacuatedByOthers(r.job.ID); len(others) > 0 {
		avoid = append(slices.Clip(avoid), others...)
	}
	return r.e.cfg.Placement.Place(ctx, obj, r.job.From, avoid)
}

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
		for _, c := range f.pending {
			f.r.e.cfg.Metrics.objectEnded(c)
		}
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
