package sharkspotter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/mdapi"
)

// BucketsMdapiScanner is a rebalancer.ObjectSource for buckets (v2) objects
// that lists them through buckets-mdapi's RPCs, for where the buckets
// PostgreSQL copies are not reachable. It needs a buckets-mdapi with the
// discovery RPCs listvnodes and listowners (branch MANTA-5504); against
// one without them every shard fails with an error matching
// mdapi.ErrUnsupported.
//
// buckets-mdapi can list objects only by bucket and vnode, and a bucket's
// objects are spread over every vnode of every shard while its own record
// is in one vnode of one shard. So the scan has two passes:
//
//  1. on every shard, every vnode's owners (listowners) and their buckets
//     (listbuckets, every page): the buckets of the whole tier;
//  2. on every shard, every vnode, for every bucket of the tier, its
//     objects in that vnode (listobjects, page by page), keeping those that
//     list the shark.
//
// That is one listobjects per vnode and bucket at least: far slower than
// BucketsPostgresScanner, which reads each vnode's table once. Objects
// whose bucket record is gone are not found this way.
//
// Every RPC failure fails its shard, with an error naming the shard and
// the vnode (transient ones are first retried as Options says): unlike the
// legacy, no vnode or bucket is skipped with a warning. A shard whose
// buckets could not be listed fails, and since its buckets' objects may be
// on any shard, Discover's error then says so.
//
// The objects are numbered as the package documentation says (ScanID =
// vnode<<40 + n); in a vnode they come bucket by bucket (buckets ordered by
// owner and id), each bucket's in name order.
//
// The fields configure the scan and must not change during Discover;
// several Discover calls may run at once. Shards and Clients are required;
// EndID must be 0.
type BucketsMdapiScanner struct {
	Options
	// Clients gives each buckets shard's client (*mdapi.Shards).
	Clients mdapi.ShardClients
	// PageSize is how many buckets or objects one listing RPC asks for
	// (0: mdapi.MaxLimit).
	PageSize int
	// OnVnodes is BucketsPostgresScanner's.
	OnVnodes func(shard int, vnodes []uint64)
}

