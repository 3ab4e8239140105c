package sharkspotter

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/TritonDataCenter/rebalancer/mdapi"
)

// Buckets (v2) objects live in buckets-mdapi shards, one PostgreSQL schema
// per vnode (manta_bucket_<vnode>), in tables keyed by (owner, bucket_id,
// name): there is no serial id to order a scan by or to resume it from. So
// a buckets scanner numbers the objects it visits itself: vnodes in
// ascending order, each vnode's objects in the order of its key, and
//
//	ScanID = vnode<<40 + n
//
// where n counts the objects visited in the vnode (from 1). A checkpoint
// (DiscoverRequest.After) of vnode<<40 + k resumes by scanning that vnode
// again from its start, numbering its objects from k+1: objects visited
// before the checkpoint are visited again with higher ScanIDs (consumers
// deduplicate by object id), and none inserted or deleted meanwhile can be
// skipped, which resuming from a position could not promise. A checkpoint
// of vnode<<40 (Progress.Through once the vnode before is done) starts that
// vnode afresh.
const vnodeShift = 40

// maxScanVnode is the largest vnode whose ScanIDs fit in an int64 (the
// next vnode's base must fit too). Rings have at most a few million vnodes.
const maxScanVnode = 1<<(63-vnodeShift) - 2

func vnodeBase(vnode uint64) int64 { return int64(vnode) << vnodeShift }

// ScanVnode returns the vnode a buckets scanner's ScanID belongs to.
func ScanVnode(scanID int64) uint64 { return uint64(max(scanID, 0)) >> vnodeShift }

// bucketRow is one row a vnode pager read: a record, or a row that names
// the shark but cannot be used.
type bucketRow struct {
	rec *mdapi.Record
	key string // Locator key, for errors
	bad error
}

// vnodePager reads the rows of one vnode of a shard a page at a time.
type vnodePager interface {
	// page reads the rows of vnode after cur (nil: from its start). It
	// returns the rows that may list the shark, how many rows it read, the
	// cursor of the next page and whether the vnode is done. It has no side
	// effects, so a failed page can be read again.
	page(ctx context.Context, vnode uint64, cur any) (rows []bucketRow, read int64, next any, done bool, err error)
}

// bucketsBackend is the backend of the buckets scanners: every shard is one
// stream over its vnodes.
type bucketsBackend struct {
	vnodes map[int][]uint64
	failed map[int]error // shards that cannot be scanned (vnodes not listed)
	pager  func(shard int) (vnodePager, func())
}

func (b *bucketsBackend) open(_ context.Context, c *common, shard int) (shardSource, error) {
	if err := b.failed[shard]; err != nil {
		return shardSource{}, err
	}
	vnodes := b.vnodes[shard]
	p, closer := b.pager(shard)
	src := shardSource{close: closer, streams: []stream{&bucketsStream{c: c, shard: shard, vnodes: vnodes, pager: p}}}
	if len(vnodes) > 0 {
		src.max = vnodeBase(vnodes[len(vnodes)-1] + 1)
	}
	return src, nil
}

// bucketsStream reads a shard's vnodes one after the other.
type bucketsStream struct {
	c      *common
	shard  int
	vnodes []uint64 // ascending
	pager  vnodePager

	started bool
	vi      int   // the vnode being read
	base    int64 // ScanIDs of this pass over it are base+1, base+2...
	n       int64 // objects numbered so far in this pass
	cur     any   // the pager's cursor in it
}

func (s *bucketsStream) column() string { return "objects" }

// start finds where a scan resuming after a ScanID begins.
func (s *bucketsStream) start(after int64) (vi int, base int64) {
	after = max(after, 0)
	va := ScanVnode(after)
	vi = sort.Search(len(s.vnodes), func(i int) bool { return s.vnodes[i] >= va })
	switch {
	case vi == len(s.vnodes):
		return vi, after
	case s.vnodes[vi] == va:
		return vi, after // that vnode again, numbering after the checkpoint
	}
	return vi, vnodeBase(s.vnodes[vi])
}

