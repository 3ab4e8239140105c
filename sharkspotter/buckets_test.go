package sharkspotter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// The buckets scanners are tested here, table-driven over both:
// BucketsPostgresScanner reading the databases of mdapitest servers (laid
// out as buckets-mdapi lays them out) and BucketsMdapiScanner asking the
// same servers over Fast.

const (
	v2Owner  = "61368287-aa5b-6c0f-f3a9-931a228215e4"
	v2Owner2 = "0c0ffee0-0000-4000-8000-000000000002"
)

var v2Shark = rebalancer.StorageNode{Datacenter: "dc0", MantaStorageID: testShark}

// bucketsFixture is a buckets-mdapi tier: one mdapitest server per shard,
// each over a database of its own, holding the vnodes of a ring spread
// round-robin over the shards.
type bucketsFixture struct {
	t       *testing.T
	srv     map[int]*mdapitest.Server
	dsns    map[int]string // what BucketsPostgresScanner connects to, through proxies
	proxies map[int]*cutProxy
	clients *mdapi.Shards
	ring    mdapi.Ring
	vnodes  mdapi.VnodeMap
	// want holds, per shard, the keys of the objects on the shark; objs
	// every object written, by shard and key.
	want map[int]map[string]bool
	objs map[int]map[string]mdapitest.Object
}

