package mdapi_test

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
)

// storeSetup serves buckets-mdapi shard 1 from srv.
func storeSetup(t *testing.T, opts ...mdapitest.Options) (*mdapitest.Server, *mdapi.MetadataStore) {
	t.Helper()
	srv := mdapitest.Start(t, opts...)
	shards := mdapi.NewShards(mdapi.StaticShards{1: srv.Addr()}, mdapi.Options{})
	t.Cleanup(func() { shards.Close() })
	return srv, mdapi.NewMetadataStore(shards)
}

func TestStoreGetObject(t *testing.T) {
	ctx := ctxT(t)
	srv, store := storeSetup(t)
	stored := put(t, srv, 3, "photos/2024/a.jpg")
	key := loc(3, "photos/2024/a.jpg").Key()
	if key != "v2/3/"+owner+"/"+bucket+"/photos/2024/a.jpg" || !mdapi.IsKey(key) || mdapi.IsKey("/"+owner+"/stor/a") {
		t.Errorf("key %s", key)
	}
	obj, err := store.GetObject(ctx, 1, key)
	if err != nil {
		t.Fatal(err)
	}
	want := rebalancer.Object{ID: stored.ID, Key: key, Owner: owner, Shard: 1, Etag: mdapi.Etag(stored.ID, stored.Modified),
		ContentLength: 11, ContentMD5: stored.ContentMD5, Sharks: []rebalancer.StorageNode{stor1, stor2},
		BucketID: bucket, IsBucket: true, Name: "photos/2024/a.jpg"}
	got := obj
	got.Metadata = nil
	if !equalObjects(got, want) {
		t.Errorf("object\n got %+v\nwant %+v", got, want)
	}
	// The engine rebuilds objects from their metadata: it must give the
	// same object.
	parsed, err := rebalancer.ParseObject(obj.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	parsed.Shard, parsed.Etag = obj.Shard, obj.Etag
	parsed.Metadata = nil
	if !equalObjects(parsed, want) {
		t.Errorf("ParseObject(metadata)\n got %+v\nwant %+v\n%s", parsed, want, obj.Metadata)
	}
	task := obj.Task(stor2)
	if task.BucketID != bucket || task.ObjectNameHash != rebalancer.ObjectNameHash("photos/2024/a.jpg") || !task.IsV2() {
		t.Errorf("task %+v", task)
	}
	// The metadata is the server's record after the three locating members.
	if !strings.HasPrefix(string(obj.Metadata), `{"key":"`+key+`","objectId":"`+stored.ID+`","vnode":3,"id":"`+stored.ID+`","owner":`) {
		t.Errorf("metadata %s", obj.Metadata)
	}

	for _, tc := range []struct {
		key   string
		check func(error) bool
	}{
		{loc(3, "missing").Key(), func(err error) bool { return errors.Is(err, rebalancer.ErrObjectNotFound) }},
		{"/" + owner + "/stor/a", func(err error) bool { var b *rebalancer.BadObjectError; return errors.As(err, &b) }},
		{"v2/x/" + owner + "/" + bucket + "/a", func(err error) bool { return err != nil && strings.Contains(err.Error(), "bad vnode") }},
		{"v2/03/" + owner + "/" + bucket + "/a", func(err error) bool { return err != nil && strings.Contains(err.Error(), "bad vnode") }},
		{"v2/3/" + owner + "/" + bucket, func(err error) bool { return err != nil }},
	} {
		if _, err := store.GetObject(ctx, 1, tc.key); !tc.check(err) {
			t.Errorf("GetObject(%q): %v", tc.key, err)
		}
	}
}

func equalObjects(a, b rebalancer.Object) bool {
	return a.ID == b.ID && a.Key == b.Key && a.Owner == b.Owner && a.Shard == b.Shard && a.Etag == b.Etag &&
		a.ScanID == b.ScanID && a.ContentLength == b.ContentLength && a.ContentMD5 == b.ContentMD5 &&
		slices.Equal(a.Sharks, b.Sharks) && a.BucketID == b.BucketID && a.IsBucket == b.IsBucket && a.Name == b.Name
}

// ReplaceShark changes the one sharks entry and nothing else of the row.
func TestStoreReplaceShark(t *testing.T) {
	ctx := ctxT(t)
	srv, store := storeSetup(t)
	before := put(t, srv, 0, "o", stor1, stor2, stor3)
	obj, err := store.GetObject(ctx, 1, loc(0, "o").Key())
	if err != nil {
		t.Fatal(err)
	}
	etag, err := store.ReplaceShark(ctx, obj, stor2.MantaStorageID, stor4)
	if err != nil {
		t.Fatal(err)
	}
	after, err := srv.GetObject(ctx, 0, owner, bucket, "o")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(after.Sharks, []rebalancer.StorageNode{stor1, stor4, stor3}) {
		t.Errorf("sharks %v", after.Sharks)
	}
	if after.ID != before.ID || after.ContentType != before.ContentType || after.ContentMD5 != before.ContentMD5 ||
		after.ContentLength != before.ContentLength || !after.Created.Equal(before.Created) ||
		!maps.EqualFunc(after.Headers, before.Headers, func(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }) ||
		!jsonEqual(t, after.Properties, before.Properties) || !after.Modified.After(before.Modified) {
		t.Errorf("row changed beyond the shark:\nbefore %+v\n after %+v", before, after)
	}
	if etag != mdapi.Etag(after.ID, after.Modified) {
		t.Errorf("etag %s, stored %s", etag, mdapi.Etag(after.ID, after.Modified))
	}

	// The old etag no longer holds; a re-read does.
	if _, err := store.ReplaceShark(ctx, obj, stor1.MantaStorageID, stor2); !errors.Is(err, rebalancer.ErrEtagConflict) {
		t.Errorf("stale etag: %v", err)
	}
	obj, err = store.GetObject(ctx, 1, loc(0, "o").Key())
	if err != nil || obj.Etag != etag {
		t.Fatalf("re-read: %v, etag %s", err, obj.Etag)
	}
	if _, err := store.ReplaceShark(ctx, obj, stor1.MantaStorageID, stor2); err != nil {
		t.Errorf("after the re-read: %v", err)
	}
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

func TestStoreReplaceSharkFailures(t *testing.T) {
	ctx := ctxT(t)
	srv, store := storeSetup(t)
	read := func(name string, sharks ...rebalancer.StorageNode) rebalancer.Object {
		t.Helper()
		put(t, srv, 1, name, sharks...)
		obj, err := store.GetObject(ctx, 1, loc(1, name).Key())
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
	badKind := func(kind rebalancer.ObjectErrorKind) func(error) bool {
		return func(err error) bool {
			var b *rebalancer.BadObjectError
			return errors.As(err, &b) && b.Kind == kind
		}
	}
	for _, tc := range []struct {
		name  string
		obj   func() rebalancer.Object
		from  string
		check func(error) bool
	}{
		{"changed by another writer", func() rebalancer.Object {
			obj := read("changed")
			srv.Modify(ctx, 1, owner, bucket, "changed", func(o *mdapitest.Object) { o.Headers["m-color"] = str("red") })
			return obj
		}, stor1.MantaStorageID, func(err error) bool { return errors.Is(err, rebalancer.ErrEtagConflict) }},
		{"overwritten with a new object", func() rebalancer.Object {
			obj := read("overwritten")
			put(t, srv, 1, "overwritten")
			return obj
		}, stor1.MantaStorageID, func(err error) bool {
			return errors.Is(err, rebalancer.ErrEtagConflict) && !errors.Is(err, rebalancer.ErrObjectNotFound)
		}},
		{"deleted", func() rebalancer.Object {
			obj := read("deleted")
			if err := srv.DeleteObject(ctx, 1, owner, bucket, "deleted"); err != nil {
				t.Fatal(err)
			}
			return obj
		}, stor1.MantaStorageID, func(err error) bool { return errors.Is(err, rebalancer.ErrObjectNotFound) }},
		{"conflict storm", func() rebalancer.Object {
			obj := read("storm")
			stop := srv.ConflictStorm(func(_, _, name string) bool { return name == "storm" })
			t.Cleanup(stop)
			return obj
		}, stor1.MantaStorageID, func(err error) bool { return errors.Is(err, rebalancer.ErrEtagConflict) }},
		{"shark not listed", func() rebalancer.Object { return read("unlisted") }, stor4.MantaStorageID,
			func(err error) bool { return errors.Is(err, rebalancer.ErrSharkNotListed) }},
		{"shark listed twice", func() rebalancer.Object { return read("twice", stor1, stor1) }, stor1.MantaStorageID,
			badKind(rebalancer.ErrorDuplicateShark)},
		{"no etag", func() rebalancer.Object { o := read("noetag"); o.Etag = ""; return o }, stor1.MantaStorageID,
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "no etag") }},
		{"a Moray etag", func() rebalancer.Object { o := read("morayetag"); o.Etag = "314BADAF"; return o }, stor1.MantaStorageID,
			badKind(rebalancer.ErrorBadMantaObject)},
		{"metadata of another object", func() rebalancer.Object {
			o := read("mixed")
			other := read("other")
			o.Metadata = other.Metadata
			return o
		}, stor1.MantaStorageID, badKind(rebalancer.ErrorBadMantaObject)},
		{"properties that cannot be sent back exactly", func() rebalancer.Object {
			srv.PutObject(ctx, mdapitest.Object{Vnode: 1, Owner: owner, BucketID: bucket, Name: "float",
				Sharks: []rebalancer.StorageNode{stor1, stor2}, Properties: []byte(`{"ratio": 0.5}`)})
			obj, err := store.GetObject(ctx, 1, loc(1, "float").Key())
			if err != nil {
				t.Fatal(err)
			}
			return obj
		}, stor1.MantaStorageID, badKind(rebalancer.ErrorBadMantaObject)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj()
			var before []rebalancer.StorageNode
			if o, err := srv.GetObject(ctx, 1, owner, bucket, obj.Name); err == nil {
				before = o.Sharks
			}
			_, err := store.ReplaceShark(ctx, obj, tc.from, stor4)
			if !tc.check(err) {
				t.Errorf("ReplaceShark: %v", err)
			}
			if o, err := srv.GetObject(ctx, 1, owner, bucket, obj.Name); err == nil && !slices.Equal(o.Sharks, before) {
				t.Errorf("sharks changed: %v -> %v", before, o.Sharks)
			}
		})
	}
	if v := srv.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
}

