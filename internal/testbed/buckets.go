package testbed

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
)

// Buckets configures the fleet's buckets (v2) tier: one in-process
// buckets-mdapi (mdapitest) per shard, each keeping its data in a
// PostgreSQL database of its own, laid out as buckets-mdapi lays it out, so
// that discovery can read it directly as it reads the buckets PostgreSQL
// copies in production. The vnodes of a placement ring are spread over the
// shards round-robin, and objects go where buckets-api would put them.
// The zero value is no buckets tier.
type Buckets struct {
	// DSNs are the PostgreSQL databases (URLs) of the buckets shards: shard
	// n keeps its data in DSNs[n-1]. BucketsDatabases makes them for a test,
	// pgtest.CreateDatabase elsewhere.
	DSNs []string
	// Vnodes is the number of vnodes of the placement ring (default 4 per
	// shard).
	Vnodes int
	// Version is the buckets-mdapi the shards behave as (default the fork
	// that moves objects and lists vnodes, mdapitest.Fork).
	Version mdapitest.Version
	// Objects, when Count or Uploads is positive, are written by Start,
	// after Config.Objects.
	Objects BucketObjects
}

// BucketObjects describes buckets objects for PopulateBuckets to write.
// The embedded Objects mean what they mean for v1 objects (Dir aside, which
// is unused); everything follows from Seed and each object's index.
type BucketObjects struct {
	Objects
	// Buckets is how many buckets each owner has (default 3).
	Buckets int
	// Uploads is how many multipart uploads are in progress, each with its
	// record (.mpu-uploads/<id>, whose headers list the preallocated
	// sharks) and Parts parts on those sharks. Pin holds the copies of
	// about PinFraction of them, as of objects.
	Uploads int
	// Parts is how many parts each upload has written so far (default 3).
	Parts int
}

// BucketPopulation is what PopulateBuckets wrote. Its Population counts
// every object with content: plain objects and parts.
type BucketPopulation struct {
	Population
	Buckets int
	Uploads int // upload records
	Parts   int // of the Objects, how many are parts
	// UploadsPinned counts the uploads whose preallocated sharks include
	// Pin (their parts are counted in Pinned).
	UploadsPinned int
}

// BucketsDatabases returns n fresh PostgreSQL databases for a buckets
// tier (Buckets.DSNs), dropped when t ends; without PostgreSQL t is
// skipped, loudly (pgtest.NewDatabase).
func BucketsDatabases(t testing.TB, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = pgtest.NewDatabase(t)
	}
	return out
}

// bucketsTier is the fleet's buckets tier.
type bucketsTier struct {
	servers []*mdapitest.Server // shard n at n-1
	clients *mdapi.Shards
	ring    mdapi.Ring
	vnodes  *mdapi.VnodeMap
	dsns    []string

	mu      sync.Mutex
	buckets map[string]string // owner/name -> id, the buckets made so far
}

// startBuckets starts the buckets shards.
func (f *Fleet) startBuckets(ctx context.Context) error {
	cfg := f.cfg.Buckets
	if len(cfg.DSNs) == 0 {
		return nil
	}
	n := len(cfg.DSNs)
	vnodes := cfg.Vnodes
	if vnodes <= 0 {
		vnodes = 4 * n
	}
	if vnodes < n {
		return fmt.Errorf("testbed: %d vnodes cannot spread over %d buckets shards", vnodes, n)
	}
	b := &bucketsTier{vnodes: &mdapi.VnodeMap{}, dsns: cfg.DSNs, buckets: map[string]string{}}
	f.buckets = b
	addrs := mdapi.StaticShards{}
	for i, dsn := range cfg.DSNs {
		shard := i + 1
		var vs []uint64
		for v := uint64(i); v < uint64(vnodes); v += uint64(n) {
			vs = append(vs, v)
		}
		srv, err := mdapitest.New(ctx, mdapitest.Options{DSN: dsn, Vnodes: vs, Version: cfg.Version, Strict: f.cfg.Strict,
			Logger: f.log.With("component", "buckets-mdapi", "shard", shard)})
		if err != nil {
			return fmt.Errorf("testbed: buckets shard %d: %w", shard, err)
		}
		b.servers = append(b.servers, srv)
		addrs[shard] = srv.Addr()
		if err := b.vnodes.Add(shard, vs...); err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
	}
	var err error
	if b.ring, err = mdapi.NewRing(uint64(vnodes)); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	b.clients = mdapi.NewShards(addrs, mdapi.Options{MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Logger: f.log.With("component", "buckets-mdapi-client")})
	return nil
}

