package mdapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
)

func TestGetObject(t *testing.T) {
	srv, c := setup(t)
	want := put(t, srv, 1, "dir/a b.txt")

	rec, err := c.GetObject(ctxT(t), loc(1, "dir/a b.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID != want.ID || rec.Owner != owner || rec.BucketID != bucket || rec.Name != "dir/a b.txt" ||
		rec.ContentLength != 11 || rec.ContentMD5 != want.ContentMD5 || rec.ContentType != "text/plain" ||
		!rec.Modified.Equal(want.Modified) || !rec.Created.Equal(want.Created) ||
		!slices.Equal(rec.Sharks, []rebalancer.StorageNode{stor1, stor2}) {
		t.Errorf("record %+v, stored %+v", rec, want)
	}
	// Headers and properties come back in serde_json's form: compact, the
	// properties' keys sorted.
	if got := string(rec.Headers); got != `{"content-disposition":"attachment; filename=\"a b.txt\"","m-color":"blue","x-null":null}` {
		t.Errorf("headers %s", got)
	}
	if got := string(rec.Properties); got != `{"roles":["r1","r2"],"tags":{"env":"prod","n":7}}` {
		t.Errorf("properties %s", got)
	}
	if rec.Etag() != rec.ID+"@"+rec.Modified.UTC().Format("2006-01-02T15:04:05.000000Z") &&
		rec.Etag() != mdapi.Etag(rec.ID, rec.Modified) {
		t.Errorf("etag %s", rec.Etag())
	}

	for _, tc := range []struct {
		name  string
		loc   mdapi.Locator
		check func(error) bool
		calls int
	}{
		{"missing object", loc(1, "nope"), func(err error) bool {
			var nf *mdapi.ObjectNotFoundError
			return errors.As(err, &nf) && errors.Is(err, rebalancer.ErrObjectNotFound) && !mdapi.IsTransient(err)
		}, 1},
		{"other vnode", loc(2, "dir/a b.txt"), func(err error) bool { return errors.Is(err, rebalancer.ErrObjectNotFound) }, 1},
		{"vnode the server lacks", loc(77, "dir/a b.txt"), func(err error) bool {
			var se *mdapi.ServerError
			return errors.As(err, &se) && se.Name == "PostgresError" && !se.InFrame &&
				strings.Contains(se.Message, `relation "manta_bucket_77.manta_bucket_object" does not exist`) && !mdapi.IsTransient(err)
		}, 1},
		{"bad owner", mdapi.Locator{Owner: "nobody", BucketID: bucket, Name: "a", Vnode: 1}, func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "not a UUID")
		}, 0},
		{"empty name", loc(1, ""), func(err error) bool { return err != nil && strings.Contains(err.Error(), "empty object name") }, 0},
		{"NUL in name", loc(1, "a\x00b"), func(err error) bool { return err != nil && strings.Contains(err.Error(), "NUL") }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetCalls()
			_, err := c.GetObject(ctxT(t), tc.loc)
			if !tc.check(err) {
				t.Errorf("GetObject: %v", err)
			}
			if n := srv.Calls("getobject"); n != tc.calls {
				t.Errorf("%d getobject calls, want %d", n, tc.calls)
			}
		})
	}
}

