package rebalancertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// MetadataHarness is a MetadataStore under test, over the shards its
// factory was given, with what the suite needs beyond the interface.
type MetadataHarness struct {
	// Store is the implementation under test. When it is also a
	// rebalancer.BatchMetadataStore, batches are checked too.
	Store rebalancer.MetadataStore
	// Delete, when set, deletes the record stored under key on shard
	// behind the store's back, as a client deleting the object would.
	// Without it the check of updates to deleted objects is skipped.
	Delete func(shard int, key string)
}

// TestMetadataStore checks a rebalancer.MetadataStore (and a
// rebalancer.BatchMetadataStore) against the interface's contract.
// newStore stores the given shards' records in a fresh backend and returns
// the store over them; it is called once. Every record's value is a v1
// object's metadata (see ObjectValue), some with unknown members, non-ASCII
// text and numbers that a round trip through a struct would change; the
// same key is stored on two shards, holding two different objects.
//
// The checks, each a subtest:
//
//   - GetObject returns the object stored under the key on that shard, with
//     its Key, Shard, ID, Owner, Sharks, a non-empty Etag and its value as
//     Metadata; an unknown key gives an error wrapping ErrObjectNotFound
//     and naming the key;
//   - ReplaceShark writes exactly rebalancer.ReplaceShark of the value it
//     was given (the moved shark's entry changes, no other byte does) and
//     returns the new etag, which GetObject then reports; the same key on
//     another shard is untouched;
//   - a ReplaceShark whose object changed since it was read fails with an
//     error wrapping ErrEtagConflict and writes nothing; so does one
//     without an etag; of two concurrent writers holding the same etag,
//     exactly one wins; writers of different objects do not interfere;
//   - ReplaceShark of a shark the value does not list fails with an error
//     wrapping ErrSharkNotListed and writes nothing;
//   - given Delete, ReplaceShark of a deleted object fails (ErrEtagConflict
//     or ErrObjectNotFound) and does not bring it back;
//   - for a BatchMetadataStore, ReplaceSharks writes every object of the
//     batch and returns their etags in order, or, when one object changed,
//     fails with ErrEtagConflict and writes none.
//
// Use it from the implementation's tests:
//
//	func TestConformance(t *testing.T) {
//		rebalancertest.TestMetadataStore(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.MetadataHarness {
//			srv := startTestServer(t)
//			for _, s := range shards {
//				for _, o := range s.Objects {
//					srv.Put(s.Number, o.Key, o.Value)
//				}
//			}
//			return rebalancertest.MetadataHarness{Store: NewStore(srv.Addr()), Delete: srv.Delete}
//		})
//	}
func TestMetadataStore(t *testing.T, newStore func(t *testing.T, shards []Shard) MetadataHarness) {
	shards := metadataFixture()
	h := newStore(t, shards)
	if h.Store == nil {
		t.Fatal("the harness has no Store")
	}
	st := h.Store
	ctx := context.Background()
	key := func(shard, i int) string { return shards[shard-1].Objects[i].Key }
	get := func(t *testing.T, shard int, key string) rebalancer.Object {
		t.Helper()
		o, err := st.GetObject(ctx, shard, key)
		if err != nil {
			t.Fatalf("GetObject(%d, %s): %v", shard, key, err)
		}
		return o
	}
	// unchanged checks that the object is still as it was read.
	unchanged := func(t *testing.T, before rebalancer.Object, what string) {
		t.Helper()
		now := get(t, before.Shard, before.Key)
		if now.Etag != before.Etag || !bytes.Equal(now.Metadata, before.Metadata) {
			t.Errorf("%s wrote shard %d %s: etag %s -> %s, metadata\n%s\n->\n%s", what, before.Shard, before.Key,
				before.Etag, now.Etag, before.Metadata, now.Metadata)
		}
	}
	dest := SharkNode(9)

	t.Run("GetObject reads the stored object", func(t *testing.T) {
		for _, s := range shards {
			for _, so := range s.Objects {
				o := get(t, s.Number, so.Key)
				want, err := rebalancer.ParseObject(so.Value)
				if err != nil {
					t.Fatalf("fixture %s: %v", so.Key, err)
				}
				if o.Key != so.Key || o.Shard != s.Number || o.Etag == "" || o.ID != want.ID || o.Owner != want.Owner ||
					!slices.Equal(o.Sharks, want.Sharks) || o.ContentLength != want.ContentLength {
					t.Errorf("GetObject(%d, %s) = key %q shard %d etag %q id %q owner %q sharks %v length %d, want %q %d (some etag) %q %q %v %d",
						s.Number, so.Key, o.Key, o.Shard, o.Etag, o.ID, o.Owner, o.Sharks, o.ContentLength,
						so.Key, s.Number, want.ID, want.Owner, want.Sharks, want.ContentLength)
				}
				if !sameJSON(o.Metadata, so.Value) {
					t.Errorf("GetObject(%d, %s): metadata\n%s\nwant the stored value\n%s", s.Number, so.Key, o.Metadata, so.Value)
				}
			}
		}
		missing := fmt.Sprintf("/%s/stor/rebalancertest/never-written", Owner)
		_, err := st.GetObject(ctx, 1, missing)
		if !errors.Is(err, rebalancer.ErrObjectNotFound) || !strings.Contains(err.Error(), missing) {
			t.Errorf("GetObject of a missing key = %v, want ErrObjectNotFound naming the key", err)
		}
	})

	t.Run("ReplaceShark changes the moved entry and nothing else", func(t *testing.T) {
		for _, i := range []int{0, 1, 2} { // plain, rich (unknown members, unicode, big numbers), shark listed last
			o := get(t, 1, key(1, i))
			other := get(t, 2, key(2, 0))
			etag, err := st.ReplaceShark(ctx, o, Shark, dest)
			if err != nil {
				t.Fatalf("ReplaceShark(%s): %v", o.Key, err)
			}
			want, err := rebalancer.ReplaceShark(o.Metadata, Shark, dest)
			if err != nil {
				t.Fatal(err)
			}
			now := get(t, 1, o.Key)
			if !bytes.Equal(now.Metadata, want) {
				t.Errorf("after ReplaceShark(%s) the metadata is\n%s\nwant\n%s", o.Key, now.Metadata, want)
			}
			if etag == "" || etag == o.Etag || now.Etag != etag {
				t.Errorf("ReplaceShark(%s) returned etag %q (was %q); GetObject now says %q", o.Key, etag, o.Etag, now.Etag)
			}
			if now.HasShark(Shark) || !now.HasShark(dest.MantaStorageID) {
				t.Errorf("after ReplaceShark(%s) sharks are %v", o.Key, now.Sharks)
			}
			if key(1, i) == key(2, 0) {
				unchanged(t, other, "ReplaceShark on shard 1")
			}
		}
	})

	t.Run("ReplaceShark is conditional on the etag", func(t *testing.T) {
		o := get(t, 1, key(1, 3))
		etag, err := st.ReplaceShark(ctx, o, Shark, dest)
		if err != nil {
			t.Fatal(err)
		}
		written := get(t, 1, o.Key)
		// o is stale now: its other copy's move must not go through.
		_, err = st.ReplaceShark(ctx, o, SharkNode(2).MantaStorageID, SharkNode(8))
		if !errors.Is(err, rebalancer.ErrEtagConflict) {
			t.Errorf("ReplaceShark with a stale etag = %v, want ErrEtagConflict", err)
		}
		if err != nil && !strings.Contains(err.Error(), o.Key) {
			t.Errorf("the conflict %q does not name the object %s", err, o.Key)
		}
		unchanged(t, written, "ReplaceShark with a stale etag")
		if written.Etag != etag {
			t.Errorf("etag %s, want %s as the write returned", written.Etag, etag)
		}

		noEtag := get(t, 1, key(1, 4))
		before := noEtag
		noEtag.Etag = ""
		if _, err := st.ReplaceShark(ctx, noEtag, Shark, dest); err == nil {
			t.Error("ReplaceShark without an etag succeeded: it would undo a concurrent change")
		}
		unchanged(t, before, "ReplaceShark without an etag")
	})

	t.Run("of two writers with the same etag one wins", func(t *testing.T) {
		o := get(t, 1, key(1, 5))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, to := range []rebalancer.StorageNode{SharkNode(7), SharkNode(8)} {
			wg.Go(func() { _, errs[i] = st.ReplaceShark(ctx, o, Shark, to) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, rebalancer.ErrEtagConflict):
				t.Errorf("the losing writer got %v, want ErrEtagConflict", err)
			}
		}
		if won != 1 {
			t.Errorf("%d of 2 writers holding the same etag succeeded: %v", won, errs)
		}
	})

	t.Run("writers of different objects do not interfere", func(t *testing.T) {
		var objs []rebalancer.Object
		for i := 6; i < 16; i++ {
			objs = append(objs, get(t, 1+i%2, key(1+i%2, i)))
		}
		var wg sync.WaitGroup
		errs := make([]error, len(objs))
		for i, o := range objs {
			wg.Go(func() { _, errs[i] = st.ReplaceShark(ctx, o, Shark, dest) })
		}
		wg.Wait()
		for i, o := range objs {
			if errs[i] != nil {
				t.Errorf("concurrent ReplaceShark(%s): %v", o.Key, errs[i])
				continue
			}
			want, _ := rebalancer.ReplaceShark(o.Metadata, Shark, dest)
			if now := get(t, o.Shard, o.Key); !bytes.Equal(now.Metadata, want) {
				t.Errorf("after concurrent ReplaceShark(%s) the metadata is\n%s\nwant\n%s", o.Key, now.Metadata, want)
			}
		}
	})

	t.Run("ReplaceShark of an unlisted shark", func(t *testing.T) {
		o := get(t, 2, key(2, 16))
		_, err := st.ReplaceShark(ctx, o, SharkNode(6).MantaStorageID, dest)
		if !errors.Is(err, rebalancer.ErrSharkNotListed) {
			t.Errorf("ReplaceShark of a shark the object does not list = %v, want ErrSharkNotListed", err)
		}
		unchanged(t, o, "ReplaceShark of an unlisted shark")
	})

	t.Run("ReplaceShark of a deleted object", func(t *testing.T) {
		if h.Delete == nil {
			t.Skip("the harness has no Delete")
		}
		o := get(t, 2, key(2, 17))
		h.Delete(2, o.Key)
		_, err := st.ReplaceShark(ctx, o, Shark, dest)
		if !errors.Is(err, rebalancer.ErrEtagConflict) && !errors.Is(err, rebalancer.ErrObjectNotFound) {
			t.Errorf("ReplaceShark of a deleted object = %v, want ErrEtagConflict or ErrObjectNotFound", err)
		}
		if _, err := st.GetObject(ctx, 2, o.Key); !errors.Is(err, rebalancer.ErrObjectNotFound) {
			t.Errorf("after ReplaceShark of a deleted object, GetObject = %v, want ErrObjectNotFound", err)
		}
	})

	t.Run("batches are all or nothing", func(t *testing.T) {
		bst, ok := st.(rebalancer.BatchMetadataStore)
		if !ok {
			t.Skip("the store is not a BatchMetadataStore")
		}
		batch := func(first int) []rebalancer.SharkReplacement {
			var reps []rebalancer.SharkReplacement
			for i := first; i < first+3; i++ {
				reps = append(reps, rebalancer.SharkReplacement{Object: get(t, 1, key(1, i)), From: Shark, To: SharkNode(10 + i)})
			}
			return reps
		}
		reps := batch(18)
		etags, err := bst.ReplaceSharks(ctx, 1, reps)
		if err != nil {
			t.Fatalf("ReplaceSharks: %v", err)
		}
		if len(etags) != len(reps) {
			t.Fatalf("ReplaceSharks returned %d etags for %d objects", len(etags), len(reps))
		}
		for i, r := range reps {
			want, _ := rebalancer.ReplaceShark(r.Object.Metadata, r.From, r.To)
			now := get(t, 1, r.Object.Key)
			if !bytes.Equal(now.Metadata, want) || now.Etag != etags[i] || etags[i] == r.Object.Etag {
				t.Errorf("batch object %d (%s): etag %s (returned %s, was %s), metadata\n%s\nwant\n%s", i, r.Object.Key,
					now.Etag, etags[i], r.Object.Etag, now.Metadata, want)
			}
		}

		reps = batch(21)
		// The middle object changes after it was read.
		if _, err := st.ReplaceShark(ctx, reps[1].Object, SharkNode(2).MantaStorageID, SharkNode(7)); err != nil {
			t.Fatal(err)
		}
		changed := get(t, 1, reps[1].Object.Key)
		_, err = bst.ReplaceSharks(ctx, 1, reps)
		if !errors.Is(err, rebalancer.ErrEtagConflict) {
			t.Errorf("ReplaceSharks with a stale object = %v, want ErrEtagConflict", err)
		}
		unchanged(t, reps[0].Object, "a failed batch")
		unchanged(t, changed, "a failed batch")
		unchanged(t, reps[2].Object, "a failed batch")
	})
}

