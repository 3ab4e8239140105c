package testbed

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

// newBucketsFleet starts a fleet with v1 objects and a buckets tier of two
// shards holding objects and uploads, about half of each on shark1.
func newBucketsFleet(t *testing.T) (*Fleet, BucketPopulation) {
	t.Helper()
	f := New(t, Config{Sharks: 5, Datacenters: 2, Shards: 2,
		Objects: Objects{Count: 60, Seed: 11, Pin: shark1, PinFraction: 0.5},
		Buckets: Buckets{DSNs: BucketsDatabases(t, 2), Vnodes: 6}})
	pop, err := f.PopulateBuckets(context.Background(), BucketObjects{
		Objects: Objects{Count: 90, Seed: 5, Pin: shark1, PinFraction: 0.5, MinSize: 100, MaxSize: 3000},
		Uploads: 6, Parts: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, pop
}

// v2Objects reads every buckets object of the fleet, by key.
func v2Objects(t *testing.T, f *Fleet) map[string]mdapitest.Object {
	t.Helper()
	out := map[string]mdapitest.Object{}
	for _, srv := range f.Mdapis() {
		rows, err := srv.Objects(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			out[mdapi.Locator{Owner: r.Owner, BucketID: r.BucketID, Name: r.Name, Vnode: r.Vnode}.Key()] = r
		}
	}
	return out
}

// The buckets tier holds objects where buckets-api would put them, in
// several buckets and vnodes of both shards, with their copies on disk;
// uploads with their records and parts; and Verify checks all of it.
func TestBucketsPopulateAndVerify(t *testing.T) {
	f, pop := newBucketsFleet(t)
	ctx := context.Background()
	if pop.Objects != 90+6*3 || pop.Parts != 18 || pop.Uploads != 6 || pop.Buckets != 6 || pop.Files != 2*pop.Objects ||
		pop.Pinned == 0 || pop.Pinned == pop.Objects || pop.UploadsPinned == 0 {
		t.Fatalf("population %+v", pop)
	}
	rows := v2Objects(t, f)
	if len(rows) != pop.Objects+pop.Uploads {
		t.Errorf("%d rows, want %d objects and %d upload records", len(rows), pop.Objects, pop.Uploads)
	}
	vnodes, buckets, shards := map[uint64]bool{}, map[string]bool{}, map[int]bool{}
	ring, vmap := f.Ring(), f.VnodeMap()
	for key, r := range rows {
		want, err := ring.ObjectVnode(r.Owner, r.BucketID, r.Name)
		if err != nil || want != r.Vnode {
			t.Errorf("%s in vnode %d, the ring says %d (%v)", key, r.Vnode, want, err)
		}
		s, _ := vmap.Shard(r.Vnode)
		shards[s], vnodes[r.Vnode], buckets[r.BucketID] = true, true, true
		if strings.HasPrefix(r.Name, ".mpu-uploads/") {
			if len(r.Sharks) != 0 || r.ContentLength != 0 || r.Headers["x-upload-record"] == nil || r.Headers["x-preallocated-sharks"] == nil {
				t.Errorf("upload record %s: %+v", key, r)
			}
			continue
		}
		for _, n := range r.Sharks {
			p := filepath.Join(f.Shark(n.MantaStorageID).Root(), V2Path(r.Owner, r.BucketID, r.ID, r.Name))
			if fi, err := os.Stat(p); err != nil || fi.Size() != r.ContentLength {
				t.Errorf("%s: copy on %s: %v", key, n.MantaStorageID, err)
			}
		}
	}
	if len(vnodes) != 6 || len(buckets) < 4 || len(shards) != 2 {
		t.Errorf("objects in %d vnodes, %d buckets, %d shards", len(vnodes), len(buckets), len(shards))
	}

	rep, err := f.Verify(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.V2Objects != pop.Objects || rep.Uploads != pop.Uploads || rep.Objects != 60 || rep.Copies != 2*(60+pop.Objects) ||
		rep.CopiesOK != rep.Copies || !strings.Contains(rep.String(), ", of which v2 108 objects") {
		t.Errorf("report %s (%+v)", rep, rep)
	}

	// Before any evacuation, the objects on shark1 still name it, and the
	// uploads there count as skipped since their parts are there too.
	rep, err = f.Verify(ctx, shark1)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts[ProblemStillOnEvacuated] == 0 || rep.UploadsSkipped != pop.UploadsPinned || rep.Counts[ProblemUploadOnEvacuated] != 0 {
		t.Errorf("before the evacuation: %s", rep)
	}

	// The same seed writes the same objects again.
	again, err := f.PopulateBuckets(ctx, BucketObjects{Objects: Objects{Count: 90, Seed: 5, Pin: shark1, PinFraction: 0.5,
		MinSize: 100, MaxSize: 3000}, Uploads: 6, Parts: 3})
	if err != nil || again.Pinned != pop.Pinned || len(v2Objects(t, f)) != len(rows) {
		t.Errorf("populating again: %+v, %v", again, err)
	}
}

// moveV2 does what an evacuation does to a v2 object: copy its file from
// the evacuated shark to dest, then rewrite its metadata.
func moveV2(t *testing.T, f *Fleet, o rebalancer.Object, dest *Shark) {
	t.Helper()
	rel := V2Path(o.Owner, o.BucketID, o.ID, o.Name)
	src, err := os.Open(filepath.Join(f.Shark(shark1).Root(), rel))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(dest.Root(), rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	if _, err := f.MdapiMetadataStore().ReplaceShark(context.Background(), o, shark1, dest.Node()); err != nil {
		t.Fatal(err)
	}
}

// Discovery over the fleet's buckets tier, both ways, finds the objects on
// shark1; moving them and fixing the uploads' records leaves a fleet that
// Verify passes, and Verify sees what is left undone.
func TestBucketsEvacuateByHand(t *testing.T) {
	f, pop := newBucketsFleet(t)
	ctx := context.Background()
	opts := sharkspotter.Options{Shards: f.BucketsShardNumbers(), Logger: testutil.Logger(t)}
	var found [][]rebalancer.Object
	for _, src := range []rebalancer.ObjectSource{
		&sharkspotter.BucketsPostgresScanner{Options: opts, DSNs: f.BucketsDSNs()},
		&sharkspotter.BucketsMdapiScanner{Options: opts, Clients: f.MdapiShards()},
	} {
		var objs []rebalancer.Object
		err := src.Discover(ctx, rebalancer.DiscoverRequest{Shark: shark1}, func(o rebalancer.Object) error {
			objs = append(objs, o)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != pop.Pinned {
			t.Errorf("%T found %d objects on %s, %d were written there", src, len(objs), shark1, pop.Pinned)
		}
		found = append(found, objs)
	}
	keys := func(objs []rebalancer.Object) []string {
		var out []string
		for _, o := range objs {
			out = append(out, o.Key)
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(keys(found[0]), keys(found[1])) {
		t.Error("the two discoveries found different objects")
	}

	// Move every object to a shark holding no copy (parts of an upload
	// all to the same one), but leave one upload's record unfixed and
	// send another's parts to two sharks.
	objs := found[0]
	dest := func(o rebalancer.Object) *Shark {
		for _, s := range f.Sharks() {
			if s.ID() != shark1 && !o.HasShark(s.ID()) && s.Datacenter() == f.Shark(shark1).Datacenter() {
				return s
			}
		}
		for _, s := range f.Sharks() {
			if s.ID() != shark1 && !o.HasShark(s.ID()) {
				return s
			}
		}
		t.Fatalf("no destination for %s", o.Key)
		return nil
	}
	var moves []mdapi.PartMove
	var unfixed, split mdapi.Upload
	var splitFirst *Shark
	splitTo := map[string]bool{}
	for _, o := range objs {
		d := dest(o)
		up, _, isPart := mdapi.UploadOf(o.Key)
		switch {
		case isPart && unfixed == (mdapi.Upload{}):
			unfixed = up
		case isPart && split == (mdapi.Upload{}) && up != unfixed:
			split = up
		}
		if isPart && up == split {
			if splitFirst == nil {
				splitFirst = d
			} else {
				// The split upload's other parts go elsewhere.
				for _, s := range f.Sharks() {
					if s.ID() != shark1 && s != splitFirst && !o.HasShark(s.ID()) {
						d = s
						break
					}
				}
			}
			splitTo[d.ID()] = true
		}
		moveV2(t, f, o, d)
		if isPart && up != unfixed {
			moves = append(moves, mdapi.PartMove{Key: o.Key, From: shark1, To: d.Node()})
		}
	}
	if unfixed == (mdapi.Upload{}) || split == (mdapi.Upload{}) || len(splitTo) != 2 {
		t.Fatalf("uploads on %s: unfixed %v, split %v to %v", shark1, unfixed, split, splitTo)
	}
	fixed := 0
	for _, r := range f.UploadFixer().FixMoved(ctx, moves) {
		switch {
		case r.Upload == split:
			if !errors.Is(r.Err, mdapi.ErrSplitUpload) {
				t.Errorf("split upload: %+v", r)
			}
		case r.Err != nil || r.Outcome != mdapi.UploadFixed:
			t.Errorf("upload %s: %+v", r.Upload, r)
		default:
			fixed++
		}
	}
	if fixed != pop.UploadsPinned-2 {
		t.Errorf("%d uploads fixed, want %d", fixed, pop.UploadsPinned-2)
	}

	rep, err := f.Verify(ctx, shark1)
	if err != nil {
		t.Fatal(err)
	}
	// What is left of v2 (v1 objects were not moved): the unfixed record,
	// and the split upload's record (not fixed either), both naming the
	// shark that no part's metadata names any more. (The part files are
	// still on that shark, which could still assemble them: no part is
	// missing yet, until the shark is retired.)
	if rep.Counts[ProblemUploadOnEvacuated] != 2 || len(rep.Counts) != 2 || rep.V2Objects != pop.Objects {
		t.Fatalf("after the evacuation by hand: %v", rep.Err())
	}
	for _, p := range rep.Problems {
		if mdapi.IsKey(p.Key) && !strings.Contains(p.Key, unfixed.ID) && !strings.Contains(p.Key, split.ID) {
			t.Errorf("problem outside the two uploads: %s", p)
		}
	}
	// Once the shark's files of the split upload's parts are gone (the
	// shark retired), the parts are missing where the record assembles.
	splitParts := 0
	for _, o := range objs {
		if up, _, ok := mdapi.UploadOf(o.Key); ok && up == split {
			if err := os.Remove(filepath.Join(f.Shark(shark1).Root(), V2Path(o.Owner, o.BucketID, o.ID, o.Name))); err != nil {
				t.Fatal(err)
			}
			splitParts++
		}
	}
	if rep, _ = f.Verify(ctx, shark1); rep.Counts[ProblemUploadPartMissing] != splitParts {
		t.Fatalf("with the split upload's files gone from %s: %v", shark1, rep.Err())
	}
	// Fixing the unfixed one clears its problem.
	var last mdapi.PartMove
	for _, o := range objs {
		if up, _, ok := mdapi.UploadOf(o.Key); ok && up == unfixed {
			now, err := f.MdapiMetadataStore().GetObject(ctx, o.Shard, o.Key)
			if err != nil {
				t.Fatal(err)
			}
			last = mdapi.PartMove{Key: o.Key, From: shark1, To: now.Sharks[slices.IndexFunc(o.Sharks, func(n rebalancer.StorageNode) bool { return n.MantaStorageID == shark1 })]}
		}
	}
	if r := f.UploadFixer().FixMoved(ctx, []mdapi.PartMove{last}); len(r) != 1 || r[0].Outcome != mdapi.UploadFixed {
		t.Fatalf("fixing %s: %+v", unfixed, r)
	}
	rep, _ = f.Verify(ctx, shark1)
	if rep.Counts[ProblemUploadOnEvacuated] != 1 {
		t.Errorf("after fixing %s: %v", unfixed, rep.Err())
	}

	// And Verify sees a bad v2 copy.
	o := objs[0]
	now, _ := f.MdapiMetadataStore().GetObject(ctx, o.Shard, o.Key)
	p := filepath.Join(f.Shark(now.Sharks[0].MantaStorageID).Root(), V2Path(o.Owner, o.BucketID, o.ID, o.Name))
	if err := os.WriteFile(p, []byte("rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, _ = f.Verify(ctx, shark1)
	if rep.Counts[ProblemWrongSize] != 1 {
		t.Errorf("a rotten v2 copy: %v", rep.Err())
	}
}

// The buckets tier's faults are reachable from the fleet: down, slow,
// failing, conflicting.
func TestBucketsFaults(t *testing.T) {
	f := New(t, Config{Sharks: 3, Buckets: Buckets{DSNs: BucketsDatabases(t, 2),
		Objects: BucketObjects{Objects: Objects{Count: 10, Seed: 1, Pin: shark1}}}})
	ctx := context.Background()
	var key string
	var shard int
	for k, r := range v2Objects(t, f) {
		key = k
		shard, _ = f.VnodeMap().Shard(r.Vnode)
		break
	}
	store := f.MdapiMetadataStore()
	obj, err := store.GetObject(ctx, shard, key)
	if err != nil {
		t.Fatal(err)
	}

	f.MdapiOffline()
	if _, err := store.GetObject(ctx, shard, key); !errors.Is(err, mdapi.ErrConnection) {
		t.Errorf("offline: %v", err)
	}
	if err := f.MdapiOnline(); err != nil {
		t.Fatal(err)
	}
	testutil.Poll(t, "buckets-mdapi back", func() error { _, err := store.GetObject(ctx, shard, key); return err })

	slow := mdapi.NewShards(mdapi.StaticShards{shard: f.Mdapi(shard).Addr()}, mdapi.Options{RPCTimeout: 20 * time.Millisecond})
	defer slow.Close()
	f.SetMdapiHook(func(mdapitest.Request) mdapitest.Action { return mdapitest.Action{Delay: 200 * time.Millisecond} })
	if _, err := mdapi.NewMetadataStore(slow).GetObject(ctx, shard, key); !errors.Is(err, mdapi.ErrTimeout) {
		t.Errorf("slow: %v", err)
	}
	f.SetMdapiHook(func(mdapitest.Request) mdapitest.Action { return mdapitest.Action{Fault: &mdapitest.Overloaded} })
	if _, err := store.GetObject(ctx, shard, key); !mdapi.IsTransient(err) || !strings.Contains(err.Error(), "OverloadedError") {
		t.Errorf("overloaded: %v", err)
	}
	f.SetMdapiHook(nil)

	stop := f.MdapiConflictStorm(func(string, string, string) bool { return true })
	if _, err := store.ReplaceShark(ctx, obj, shark1, f.Shark("3.stor.demo.example").Node()); !errors.Is(err, rebalancer.ErrEtagConflict) {
		t.Errorf("conflict storm: %v", err)
	}
	stop()
	if f.Mdapi(3) != nil || f.Mdapi(0) != nil || len(f.Mdapis()) != 2 || f.BucketsDSN(2) == "" {
		t.Error("accessors")
	}

	plain := New(t, Config{})
	if plain.HasBuckets() || plain.Mdapis() != nil || plain.MdapiShards() != nil || plain.UploadFixer() != nil || len(plain.BucketsShardNumbers()) != 0 {
		t.Error("a fleet without buckets has a buckets tier")
	}
	if _, err := plain.PopulateBuckets(ctx, BucketObjects{}); err == nil {
		t.Error("PopulateBuckets without a buckets tier")
	}
}