func TestUpdateObject(t *testing.T) {
	ctx := ctxT(t)
	srv, c := setup(t)
	obj := put(t, srv, 2, "o")
	rec, err := c.GetObject(ctx, loc(2, "o"))
	if err != nil {
		t.Fatal(err)
	}
	update := func(sharks []rebalancer.StorageNode, cond mdapi.Conditions) mdapi.Update {
		return mdapi.Update{Locator: loc(2, "o"), ID: rec.ID, ContentType: rec.ContentType,
			Headers: rec.Headers, Properties: rec.Properties, Sharks: sharks, Conditions: cond}
	}
	moved := []rebalancer.StorageNode{stor1, stor3}

	for _, tc := range []struct {
		name   string
		u      mdapi.Update
		check  func(*mdapi.Record, error) bool
		sharks []rebalancer.StorageNode // stored afterwards
	}{
		{"wrong id in if-match", update(moved, mdapi.Conditions{IfMatch: []string{uuid.NewString()}}),
			func(_ *mdapi.Record, err error) bool {
				var pf *mdapi.PreconditionFailedError
				return errors.As(err, &pf) && errors.Is(err, rebalancer.ErrEtagConflict) &&
					strings.Contains(pf.Err.Message, "didn't match etag '"+rec.ID+"'")
			}, obj.Sharks},
		{"modified since", update(moved, mdapi.Conditions{IfMatch: []string{rec.ID}, IfUnmodifiedSince: rec.Modified.Add(-time.Microsecond)}),
			func(_ *mdapi.Record, err error) bool {
				return errors.Is(err, rebalancer.ErrEtagConflict) && strings.Contains(err.Error(), "if-unmodified-since")
			}, obj.Sharks},
		{"another id, no condition", func() mdapi.Update {
			u := update(moved, mdapi.Conditions{})
			u.ID = uuid.NewString()
			return u
		}(), func(_ *mdapi.Record, err error) bool { return errors.Is(err, rebalancer.ErrObjectNotFound) }, obj.Sharks},
		{"conditions hold", update(moved, mdapi.Conditions{IfMatch: []string{rec.ID}, IfUnmodifiedSince: rec.Modified}),
			func(r *mdapi.Record, err error) bool {
				return err == nil && slices.Equal(r.Sharks, moved) && r.Modified.After(rec.Modified) &&
					string(r.Headers) == string(rec.Headers) && string(r.Properties) == string(rec.Properties) && r.ID == rec.ID
			}, moved},
		{"no sharks keeps them", update(nil, mdapi.Conditions{IfMatch: []string{rec.ID}}),
			func(r *mdapi.Record, err error) bool { return err == nil && slices.Equal(r.Sharks, moved) }, moved},
		{"a colon in a storage id", update([]rebalancer.StorageNode{stor1, {Datacenter: "dc1", MantaStorageID: "a:b"}}, mdapi.Conditions{}),
			func(_ *mdapi.Record, err error) bool {
				return err != nil && strings.Contains(err.Error(), "cannot store a ':'")
			}, moved},
		{"a float in the properties", func() mdapi.Update {
			u := update(moved, mdapi.Conditions{})
			u.Properties = json.RawMessage(`{"x":1.5}`)
			return u
		}(), func(_ *mdapi.Record, err error) bool {
			return err != nil && strings.Contains(err.Error(), "not an integer in the 64-bit range")
		}, moved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.UpdateObject(ctx, tc.u)
			if !tc.check(r, err) {
				t.Errorf("UpdateObject: %+v, %v", r, err)
			}
			got, err := srv.GetObject(ctx, 2, owner, bucket, "o")
			if err != nil || !slices.Equal(got.Sharks, tc.sharks) {
				t.Errorf("stored sharks %v (%v), want %v", got.Sharks, err, tc.sharks)
			}
		})
	}
	// The missing object, conditionally: not found, not a conflict.
	u := update(moved, mdapi.Conditions{IfMatch: []string{rec.ID}})
	u.Name = "gone"
	if _, err := c.UpdateObject(ctx, u); !errors.Is(err, rebalancer.ErrObjectNotFound) || errors.Is(err, rebalancer.ErrEtagConflict) {
		t.Errorf("update of a missing object: %v", err)
	}
}