// metadataFixture is what TestMetadataStore stores: 24 objects on each of
// shards 1 and 2, each listing Shark and SharkNode(2). Object 0 has the
// same key on both shards; object 1 is rich (members a struct round trip
// would drop or change); object 2 lists Shark last.
func metadataFixture() []Shard {
	shards := []Shard{{Number: 1}, {Number: 2}}
	for si := range shards {
		s := &shards[si]
		for i := range 24 {
			key := fmt.Sprintf("/%s/stor/rebalancertest/md/%d/o%02d", Owner, s.Number, i)
			extra := ""
			sharks := []rebalancer.StorageNode{SharkNode(1), SharkNode(2)}
			switch i {
			case 0:
				key = fmt.Sprintf("/%s/stor/rebalancertest/md/same-key", Owner)
			case 1:
				key = fmt.Sprintf("/%s/stor/rebalancertest/md/%d/ünïcødé ☃ \"q\" <&>", Owner, s.Number)
				extra = `"x-unknown":{"z":1,"a":[1.5,"two",null,true,{}],"big":9007199254740991,"neg":-7,"esc":"tab\tnl\n\u2028"},"x-note":"café"`
			case 2:
				sharks = []rebalancer.StorageNode{SharkNode(2), SharkNode(1)}
			}
			id := fmt.Sprintf("%08x-2222-4000-8000-%012d", s.Number, i)
			s.Objects = append(s.Objects, StoredObject{Key: key, Value: ObjectValue(key, id, int64(100*i), extra, sharks...)})
		}
	}
	return shards
}