func newBucketsFixture(t *testing.T, shards []int, vnodesPerShard int) *bucketsFixture {
	t.Helper()
	f := &bucketsFixture{t: t, srv: map[int]*mdapitest.Server{}, dsns: map[int]string{}, proxies: map[int]*cutProxy{},
		want: map[int]map[string]bool{}, objs: map[int]map[string]mdapitest.Object{}}
	ring := uint64(len(shards) * vnodesPerShard)
	addrs := mdapi.StaticShards{}
	for i, shard := range shards {
		var vs []uint64
		for v := uint64(i); v < ring; v += uint64(len(shards)) {
			vs = append(vs, v)
		}
		dsn := pgtest.NewDatabase(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		srv, err := mdapitest.New(ctx, mdapitest.Options{DSN: dsn, Vnodes: vs, Strict: t})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		f.srv[shard] = srv
		f.proxies[shard], f.dsns[shard] = newCutProxy(t, dsn)
		addrs[shard] = srv.Addr()
		if err := f.vnodes.Add(shard, vs...); err != nil {
			t.Fatal(err)
		}
		f.want[shard], f.objs[shard] = map[string]bool{}, map[string]mdapitest.Object{}
	}
	var err error
	if f.ring, err = mdapi.NewRing(ring); err != nil {
		t.Fatal(err)
	}
	f.clients = mdapi.NewShards(addrs, mdapi.Options{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		Logger: testutil.Logger(t)})
	t.Cleanup(func() { f.clients.Close() })
	return f
}

func (f *bucketsFixture) shards() []int { return slices.Sorted(maps.Keys(f.srv)) }

// bucket creates a bucket, its record where the ring puts it, and returns
// its id.
func (f *bucketsFixture) bucket(owner, name string) string {
	f.t.Helper()
	v, err := f.ring.BucketVnode(owner, name)
	if err != nil {
		f.t.Fatal(err)
	}
	shard, _ := f.vnodes.Shard(v)
	b, err := f.srv[shard].CreateBucket(context.Background(), mdapitest.Bucket{Vnode: v, Owner: owner, Name: name})
	if err != nil {
		f.t.Fatal(err)
	}
	return b.ID
}

// put writes an object where the ring puts it (vnode 0 of o means: ask
// the ring), noting whether it is on the shark.
func (f *bucketsFixture) put(o mdapitest.Object, onShark bool) mdapitest.Object {
	f.t.Helper()
	if o.Vnode == 0 {
		v, err := f.ring.ObjectVnode(o.Owner, o.BucketID, o.Name)
		if err != nil {
			f.t.Fatal(err)
		}
		o.Vnode = v
	}
	shard, ok := f.vnodes.Shard(o.Vnode)
	if !ok {
		f.t.Fatalf("no shard has vnode %d", o.Vnode)
	}
	return f.putOn(shard, o, onShark)
}

func (f *bucketsFixture) putOn(shard int, o mdapitest.Object, onShark bool) mdapitest.Object {
	f.t.Helper()
	if o.ContentMD5 == "" && o.ContentLength > 0 {
		o.ContentMD5 = "XrY7u+Ae7tCTyyK7j1rNww=="
	}
	stored, err := f.srv[shard].PutObject(context.Background(), o)
	if err != nil {
		f.t.Fatal(err)
	}
	key := mdapi.Locator{Owner: o.Owner, BucketID: o.BucketID, Name: o.Name, Vnode: o.Vnode}.Key()
	f.objs[shard][key] = stored
	if onShark {
		f.want[shard][key] = true
	} else {
		delete(f.want[shard], key)
	}
	return stored
}

// populate writes n objects over two owners' buckets: on the shark (first,
// last, twice), off it (other sharks, lookalike ids, none), an MPU upload
// record and its parts, odd names and rich headers and properties.
func (f *bucketsFixture) populate(n int) {
	f.t.Helper()
	buckets := []struct{ owner, id string }{
		{v2Owner, f.bucket(v2Owner, "photos")}, {v2Owner, f.bucket(v2Owner, "logs")},
		{v2Owner2, f.bucket(v2Owner2, "photos")},
	}
	others := []rebalancer.StorageNode{{Datacenter: "dc1", MantaStorageID: "2.stor.example.com"},
		{Datacenter: "dc2", MantaStorageID: "3.stor.example.com"}, {Datacenter: "dc1", MantaStorageID: "11.stor.example.com"},
		{Datacenter: "dc0", MantaStorageID: testShark + ".evil"}}
	note := "blue"
	for i := range n {
		b := buckets[i%len(buckets)]
		o := mdapitest.Object{Owner: b.owner, BucketID: b.id, Name: fmt.Sprintf("dir%d/o-%04d", i%4, i),
			ContentLength: int64(1000 + i), ContentType: "text/plain"}
		on := false
		switch {
		case i%9 == 0:
			o.Sharks = []rebalancer.StorageNode{v2Shark, v2Shark}
			on = true
		case i%4 == 0:
			o.Sharks = []rebalancer.StorageNode{v2Shark, others[i%3]}
			on = true
		case i%5 == 0:
			o.Sharks = []rebalancer.StorageNode{others[i%3], v2Shark}
			on = true
		case i%7 == 0:
			o.Sharks = []rebalancer.StorageNode{others[3], others[2]} // lookalikes only
		case i%11 == 0:
			o.Sharks = []rebalancer.StorageNode{} // an empty object has no copies
		case i%13 == 0:
			o.Name = fmt.Sprintf("ünïcødé ☃ 'q' \"dq\" %%_ <&> %d", i)
			o.Headers = map[string]*string{"m-color": &note, "x-null": nil, "m-copied-from": ptr(testShark)}
			o.Properties = json.RawMessage(`{"roles":["r1"],"tags":{"env":"prod","n":7,"big":9007199254740993}}`)
			o.Sharks = []rebalancer.StorageNode{others[1], v2Shark}
			on = true
		default:
			o.Sharks = []rebalancer.StorageNode{others[i%3], others[(i+1)%3]}
		}
		f.put(o, on)
	}
	// An upload in progress: its record has no sharks, its parts are on
	// the shark.
	b := buckets[0]
	up := "0f3c2b8e-8a4f-4d1e-9b7a-5c6d7e8f9a0b"
	rv, _ := f.ring.ObjectVnode(b.owner, b.id, mdapitest.UploadRecordName(up))
	shard, _ := f.vnodes.Shard(rv)
	if _, _, err := f.srv[shard].PutUpload(context.Background(), mdapitest.Upload{Vnode: rv, Owner: b.owner, BucketID: b.id,
		BucketName: "photos", Key: "big", UploadID: up, PreAllocatedSharks: []rebalancer.StorageNode{v2Shark, others[1]}}); err != nil {
		f.t.Fatal(err)
	}
	for p := 1; p <= 3; p++ {
		f.put(mdapitest.Object{Owner: b.owner, BucketID: b.id, Name: mdapitest.PartName(up, p), ContentLength: 5,
			Sharks: []rebalancer.StorageNode{v2Shark, others[1]}, Properties: json.RawMessage(`{}`)}, true)
	}
}

func ptr(s string) *string { return &s }

// nullSharks sets an object's sharks column to NULL, which the server
// cannot read but a database may hold.
func (f *bucketsFixture) nullSharks(shard int, key string) {
	f.t.Helper()
	loc, _ := mdapi.ParseKey(key)
	_, err := f.srv[shard].DB().Exec(fmt.Sprintf(`UPDATE manta_bucket_%d.manta_bucket_object SET sharks = NULL
		WHERE owner = $1 AND bucket_id = $2 AND name = $3`, loc.Vnode), loc.Owner, loc.BucketID, loc.Name)
	if err != nil {
		f.t.Fatal(err)
	}
	delete(f.want[shard], key)
}

// store is a MetadataStore over the fixture, whose objects the scanners'
// must equal.
func (f *bucketsFixture) store() *mdapi.MetadataStore { return mdapi.NewMetadataStore(f.clients) }

// check compares what a scan visited with the objects on the shark: each
// once, as buckets-mdapi returns it, numbered within its vnode.
func (f *bucketsFixture) check(t *testing.T, objs []rebalancer.Object) {
	t.Helper()
	store := f.store()
	seen := map[int]map[string]bool{}
	for _, o := range objs {
		if seen[o.Shard] == nil {
			seen[o.Shard] = map[string]bool{}
		}
		if seen[o.Shard][o.Key] {
			t.Errorf("shard %d: %s visited twice", o.Shard, o.Key)
			continue
		}
		seen[o.Shard][o.Key] = true
		if !f.want[o.Shard][o.Key] {
			t.Errorf("shard %d: %s visited, but it is not on the shark", o.Shard, o.Key)
			continue
		}
		loc, err := mdapi.ParseKey(o.Key)
		if err != nil {
			t.Errorf("shard %d: %v", o.Shard, err)
			continue
		}
		if ScanVnode(o.ScanID) != loc.Vnode || o.ScanID <= vnodeBase(loc.Vnode) {
			t.Errorf("shard %d: %s in vnode %d has ScanID %d (vnode %d)", o.Shard, o.Key, loc.Vnode, o.ScanID, ScanVnode(o.ScanID))
		}
		want, err := store.GetObject(context.Background(), o.Shard, o.Key)
		if err != nil {
			t.Errorf("shard %d: %s: %v", o.Shard, o.Key, err)
			continue
		}
		if o.ID != want.ID || o.Owner != want.Owner || o.Etag != want.Etag || !slices.Equal(o.Sharks, want.Sharks) ||
			o.ContentLength != want.ContentLength || o.ContentMD5 != want.ContentMD5 || o.BucketID != want.BucketID ||
			o.Name != want.Name || !o.IsBucket {
			t.Errorf("shard %d: %s:\n got %+v\nwant %+v", o.Shard, o.Key, o, want)
		}
		if !sameJSON(o.Metadata, want.Metadata) {
			t.Errorf("shard %d: %s: metadata\n%s\nwant\n%s", o.Shard, o.Key, o.Metadata, want.Metadata)
		}
	}
	for shard, keys := range f.want {
		var missing []string
		for k := range keys {
			if !seen[shard][k] {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			t.Errorf("shard %d: %d objects on the shark not visited: %v", shard, len(missing), missing[:min(5, len(missing))])
		}
	}
}

// bucketsKind is one of the buckets scanners.
type bucketsKind struct {
	name string
	// scanner returns the scanner over the fixture's shards with o.
	scanner func(f *bucketsFixture, o Options) rebalancer.ObjectSource
	// transient is its test of a retryable failure.
	transient func(error) bool
	// cut breaks the connection of shard's next sizeable reply.
	cut func(f *bucketsFixture, shard int)
	// unreachable makes shard refuse connections.
	unreachable func(f *bucketsFixture, shard int)
}

var bucketsKinds = []bucketsKind{
	{
		name: "postgres",
		scanner: func(f *bucketsFixture, o Options) rebalancer.ObjectSource {
			return &BucketsPostgresScanner{Options: o, DSNs: f.dsns, Chunk: 7}
		},
		transient: pgTransient,
		cut:       func(f *bucketsFixture, shard int) { f.proxies[shard].armed.Store(true) },
		unreachable: func(f *bucketsFixture, shard int) {
			f.dsns[shard] = "postgres://postgres@127.0.0.1:1/x?sslmode=disable"
		},
	},
	{
		name: "mdapi",
		scanner: func(f *bucketsFixture, o Options) rebalancer.ObjectSource {
			return &BucketsMdapiScanner{Options: o, Clients: f.clients, PageSize: 5}
		},
		transient: mdapi.IsTransient,
		cut: func(f *bucketsFixture, shard int) {
			var n atomic.Int32
			f.srv[shard].SetHook(func(r mdapitest.Request) mdapitest.Action {
				if r.Method == "listobjects" && n.Add(1) == 1 {
					return mdapitest.Action{Drop: true}
				}
				return mdapitest.Action{}
			})
		},
		unreachable: func(f *bucketsFixture, shard int) { f.srv[shard].Offline() },
	},
}

func forEachBucketsKind(t *testing.T, test func(t *testing.T, k bucketsKind)) {
	for _, k := range bucketsKinds {
		t.Run(k.name, func(t *testing.T) { test(t, k) })
	}
}

func (f *bucketsFixture) opts(shards ...int) Options {
	return Options{Shards: shards, Workers: 2, RetryBackoff: time.Millisecond, Logger: testutil.Logger(f.t)}
}

// Both buckets scanners keep the rebalancer.ObjectSource contract. The
// suite's v1 values become rows of a bucket, spread over each shard's
// vnodes; a record naming the shark that is not usable is a row whose
// shark has no datacenter, which buckets-mdapi cannot read.
func TestBucketsScannersConformance(t *testing.T) {
	forEachBucketsKind(t, func(t *testing.T, k bucketsKind) {
		rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
			var numbers []int
			for _, s := range shards {
				numbers = append(numbers, s.Number)
			}
			f := newBucketsFixture(t, numbers, 3)
			h := loadSuiteShards(t, f, shards)
			h.Source = k.scanner(f, f.opts(numbers...))
			h.Break = func(shard int) { k.unreachable(f, shard) }
			return h
		})
	})
}