// Against upstream buckets-mdapi the store cannot move anything, and says
// so rather than report success.
func TestStoreUpstream(t *testing.T) {
	ctx := ctxT(t)
	srv, store := storeSetup(t, mdapitest.Options{Version: mdapitest.Upstream})
	put(t, srv, 0, "o")
	obj, err := store.GetObject(ctx, 1, loc(0, "o").Key())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReplaceShark(ctx, obj, stor1.MantaStorageID, stor4); !errors.Is(err, mdapi.ErrUnsupported) {
		t.Errorf("ReplaceShark: %v", err)
	}
	srv.ResetCalls()
	rep := []rebalancer.SharkReplacement{{Object: obj, From: stor1.MantaStorageID, To: stor4}}
	for i := range 2 {
		if _, err := store.ReplaceSharks(ctx, 1, rep); !errors.Is(err, mdapi.ErrUnsupported) {
			t.Errorf("ReplaceSharks %d: %v", i, err)
		}
	}
	if n := srv.Calls("batchupdateobjects"); n != 1 {
		t.Errorf("%d batchupdateobjects for two batches: the first answer is remembered", n)
	}
	if o, _ := srv.GetObject(ctx, 0, owner, bucket, "o"); !slices.Equal(o.Sharks, []rebalancer.StorageNode{stor1, stor2}) {
		t.Errorf("sharks %v", o.Sharks)
	}
}

