package rebalancertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// SourceHarness is an ObjectSource under test, over the shards its
// factory was given, with what the suite needs beyond the interface.
type SourceHarness struct {
	// Source is the implementation under test.
	Source rebalancer.ObjectSource
	// Etag, when set, returns the etag the backend holds for the record
	// stored under key on shard; every visited object's Etag must equal
	// it, since metadata updates are conditional on it.
	Etag func(shard int, key string) string
	// Break, when set, makes every later read of shard fail, as an
	// unreachable shard or a dropped table would. Without it the check
	// that failures name their shard is skipped.
	Break func(shard int)
	// IgnoresAfter says the source does not resume: it may ignore
	// DiscoverRequest.After and visit objects again (consumers deduplicate
	// them). The resume checks then only require that nothing is lost.
	IgnoresAfter bool
	// Rescans says the source resumes by scanning again, from its start,
	// the part of a shard its checkpoint is in (a buckets-mdapi vnode,
	// whose rows have no id to resume after): objects visited before the
	// checkpoint may be visited again, with ScanIDs above it (consumers
	// deduplicate them), but nothing is visited at or below it.
	Rescans bool
	// Visited, when set, says what the object visited for a stored record
	// looks like, for a source whose backend keeps records in a form of its
	// own (buckets-mdapi rows, which the harness makes from the v1 values
	// it is given): its Key and Metadata. Without it they are the record's
	// Key and Value. The other fields checked (ID, Owner, Sharks, length)
	// are rebalancer.ParseObject's of that Metadata.
	Visited func(shard int, stored StoredObject) (key string, metadata json.RawMessage)
	// CheckpointKey, when set, is the key under which the source expects
	// an object's checkpoint in DiscoverRequest.After, for a source whose
	// objects of different kinds share shard numbers
	// (sharkspotter.CheckpointShard). Without it the key is Object.Shard.
	// ScanIDs must ascend per key.
	CheckpointKey func(rebalancer.Object) int
}

// checkpoint returns the checkpoint key of o.
func (h SourceHarness) checkpoint(o rebalancer.Object) int {
	if h.CheckpointKey != nil {
		return h.CheckpointKey(o)
	}
	return o.Shard
}

// expected returns, keyed by where each is visited, the objects of want as
// the source visits them.
func (h SourceHarness) expected(want map[place]StoredObject) map[place]StoredObject {
	if h.Visited == nil {
		return want
	}
	out := make(map[place]StoredObject, len(want))
	for p, so := range want {
		key, meta := h.Visited(p.shard, so)
		out[place{p.shard, key}] = StoredObject{Key: key, Value: meta, Malformed: so.Malformed}
	}
	return out
}

