package sharkspotter

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/jmoiron/sqlx"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/mdapi"
)

// ListVnodes lists the vnodes of every shard of s.Shards, as Discover lists
// them before it scans (from pg_namespace), into a vnode map: which shard
// holds each vnode, which the record of a multipart upload is looked up
// with (mdapi.UploadFixer). It needs nothing of a scan in progress, so a
// job resumed after its discovery ended can still fix its uploads' records.
// A shard that cannot be listed, or a vnode found on two shards, is an
// error (every such shard's, as *ShardErrors, joined).
func (s *BucketsPostgresScanner) ListVnodes(ctx context.Context) (*mdapi.VnodeMap, error) {
	c, err := listingCommon(s.Options, pgTransient)
	if err != nil {
		return nil, err
	}
	dbs := &shardDBs{dsn: s.dsn, open: map[int]*sqlx.DB{}}
	defer dbs.closeAll()
	return vnodeMap(c.listVnodes(ctx, func(ctx context.Context, shard int) ([]uint64, error) {
		db, err := dbs.get(shard)
		if err != nil {
			return nil, err
		}
		return listVnodeSchemas(ctx, db, c)
	}))
}

// ListVnodes is BucketsPostgresScanner.ListVnodes through buckets-mdapi's
// listvnodes (which needs a MANTA-5504 server).
func (s *BucketsMdapiScanner) ListVnodes(ctx context.Context) (*mdapi.VnodeMap, error) {
	if s.Clients == nil {
		return nil, errors.New("sharkspotter: no buckets-mdapi clients")
	}
	c, err := listingCommon(s.Options, mdapi.IsTransient)
	if err != nil {
		return nil, err
	}
	return vnodeMap(c.listVnodes(ctx, func(ctx context.Context, shard int) ([]uint64, error) {
		return s.Clients.Client(shard).ListVnodes(ctx)
	}))
}

// listingCommon is the scan settings of o for listing vnodes, which looks
// for no shark (the matcher, made for a placeholder, is unused).
func listingCommon(o Options, transient func(error) bool) (*common, error) {
	return newCommon(rebalancer.DiscoverRequest{Shark: "(listing vnodes)"}, o, transient)
}

func vnodeMap(vnodes map[int][]uint64, failed map[int]error) (*mdapi.VnodeMap, error) {
	m := &mdapi.VnodeMap{}
	for _, shard := range slices.Sorted(maps.Keys(vnodes)) {
		if err := m.Add(shard, vnodes[shard]...); err != nil {
			return nil, err // listVnodes refused the vnodes on two shards already
		}
	}
	var errs []error
	for _, shard := range slices.Sorted(maps.Keys(failed)) {
		errs = append(errs, &ShardError{Shard: shard, Err: failed[shard]})
	}
	return m, errors.Join(errs...)
}
