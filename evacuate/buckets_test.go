package evacuate

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

// The store keys v2 checkpoints as sharkspotter.Multi reads them.
func TestCheckpointOffset(t *testing.T) {
	if jobstore.V2CheckpointOffset != sharkspotter.V2CheckpointOffset {
		t.Fatalf("jobstore.V2CheckpointOffset %d, sharkspotter's %d", jobstore.V2CheckpointOffset, sharkspotter.V2CheckpointOffset)
	}
	o := rebalancer.Object{Key: mdapi.Locator{Owner: v2Owner, BucketID: v2Bucket, Name: "a", Vnode: 3}.Key(), Shard: 2}
	if got, want := jobstore.CheckpointShard(o), sharkspotter.CheckpointShard(o); got != want {
		t.Fatalf("checkpoint key %d, sharkspotter's %d", got, want)
	}
}

const (
	v2Owner  = "8b3c6a1e-2f4d-4c5b-9a7e-0d1f2e3a4b5c"
	v2Bucket = "c4d5e6f7-0819-4a2b-8c3d-4e5f60718293"
)

// v2Value is the metadata of a v2 object as mdapi.ObjectFromRecord makes
// it (the members the engine reads).
func v2Value(vnode uint64, name, id string, size int64, sharks ...rebalancer.StorageNode) json.RawMessage {
	loc := mdapi.Locator{Owner: v2Owner, BucketID: v2Bucket, Name: name, Vnode: vnode}
	b, _ := json.Marshal(map[string]any{
		"key": loc.Key(), "objectId": id, "vnode": vnode, "id": id, "owner": v2Owner, "bucket_id": v2Bucket, "name": name,
		"content_length": size, "content_md5": "md5-" + id, "sharks": sharks,
	})
	return b
}

// fakeFixer records the upload records it is asked to fix.
type fakeFixer struct {
	mu    sync.Mutex
	moves []mdapi.PartMove
	err   error
}

func (f *fakeFixer) FixMoved(ctx context.Context, moves []mdapi.PartMove) []mdapi.UploadResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mdapi.UploadResult
	for _, m := range moves {
		f.moves = append(f.moves, m)
		up, loc, _ := mdapi.UploadOf(m.Key)
		res := mdapi.UploadResult{Upload: up, Record: mdapi.Locator{Owner: up.Owner, BucketID: up.BucketID, Name: up.RecordName(), Vnode: loc.Vnode},
			Shard: 1, Outcome: mdapi.UploadFixed, From: m.From, To: m.To, Err: f.err}
		if f.err != nil {
			res.Outcome = 0
		}
		out = append(out, res)
	}
	return out
}

func (f *fakeFixer) fixed() []mdapi.PartMove {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mdapi.PartMove(nil), f.moves...)
}

// unsupported is a buckets-mdapi store over a server that cannot move
// objects (upstream buckets-mdapi): reads work, updates do not.
type unsupported struct{ *fakes.Moray }

func (u unsupported) ReplaceShark(ctx context.Context, obj rebalancer.Object, from string, to rebalancer.StorageNode) (string, error) {
	return "", &mdapi.UnsupportedError{Addr: "shard 1", Method: "updateobject", Feature: "sharks in updateobject"}
}

func (u unsupported) ReplaceSharks(ctx context.Context, shard int, reps []rebalancer.SharkReplacement) ([]string, error) {
	return nil, &mdapi.UnsupportedError{Addr: "shard 1", Method: "batchupdateobjects", Feature: "the RPC"}
}

// bucketsHarness is a harness whose shark also holds v2 objects, plain
// ones and the parts of multipart uploads, in a second metadata store
// whose shard numbers overlap the v1 ones.
type bucketsHarness struct {
	*harness
	batchesFailed atomic.Int64 // batched updates that failed (then redone one by one)
	v2            *fakes.Moray
	v2objs        []rebalancer.Object
	uploads       map[string][]string // upload id -> its parts' object ids
	fixer         *fakeFixer
}