// TestObjectSource checks a rebalancer.ObjectSource against the
// interface's contract. newSource stores the given shards' records in a
// fresh backend and returns the source over them; it is called a few
// times, once per fixture. Every record's value is a v1 object's metadata
// (see ObjectValue), which a harness for another kind of metadata stores
// in its own form, saying with Visited what the source makes of it; the
// suite discovers Shark.
//
// The checks, each a subtest:
//
//   - every object listing Shark is visited exactly once, also one listing
//     it twice, and no other (not one naming it elsewhere in its value, nor
//     a shark whose id merely contains it), with its Shard, Key, ID, Owner,
//     Sharks, Metadata (the stored value) and, given Etag, its etag;
//   - visit is never called concurrently, and each shard's ScanIDs ascend;
//   - a scan stopped part way resumes from the highest ScanID visited per
//     shard (DiscoverRequest.After): nothing lost, nothing at or below the
//     checkpoint visited again (a harness sets Rescans for a source that
//     visits again, above the checkpoint, what it visited below it, and
//     CheckpointKey for one whose checkpoints are not keyed by shard);
//   - an error from visit ends Discover, which returns it (errors.Is), and
//     visit is not called again;
//   - a cancelled context ends Discover with an error matching ctx.Err(),
//     and visit is not called once it is cancelled;
//   - given Break, a shard that cannot be read makes Discover fail with an
//     error naming the shard ("shard N");
//   - a record that names the shark but is not a usable object makes
//     Discover fail with an error naming its shard: skipping it silently
//     would leave data on a shark about to be retired.
//
// Use it from the implementation's tests:
//
//	func TestConformance(t *testing.T) {
//		rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
//			db := newTestDatabase(t)
//			for _, s := range shards {
//				for _, o := range s.Objects {
//					db.Insert(s.Number, o.Key, o.Value)
//				}
//			}
//			return rebalancertest.SourceHarness{Source: &MySource{DB: db}, Etag: db.Etag}
//		})
//	}
func TestObjectSource(t *testing.T, newSource func(t *testing.T, shards []Shard) SourceHarness) {
	shards, want := sourceFixture()
	h := newSource(t, shards)
	if h.Source == nil {
		t.Fatal("the harness has no Source")
	}
	ctx := context.Background()
	req := rebalancer.DiscoverRequest{Shark: Shark}

	newVisits := func(t *testing.T) *visits { return &visits{t: t, lastID: map[int]int64{}, key: h.checkpoint} }
	want = h.expected(want)

	t.Run("visits every object on the shark once", func(t *testing.T) {
		c := newVisits(t)
		if err := h.Source.Discover(ctx, req, c.visit); err != nil {
			t.Fatalf("Discover: %v", err)
		}
		c.check(want, h.Etag)
	})

	t.Run("resumes after the checkpoints", func(t *testing.T) {
		stop := errors.New("stop here")
		var all []rebalancer.Object
		after := map[int]int64{}
		for _, n := range []int{5, 11, 0} {
			c := newVisits(t)
			c.stopAt, c.stopErr = n, stop
			err := h.Source.Discover(ctx, rebalancer.DiscoverRequest{Shark: Shark, After: maps.Clone(after)}, c.visit)
			if n > 0 && !errors.Is(err, stop) || n == 0 && err != nil {
				t.Fatalf("Discover stopping after %d objects: %v", n, err)
			}
			for _, o := range c.objs {
				k := h.checkpoint(o)
				if !h.IgnoresAfter && o.ScanID <= after[k] {
					t.Errorf("shard %d: %s (ScanID %d) visited again after resuming from %d", o.Shard, o.Key, o.ScanID, after[k])
				}
				after[k] = max(after[k], o.ScanID)
			}
			all = append(all, c.objs...)
		}
		if h.IgnoresAfter || h.Rescans {
			all = dedupe(all)
		}
		c := newVisits(t)
		c.objs = all
		c.check(want, nil)

		// From the end of every shard, nothing is left.
		c = newVisits(t)
		if err := h.Source.Discover(ctx, rebalancer.DiscoverRequest{Shark: Shark, After: after}, c.visit); err != nil {
			t.Fatalf("Discover after the last objects: %v", err)
		}
		switch {
		case len(c.objs) == 0 || h.IgnoresAfter:
		case h.Rescans:
			seen := map[place]bool{}
			for _, o := range all {
				seen[place{o.Shard, o.Key}] = true
			}
			for _, o := range c.objs {
				if !seen[place{o.Shard, o.Key}] {
					t.Errorf("shard %d: %s visited only after the last checkpoints", o.Shard, o.Key)
				}
			}
		default:
			t.Errorf("%d objects visited after the last checkpoints, e.g. shard %d %s", len(c.objs), c.objs[0].Shard, c.objs[0].Key)
		}
	})

	t.Run("visit's error is returned", func(t *testing.T) {
		stop := errors.New("visit failed")
		c := newVisits(t)
		c.stopAt, c.stopErr = 3, stop
		err := h.Source.Discover(ctx, req, c.visit)
		if !errors.Is(err, stop) {
			t.Errorf("Discover = %v, want visit's error", err)
		}
		if len(c.objs) != 3 {
			t.Errorf("visit called %d times; it returned an error on call 3", len(c.objs))
		}
	})

	t.Run("cancellation ends the scan", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		c := newVisits(t)
		c.onVisit = func(n int) {
			if n == 4 {
				cancel()
			}
		}
		err := h.Source.Discover(cctx, req, c.visit)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Discover = %v, want context.Canceled", err)
		}
		if len(c.objs) != 4 {
			t.Errorf("visit called %d times; the context was cancelled during call 4", len(c.objs))
		}

		c = newVisits(t)
		if err := h.Source.Discover(cctx, req, c.visit); !errors.Is(err, context.Canceled) || len(c.objs) > 0 {
			t.Errorf("Discover with a cancelled context: %v after %d visits, want context.Canceled and none", err, len(c.objs))
		}
	})

	t.Run("an unreadable shard is reported by number", func(t *testing.T) {
		h := newSource(t, shards)
		newVisits := func(t *testing.T) *visits { return &visits{t: t, lastID: map[int]int64{}, key: h.checkpoint} }
		if h.Break == nil {
			t.Skip("the harness has no Break")
		}
		h.Break(2)
		c := newVisits(t)
		err := h.Source.Discover(ctx, req, c.visit)
		if err == nil {
			t.Fatal("Discover succeeded with shard 2 unreadable")
		}
		if !namesShard(err, 2) {
			t.Errorf("Discover = %q, which does not name shard 2", err)
		}
		for _, o := range c.objs {
			if o.Shard == 2 {
				t.Errorf("visited %s of the unreadable shard 2", o.Key)
				break
			}
		}
	})

	t.Run("an unusable record naming the shark is reported", func(t *testing.T) {
		bad := slices.Clone(shards)
		key := fmt.Sprintf("/%s/stor/rebalancertest/no-object-id", Owner)
		value := fmt.Sprintf(`{"key":%q,"owner":%q,"type":"object","sharks":[{"datacenter":%q,"manta_storage_id":%q}]}`,
			key, Owner, Datacenter, Shark)
		last := len(bad) - 1
		bad[last].Objects = append(slices.Clone(bad[last].Objects), StoredObject{Key: key, Value: []byte(value), Malformed: true})
		h := newSource(t, bad)
		c := &visits{t: t, lastID: map[int]int64{}, key: h.checkpoint}
		err := h.Source.Discover(ctx, req, c.visit)
		if err == nil {
			t.Fatalf("Discover succeeded over %s, which names the shark but has no objectId", key)
		}
		if n := bad[last].Number; !namesShard(err, n) {
			t.Errorf("Discover = %q, which does not name shard %d", err, n)
		}
	})
}