// Upstream buckets-mdapi takes the update but ignores the sharks: the
// client must not report success.
func TestUpdateObjectUpstreamIgnoresSharks(t *testing.T) {
	ctx := ctxT(t)
	srv, c := setup(t, mdapitest.Options{Version: mdapitest.Upstream})
	put(t, srv, 0, "o")
	rec, err := c.GetObject(ctx, loc(0, "o"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UpdateObject(ctx, mdapi.Update{Locator: loc(0, "o"), ID: rec.ID, ContentType: rec.ContentType,
		Headers: rec.Headers, Properties: rec.Properties, Sharks: []rebalancer.StorageNode{stor3, stor2},
		Conditions: mdapi.Conditions{IfMatch: []string{rec.ID}}})
	var ue *mdapi.UnsupportedError
	if !errors.As(err, &ue) || !errors.Is(err, mdapi.ErrUnsupported) || !strings.Contains(err.Error(), "sharks in updateobject") {
		t.Fatalf("UpdateObject on upstream: %v", err)
	}
	got, _ := srv.GetObject(ctx, 0, owner, bucket, "o")
	if !slices.Equal(got.Sharks, []rebalancer.StorageNode{stor1, stor2}) {
		t.Errorf("upstream stored sharks %v", got.Sharks)
	}
}

func TestBatchUpdateObjects(t *testing.T) {
	ctx := ctxT(t)
	srv, c := setup(t)
	var updates []mdapi.Update
	for i, v := range []uint64{1, 1, 2, 3} {
		name := fmt.Sprintf("obj%d", i)
		put(t, srv, v, name)
		rec, err := c.GetObject(ctx, loc(v, name))
		if err != nil {
			t.Fatal(err)
		}
		updates = append(updates, mdapi.Update{Locator: loc(v, name), ID: rec.ID, ContentType: rec.ContentType,
			Headers: rec.Headers, Properties: rec.Properties, Sharks: []rebalancer.StorageNode{stor3, stor2},
			Conditions: mdapi.Conditions{IfMatch: []string{rec.ID}, IfUnmodifiedSince: rec.Modified}})
	}
	stored := func(i int) []rebalancer.StorageNode {
		u := updates[i]
		o, err := srv.GetObject(ctx, u.Vnode, owner, bucket, u.Name)
		if err != nil {
			t.Fatal(err)
		}
		return o.Sharks
	}

	// Object 1 (vnode 1) changed since it was read: vnode 1 fails as a
	// whole, vnodes 2 and 3 are updated.
	if _, err := srv.Modify(ctx, 1, owner, bucket, "obj1", func(o *mdapitest.Object) { o.ContentType = "text/csv" }); err != nil {
		t.Fatal(err)
	}
	err := c.BatchUpdateObjects(ctx, updates)
	var be *mdapi.BatchError
	if !errors.As(err, &be) || !errors.Is(err, rebalancer.ErrEtagConflict) || len(be.Failed) != 1 || be.Failed[0].Vnode != 1 ||
		!slices.Equal(be.Failed[0].Objects, []int{0, 1}) {
		t.Fatalf("batch with a stale object: %v (%+v)", err, be)
	}
	if be.FailedObject(0) == nil || be.FailedObject(1) == nil || be.FailedObject(2) != nil || be.FailedObject(3) != nil {
		t.Errorf("FailedObject: %v %v %v %v", be.FailedObject(0), be.FailedObject(1), be.FailedObject(2), be.FailedObject(3))
	}
	for i, want := range [][]rebalancer.StorageNode{{stor1, stor2}, {stor1, stor2}, {stor3, stor2}, {stor3, stor2}} {
		if got := stored(i); !slices.Equal(got, want) {
			t.Errorf("object %d: sharks %v, want %v", i, got, want)
		}
	}

	// The failed vnode again, without the stale object: all done.
	if err := c.BatchUpdateObjects(ctx, updates[:1]); err != nil {
		t.Fatal(err)
	}
	if got := stored(0); !slices.Equal(got, []rebalancer.StorageNode{stor3, stor2}) {
		t.Errorf("object 0: %v", got)
	}

	// A missing object fails its vnode with ObjectNotFound.
	gone := updates[2]
	gone.Name = "gone"
	gone.Conditions = mdapi.Conditions{}
	if err := c.BatchUpdateObjects(ctx, []mdapi.Update{gone}); !errors.Is(err, rebalancer.ErrObjectNotFound) {
		t.Errorf("batch with a missing object: %v", err)
	}

	srv.ResetCalls()
	if err := c.BatchUpdateObjects(ctx, nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
	if err := c.BatchUpdateObjects(ctx, make([]mdapi.Update, mdapi.MaxBatch+1)); err == nil || !strings.Contains(err.Error(), "limit of 1000") {
		t.Errorf("oversized batch: %v", err)
	}
	if n := srv.Calls("batchupdateobjects"); n != 0 {
		t.Errorf("%d calls for batches that need none", n)
	}
}

func TestUnsupportedRPCs(t *testing.T) {
	for _, v := range []mdapitest.Version{mdapitest.Upstream, mdapitest.ForkWithoutDiscovery} {
		t.Run(v.String(), func(t *testing.T) {
			ctx := ctxT(t)
			srv, c := setup(t, mdapitest.Options{Version: v})
			put(t, srv, 0, "o")
			rec, err := c.GetObject(ctx, loc(0, "o"))
			if err != nil {
				t.Fatal(err)
			}
			unsupported := func(err error) bool {
				var ue *mdapi.UnsupportedError
				var se *mdapi.ServerError
				return errors.As(err, &ue) && errors.Is(err, mdapi.ErrUnsupported) && errors.As(err, &se) && se.InFrame &&
					se.Name == "FastError" && strings.HasPrefix(se.Message, "Unsupported functon: ")
			}
			_, err = c.ListVnodes(ctx)
			if !unsupported(err) {
				t.Errorf("listvnodes: %v", err)
			}
			_, err = c.ListOwners(ctx, 0)
			if !unsupported(err) {
				t.Errorf("listowners: %v", err)
			}
			err = c.BatchUpdateObjects(ctx, []mdapi.Update{{Locator: loc(0, "o"), ID: rec.ID, ContentType: "text/plain",
				Sharks: []rebalancer.StorageNode{stor3, stor2}}})
			if got := unsupported(err); got != (v == mdapitest.Upstream) {
				t.Errorf("batchupdateobjects: %v", err)
			}
			// The connection is still good after each.
			if _, err := c.GetObject(ctx, loc(0, "o")); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestListVnodesAndOwners(t *testing.T) {
	ctx := ctxT(t)
	srv, c := setup(t, mdapitest.Options{Vnodes: []uint64{2, 10, 1}})
	vnodes, err := c.ListVnodes(ctx)
	if err != nil || !slices.Equal(vnodes, []uint64{1, 2, 10}) {
		t.Errorf("ListVnodes: %v, %v", vnodes, err)
	}
	for _, b := range []mdapitest.Bucket{{Vnode: 2, Owner: owner, Name: "b1"}, {Vnode: 2, Owner: owner, Name: "b2"}, {Vnode: 2, Owner: owner2, Name: "b1"}} {
		if _, err := srv.CreateBucket(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// An object in vnode 10 whose bucket's record is in vnode 2: vnode 10
	// has objects but no owners, which is why listowners alone cannot find
	// every object.
	put(t, srv, 10, "o")
	for _, tc := range []struct {
		vnode uint64
		want  []string
	}{{2, []string{owner2, owner}}, {1, nil}, {10, nil}} {
		got, err := c.ListOwners(ctx, tc.vnode)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ListOwners(%d): %v, %v; want %v", tc.vnode, got, err, tc.want)
		}
	}
	_, err = c.ListOwners(ctx, 3)
	var se *mdapi.ServerError
	if !errors.As(err, &se) || se.Name != "PostgresError" || se.Message != "vnode 3 does not exist on this mdapi instance" {
		t.Errorf("ListOwners of a missing vnode: %v", err)
	}
}

func TestListingAndPaging(t *testing.T) {
	ctx := ctxT(t)
	srv, c := setup(t)
	var names []string
	for i := range 25 {
		names = append(names, fmt.Sprintf("k%02d", i))
		put(t, srv, 3, names[i])
	}
	put(t, srv, 2, "elsewhere") // another vnode: not listed

	srv.ResetCalls()
	var got []string
	err := c.WalkObjects(ctx, owner, bucket, 3, 10, func(r *mdapi.Record) error {
		got = append(got, r.Name)
		return nil
	})
	if err != nil || !slices.Equal(got, names) {
		t.Errorf("WalkObjects: %v, %v", got, err)
	}
	if n := srv.Calls("listobjects"); n != 3 {
		t.Errorf("%d listobjects calls for 25 objects by 10", n)
	}
	// A page that ends exactly at the last object needs one more, empty.
	srv.ResetCalls()
	got = nil
	if err := c.WalkObjects(ctx, owner, bucket, 3, 5, func(r *mdapi.Record) error { got = append(got, r.Name); return nil }); err != nil || len(got) != 25 {
		t.Errorf("WalkObjects by 5: %d, %v", len(got), err)
	}
	if n := srv.Calls("listobjects"); n != 6 {
		t.Errorf("%d listobjects calls for 25 objects by 5", n)
	}
	// fn stops the walk.
	stop := errors.New("stop")
	if err := c.WalkObjects(ctx, owner, bucket, 3, 0, func(*mdapi.Record) error { return stop }); err != stop {
		t.Errorf("WalkObjects stopped: %v", err)
	}

	for _, tc := range []struct {
		opts mdapi.ListOptions
		want []string
		err  string
	}{
		{mdapi.ListOptions{Prefix: "k1"}, names[10:20], ""},
		{mdapi.ListOptions{Marker: "k22"}, names[23:], ""},
		{mdapi.ListOptions{Marker: "k05", Limit: 2}, names[6:8], ""},
		{mdapi.ListOptions{Prefix: "k_1"}, []string{"k01", "k11", "k21"}, ""}, // LIKE: '_' is any one character
		{mdapi.ListOptions{Prefix: "k", Limit: 1025}, nil, "limit 1025 is not in 1..1024"},
		{mdapi.ListOptions{Limit: -1}, nil, "limit -1"},
	} {
		recs, err := c.ListObjects(ctx, owner, bucket, 3, tc.opts)
		var got []string
		for _, r := range recs {
			got = append(got, r.Name)
		}
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) || !slices.Equal(got, tc.want) {
			t.Errorf("ListObjects(%+v): %v, %v", tc.opts, got, err)
		}
	}

	// Buckets page the same way.
	var bnames []string
	for i := range 7 {
		bnames = append(bnames, fmt.Sprintf("bucket-%d", i))
		if _, err := srv.CreateBucket(ctx, mdapitest.Bucket{Vnode: 0, Owner: owner, Name: bnames[i]}); err != nil {
			t.Fatal(err)
		}
	}
	var gotb []string
	if err := c.WalkBuckets(ctx, owner, 0, 3, func(b mdapi.Bucket) error { gotb = append(gotb, b.Name); return nil }); err != nil || !slices.Equal(gotb, bnames) {
		t.Errorf("WalkBuckets: %v, %v", gotb, err)
	}
	if bs, err := c.ListBuckets(ctx, owner2, 0, mdapi.ListOptions{}); err != nil || len(bs) != 0 {
		t.Errorf("ListBuckets of another owner: %v, %v", bs, err)
	}
}

// Every request carries a fresh request_id, every object of a batch too.
func TestRequestIDs(t *testing.T) {
	ctx := ctxT(t)
	srv, c := setup(t)
	put(t, srv, 0, "o")
	var mu sync.Mutex
	seen := map[string]int{}
	srv.SetHook(func(r mdapitest.Request) mdapitest.Action {
		var p struct {
			RequestID string `json:"request_id"`
			Objects   []struct {
				RequestID string `json:"request_id"`
			} `json:"objects"`
		}
		if err := json.Unmarshal(r.Payload, &p); err != nil {
			t.Errorf("%s payload: %v", r.Method, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range append([]string{p.RequestID}, func() (ids []string) {
			for _, o := range p.Objects {
				ids = append(ids, o.RequestID)
			}
			return ids
		}()...) {
			if uuid.Validate(id) != nil {
				t.Errorf("%s: request_id %q", r.Method, id)
			}
			seen[id]++
		}
		return mdapitest.Action{}
	})
	rec, err := c.GetObject(ctx, loc(0, "o"))
	if err != nil {
		t.Fatal(err)
	}
	c.GetObject(ctx, loc(0, "o"))
	u := mdapi.Update{Locator: loc(0, "o"), ID: rec.ID, ContentType: rec.ContentType}
	c.BatchUpdateObjects(ctx, []mdapi.Update{u, u})
	c.ListVnodes(ctx)
	if len(seen) != 6 {
		t.Errorf("%d distinct request ids for 6, %v", len(seen), seen)
	}
}

// Payloads are byte for byte what serde_json writes back, whatever the
// names, headers and properties hold: the strict server fails the test on
// any frame it would have lost track of.
func TestPayloadExactness(t *testing.T) {
	ctx := ctxT(t)
	srv, c := setup(t)
	names := []string{
		"plain", "spaces and \"quotes\" and \\backslashes\\", "tab\there\nnewline\r\b\f\x01\x1f\x7f",
		"line\u2028separator\u2029", "emoji 😀 and é", "slash/and</script>&amp;", "%_like_%",
	}
	for _, name := range names {
		o, err := srv.PutObject(ctx, mdapitest.Object{Vnode: 1, Owner: owner, BucketID: bucket, Name: name, ContentMD5: "",
			ContentType: "text/\u2028weird\"", Headers: map[string]*string{name: str(name), "n": nil},
			Sharks: []rebalancer.StorageNode{stor1}, Properties: []byte(`{"b": -0, "a": [1, -2, 18446744073709551615, -9223372036854775808], "s": "\u2028\ud83d\ude00\/"}`)})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := c.GetObject(ctx, loc(1, name))
		if err != nil || rec.Name != name || rec.ID != o.ID {
			t.Fatalf("GetObject(%q): %+v, %v", name, rec, err)
		}
		after, err := c.UpdateObject(ctx, mdapi.Update{Locator: loc(1, name), ID: rec.ID, ContentType: rec.ContentType,
			Headers: rec.Headers, Properties: rec.Properties, Sharks: []rebalancer.StorageNode{stor2},
			Conditions: mdapi.Conditions{IfMatch: []string{rec.ID, "*"}, IfUnmodifiedSince: rec.Modified}})
		if err != nil {
			t.Fatalf("UpdateObject(%q): %v", name, err)
		}
		if after.ContentType != rec.ContentType || string(after.Headers) != string(rec.Headers) || string(after.Properties) != string(rec.Properties) {
			t.Errorf("%q changed: %+v -> %+v", name, rec, after)
		}
		recs, err := c.ListObjects(ctx, owner, bucket, 1, mdapi.ListOptions{Prefix: name, Marker: "\u2028"})
		if err != nil {
			t.Errorf("ListObjects(%q): %v", name, err)
		}
		_ = recs
	}
	if v := srv.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
}

// Many requests at once share the client's two connections; the server
// answers each connection's requests in order.
func TestConcurrentRequests(t *testing.T) {
	ctx := ctxT(t)
	srv, c := setup(t)
	for i := range 10 {
		put(t, srv, 0, fmt.Sprintf("o%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			name := fmt.Sprintf("o%d", i%10)
			rec, err := c.GetObject(ctx, loc(0, name))
			if err == nil && rec.Name != name {
				err = fmt.Errorf("asked for %s, got %s", name, rec.Name)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := srv.Calls("getobject"); n != 100 {
		t.Errorf("%d getobject calls", n)
	}
	if n := srv.Conns(); n > 2 {
		t.Errorf("%d connections for a client of 2", n)
	}
}