// loadSuiteShards stores the conformance suite's records in f, and returns
// the harness fields that say what becomes of them.
func loadSuiteShards(t *testing.T, f *bucketsFixture, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
	t.Helper()
	type stored struct {
		key  string
		meta json.RawMessage
	}
	byRecord := map[string]stored{} // by shard and suite key
	etags := map[string]string{}    // by shard and v2 key
	first := shards[0].Number
	bucketID := "b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05"
	if _, err := f.srv[first].CreateBucket(context.Background(),
		mdapitest.Bucket{Vnode: f.vnodes.Vnodes(first)[0], ID: bucketID, Owner: rebalancertest.Owner, Name: "rebalancertest"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range shards {
		vnodes := f.vnodes.Vnodes(s.Number)
		for i, so := range s.Objects {
			v := vnodes[i%len(vnodes)]
			if so.Malformed {
				f.putOn(s.Number, mdapitest.Object{Vnode: v, Owner: rebalancertest.Owner, BucketID: bucketID, Name: so.Key,
					ContentLength: 1, Sharks: []rebalancer.StorageNode{rebalancertest.SharkNode(2)}}, false)
				_, err := f.srv[s.Number].DB().Exec(fmt.Sprintf(`UPDATE manta_bucket_%d.manta_bucket_object SET sharks = $1
					WHERE name = $2`, v), "{"+rebalancertest.Shark+"}", so.Key)
				if err != nil {
					t.Fatal(err)
				}
				continue
			}
			obj, err := rebalancer.ParseObject(so.Value)
			if err != nil {
				t.Fatal(err)
			}
			row := f.putOn(s.Number, mdapitest.Object{Vnode: v, ID: obj.ID, Owner: obj.Owner, BucketID: bucketID, Name: so.Key,
				ContentLength: obj.ContentLength, ContentMD5: obj.ContentMD5, ContentType: "application/octet-stream",
				Headers: map[string]*string{"m-key": ptr(so.Key)}, Sharks: obj.Sharks,
				Properties: json.RawMessage(`{"roles":["r"]}`)}, obj.HasShark(rebalancertest.Shark))
			rec := &mdapi.Record{ID: row.ID, Owner: row.Owner, BucketID: row.BucketID, Name: row.Name, Created: row.Created,
				Modified: row.Modified, ContentLength: row.ContentLength, ContentMD5: row.ContentMD5, ContentType: row.ContentType,
				Headers: json.RawMessage(`{"m-key":` + string(mustJSON(t, so.Key)) + `}`), Sharks: row.Sharks, Properties: row.Properties}
			o, err := mdapi.ObjectFromRecord(s.Number, v, rec)
			if err != nil {
				t.Fatal(err)
			}
			byRecord[fmt.Sprint(s.Number, so.Key)] = stored{o.Key, o.Metadata}
			etags[fmt.Sprint(s.Number, o.Key)] = o.Etag
		}
	}
	return rebalancertest.SourceHarness{
		Visited: func(shard int, so rebalancertest.StoredObject) (string, json.RawMessage) {
			s := byRecord[fmt.Sprint(shard, so.Key)]
			return s.key, s.meta
		},
		Etag:    func(shard int, key string) string { return etags[fmt.Sprint(shard, key)] },
		Rescans: true,
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBucketsScanFindsEveryObjectOnce(t *testing.T) {
	forEachBucketsKind(t, func(t *testing.T, k bucketsKind) {
		f := newBucketsFixture(t, []int{1, 2, 4}, 4)
		f.populate(150)
		// A NULL sharks column (no copies) is passed over.
		for key := range f.want[2] {
			if k.name == "postgres" {
				f.nullSharks(2, key)
			}
			break
		}
		for _, exhaustive := range []bool{false, true} {
			t.Run(fmt.Sprintf("exhaustive=%v", exhaustive), func(t *testing.T) {
				o := f.opts(1, 2, 4)
				o.Exhaustive = exhaustive
				last := map[int]Progress{}
				o.OnProgress = func(p Progress) {
					if prev := last[p.Shard]; p.Through < prev.Through || p.Found < prev.Found {
						t.Errorf("progress went back: %+v after %+v", p, prev)
					}
					last[p.Shard] = p
				}
				vnodes := map[int][]uint64{}
				var s rebalancer.ObjectSource
				switch sc := k.scanner(f, o).(type) {
				case *BucketsPostgresScanner:
					sc.OnVnodes = func(shard int, vs []uint64) { vnodes[shard] = vs }
					s = sc
				case *BucketsMdapiScanner:
					sc.OnVnodes = func(shard int, vs []uint64) { vnodes[shard] = vs }
					s = sc
				}
				col := newCollector(t)
				if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
					t.Fatal(err)
				}
				f.check(t, col.objs)
				for _, shard := range f.shards() {
					if !slices.Equal(vnodes[shard], f.vnodes.Vnodes(shard)) {
						t.Errorf("shard %d: OnVnodes said %v, want %v", shard, vnodes[shard], f.vnodes.Vnodes(shard))
					}
					p := last[shard]
					if !p.Done || p.Found != int64(len(f.want[shard])) || p.Through < p.Max {
						t.Errorf("shard %d: final progress %+v, want done having found %d", shard, p, len(f.want[shard]))
					}
				}
			})
		}
	})
}

// A scan resumes from checkpoints by scanning the checkpoint's vnode
// again: nothing at or below a checkpoint is visited again, and objects
// written or deleted in that vnode between the runs cannot make it skip one.
func TestBucketsScanResume(t *testing.T) {
	forEachBucketsKind(t, func(t *testing.T, k bucketsKind) {
		f := newBucketsFixture(t, []int{1, 2}, 3)
		f.populate(120)
		s := k.scanner(f, f.opts(1, 2))
		stop := errors.New("stop")
		var (
			all      []rebalancer.Object
			rescan   []rebalancer.Object
			later    []rebalancer.Object // visited after the first run
			inserted string
		)
		after := map[int]int64{}
		for i, stopAt := range []int{9, 20, 0} {
			col := newCollector(t)
			col.stopAt, col.stopErr = stopAt, stop
			err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark, After: maps.Clone(after)}, col.visit)
			if stopAt > 0 && err != stop || stopAt == 0 && err != nil {
				t.Fatalf("run stopping at %d: %v", stopAt, err)
			}
			for _, o := range col.objs {
				if o.ScanID <= after[o.Shard] {
					t.Errorf("shard %d: %s (%d) visited again at or below the checkpoint %d", o.Shard, o.Key, o.ScanID, after[o.Shard])
				}
			}
			for _, o := range col.objs {
				after[o.Shard] = max(after[o.Shard], o.ScanID)
			}
			all = append(all, col.objs...)
			if i > 0 {
				later = append(later, col.objs...)
			}
			if i == 2 {
				// The vnode of the first run's last checkpoint is scanned
				// again: what that run visited in it comes again. (In the
				// second run or the third: shards are scanned side by side,
				// so the second may stop before this shard's turn.)
				for _, o := range rescan {
					if !slices.ContainsFunc(later, func(x rebalancer.Object) bool { return x.Shard == o.Shard && x.Key == o.Key }) {
						t.Errorf("shard %d: %s, visited before the checkpoint in its vnode, not visited again", o.Shard, o.Key)
					}
				}
				if !slices.ContainsFunc(all, func(x rebalancer.Object) bool { return x.Key == inserted }) {
					t.Errorf("%s, written between the runs before the checkpoint, not found", inserted)
				}
			}
			if i == 0 {
				// Between the runs, in the vnode of the last checkpoint:
				// the object at the checkpoint is deleted, and one that
				// sorts before everything is written.
				last := col.objs[len(col.objs)-1]
				v := ScanVnode(last.ScanID)
				loc, _ := mdapi.ParseKey(last.Key)
				if err := f.srv[last.Shard].DeleteObject(context.Background(), v, loc.Owner, loc.BucketID, loc.Name); err != nil {
					t.Fatal(err)
				}
				delete(f.want[last.Shard], last.Key)
				all = slices.DeleteFunc(all, func(o rebalancer.Object) bool { return o.Key == last.Key })
				for _, o := range all {
					if o.Shard == last.Shard && ScanVnode(o.ScanID) == v {
						rescan = append(rescan, o)
					}
				}
				f.putOn(last.Shard, mdapitest.Object{Vnode: v, Owner: loc.Owner, BucketID: loc.BucketID, Name: "0000 inserted",
					ContentLength: 9, Sharks: []rebalancer.StorageNode{v2Shark}}, true)
				inserted = mdapi.Locator{Owner: loc.Owner, BucketID: loc.BucketID, Name: "0000 inserted", Vnode: v}.Key()
			}
		}
		if len(rescan) == 0 {
			t.Log("the first run's last object was the first of its vnode: no rescan to see")
		}
		// Every object once, after dropping the visits again.
		seen := map[string]bool{}
		var once []rebalancer.Object
		for _, o := range all {
			if k := fmt.Sprint(o.Shard, o.Key); !seen[k] {
				seen[k] = true
				once = append(once, o)
			}
		}
		f.check(t, once)
	})
}

func TestBucketsScanFailures(t *testing.T) {
	forEachBucketsKind(t, func(t *testing.T, k bucketsKind) {
		f := newBucketsFixture(t, []int{1, 2, 3}, 3)
		f.populate(90)

		// A vnode's table goes away; another shard is unreachable.
		v := f.vnodes.Vnodes(2)[1]
		if _, err := f.srv[2].DB().Exec(fmt.Sprintf("DROP TABLE manta_bucket_%d.manta_bucket_object", v)); err != nil {
			t.Fatal(err)
		}
		k.unreachable(f, 3)
		o := f.opts(1, 2, 3)
		o.Retries = 1
		col := newCollector(t)
		err := k.scanner(f, o).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
		var se *ShardError
		if !errors.As(err, &se) || se.Shard != 2 {
			t.Fatalf("got %v, want shard 2's error first", err)
		}
		for _, want := range []string{"shard 2:", fmt.Sprintf("vnode %d", v), "does not exist", "shard 3:", "2 of 3 shards failed"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if k.name == "mdapi" && !strings.Contains(err.Error(), "were not listed") {
			t.Errorf("error %q does not say that shard 3's buckets were not listed", err)
		}
		count := map[int]int{}
		for _, o := range col.objs {
			count[o.Shard]++
		}
		if k.name == "postgres" && count[1] != len(f.want[1]) {
			t.Errorf("shard 1: %d of %d objects", count[1], len(f.want[1]))
		}
		if count[3] != 0 {
			t.Errorf("%d objects of the unreachable shard", count[3])
		}
	})
}

// A vnode found on two shards fails both: the wrong copy's metadata would
// be the one moved.
func TestBucketsScanVnodeOnTwoShards(t *testing.T) {
	forEachBucketsKind(t, func(t *testing.T, k bucketsKind) {
		f := newBucketsFixture(t, []int{1, 2, 3}, 2)
		f.populate(60)
		dup := f.vnodes.Vnodes(1)[0]
		if err := f.srv[2].CreateVnodes(context.Background(), dup); err != nil {
			t.Fatal(err)
		}
		col := newCollector(t)
		err := k.scanner(f, f.opts(1, 2, 3)).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
		for _, want := range []string{"2 of 3 shards failed [1 2]", fmt.Sprintf("vnode %d (also on shards [2])", dup),
			fmt.Sprintf("vnode %d (also on shards [1])", dup)} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not say %q", err, want)
			}
		}
		for _, o := range col.objs {
			if o.Shard != 3 {
				t.Errorf("visited %s of shard %d", o.Key, o.Shard)
				break
			}
		}
	})
}

