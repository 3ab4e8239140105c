package mdapi_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
)

func TestUploadOfPart(t *testing.T) {
	for _, tc := range []struct {
		name, id string
	}{
		{".mpu-parts/0f3c2b8e-8a4f-4d1e-9b7a-5c6d7e8f9a0b/1", "0f3c2b8e-8a4f-4d1e-9b7a-5c6d7e8f9a0b"},
		{".mpu-parts/abc/10000", "abc"},
		{".mpu-parts/abc/1/2", ""},
		{".mpu-parts/abc/", ""},
		{".mpu-parts/abc/x1", ""},
		{".mpu-parts//1", ""},
		{".mpu-parts/../1", ""},
		{".mpu-parts/abc", ""},
		{".mpu-uploads/abc", ""},
		{"photos/.mpu-parts/abc/1", ""},
		{"", ""},
	} {
		id, ok := mdapi.UploadOfPart(tc.name)
		if id != tc.id || ok != (tc.id != "") {
			t.Errorf("UploadOfPart(%q) = %q %v, want %q", tc.name, id, ok, tc.id)
		}
	}
	part := mdapi.Locator{Owner: owner, BucketID: bucket, Name: ".mpu-parts/u1/3", Vnode: 5}
	up, loc, ok := mdapi.UploadOf(part.Key())
	if !ok || up != (mdapi.Upload{Owner: owner, BucketID: bucket, ID: "u1"}) || loc != part || up.RecordName() != ".mpu-uploads/u1" {
		t.Errorf("UploadOf(%s) = %+v %+v %v", part.Key(), up, loc, ok)
	}
	for _, key := range []string{"/" + owner + "/stor/.mpu-parts/u1/3", loc.Key() + "/x", "v2/5/" + owner + "/" + bucket + "/photo"} {
		if _, _, ok := mdapi.UploadOf(key); ok {
			t.Errorf("UploadOf(%s) says it is a part", key)
		}
	}
}

// mpuFleet is two buckets-mdapi shards holding the vnodes of a ring of 8:
// 0-3 on shard 1, 4-7 on shard 2.
type mpuFleet struct {
	srv    map[int]*mdapitest.Server
	shards *mdapi.Shards
	ring   mdapi.Ring
	vnodes *mdapi.VnodeMap
	store  *mdapi.MetadataStore
}