// A batch is atomic per vnode; redoing it object by object, as the engine
// does after a failed batch, ends with every object moved.
func TestStoreReplaceSharks(t *testing.T) {
	ctx := ctxT(t)
	srv, store := storeSetup(t)
	var reps []rebalancer.SharkReplacement
	for i, v := range []uint64{0, 0, 1, 2} {
		name := string(rune('a' + i))
		put(t, srv, v, name)
		obj, err := store.GetObject(ctx, 1, loc(v, name).Key())
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rebalancer.SharkReplacement{Object: obj, From: stor2.MantaStorageID, To: stor4})
	}
	if _, err := store.ReplaceSharks(ctx, 2, reps); err == nil || !strings.Contains(err.Error(), "is on shard 1") {
		t.Errorf("wrong shard: %v", err)
	}

	srv.ConflictNextUpdates(1) // the first object: vnode 0 fails
	etags, err := store.ReplaceSharks(ctx, 1, reps)
	var be *mdapi.BatchError
	if !errors.As(err, &be) || !errors.Is(err, rebalancer.ErrEtagConflict) || len(be.Failed) != 1 || be.Failed[0].Vnode != 0 || etags != nil {
		t.Fatalf("batch: %v, %v", etags, err)
	}
	moved := func(name string, v uint64) bool {
		o, err := srv.GetObject(ctx, v, owner, bucket, name)
		return err == nil && slices.Equal(o.Sharks, []rebalancer.StorageNode{stor1, stor4})
	}
	for i, want := range []bool{false, false, true, true} {
		r := reps[i].Object
		l, _ := mdapi.ParseKey(r.Key)
		if moved(r.Name, l.Vnode) != want {
			t.Errorf("object %s moved: %v", r.Name, !want)
		}
	}
	// Object by object: the updated ones conflict (their version moved on)
	// and, read again, no longer list the shark.
	for _, r := range reps {
		_, err := store.ReplaceShark(ctx, r.Object, r.From, r.To)
		if err == nil {
			continue
		}
		if !errors.Is(err, rebalancer.ErrEtagConflict) {
			t.Fatalf("redo %s: %v", r.Object.Name, err)
		}
		cur, err := store.GetObject(ctx, 1, r.Object.Key)
		if err != nil || cur.HasShark(r.From) || !cur.HasShark(r.To.MantaStorageID) {
			t.Errorf("redo %s: conflict, then %+v, %v", r.Object.Name, cur.Sharks, err)
		}
	}
	for _, r := range reps {
		l, _ := mdapi.ParseKey(r.Object.Key)
		if !moved(r.Object.Name, l.Vnode) {
			t.Errorf("object %s not moved", r.Object.Name)
		}
	}

	// A clean batch returns one (empty) etag per object.
	var more []rebalancer.SharkReplacement
	for _, name := range []string{"x", "y"} {
		put(t, srv, 3, name)
		obj, _ := store.GetObject(ctx, 1, loc(3, name).Key())
		more = append(more, rebalancer.SharkReplacement{Object: obj, From: stor1.MantaStorageID, To: stor3})
	}
	if etags, err := store.ReplaceSharks(ctx, 1, more); err != nil || len(etags) != 2 {
		t.Errorf("clean batch: %v, %v", etags, err)
	}
	if etags, err := store.ReplaceSharks(ctx, 1, nil); err != nil || etags != nil {
		t.Errorf("empty batch: %v, %v", etags, err)
	}
}