// sourceFixture is the content of the shards TestObjectSource scans, and
// the objects on Shark among them.
func sourceFixture() ([]Shard, map[place]StoredObject) {
	shards := []Shard{{Number: 1}, {Number: 2}, {Number: 3}, {Number: 5}}
	want := map[place]StoredObject{}
	other := []rebalancer.StorageNode{SharkNode(2), SharkNode(3), SharkNode(4)}
	lookalike := []rebalancer.StorageNode{SharkNode(11), {Datacenter: Datacenter, MantaStorageID: Shark + ".evil"}}
	for si := range shards[:3] {
		s := &shards[si]
		for i := range 40 {
			key := fmt.Sprintf("/%s/stor/rebalancertest/%d/o%02d", Owner, s.Number, i)
			id := fmt.Sprintf("%08x-0000-4000-8000-%012d", s.Number, i)
			var sharks []rebalancer.StorageNode
			extra := ""
			on := true
			switch {
			case i%7 == 3:
				sharks = []rebalancer.StorageNode{SharkNode(1), SharkNode(1)} // listed twice: visited once
			case i%3 == 0:
				sharks = []rebalancer.StorageNode{SharkNode(1), other[i%3]}
			case i%5 == 0:
				sharks = []rebalancer.StorageNode{other[i%3], SharkNode(1)}
			case i%11 == 1:
				sharks, on = lookalike, false
			case i%13 == 2:
				sharks, on = []rebalancer.StorageNode{other[0], other[1]}, false
				extra = `"m-copied-from":"` + Shark + `"`
			case i%17 == 4:
				sharks, on = nil, false // an empty object has no copies
			case i == 19:
				key = fmt.Sprintf("/%s/stor/rebalancertest/%d/ünïcødé ☃ 'q' \"dq\" <&>", Owner, s.Number)
				extra = `"x-unknown":{"nested":[1,2.5,"three",null,true],"big":9007199254740991}`
				sharks = []rebalancer.StorageNode{other[2], SharkNode(1)}
			default:
				sharks, on = []rebalancer.StorageNode{other[i%3], other[(i+1)%3]}, false
			}
			o := StoredObject{Key: key, Value: ObjectValue(key, id, int64(1000+i), extra, sharks...)}
			s.Objects = append(s.Objects, o)
			if on {
				want[place{s.Number, key}] = o
			}
		}
	}
	// The same key on two shards is two objects.
	for _, n := range []int{1, 2} {
		key := fmt.Sprintf("/%s/stor/rebalancertest/on-two-shards", Owner)
		id := fmt.Sprintf("%08x-1111-4000-8000-000000000000", n)
		o := StoredObject{Key: key, Value: ObjectValue(key, id, 5, "", SharkNode(2), SharkNode(1))}
		shards[n-1].Objects = append(shards[n-1].Objects, o)
		want[place{n, key}] = o
	}
	// Shard 5 is empty.
	return shards, want
}