func newMPUFleet(t *testing.T, version mdapitest.Version) *mpuFleet {
	t.Helper()
	f := &mpuFleet{srv: map[int]*mdapitest.Server{}, vnodes: &mdapi.VnodeMap{}}
	addrs := mdapi.StaticShards{}
	for shard, vnodes := range map[int][]uint64{1: {0, 1, 2, 3}, 2: {4, 5, 6, 7}} {
		f.srv[shard] = mdapitest.Start(t, mdapitest.Options{Vnodes: vnodes, Version: version})
		addrs[shard] = f.srv[shard].Addr()
		if err := f.vnodes.Add(shard, vnodes...); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if f.ring, err = f.vnodes.Ring(); err != nil {
		t.Fatal(err)
	}
	f.shards = mdapi.NewShards(addrs, mdapi.Options{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	t.Cleanup(func() { f.shards.Close() })
	f.store = mdapi.NewMetadataStore(f.shards)
	return f
}

func (f *mpuFleet) fixer() *mdapi.UploadFixer {
	return &mdapi.UploadFixer{Shards: f.shards, Ring: f.ring, Vnodes: f.vnodes}
}

// at returns where the ring puts an object, and the server holding it.
func (f *mpuFleet) at(t *testing.T, name string) (uint64, *mdapitest.Server) {
	t.Helper()
	v, err := f.ring.ObjectVnode(owner, bucket, name)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := f.vnodes.Shard(v)
	return v, f.srv[s]
}

// upload writes an upload's record and its parts, each part with a copy on
// every preallocated shark, as buckets-api does; it returns the upload and
// the parts' keys.
func (f *mpuFleet) upload(t *testing.T, parts int, pre ...rebalancer.StorageNode) (mdapi.Upload, []string) {
	t.Helper()
	ctx := ctxT(t)
	up := mdapi.Upload{Owner: owner, BucketID: bucket, ID: uuid.NewString()}
	v, srv := f.at(t, up.RecordName())
	if _, _, err := srv.PutUpload(ctx, mdapitest.Upload{Vnode: v, Owner: owner, BucketID: bucket, BucketName: "b",
		Key: "big/object", UploadID: up.ID, PreAllocatedSharks: pre}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for n := 1; n <= parts; n++ {
		name := mdapitest.PartName(up.ID, n)
		v, srv := f.at(t, name)
		if _, err := srv.PutObject(ctx, mdapitest.Object{Vnode: v, Owner: owner, BucketID: bucket, Name: name,
			ContentLength: 5, ContentMD5: "XrY7u+Ae7tCTyyK7j1rNww==", Sharks: pre, Properties: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, mdapi.Locator{Owner: owner, BucketID: bucket, Name: name, Vnode: v}.Key())
	}
	return up, keys
}

// record reads an upload's record.
func (f *mpuFleet) record(t *testing.T, up mdapi.Upload) mdapitest.Object {
	t.Helper()
	v, srv := f.at(t, up.RecordName())
	o, err := srv.GetObject(ctxT(t), v, owner, bucket, up.RecordName())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// moved is what the parts' copies on from that went to to look like.
func moved(keys []string, from string, to rebalancer.StorageNode) []mdapi.PartMove {
	var out []mdapi.PartMove
	for _, k := range keys {
		out = append(out, mdapi.PartMove{Key: k, From: from, To: to})
	}
	return out
}

// sharkText is a preallocated shark as PutUpload writes it, up to its zone.
func sharkText(s rebalancer.StorageNode) string {
	return `"datacenter":"` + s.Datacenter + `","manta_storage_id":"` + s.MantaStorageID + `"`
}

// The record is fixed after the parts move, whichever way their metadata
// was written; only the moved shark's storage id and datacenter change, in
// both headers, and every other byte of the record stays.
func TestFixUploadRecord(t *testing.T) {
	for _, mode := range []string{"individual", "batched"} {
		t.Run(mode, func(t *testing.T) {
			f := newMPUFleet(t, mdapitest.Fork)
			up, keys := f.upload(t, 5, stor1, stor2)
			other, _ := f.upload(t, 2, stor2, stor3) // not on the shark: untouched
			before, otherBefore := f.record(t, up), f.record(t, other)

			// Move the parts' metadata as the engine would.
			reps := map[int][]rebalancer.SharkReplacement{}
			for _, k := range keys {
				loc, _ := mdapi.ParseKey(k)
				shard, _ := f.vnodes.Shard(loc.Vnode)
				obj, err := f.store.GetObject(ctxT(t), shard, k)
				if err != nil {
					t.Fatal(err)
				}
				if mode == "individual" {
					if _, err := f.store.ReplaceShark(ctxT(t), obj, stor1.MantaStorageID, stor4); err != nil {
						t.Fatal(err)
					}
					continue
				}
				reps[shard] = append(reps[shard], rebalancer.SharkReplacement{Object: obj, From: stor1.MantaStorageID, To: stor4})
			}
			for shard, r := range reps {
				if _, err := f.store.ReplaceSharks(ctxT(t), shard, r); err != nil {
					t.Fatal(err)
				}
			}

			res := f.fixer().FixMoved(ctxT(t), moved(keys, stor1.MantaStorageID, stor4))
			if len(res) != 1 || res[0].Err != nil || res[0].Outcome != mdapi.UploadFixed || res[0].Upload != up {
				t.Fatalf("FixMoved = %+v", res)
			}
			after := f.record(t, up)
			if res[0].Etag != mdapi.Etag(after.ID, after.Modified) || after.ID != before.ID {
				t.Errorf("etag %s, record id %s -> %s, modified %v", res[0].Etag, before.ID, after.ID, after.Modified)
			}
			for name, v := range before.Headers {
				want := *v
				if name == "x-upload-record" || name == "x-preallocated-sharks" {
					want = strings.Replace(want, sharkText(stor1), sharkText(stor4), 1)
					if want == *v {
						t.Fatalf("header %s does not list %s: %s", name, stor1.MantaStorageID, *v)
					}
				}
				if got := after.Headers[name]; got == nil || *got != want {
					t.Errorf("header %s:\n got %v\nwant %s", name, got, want)
				}
			}
			if len(after.Headers) != len(before.Headers) || after.ContentType != before.ContentType ||
				string(after.Properties) != string(before.Properties) || len(after.Sharks) != 0 || after.ContentLength != 0 {
				t.Errorf("record changed beyond its sharks:\nbefore %+v\n after %+v", before, after)
			}
			if now := f.record(t, other); !now.Modified.Equal(otherBefore.Modified) {
				t.Errorf("the other upload's record was written")
			}

			// Again (another batch of the same upload's parts): nothing to
			// do, nothing written.
			res = f.fixer().FixMoved(ctxT(t), moved(keys[:1], stor1.MantaStorageID, stor4))
			if len(res) != 1 || res[0].Err != nil || res[0].Outcome != mdapi.UploadAlreadyFixed {
				t.Errorf("FixMoved again = %+v", res)
			}
			if now := f.record(t, up); !now.Modified.Equal(after.Modified) {
				t.Error("fixing again wrote the record")
			}
		})
	}
}

// A record that is gone means the upload finished; one that names neither
// shark, or no preallocated sharks at all, needs nothing.
func TestFixUploadNothingToDo(t *testing.T) {
	f := newMPUFleet(t, mdapitest.Fork)
	up, keys := f.upload(t, 1, stor1, stor2)
	v, srv := f.at(t, up.RecordName())
	if err := srv.DeleteObject(ctxT(t), v, owner, bucket, up.RecordName()); err != nil {
		t.Fatal(err)
	}
	part, _ := mdapi.ParseKey(keys[0])
	res, err := f.fixer().Fix(ctxT(t), part, stor1.MantaStorageID, stor4)
	if err != nil || res.Outcome != mdapi.UploadFinished || res.Record.Vnode != v || res.Record.Name != up.RecordName() {
		t.Errorf("finished upload: %+v %v", res, err)
	}

	_, keys = f.upload(t, 1, stor2, stor3)
	part, _ = mdapi.ParseKey(keys[0])
	if res, err := f.fixer().Fix(ctxT(t), part, stor1.MantaStorageID, stor4); err != nil || res.Outcome != mdapi.UploadNotListed {
		t.Errorf("record not naming the shark: %+v %v", res, err)
	}
	// No preallocated sharks at all.
	_, keys = f.upload(t, 1)
	part, _ = mdapi.ParseKey(keys[0])
	if res, err := f.fixer().Fix(ctxT(t), part, stor1.MantaStorageID, stor4); err != nil || res.Outcome != mdapi.UploadNotListed {
		t.Errorf("record without preallocated sharks: %+v %v", res, err)
	}
}

// The fix is conditional: a record changed by another writer between the
// read and the write is read again, and the other writer's change is kept.
func TestFixUploadConflicts(t *testing.T) {
	f := newMPUFleet(t, mdapitest.Fork)
	up, keys := f.upload(t, 2, stor1, stor2)
	part, _ := mdapi.ParseKey(keys[0])
	v, srv := f.at(t, up.RecordName())

	// A concurrent writer (buckets-api recording a part) gets in first.
	var raced atomic.Bool
	srv.SetHook(func(r mdapitest.Request) mdapitest.Action {
		if r.Method == "updateobject" && raced.CompareAndSwap(false, true) {
			_, err := srv.Modify(context.Background(), v, owner, bucket, up.RecordName(), func(o *mdapitest.Object) {
				note := "part 3 written"
				o.Headers["x-note"] = &note
			})
			if err != nil {
				t.Error(err)
			}
		}
		return mdapitest.Action{}
	})
	res, err := f.fixer().Fix(ctxT(t), part, stor1.MantaStorageID, stor4)
	srv.SetHook(nil)
	if err != nil || res.Outcome != mdapi.UploadFixed || !raced.Load() {
		t.Fatalf("Fix with a concurrent writer: %+v %v", res, err)
	}
	rec := f.record(t, up)
	if n := rec.Headers["x-note"]; n == nil || *n != "part 3 written" || !strings.Contains(*rec.Headers["x-upload-record"], sharkText(stor4)) {
		t.Errorf("after the race: headers %v", rec.Headers)
	}
	if got := srv.Calls("updateobject"); got != 2 {
		t.Errorf("%d updates, want the refused one and the retry", got)
	}

	// Conflicts that do not stop: an error after the retries, naming the
	// upload, matching ErrEtagConflict; the record as it was.
	up, keys = f.upload(t, 1, stor1, stor2)
	part, _ = mdapi.ParseKey(keys[0])
	_, srv = f.at(t, up.RecordName())
	before := f.record(t, up)
	stop := srv.ConflictStorm(func(_, _, name string) bool { return name == up.RecordName() })
	fx := f.fixer()
	fx.Retries = 2
	srv.ResetCalls()
	_, err = fx.Fix(ctxT(t), part, stor1.MantaStorageID, stor4)
	stop()
	if !errors.Is(err, rebalancer.ErrEtagConflict) || !strings.Contains(err.Error(), up.ID) {
		t.Errorf("conflict storm: %v", err)
	}
	if got := srv.Calls("updateobject"); got != 3 {
		t.Errorf("%d updates in the storm, want 1 and 2 retries", got)
	}
	if now := f.record(t, up); !now.Modified.Equal(before.Modified) {
		t.Error("the record was written during the storm")
	}
}

// What the fix refuses, and why.
func TestFixUploadRefuses(t *testing.T) {
	f := newMPUFleet(t, mdapitest.Fork)
	up, keys := f.upload(t, 4, stor1, stor2)
	part, _ := mdapi.ParseKey(keys[0])
	before := f.record(t, up)

	// Parts of the upload went to two sharks: no single one has them all.
	moves := append(moved(keys[:2], stor1.MantaStorageID, stor4), moved(keys[2:], stor1.MantaStorageID, stor3)...)
	res := f.fixer().FixMoved(ctxT(t), moves)
	var split *mdapi.SplitUploadError
	if len(res) != 1 || !errors.As(res[0].Err, &split) || !errors.Is(res[0].Err, mdapi.ErrSplitUpload) ||
		split.Upload != up || len(split.To) != 2 || res[0].Outcome != 0 {
		t.Errorf("split upload: %+v", res)
	}

	// The new shark already holds the upload's other copies.
	_, err := f.fixer().Fix(ctxT(t), part, stor1.MantaStorageID, stor2)
	if !errors.Is(err, mdapi.ErrAlreadyPreallocated) {
		t.Errorf("destination already preallocated: %v", err)
	}

	// A ring that is not buckets-api's puts the part elsewhere than where
	// it was found: no record is looked for where it cannot be.
	for _, fs := range []*mdapi.UploadFixer{
		{Shards: f.shards, Ring: mustRing(t, 9), Vnodes: f.vnodes},
		{Shards: f.shards, Ring: f.ring, Vnodes: &mdapi.VnodeMap{}},
		{Shards: f.shards, Ring: f.ring},
	} {
		for _, s := range f.srv {
			s.ResetCalls()
		}
		wrong := part
		if fs.Ring.Vnodes() == 9 {
			if v, _ := fs.Ring.ObjectVnode(owner, bucket, part.Name); v == part.Vnode {
				wrong.Vnode = (part.Vnode + 1) % 8
			}
		}
		if _, err := fs.Fix(ctxT(t), wrong, stor1.MantaStorageID, stor4); err == nil || !strings.Contains(err.Error(), up.ID) {
			t.Errorf("bad ring or map: %v", err)
		}
		if n := f.srv[1].Calls("getobject") + f.srv[2].Calls("getobject"); n != 0 {
			t.Errorf("%d reads with a wrong ring or map", n)
		}
	}
	if _, err := f.fixer().Fix(ctxT(t), mdapi.Locator{Owner: owner, BucketID: bucket, Name: "photo", Vnode: 1}, stor1.MantaStorageID, stor4); err == nil {
		t.Error("Fix of an object that is not a part")
	}
	for _, to := range []rebalancer.StorageNode{{Datacenter: "dc:1", MantaStorageID: "4.stor.example.com"}, stor1} {
		if _, err := f.fixer().Fix(ctxT(t), part, stor1.MantaStorageID, to); err == nil {
			t.Errorf("Fix to %+v succeeded", to)
		}
	}

	// A record whose headers are not what buckets-api writes.
	v, srv := f.at(t, up.RecordName())
	if _, err := srv.Modify(ctxT(t), v, owner, bucket, up.RecordName(), func(o *mdapitest.Object) {
		bad := `{"preAllocatedSharks":[{"manta_storage_id":"1.stor.example.com"},{"manta_storage_id":"1.stor.example.com"}]}`
		o.Headers["x-upload-record"] = &bad
	}); err != nil {
		t.Fatal(err)
	}
	var bad *rebalancer.BadObjectError
	if _, err := f.fixer().Fix(ctxT(t), part, stor1.MantaStorageID, stor4); !errors.As(err, &bad) || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a shark preallocated twice: %v", err)
	}
	if now := f.record(t, up); *now.Headers["x-preallocated-sharks"] != *before.Headers["x-preallocated-sharks"] {
		t.Error("a refused fix wrote the record")
	}
}

func mustRing(t *testing.T, n uint64) mdapi.Ring {
	r, err := mdapi.NewRing(n)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Only one header, and an upstream buckets-mdapi (which ignores sharks,
// and the fix sends none), and failures of the server.
func TestFixUploadServers(t *testing.T) {
	f := newMPUFleet(t, mdapitest.Upstream)
	up, keys := f.upload(t, 1, stor1, stor2)
	part, _ := mdapi.ParseKey(keys[0])
	v, srv := f.at(t, up.RecordName())
	if _, err := srv.Modify(ctxT(t), v, owner, bucket, up.RecordName(), func(o *mdapitest.Object) {
		delete(o.Headers, "x-upload-record")
	}); err != nil {
		t.Fatal(err)
	}
	res, err := f.fixer().Fix(ctxT(t), part, stor1.MantaStorageID, stor4)
	if err != nil || res.Outcome != mdapi.UploadFixed {
		t.Fatalf("upstream, one header: %+v %v", res, err)
	}
	rec := f.record(t, up)
	if h := *rec.Headers["x-preallocated-sharks"]; !strings.Contains(h, sharkText(stor4)) || strings.Contains(h, stor1.MantaStorageID) {
		t.Errorf("x-preallocated-sharks %s", h)
	}
	if _, ok := rec.Headers["x-upload-record"]; ok {
		t.Error("a header was added")
	}

	up, keys = f.upload(t, 1, stor1, stor2)
	part, _ = mdapi.ParseKey(keys[0])
	_, srv = f.at(t, up.RecordName())
	srv.FailNext("getobject", 1, mdapitest.PostgresDown)
	fx := f.fixer()
	_, err = fx.Fix(ctxT(t), part, stor1.MantaStorageID, stor4)
	if !mdapi.IsTransient(err) || !strings.Contains(err.Error(), up.ID) || !strings.Contains(err.Error(), "buckets-mdapi shard") {
		t.Errorf("server failing: %v", err)
	}
	srv.Offline()
	_, err = fx.Fix(ctxT(t), part, stor1.MantaStorageID, stor4)
	if !errors.Is(err, mdapi.ErrConnection) {
		t.Errorf("server down: %v", err)
	}
	if err := srv.Online(); err != nil {
		t.Fatal(err)
	}
	// The client redials after its backoff; the connections it had may
	// fail first.
	testutil.Poll(t, "the fix once the server is back", func() error {
		res, err := fx.Fix(ctxT(t), part, stor1.MantaStorageID, stor4)
		if err == nil && res.Outcome != mdapi.UploadFixed {
			t.Fatalf("server back: %+v", res)
		}
		return err
	})
}

// Fixers racing on one record (two assignments' parts of the same upload
// finishing together): every one succeeds, and the record names the new
// shark once. More than one may write it: buckets-mdapi checks conditions
// without a lock, so two updates made from one read can both pass (see
// docs/buckets-mdapi.md), which is harmless when they write the same.
func TestFixUploadConcurrent(t *testing.T) {
	f := newMPUFleet(t, mdapitest.Fork)
	_, keys := f.upload(t, 6, stor1, stor2)
	results := make([]mdapi.UploadResult, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		part, _ := mdapi.ParseKey(k)
		wg.Go(func() { results[i], errs[i] = f.fixer().Fix(ctxT(t), part, stor1.MantaStorageID, stor4) })
	}
	wg.Wait()
	count := map[mdapi.UploadOutcome]int{}
	for i, r := range results {
		if errs[i] != nil {
			t.Errorf("fixer %d: %v", i, errs[i])
		}
		count[r.Outcome]++
	}
	if count[mdapi.UploadFixed] < 1 || count[mdapi.UploadFixed]+count[mdapi.UploadAlreadyFixed] != len(keys) {
		t.Errorf("outcomes %v", count)
	}
	rec := f.record(t, results[0].Upload)
	for _, h := range []string{"x-upload-record", "x-preallocated-sharks"} {
		if v := *rec.Headers[h]; strings.Count(v, stor4.MantaStorageID) != 1 || strings.Contains(v, stor1.MantaStorageID) {
			t.Errorf("%s: %s", h, v)
		}
	}
}