// Discover calls visit for every buckets object whose sharks name
// req.Shark, in the shards s.Shards, resuming after req.After[shard] of
// each. The calling conventions are PostgresScanner's.
func (s *BucketsMdapiScanner) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	if err := bucketsCheck(s.Options); err != nil {
		return err
	}
	if s.Clients == nil {
		return errors.New("sharkspotter: no buckets-mdapi clients")
	}
	if s.PageSize < 0 || s.PageSize > mdapi.MaxLimit {
		return fmt.Errorf("sharkspotter: page size %d is not in 1..%d", s.PageSize, mdapi.MaxLimit)
	}
	c, err := newCommon(req, s.Options, mdapi.IsTransient)
	if err != nil {
		return err
	}
	page := cmp.Or(s.PageSize, mdapi.MaxLimit)
	vnodes, failed := c.listVnodes(ctx, func(ctx context.Context, shard int) ([]uint64, error) {
		return s.Clients.Client(shard).ListVnodes(ctx)
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.OnVnodes != nil {
		for _, shard := range slices.Sorted(maps.Keys(vnodes)) {
			s.OnVnodes(shard, slices.Clone(vnodes[shard]))
		}
	}

	buckets, bucketErrs := s.listBuckets(ctx, c, vnodes, page)
	if err := ctx.Err(); err != nil {
		return err
	}
	// Whatever the reason a shard failed, its buckets were not listed.
	unlisted := slices.Sorted(maps.Keys(failed))
	for shard, err := range bucketErrs {
		failed[shard] = err
		unlisted = append(unlisted, shard)
	}
	slices.Sort(unlisted)
	b := &bucketsBackend{vnodes: vnodes, failed: failed, pager: func(shard int) (vnodePager, func()) {
		return &mdapiPager{c: s.Clients.Client(shard), buckets: buckets, limit: page}, func() {}
	}}
	var visitErr error
	err = c.discover(ctx, b, req.After, func(o rebalancer.Object) error {
		visitErr = visit(o)
		return visitErr
	})
	if len(unlisted) > 0 && len(unlisted) < len(c.shards) && err != nil && err != visitErr && ctx.Err() == nil {
		return fmt.Errorf("%w; the buckets recorded on shards %v were not listed, so their objects on the other shards were not looked for either", err, unlisted)
	}
	return err
}

// bucketID is a bucket as the object listings name it.
type bucketID struct{ owner, id string }

// listBuckets lists the buckets of every shard's vnodes: the union, sorted,
// and the error of each shard whose buckets could not all be listed.
func (s *BucketsMdapiScanner) listBuckets(ctx context.Context, c *common, vnodes map[int][]uint64, page int) ([]bucketID, map[int]error) {
	var mu sync.Mutex
	all := map[bucketID]bool{}
	failed := map[int]error{}
	var g errgroup.Group
	g.SetLimit(c.workers)
	for shard, vs := range vnodes {
		g.Go(func() error {
			cl := s.Clients.Client(shard)
			found := map[bucketID]bool{}
			err := func() error {
				for _, v := range vs {
					var owners []string
					err := c.retry(ctx, shard, fmt.Sprintf("vnode %d: list owners", v), func() error {
						var err error
						owners, err = cl.ListOwners(ctx, v)
						return err
					})
					if err != nil {
						return err
					}
					for _, o := range owners {
						err := c.retry(ctx, shard, fmt.Sprintf("vnode %d: list buckets of %s", v, o), func() error {
							return cl.WalkBuckets(ctx, o, v, page, func(b mdapi.Bucket) error {
								found[bucketID{b.Owner, b.ID}] = true
								return nil
							})
						})
						if err != nil {
							return err
						}
					}
				}
				return nil
			}()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					c.log.Error("listing buckets failed", "shard", shard, "err", err)
				}
				failed[shard] = fmt.Errorf("listing buckets: %w", err)
			}
			for b := range found {
				all[b] = true
			}
			return nil
		})
	}
	g.Wait()
	out := slices.SortedFunc(maps.Keys(all), func(a, b bucketID) int {
		return cmp.Or(strings.Compare(a.owner, b.owner), strings.Compare(a.id, b.id))
	})
	return out, failed
}

// mdapiPager lists a vnode's objects bucket by bucket.
type mdapiPager struct {
	c       *mdapi.Client
	buckets []bucketID
	limit   int
}

// mdapiCursor is where a vnode's listing is: a bucket, and the name its
// next page starts after.
type mdapiCursor struct {
	bucket int
	marker string
}

func (p *mdapiPager) page(ctx context.Context, vnode uint64, cur any) ([]bucketRow, int64, any, bool, error) {
	k, _ := cur.(mdapiCursor)
	if k.bucket >= len(p.buckets) {
		return nil, 0, nil, true, nil
	}
	b := p.buckets[k.bucket]
	recs, err := p.c.ListObjects(ctx, b.owner, b.id, vnode, mdapi.ListOptions{Marker: k.marker, Limit: p.limit})
	if err != nil {
		return nil, 0, nil, false, fmt.Errorf("objects of bucket %s/%s: %w", b.owner, b.id, err)
	}
	rows := make([]bucketRow, len(recs))
	for i, r := range recs {
		rows[i] = bucketRow{rec: r, key: r.Locator(vnode).Key()}
	}
	next := mdapiCursor{bucket: k.bucket}
	if len(recs) < p.limit {
		next = mdapiCursor{bucket: k.bucket + 1}
	} else {
		next.marker = recs[len(recs)-1].Name
		if next.marker == k.marker {
			return nil, 0, nil, false, fmt.Errorf("objects of bucket %s/%s: the page after %q ends with it again", b.owner, b.id, k.marker)
		}
	}
	return rows, int64(len(recs)), next, next.bucket >= len(p.buckets), nil
}