// visits collects what Discover visits and checks how it was called.
type visits struct {
	t       *testing.T
	in      atomic.Bool
	key     func(rebalancer.Object) int // the checkpoint key
	lastID  map[int]int64               // by checkpoint key
	objs    []rebalancer.Object
	stopAt  int   // > 0: visit returns stopErr on this call
	stopErr error // and is not to be called again
	onVisit func(n int)
	done    bool
}

func (c *visits) visit(o rebalancer.Object) error {
	if !c.in.CompareAndSwap(false, true) {
		c.t.Error("visit called concurrently")
	}
	defer c.in.Store(false)
	if c.done {
		c.t.Errorf("visit called again (shard %d %s) after it returned an error", o.Shard, o.Key)
	}
	k := c.key(o)
	if prev, ok := c.lastID[k]; ok && o.ScanID <= prev {
		c.t.Errorf("shard %d: ScanID %d (%s) visited after ScanID %d", o.Shard, o.ScanID, o.Key, prev)
	}
	c.lastID[k] = o.ScanID
	c.objs = append(c.objs, o)
	if c.onVisit != nil {
		c.onVisit(len(c.objs))
	}
	if c.stopAt > 0 && len(c.objs) == c.stopAt {
		c.done = true
		return c.stopErr
	}
	return nil
}

// check compares the objects visited with want.
func (c *visits) check(want map[place]StoredObject, etag func(int, string) string) {
	t := c.t
	t.Helper()
	seen := map[place]bool{}
	for _, o := range c.objs {
		p := place{o.Shard, o.Key}
		if seen[p] {
			t.Errorf("%s visited twice", p)
			continue
		}
		seen[p] = true
		w, ok := want[p]
		if !ok {
			t.Errorf("%s visited, but it does not list %s", p, Shark)
			continue
		}
		exp, err := rebalancer.ParseObject(w.Value)
		if err != nil {
			t.Fatalf("fixture %s: %v", p, err)
		}
		if o.ID != exp.ID || o.Owner != exp.Owner || !slices.Equal(o.Sharks, exp.Sharks) || o.ContentLength != exp.ContentLength {
			t.Errorf("%s: id %q owner %q sharks %v length %d, want %q %q %v %d", p, o.ID, o.Owner, o.Sharks, o.ContentLength,
				exp.ID, exp.Owner, exp.Sharks, exp.ContentLength)
		}
		if !sameJSON(o.Metadata, w.Value) {
			t.Errorf("%s: metadata\n%s\nwant the stored value\n%s", p, o.Metadata, w.Value)
		}
		if o.ScanID <= 0 {
			t.Errorf("%s: ScanID %d, want a positive id to resume from", p, o.ScanID)
		}
		if etag != nil {
			if e := etag(o.Shard, o.Key); o.Etag != e {
				t.Errorf("%s: etag %q, want %q as stored", p, o.Etag, e)
			}
		}
	}
	var missing []string
	for p := range want {
		if !seen[p] {
			missing = append(missing, p.String())
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("%d objects on %s not visited: %v", len(missing), Shark, missing)
	}
}

// dedupe keeps the first visit of each object.
func dedupe(objs []rebalancer.Object) []rebalancer.Object {
	seen := map[place]bool{}
	var out []rebalancer.Object
	for _, o := range objs {
		if p := (place{o.Shard, o.Key}); !seen[p] {
			seen[p] = true
			out = append(out, o)
		}
	}
	return out
}