// A server that has sharks in updateobject but not batchupdateobjects
// (scripted here: no released branch is like that) makes ReplaceSharks fail
// with ErrUnsupported once; the caller's fallback, one ReplaceShark per
// object, moves them all.
func TestStoreBatchFallback(t *testing.T) {
	ctx := ctxT(t)
	srv, store := storeSetup(t)
	srv.FailNext("batchupdateobjects", 1, mdapitest.Fault{Name: "FastError", Message: "Unsupported functon: batchupdateobjects", Frame: true})
	var reps []rebalancer.SharkReplacement
	for i, v := range []uint64{0, 1} {
		name := string(rune('a' + i))
		put(t, srv, v, name)
		obj, err := store.GetObject(ctx, 1, loc(v, name).Key())
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rebalancer.SharkReplacement{Object: obj, From: stor1.MantaStorageID, To: stor3})
	}
	for range 2 {
		if _, err := store.ReplaceSharks(ctx, 1, reps); !errors.Is(err, mdapi.ErrUnsupported) {
			t.Fatalf("ReplaceSharks: %v", err)
		}
	}
	if n := srv.Calls("batchupdateobjects"); n != 1 {
		t.Errorf("%d batchupdateobjects calls", n)
	}
	for _, r := range reps {
		if _, err := store.ReplaceShark(ctx, r.Object, r.From, r.To); err != nil {
			t.Errorf("fallback %s: %v", r.Object.Name, err)
		}
		l, _ := mdapi.ParseKey(r.Object.Key)
		if o, _ := srv.GetObject(ctx, l.Vnode, owner, bucket, r.Object.Name); !slices.Equal(o.Sharks, []rebalancer.StorageNode{stor3, stor2}) {
			t.Errorf("%s: sharks %v", r.Object.Name, o.Sharks)
		}
	}
}