func (s *bucketsStream) fetch(ctx context.Context, after int64) (piece, error) {
	vi, base, n, cur := s.vi, s.base, s.n, s.cur
	if !s.started {
		vi, base = s.start(after)
		n, cur = 0, nil
	}
	if vi >= len(s.vnodes) {
		return piece{last: max(after, 0), done: true}, nil
	}
	v := s.vnodes[vi]
	rows, read, next, done, err := s.pager.page(ctx, v, cur)
	if err != nil {
		return piece{}, fmt.Errorf("vnode %d: %w", v, err)
	}
	p := piece{rows: read}
	limit := vnodeBase(v+1) - 1
	for _, r := range rows {
		if r.bad == nil && !listsShark(r.rec, s.c.m.shark) {
			continue
		}
		if base+n >= limit {
			return piece{}, fmt.Errorf("vnode %d: resumed too often: its ScanIDs are used up", v)
		}
		n++
		if r.bad != nil {
			p.bad = append(p.bad, &RowError{Shard: s.shard, ID: base + n, Key: r.key, Err: r.bad})
			continue
		}
		obj, err := mdapi.ObjectFromRecord(s.shard, v, r.rec)
		if err != nil {
			p.bad = append(p.bad, &RowError{Shard: s.shard, ID: base + n, Key: r.rec.Locator(v).Key(), Err: err})
			continue
		}
		if s.c.m.excluded([]byte(obj.Key)) {
			continue
		}
		obj.ScanID = base + n
		p.objs = append(p.objs, obj)
	}
	p.last = base + n
	if done {
		vi++
		n, cur = 0, nil
		if vi < len(s.vnodes) {
			base = vnodeBase(s.vnodes[vi])
			p.last = base
		} else {
			p.last, p.done = vnodeBase(v+1), true
		}
	} else {
		cur = next
	}
	s.started, s.vi, s.base, s.n, s.cur = true, vi, base, n, cur
	return p, nil
}

// listsShark reports whether a record lists the shark.
func listsShark(r *mdapi.Record, shark string) bool {
	for _, s := range r.Sharks {
		if s.MantaStorageID == shark {
			return true
		}
	}
	return false
}

// listVnodes lists the vnodes of every shard, a few shards at a time, and
// checks that no vnode is on two shards: which copy buckets-api uses is the
// placement ring's to say, and scanning the wrong one would move the wrong
// metadata. It returns the vnodes of each shard that can be scanned, and
// the error of each that cannot.
func (c *common) listVnodes(ctx context.Context, list func(ctx context.Context, shard int) ([]uint64, error)) (map[int][]uint64, map[int]error) {
	var mu sync.Mutex
	vnodes := map[int][]uint64{}
	failed := map[int]error{}
	var g errgroup.Group
	g.SetLimit(c.workers)
	for _, shard := range c.shards {
		g.Go(func() error {
			var vs []uint64
			err := c.retry(ctx, shard, "list vnodes", func() error {
				var err error
				vs, err = list(ctx, shard)
				return err
			})
			if err == nil {
				slices.Sort(vs)
				vs = slices.Compact(vs)
				if i := slices.IndexFunc(vs, func(v uint64) bool { return v > maxScanVnode }); i >= 0 {
					err = fmt.Errorf("vnode %d is beyond the %d a scan can number", vs[i], uint64(maxScanVnode))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[shard] = err
			} else {
				vnodes[shard] = vs
			}
			return nil
		})
	}
	g.Wait()
	owner := map[uint64][]int{}
	for shard, vs := range vnodes {
		for _, v := range vs {
			owner[v] = append(owner[v], shard)
		}
	}
	shared := map[int][]string{}
	for v, shards := range owner {
		if len(shards) < 2 {
			continue
		}
		slices.Sort(shards)
		for _, s := range shards {
			shared[s] = append(shared[s], fmt.Sprintf("vnode %d (also on shards %v)", v, slices.DeleteFunc(slices.Clone(shards), func(x int) bool { return x == s })))
		}
	}
	for s, what := range shared {
		slices.Sort(what)
		failed[s] = fmt.Errorf("%s: a vnode on two shards (an old copy of a relocated vnode?) is not scanned, "+
			"since only the placement ring knows which copy is live", strings.Join(what, ", "))
		delete(vnodes, s)
	}
	return vnodes, failed
}

// parseVnodeSchema reads the vnode of a schema named manta_bucket_<vnode>,
// as buckets-mdapi's schema manager names them; other names are not vnodes.
func parseVnodeSchema(name string) (uint64, bool) {
	num, ok := strings.CutPrefix(name, "manta_bucket_")
	if !ok || num == "" || (len(num) > 1 && num[0] == '0') {
		return 0, false
	}
	var v uint64
	for _, c := range []byte(num) {
		if c < '0' || c > '9' || v > (1<<63)/10 {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// bucketsCheck validates the settings the buckets scanners do not share
// with the v1 ones.
func bucketsCheck(o Options) error {
	if o.EndID != 0 {
		return fmt.Errorf("sharkspotter: EndID bounds the ids of v1 rows; buckets scans have none")
	}
	return nil
}