// newBucketsHarness adds plain v2 objects and uploads of 3 parts each to a
// countingRouter counts the batches that fail, which the engine then
// redoes one by one.
type countingRouter struct {
	mdapi.Router
	failed *atomic.Int64
}

func (r *countingRouter) ReplaceSharks(ctx context.Context, shard int, reps []rebalancer.SharkReplacement) ([]string, error) {
	etags, err := r.Router.ReplaceSharks(ctx, shard, reps)
	if err != nil {
		r.failed.Add(1)
	}
	return etags, err
}

// harness of nV1 v1 objects; with metadata set, the engine uses it for v2
// objects instead of the harness's own store.
func newBucketsHarness(t *testing.T, dsn string, nV1, plain, uploads int, metadata func(*fakes.Moray) rebalancer.MetadataStore) *bucketsHarness {
	h := &bucketsHarness{harness: newHarness(t, dsn, nV1, nil), v2: fakes.NewMoray(), uploads: map[string][]string{}, fixer: &fakeFixer{}}
	on := []rebalancer.StorageNode{fakes.Shark(1), fakes.Shark(2)}
	add := func(i int, name string) rebalancer.Object {
		id := fmt.Sprintf("00000000-0000-4000-9000-%012d", i)
		o := h.v2.Put(i%2, v2Value(uint64(i%4), name, id, int64(500+i), on...))
		o.ScanID = int64(i/4 + 1)
		h.v2objs = append(h.v2objs, o)
		h.keys[id] = o.Key
		return o
	}
	i := 0
	for ; i < plain; i++ {
		add(i, fmt.Sprintf("dir/object-%d", i))
	}
	for u := range uploads {
		up := fmt.Sprintf("0aa0b0c0-d0e0-4f00-8000-%012d", u)
		for n := 1; n <= 3; n++ {
			o := add(i, fmt.Sprintf(".mpu-parts/%s/%d", up, n))
			h.uploads[up] = append(h.uploads[up], o.ID)
			i++
		}
	}
	h.src.Objects = append(h.src.Objects, h.v2objs...)
	var buckets rebalancer.MetadataStore = h.v2
	if metadata != nil {
		buckets = metadata(h.v2)
	}
	h.engine.Close()
	e, err := NewEngine(Config{
		Store:     h.store,
		Source:    func(JobRecord) (rebalancer.ObjectSource, error) { return h.src, nil },
		Metadata:  &countingRouter{Router: mdapi.Router{Moray: h.moray, Buckets: buckets}, failed: &h.batchesFailed},
		Placement: h.place,
		Agent:     h.agents,
		Defaults:  fastOptions(),
		Logger:    h.engine.log,
		Buckets: Buckets{Scanned: true, Uploads: func(context.Context) (UploadFixer, error) {
			return h.fixer, nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.engine = e
	return h
}

// checkV2 checks the v2 counters against a recount, and returns them by
// status (and status/reason).
func (h *bucketsHarness) checkV2(jobID string) map[string]int64 {
	h.t.Helper()
	ctx := context.Background()
	counts, err := h.js.CountsV2(ctx, jobID)
	if err != nil {
		h.t.Fatal(err)
	}
	recount, err := h.js.RecountV2(ctx, jobID)
	if err != nil {
		h.t.Fatal(err)
	}
	if !reflect.DeepEqual(counts, recount) {
		h.t.Errorf("v2 counters drifted:\n counts %v\nrecount %v", counts, recount)
	}
	out := map[string]int64{}
	for _, c := range counts {
		out[c.Status] += c.N
		if c.Reason != "" {
			out[c.Status+"/"+c.Reason] += c.N
		}
	}
	return out
}

// partsDest returns the destination of each upload's parts, failing when
// the parts of one upload went to several.
func (h *bucketsHarness) partsDest() map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for up, ids := range h.uploads {
		for _, id := range ids {
			cur, _ := h.v2.Get(0, h.keys[id])
			if c, ok := h.v2.Get(1, h.keys[id]); ok {
				cur = c
			}
			for _, s := range cur.Sharks {
				if s.MantaStorageID == fakes.Shark(2).MantaStorageID || s.MantaStorageID == fakes.Shark(1).MantaStorageID {
					continue
				}
				if d, ok := out[up]; ok && d != s.MantaStorageID {
					h.t.Errorf("upload %s: parts on %s and %s", up, d, s.MantaStorageID)
				}
				out[up] = s.MantaStorageID
			}
		}
	}
	return out
}

// One job moves v1 and v2 objects whose shard numbers collide: each kind
// through its own store, in batches of one kind, with checkpoints and
// counters kept apart; the parts of each upload all go to one destination,
// and the upload's record is fixed to name it.
func TestBucketsObjectsMoveWithV1(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		h := newBucketsHarness(t, dsn, 30, 20, 4, nil)
		j, st := h.run(Options{})
		if j.State != rebalancer.JobComplete || j.Error != "" {
			t.Fatalf("job ended %s: %s", j.State, j.Error)
		}
		all := h.check(j.ID)
		v2 := h.checkV2(j.ID)
		if all["complete"] != 30+20+12 || v2["complete"] != 20+12 || len(v2) != 1 {
			t.Fatalf("counts %v, v2 %v", all, v2)
		}
		b := st.Buckets
		if !b.Known || !b.Scanned || b.NotScanned != "" || !reflect.DeepEqual(b.Uploads, map[string]int64{"fixed": 4}) {
			t.Fatalf("buckets status %+v", b)
		}
		for _, o := range h.v2objs {
			cur, _ := h.v2.Get(o.Shard, o.Key)
			if cur.HasShark(h.from.MantaStorageID) || len(cur.Sharks) != 2 {
				t.Errorf("v2 object %s: sharks %v", o.Key, cur.Sharks)
			}
		}
		dests := h.partsDest()
		fixed := h.fixer.fixed()
		if len(dests) != 4 || len(fixed) != 4 {
			t.Fatalf("uploads went to %v; fixes %v", dests, fixed)
		}
		for _, m := range fixed {
			up, _, _ := mdapi.UploadOf(m.Key)
			if m.From != h.from.MantaStorageID || m.To.MantaStorageID != dests[up.ID] {
				t.Errorf("fix %+v, its parts went to %s", m, dests[up.ID])
			}
		}
		// Every batch held one kind: none failed. (An assignment of one
		// object is updated on its own, not in a batch: the slow start's
		// small assignments make some.)
		if n := h.batchesFailed.Load(); n != 0 {
			t.Errorf("%d batches failed: a batch mixed kinds and was redone one by one", n)
		}
		for _, m := range []*fakes.Moray{h.moray, h.v2} {
			if writes, batchWrites, batches := m.Writes(); writes == 0 || batchWrites == 0 || batches == 0 {
				t.Errorf("writes %d, in batches %d (%d batches)", writes, batchWrites, batches)
			}
		}
		cps, err := h.js.Checkpoints(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []int{0, 1, 2, jobstore.V2CheckpointOffset, jobstore.V2CheckpointOffset + 1} {
			if cps[k] == 0 {
				t.Errorf("no checkpoint %d: %v", k, cps)
			}
		}
		// The shark check of an engine that scans v2 objects says nothing
		// of them missing. (This harness's source lists the objects as
		// populated, not afresh: their count is not the check's here.)
		c, err := h.engine.CheckShark(context.Background(), h.from.MantaStorageID, CheckOptions{})
		if err != nil || c.V2NotScanned != "" {
			t.Errorf("check after the job: v2 not scanned %q, %v; want scanned", c.V2NotScanned, err)
		}
	})
}

// A buckets-mdapi that cannot move objects (upstream, no sharks in
// updateobject) stops the job's v2 updates at the first: every v2 object
// ends in error mdapi_update_failed, v1 objects move, and the job ends
// Failed saying which server it needs, never Complete.
func TestBucketsUnsupportedServer(t *testing.T) {
	h := newBucketsHarness(t, t.TempDir()+"/jobs.db", 20, 10, 2,
		func(m *fakes.Moray) rebalancer.MetadataStore { return unsupported{m} })
	j, _ := h.run(Options{})
	if j.State != rebalancer.JobFailed || !strings.Contains(j.Error, "MANTA-5484") || !strings.Contains(j.Error, "16 v2 objects not moved") {
		t.Fatalf("job ended %s: %s", j.State, j.Error)
	}
	all, v2 := h.check(j.ID), h.checkV2(j.ID)
	if all["complete"] != 20 || v2["error/mdapi_update_failed"] != 16 || v2["error"] != 16 {
		t.Fatalf("counts %v, v2 %v", all, v2)
	}
	if n := len(h.fixer.fixed()); n != 0 {
		t.Errorf("%d upload records fixed, with no part moved", n)
	}
}

// An upload with a part that did not move keeps its record naming the
// shark (which holds every part) and the job ends Complete; a retry moves
// the part to where the others went and fixes the record.
func TestBucketsUploadPartLeftThenRetried(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		h := newBucketsHarness(t, dsn, 10, 0, 2, nil)
		var stuck string
		for _, ids := range h.uploads {
			stuck = ids[1]
			break
		}
		h.agents.SetFailTask(func(task rebalancer.Task) rebalancer.SkipReason {
			if task.ObjectID == stuck {
				return rebalancer.SkipSourceObjectNotFound
			}
			return 0
		})
		j, st := h.run(Options{})
		if j.State != rebalancer.JobComplete {
			t.Fatalf("job ended %s: %s", j.State, j.Error)
		}
		if v2 := h.checkV2(j.ID); v2["skipped/mpu_part_no_data"] != 1 || v2["complete"] != 5 {
			t.Fatalf("v2 counts %v", v2)
		}
		if want := map[string]int64{"fixed": 1, UploadPartsLeft: 1}; !reflect.DeepEqual(st.Buckets.Uploads, want) {
			t.Fatalf("uploads %v, want %v", st.Buckets.Uploads, want)
		}
		h.agents.SetFailTask(nil)
		retry, err := h.engine.RetryJob(context.Background(), j.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		rj := h.wait(retry.ID)
		rst, err := h.engine.JobStatus(context.Background(), rj.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rj.State != rebalancer.JobComplete || !reflect.DeepEqual(rst.Buckets.Uploads, map[string]int64{"fixed": 1}) || !rst.Buckets.Scanned {
			t.Fatalf("retry ended %s (%s), buckets %+v", rj.State, rj.Error, rst.Buckets)
		}
		if d := h.partsDest(); len(d) != 2 {
			t.Fatalf("parts went to %v", d)
		}
		if n := len(h.fixer.fixed()); n != 2 {
			t.Fatalf("%d records fixed, want 2", n)
		}
	})
}

// A record that cannot be fixed keeps the job from ending Complete.
func TestBucketsUploadRecordNotFixed(t *testing.T) {
	h := newBucketsHarness(t, t.TempDir()+"/jobs.db", 5, 3, 2, nil)
	h.fixer.err = fmt.Errorf("read record: %w", mdapi.ErrConnection)
	j, st := h.run(Options{})
	if j.State != rebalancer.JobFailed || !strings.Contains(j.Error, "2 multipart upload records still name "+h.from.MantaStorageID) {
		t.Fatalf("job ended %s: %s", j.State, j.Error)
	}
	if want := map[string]int64{UploadFailed: 2}; !reflect.DeepEqual(st.Buckets.Uploads, want) {
		t.Fatalf("uploads %v", st.Buckets.Uploads)
	}
	if all := h.check(j.ID); all["complete"] != 5+3+6 {
		t.Fatalf("counts %v", all)
	}
}

// An engine whose discovery does not look for v2 objects says so in every
// job's status.
func TestBucketsNotScanned(t *testing.T) {
	h := newHarness(t, t.TempDir()+"/jobs.db", 5, nil)
	j, st := h.run(Options{})
	if j.State != rebalancer.JobComplete || !st.Buckets.Known || st.Buckets.Scanned || st.Buckets.NotScanned != DefaultNotScanned {
		t.Fatalf("job %s, buckets %+v", j.State, st.Buckets)
	}
}