func (b *bucketsTier) close() {
	if b == nil {
		return
	}
	if b.clients != nil {
		b.clients.Close()
	}
	for _, s := range b.servers {
		s.Close()
	}
}

// HasBuckets reports whether the fleet has a buckets tier.
func (f *Fleet) HasBuckets() bool { return f.buckets != nil }

// BucketsShardNumbers returns the buckets shard numbers, ascending (none
// without a buckets tier).
func (f *Fleet) BucketsShardNumbers() []int {
	if f.buckets == nil {
		return nil
	}
	out := make([]int, len(f.buckets.servers))
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// Mdapi returns the in-process buckets-mdapi of a buckets shard
// (1-based), or nil: its fault hooks (SetHook, FailNext,
// ConflictNextUpdates, ConflictStorm, Offline and Online, Modify) are the
// buckets tier's faults.
func (f *Fleet) Mdapi(shard int) *mdapitest.Server {
	if f.buckets == nil || shard < 1 || shard > len(f.buckets.servers) {
		return nil
	}
	return f.buckets.servers[shard-1]
}

// Mdapis returns every buckets shard's buckets-mdapi, shard 1 first.
func (f *Fleet) Mdapis() []*mdapitest.Server {
	if f.buckets == nil {
		return nil
	}
	return slices.Clone(f.buckets.servers)
}

// SetMdapiHook installs h on every buckets shard (nil removes it): delays
// make buckets-mdapi slow, faults make it fail, drops make it lose
// connections.
func (f *Fleet) SetMdapiHook(h mdapitest.Hook) {
	for _, s := range f.Mdapis() {
		s.SetHook(h)
	}
}

// MdapiOffline makes every buckets shard unreachable; MdapiOnline brings
// them back on the same addresses.
func (f *Fleet) MdapiOffline() {
	for _, s := range f.Mdapis() {
		s.Offline()
	}
}

// MdapiOnline undoes MdapiOffline.
func (f *Fleet) MdapiOnline() error {
	for _, s := range f.Mdapis() {
		if err := s.Online(); err != nil {
			return err
		}
	}
	return nil
}

// MdapiConflictStorm makes every conditional update on every buckets shard
// of an object match accepts fail its conditions, as if other writers kept
// getting there first, until stop is called.
func (f *Fleet) MdapiConflictStorm(match func(owner, bucketID, name string) bool) (stop func()) {
	var stops []func()
	for _, s := range f.Mdapis() {
		stops = append(stops, s.ConflictStorm(match))
	}
	return func() {
		for _, st := range stops {
			st()
		}
	}
}

// MdapiShards returns the fleet's buckets-mdapi clients, one per buckets
// shard (nil without a buckets tier). The fleet closes them.
func (f *Fleet) MdapiShards() *mdapi.Shards {
	if f.buckets == nil {
		return nil
	}
	return f.buckets.clients
}

// MdapiMetadataStore returns a MetadataStore for the fleet's v2 objects.
func (f *Fleet) MdapiMetadataStore() *mdapi.MetadataStore {
	if f.buckets == nil {
		return nil
	}
	return mdapi.NewMetadataStore(f.buckets.clients)
}

// BucketsDSN returns the PostgreSQL database a buckets shard keeps its
// data in: what direct discovery (sharkspotter.BucketsPostgresScanner)
// reads, as it reads a buckets PostgreSQL copy in production.
func (f *Fleet) BucketsDSN(shard int) string {
	if f.buckets == nil || shard < 1 || shard > len(f.buckets.dsns) {
		return ""
	}
	return f.buckets.dsns[shard-1]
}

// BucketsDSNs returns BucketsDSN of every buckets shard, by shard number.
func (f *Fleet) BucketsDSNs() map[int]string {
	out := map[int]string{}
	for _, n := range f.BucketsShardNumbers() {
		out[n] = f.BucketsDSN(n)
	}
	return out
}

// Ring returns the buckets placement ring.
func (f *Fleet) Ring() mdapi.Ring {
	if f.buckets == nil {
		return mdapi.Ring{}
	}
	return f.buckets.ring
}

// VnodeMap returns which buckets shard holds each vnode (a copy).
func (f *Fleet) VnodeMap() *mdapi.VnodeMap {
	m := &mdapi.VnodeMap{}
	for _, n := range f.BucketsShardNumbers() {
		m.Add(n, f.buckets.vnodes.Vnodes(n)...)
	}
	return m
}

// UploadFixer returns an mdapi.UploadFixer over the buckets tier, with the
// ring and the vnode map.
func (f *Fleet) UploadFixer() *mdapi.UploadFixer {
	if f.buckets == nil {
		return nil
	}
	return &mdapi.UploadFixer{Shards: f.buckets.clients, Ring: f.buckets.ring, Vnodes: f.VnodeMap()}
}

// bucketShard returns the buckets shard and vnode the ring places a key in.
func (b *bucketsTier) place(tkey string) (int, uint64, error) {
	v, err := b.ring.Vnode(tkey)
	if err != nil {
		return 0, 0, err
	}
	s, ok := b.vnodes.Shard(v)
	if !ok {
		return 0, 0, fmt.Errorf("no buckets shard holds vnode %d", v)
	}
	return s, v, nil
}

// bucket makes a bucket (once), its record where the ring puts it, and
// returns its id.
func (b *bucketsTier) bucket(ctx context.Context, owner, name, id string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if got, ok := b.buckets[owner+"/"+name]; ok {
		return got, nil
	}
	shard, v, err := b.place(mdapi.BucketKey(owner, name))
	if err != nil {
		return "", err
	}
	bk, err := b.servers[shard-1].CreateBucket(ctx, mdapitest.Bucket{Vnode: v, ID: id, Owner: owner, Name: name})
	if err != nil {
		return "", err
	}
	b.buckets[owner+"/"+name] = bk.ID
	return bk.ID, nil
}

// V2Path returns where a copy of a buckets object lives under a shark's
// root, as the agent and mako lay it out:
// v2/<owner>/<bucket_id>/<id[0:2]>/<id>,<md5 hex of the name>.
func V2Path(owner, bucketID, objectID, name string) string {
	return filepath.Join("v2", owner, bucketID, objectID[:2], objectID+","+rebalancer.ObjectNameHash(name))
}

// PopulateBuckets writes buckets objects: every owner's buckets (records
// where the ring puts them), objects spread over them and so over every
// vnode, each object's content on its sharks at its v2 path and its row in
// its vnode; then the multipart uploads in progress, each a record and
// parts on its preallocated sharks.
func (f *Fleet) PopulateBuckets(ctx context.Context, objs BucketObjects) (BucketPopulation, error) {
	if f.buckets == nil {
		return BucketPopulation{}, fmt.Errorf("testbed: populate buckets: the fleet has no buckets tier (Config.Buckets)")
	}
	f.popMu.Lock()
	defer f.popMu.Unlock()
	o := &objs.Objects
	if err := o.fill(2); err != nil {
		return BucketPopulation{}, fmt.Errorf("testbed: populate buckets: %w", err)
	}
	if objs.Buckets <= 0 {
		objs.Buckets = 3
	}
	if objs.Parts <= 0 {
		objs.Parts = 3
	}
	var pin *Shark
	if o.Pin != "" {
		if pin = f.byID[o.Pin]; pin == nil {
			return BucketPopulation{}, fmt.Errorf("testbed: populate buckets: no shark %s", o.Pin)
		}
	}
	if o.Copies > len(f.sharks) || (pin != nil && o.PinFraction < 1 && o.Copies > len(f.sharks)-1) {
		return BucketPopulation{}, fmt.Errorf("testbed: populate buckets: %d copies need more sharks than the fleet's %d", o.Copies, len(f.sharks))
	}

	// Owners and buckets follow from the seed; a different stream than v1
	// objects', so that the two kinds do not share owners by accident.
	type bucketRef struct{ owner, name, id string }
	var buckets []bucketRef
	pop := BucketPopulation{Population: Population{PerShark: map[string]int{}}}
	for i := range o.Owners {
		rng := rand.New(rand.NewPCG(o.Seed^0x5a5a, ^uint64(i)))
		owner := newUUID(rng)
		for j := range objs.Buckets {
			name := fmt.Sprintf("bucket-%d", j)
			id, err := f.buckets.bucket(ctx, owner, name, newUUID(rng))
			if err != nil {
				return BucketPopulation{}, fmt.Errorf("testbed: populate buckets: bucket %s of %s: %w", name, owner, err)
			}
			buckets = append(buckets, bucketRef{owner, name, id})
		}
	}
	pop.Buckets = len(buckets)

	var (
		next atomic.Int64
		mu   sync.Mutex
	)
	add := func(local *BucketPopulation) {
		mu.Lock()
		defer mu.Unlock()
		pop.Objects += local.Objects
		pop.Bytes += local.Bytes
		pop.Files += local.Files
		pop.Pinned += local.Pinned
		pop.Parts += local.Parts
		pop.Uploads += local.Uploads
		pop.UploadsPinned += local.UploadsPinned
		for k, v := range local.PerShark {
			pop.PerShark[k] += v
		}
	}
	total := objs.Count + objs.Uploads
	g, gctx := errgroup.WithContext(ctx)
	for range runtime.GOMAXPROCS(0) * 4 {
		g.Go(func() error {
			local := BucketPopulation{Population: Population{PerShark: map[string]int{}}}
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					break
				}
				if err := gctx.Err(); err != nil {
					return err
				}
				var err error
				if i < objs.Count {
					rng := rand.New(rand.NewPCG(o.Seed^0xb0c4, uint64(i)))
					b := buckets[rng.IntN(len(buckets))]
					name := fmt.Sprintf("dir%d/object-%06d", i%7, i)
					if i%17 == 3 {
						name = fmt.Sprintf("ünïcødé ☃ %%_ 'q' %d", i)
					}
					pinned := pin != nil && (o.PinFraction >= 1 || rng.Float64() < o.PinFraction)
					holders := f.chooseSharks(rng, o.Copies, pin, pinned)
					buf, err = f.writeBucketObject(gctx, rng, b.owner, b.id, name, holders, o, buf, &local)
					if err == nil && pinned {
						local.Pinned++
					}
				} else {
					u := i - objs.Count
					rng := rand.New(rand.NewPCG(o.Seed^0x3a9d, uint64(u)))
					b := buckets[rng.IntN(len(buckets))]
					pinned := pin != nil && (o.PinFraction >= 1 || rng.Float64() < o.PinFraction)
					holders := f.chooseSharks(rng, o.Copies, pin, pinned)
					buf, err = f.writeUpload(gctx, rng, b.owner, b.id, b.name, holders, objs.Parts, o, buf, &local)
					if err == nil && pinned {
						local.UploadsPinned++
						local.Pinned += objs.Parts
					}
				}
				if err != nil {
					return err
				}
			}
			add(&local)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return BucketPopulation{}, err
	}
	return pop, nil
}

// writeBucketObject writes one object's content on its holders and its row
// where the ring puts it.
func (f *Fleet) writeBucketObject(ctx context.Context, rng *rand.Rand, owner, bucketID, name string, holders []*Shark,
	o *Objects, buf []byte, pop *BucketPopulation) ([]byte, error) {
	id := newUUID(rng)
	size := o.MinSize + rng.Int64N(o.MaxSize-o.MinSize+1)
	var seed [32]byte
	for k := range 4 {
		binary.LittleEndian.PutUint64(seed[8*k:], rng.Uint64())
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	content := buf[:size]
	rand.NewChaCha8(seed).Read(content)
	sum := md5.Sum(content)
	var sharks []rebalancer.StorageNode
	rel := V2Path(owner, bucketID, id, name)
	for _, s := range holders {
		sharks = append(sharks, s.node)
		p := filepath.Join(s.root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return buf, fmt.Errorf("testbed: populate buckets: %w", err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return buf, fmt.Errorf("testbed: populate buckets: object %s on %s: %w", id, s.ID(), err)
		}
		pop.PerShark[s.ID()]++
		pop.Files++
	}
	if o.Progress != nil {
		o.Progress(size * int64(len(holders)))
	}
	shard, v, err := f.buckets.place(mdapi.ObjectKey(owner, bucketID, name))
	if err != nil {
		return buf, fmt.Errorf("testbed: populate buckets: %s: %w", name, err)
	}
	ctype := "application/octet-stream"
	_, err = f.buckets.servers[shard-1].PutObject(ctx, mdapitest.Object{
		Vnode: v, ID: id, Owner: owner, BucketID: bucketID, Name: name,
		Created: time.UnixMilli(1_700_000_000_000).UTC(), Modified: time.UnixMilli(1_700_000_000_000).UTC(),
		ContentLength: size, ContentMD5: base64.StdEncoding.EncodeToString(sum[:]), ContentType: ctype,
		Headers:    map[string]*string{"m-testbed": &ctype},
		Sharks:     sharks,
		Properties: []byte(`{"roles":[],"tags":{"testbed":"yes"}}`),
	})
	if err != nil {
		return buf, fmt.Errorf("testbed: populate buckets: %s on buckets shard %d: %w", name, shard, err)
	}
	pop.Objects++
	pop.Bytes += size
	return buf, nil
}

// writeUpload writes a multipart upload in progress: its record, where the
// ring puts it, naming holders as its preallocated sharks, and parts
// written to every one of them, as buckets-api does.
func (f *Fleet) writeUpload(ctx context.Context, rng *rand.Rand, owner, bucketID, bucketName string, holders []*Shark, parts int,
	o *Objects, buf []byte, pop *BucketPopulation) ([]byte, error) {
	uploadID := newUUID(rng)
	pre := make([]rebalancer.StorageNode, len(holders))
	for i, s := range holders {
		pre[i] = s.node
	}
	shard, v, err := f.buckets.place(mdapi.ObjectKey(owner, bucketID, mdapi.UploadRecordName(uploadID)))
	if err != nil {
		return buf, fmt.Errorf("testbed: populate buckets: upload %s: %w", uploadID, err)
	}
	if _, _, err := f.buckets.servers[shard-1].PutUpload(ctx, mdapitest.Upload{Vnode: v, Owner: owner, BucketID: bucketID,
		BucketName: bucketName, Key: "uploads/" + uploadID[:8], UploadID: uploadID, PreAllocatedSharks: pre,
		Initiated: time.UnixMilli(1_700_000_000_000)}); err != nil {
		return buf, fmt.Errorf("testbed: populate buckets: upload %s on buckets shard %d: %w", uploadID, shard, err)
	}
	pop.Uploads++
	for n := 1; n <= parts; n++ {
		if buf, err = f.writeBucketObject(ctx, rng, owner, bucketID, mdapitest.PartName(uploadID, n), holders, o, buf, pop); err != nil {
			return buf, err
		}
		pop.Parts++
	}
	return buf, nil
}

// verifyBuckets is Verify for the buckets tier: its objects as Verify
// checks v1 objects, and its multipart uploads.
func (f *Fleet) verifyBuckets(ctx context.Context, rep *Report, evac *Shark, referenced map[string]bool, checks []copyCheck) ([]copyCheck, error) {
	if f.buckets == nil {
		return checks, nil
	}
	type upload struct {
		shard  int
		record *mdapitest.Object
		parts  []*rebalancer.Object
	}
	uploads := map[mdapi.Upload]*upload{}
	get := func(u mdapi.Upload) *upload {
		if uploads[u] == nil {
			uploads[u] = &upload{}
		}
		return uploads[u]
	}
	for i, srv := range f.buckets.servers {
		shard := i + 1
		rows, err := srv.Objects(ctx)
		if err != nil {
			return checks, fmt.Errorf("testbed: verify: buckets shard %d: %w", shard, err)
		}
		for _, r := range rows {
			loc := mdapi.Locator{Owner: r.Owner, BucketID: r.BucketID, Name: r.Name, Vnode: r.Vnode}
			if id, ok := strings.CutPrefix(r.Name, ".mpu-uploads/"); ok {
				u := get(mdapi.Upload{Owner: r.Owner, BucketID: r.BucketID, ID: id})
				u.shard, u.record = shard, &r
				continue
			}
			rep.V2Objects++
			rep.V2Bytes += r.ContentLength
			o := &rebalancer.Object{ID: r.ID, Key: loc.Key(), Owner: r.Owner, Shard: shard, ContentLength: r.ContentLength,
				ContentMD5: r.ContentMD5, Sharks: r.Sharks, BucketID: r.BucketID, IsBucket: true, Name: r.Name}
			checks = f.verifyObject(rep, o, evac, referenced, checks)
			if up, _, ok := mdapi.UploadOf(o.Key); ok {
				u := get(up)
				u.parts = append(u.parts, o)
			}
		}
	}
	for up, u := range uploads {
		if u.record == nil {
			continue // parts of a finished upload: ordinary objects now
		}
		rep.Uploads++
		key := mdapi.Locator{Owner: up.Owner, BucketID: up.BucketID, Name: up.RecordName(), Vnode: u.record.Vnode}.Key()
		pre, err := preallocatedSharks(u.record.Headers)
		if err != nil {
			rep.add(Problem{Kind: ProblemBadMetadata, Shard: u.shard, Key: key, ObjectID: u.record.ID, Detail: err.Error()})
			continue
		}
		if evac != nil && slices.ContainsFunc(pre, func(s rebalancer.StorageNode) bool { return s.MantaStorageID == evac.ID() }) {
			if slices.ContainsFunc(u.parts, func(p *rebalancer.Object) bool { return p.HasShark(evac.ID()) }) {
				rep.UploadsSkipped++
				rep.skipped(key)
			} else {
				rep.add(Problem{Kind: ProblemUploadOnEvacuated, Shard: u.shard, Key: key, ObjectID: u.record.ID, Shark: evac.ID(),
					Detail: "no part of the upload is left there"})
			}
		}
		for _, p := range u.parts {
			for _, s := range pre {
				// The shark assembles the object from the part files it
				// holds: a part whose metadata moved elsewhere while the
				// record still names this shark (other parts could not
				// move) is fine as long as its file is still here.
				if !p.HasShark(s.MantaStorageID) && !f.hasV2File(s.MantaStorageID, p) {
					rep.add(Problem{Kind: ProblemUploadPartMissing, Shard: p.Shard, Key: p.Key, ObjectID: p.ID, Shark: s.MantaStorageID,
						Detail: "the upload's record names this shark to assemble the object, and it has no copy of this part"})
				}
			}
		}
	}
	return checks, nil
}

// hasV2File reports whether the shark holds a file of o's size at its v2
// path.
func (f *Fleet) hasV2File(shark string, o *rebalancer.Object) bool {
	s := f.byID[shark]
	if s == nil {
		return false
	}
	fi, err := os.Stat(filepath.Join(s.root, V2Path(o.Owner, o.BucketID, o.ID, o.Name)))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == o.ContentLength
}

// preallocatedSharks reads an upload record's preallocated sharks from its
// headers, which buckets-api keeps twice (x-upload-record's
// preAllocatedSharks, and x-preallocated-sharks); the two must agree.
func preallocatedSharks(headers map[string]*string) ([]rebalancer.StorageNode, error) {
	var lists [][]rebalancer.StorageNode
	if h := headers["x-upload-record"]; h != nil {
		var rec struct {
			Pre []rebalancer.StorageNode `json:"preAllocatedSharks"`
		}
		if err := json.Unmarshal([]byte(*h), &rec); err != nil {
			return nil, fmt.Errorf("x-upload-record: %w", err)
		}
		lists = append(lists, rec.Pre)
	}
	if h := headers["x-preallocated-sharks"]; h != nil {
		var pre []rebalancer.StorageNode
		if err := json.Unmarshal([]byte(*h), &pre); err != nil {
			return nil, fmt.Errorf("x-preallocated-sharks: %w", err)
		}
		lists = append(lists, pre)
	}
	switch {
	case len(lists) == 0:
		return nil, fmt.Errorf("an upload record without x-upload-record or x-preallocated-sharks")
	case len(lists) == 2 && !slices.Equal(lists[0], lists[1]):
		return nil, fmt.Errorf("x-upload-record lists the preallocated sharks %v, x-preallocated-sharks %v", lists[0], lists[1])
	}
	return lists[0], nil
}