// A row naming the shark that buckets-mdapi cannot read is reported, after
// the rest of its shard was scanned (direct) or as its vnode's failure
// (through buckets-mdapi, whose listing fails on it).
func TestBucketsScanBadRow(t *testing.T) {
	forEachBucketsKind(t, func(t *testing.T, k bucketsKind) {
		f := newBucketsFixture(t, []int{1, 2}, 2)
		f.populate(40)
		var key string
		for key = range f.want[1] {
			break
		}
		loc, _ := mdapi.ParseKey(key)
		if _, err := f.srv[1].DB().Exec(fmt.Sprintf(`UPDATE manta_bucket_%d.manta_bucket_object SET sharks = $1 WHERE name = $2`,
			loc.Vnode), "{"+testShark+",dc1:2.stor.example.com}", loc.Name); err != nil {
			t.Fatal(err)
		}
		// And one that does not name the shark: none of ours.
		for other := range f.objs[2] {
			if !f.want[2][other] {
				l, _ := mdapi.ParseKey(other)
				if _, err := f.srv[2].DB().Exec(fmt.Sprintf(`UPDATE manta_bucket_%d.manta_bucket_object SET sharks = '{junk}' WHERE name = $1`,
					l.Vnode), l.Name); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		col := newCollector(t)
		err := k.scanner(f, f.opts(1, 2)).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
		var se *ShardError
		if !errors.As(err, &se) || se.Shard != 1 {
			t.Fatalf("got %v, want shard 1's error", err)
		}
		if k.name == "postgres" {
			var re *RowError
			if !errors.As(err, &re) || re.Key != key || !strings.Contains(err.Error(), "no datacenter") {
				t.Errorf("got %v, want a RowError for %s", err, key)
			}
			delete(f.want[1], key)
			f.check(t, col.objs)
			return
		}
		// Through buckets-mdapi, the row of shard 2 that buckets-mdapi
		// cannot read fails its listing too, though it does not name the
		// shark: there is no telling what else that listing would have
		// returned.
		if !strings.Contains(err.Error(), "2 of 2 shards failed") || !strings.Contains(err.Error(), "cannot read") {
			t.Errorf("got %v, want both shards' listings failing", err)
		}
	})
}

func TestBucketsScanConnectionCut(t *testing.T) {
	forEachBucketsKind(t, func(t *testing.T, k bucketsKind) {
		f := newBucketsFixture(t, []int{1, 2}, 3)
		f.populate(200)
		for _, retries := range []int{0, -1} {
			t.Run(fmt.Sprintf("retries=%d", retries), func(t *testing.T) {
				o := f.opts(1, 2)
				o.Retries = retries
				armed := false
				o.OnProgress = func(p Progress) {
					if p.Shard == 2 && p.Found > 3 && !armed {
						armed = true
						k.cut(f, 2)
					}
				}
				col := newCollector(t)
				err := k.scanner(f, o).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
				f.srv[2].SetHook(nil)
				if !armed {
					t.Fatal("the cut was never armed")
				}
				if retries < 0 {
					var se *ShardError
					if !errors.As(err, &se) || se.Shard != 2 || !k.transient(err) {
						t.Fatalf("got %v, want shard 2's transient error", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				f.check(t, col.objs)
			})
		}
	})
}

func TestBucketsScanCancel(t *testing.T) {
	forEachBucketsKind(t, func(t *testing.T, k bucketsKind) {
		testutil.CheckLeaks(t)
		f := newBucketsFixture(t, []int{1, 2}, 2)
		f.populate(100)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		col := newCollector(t)
		col.onVisit = func(rebalancer.Object) {
			if len(col.objs) == 7 {
				cancel()
			}
		}
		err := k.scanner(f, f.opts(1, 2)).Discover(ctx, rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
		if !errors.Is(err, context.Canceled) || len(col.objs) != 7 {
			t.Fatalf("got %v after %d visits, want context.Canceled after 7", err, len(col.objs))
		}
	})
}

func TestBucketsScanConfig(t *testing.T) {
	req := rebalancer.DiscoverRequest{Shark: testShark}
	visit := func(rebalancer.Object) error { return nil }
	for _, tc := range []struct {
		s    rebalancer.ObjectSource
		want string
	}{
		{&BucketsPostgresScanner{Options: Options{Shards: []int{1, 2}}, DSNs: map[int]string{1: "postgres://x/y"}}, "no Domain and no DSN for buckets shards [2]"},
		{&BucketsPostgresScanner{Domain: "x", Options: Options{Shards: []int{1}}, Chunk: -1}, "negative chunk"},
		{&BucketsPostgresScanner{Domain: "x", Options: Options{Shards: []int{1}, EndID: 5}}, "EndID"},
		{&BucketsMdapiScanner{Options: Options{Shards: []int{1}}}, "no buckets-mdapi clients"},
		{&BucketsMdapiScanner{Options: Options{Shards: []int{1}}, Clients: mdapi.NewShards(mdapi.StaticShards{}, mdapi.Options{}), PageSize: 5000}, "page size"},
		{&BucketsMdapiScanner{Options: Options{}, Clients: mdapi.NewShards(mdapi.StaticShards{}, mdapi.Options{})}, "no shards"},
	} {
		if err := tc.s.Discover(context.Background(), req, visit); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%T: %v, want %q", tc.s, err, tc.want)
		}
	}
	if got, want := DefaultBucketsDSN(3, "us-east.example.com"), "host=3.rebalancer-buckets-postgres.us-east.example.com port=5432 user=postgres dbname=buckets_metadata sslmode=disable connect_timeout=10 fallback_application_name=sharkspotter"; got != want {
		t.Errorf("DefaultBucketsDSN = %q, want %q", got, want)
	}
	for name, want := range map[string]uint64{"manta_bucket_0": 0, "manta_bucket_17": 17} {
		if v, ok := parseVnodeSchema(name); !ok || v != want {
			t.Errorf("parseVnodeSchema(%q) = %d %v", name, v, ok)
		}
	}
	for _, name := range []string{"manta_bucket_", "manta_bucket_07", "manta_bucket_x", "manta_bucket_1a", "public", "manta_bucket_99999999999999999999"} {
		if v, ok := parseVnodeSchema(name); ok {
			t.Errorf("parseVnodeSchema(%q) = %d", name, v)
		}
	}
}

// The shark filter runs in PostgreSQL: it sends only the rows that may
// name the shark, and the plan shows the filter on the table's scan.
func TestBucketsPostgresPushdown(t *testing.T) {
	f := newBucketsFixture(t, []int{1}, 2)
	f.populate(80)
	rows := map[bool]int64{}
	for _, noPushdown := range []bool{false, true} {
		s := &BucketsPostgresScanner{Options: f.opts(1), DSNs: f.dsns, Chunk: 10, noPushdown: noPushdown}
		s.OnProgress = func(p Progress) { rows[noPushdown] = p.Rows }
		col := newCollector(t)
		if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
			t.Fatal(err)
		}
		f.check(t, col.objs)
	}
	var total int64
	for _, v := range f.vnodes.Vnodes(1) {
		var n int64
		if err := f.srv[1].DB().QueryRow(fmt.Sprintf("SELECT count(*) FROM manta_bucket_%d.manta_bucket_object", v)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	// The filter lets through the objects on the shark and those on sharks
	// whose ids contain its id (11.stor..., 1.stor....evil), no others.
	if rows[true] != total || rows[false] >= total || rows[false] < int64(len(f.want[1])) {
		t.Errorf("rows read: %d with the filter in SQL, %d without, of %d (%d on the shark)", rows[false], rows[true], total, len(f.want[1]))
	}
	var plan []string
	r, err := f.srv[1].DB().Query(`EXPLAIN SELECT id FROM manta_bucket_0.manta_bucket_object
		WHERE (owner, bucket_id, name) > ($1::uuid, $2::uuid, $3) AND array_to_string(sharks, ',') LIKE $4
		ORDER BY owner, bucket_id, name LIMIT 10`, v2Owner, v2Owner, "", likePattern(testShark))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for r.Next() {
		var line string
		r.Scan(&line)
		plan = append(plan, line)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "array_to_string(sharks") || !strings.Contains(p, "Filter") {
		t.Errorf("the shark filter is not in the plan:\n%s", p)
	}
}

// Through buckets-mdapi: a server without the discovery RPCs, and buckets
// whose listing fails part way.
func TestBucketsMdapiServers(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	up, err := mdapitest.New(ctx, mdapitest.Options{DSN: dsn, Version: mdapitest.ForkWithoutDiscovery, Strict: t})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	clients := mdapi.NewShards(mdapi.StaticShards{1: up.Addr()}, mdapi.Options{})
	defer clients.Close()
	s := &BucketsMdapiScanner{Options: Options{Shards: []int{1}, Logger: testutil.Logger(t)}, Clients: clients}
	err = s.Discover(ctx, rebalancer.DiscoverRequest{Shark: testShark}, func(rebalancer.Object) error { return nil })
	if !errors.Is(err, mdapi.ErrUnsupported) || !strings.Contains(err.Error(), "shard 1") {
		t.Errorf("server without listvnodes: %v", err)
	}

	f := newBucketsFixture(t, []int{1, 2}, 2)
	f.populate(60)
	var n atomic.Int32
	f.srv[2].SetHook(func(r mdapitest.Request) mdapitest.Action {
		if r.Method == "listowners" && n.Add(1) == 2 {
			return mdapitest.Action{Fault: &mdapitest.Fault{Name: "PostgresError", Message: "db error: ERROR: relation \"manta_bucket_3.manta_bucket\" does not exist"}}
		}
		return mdapitest.Action{}
	})
	col := newCollector(t)
	err = f.scannerMdapi(f.opts(1, 2)).Discover(ctx, rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
	if err == nil || !strings.Contains(err.Error(), "shard 2: listing buckets") || !strings.Contains(err.Error(), "shards [2] were not listed") {
		t.Errorf("a bucket listing failing: %v", err)
	}
}

func (f *bucketsFixture) scannerMdapi(o Options) *BucketsMdapiScanner {
	return &BucketsMdapiScanner{Options: o, Clients: f.clients, PageSize: 5}
}
