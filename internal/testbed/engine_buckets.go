package testbed

import (
	"context"
	"fmt"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

// NotScannedNoTier is why an engine of a fleet without a buckets tier does
// not look for v2 objects.
const NotScannedNoTier = "the fleet has no buckets tier (testbed.Config.Buckets)"

// defaultSource is the engine's object source when Config.Source is not
// set: ScanSource, and with a buckets tier, BucketsSource beside it.
func (f *Fleet) defaultSource() rebalancer.ObjectSource {
	if f.buckets == nil {
		return f.ScanSource()
	}
	return sharkspotter.Multi(sharkspotter.Part{Kind: sharkspotter.V1, Source: f.ScanSource()},
		sharkspotter.Part{Kind: sharkspotter.V2, Source: f.BucketsSource()})
}

// BucketsSource is the product's direct discovery of the fleet's v2
// objects: sharkspotter.BucketsPostgresScanner over each buckets shard's
// database, as it reads the buckets PostgreSQL copies in production. Nil
// without a buckets tier.
func (f *Fleet) BucketsSource() *sharkspotter.BucketsPostgresScanner {
	if f.buckets == nil {
		return nil
	}
	return &sharkspotter.BucketsPostgresScanner{DSNs: f.BucketsDSNs(), Chunk: 100,
		Options: sharkspotter.Options{Shards: f.BucketsShardNumbers(), Logger: f.log.With("component", "sharkspotter")}}
}

// BucketsMdapiSource is discovery of the fleet's v2 objects through
// buckets-mdapi's listings (sharkspotter.BucketsMdapiScanner), which needs
// the fork that lists vnodes (mdapitest.Fork, the default). Nil without a
// buckets tier.
func (f *Fleet) BucketsMdapiSource() *sharkspotter.BucketsMdapiScanner {
	if f.buckets == nil {
		return nil
	}
	return &sharkspotter.BucketsMdapiScanner{Clients: f.buckets.clients,
		Options: sharkspotter.Options{Shards: f.BucketsShardNumbers(), Logger: f.log.With("component", "sharkspotter")}}
}

// routedMetadata is the engine's metadata store: Moray, and with a buckets
// tier, buckets-mdapi for v2 objects.
func (f *Fleet) routedMetadata() rebalancer.MetadataStore {
	r := mdapi.Router{Moray: f.MetadataStore()}
	if f.buckets != nil {
		r.Buckets = f.MdapiMetadataStore()
	}
	return r
}

// engineBuckets is the engine's Buckets: scanned with a buckets tier, and
// the fleet's UploadFixer for upload records.
func (f *Fleet) engineBuckets() evacuate.Buckets {
	if f.buckets == nil {
		return evacuate.Buckets{NotScanned: NotScannedNoTier}
	}
	return evacuate.Buckets{Scanned: true, Uploads: func(context.Context) (evacuate.UploadFixer, error) {
		return f.UploadFixer(), nil
	}}
}

// bucketsManagerConfig adds the buckets tier to a manager configuration.
func (f *Fleet) bucketsManagerConfig(cfg map[string]any) {
	if f.buckets == nil {
		return
	}
	var shards []map[string]any
	endpoints, databases := map[string]any{}, map[string]any{}
	for _, n := range f.BucketsShardNumbers() {
		shards = append(shards, map[string]any{"host": fmt.Sprintf("%d.buckets-mdapi.%s", n, f.Domain())})
		endpoints[fmt.Sprint(n)] = f.Mdapi(n).Addr()
		databases[fmt.Sprint(n)] = f.BucketsDSN(n)
	}
	cfg["mdapi"] = map[string]any{"shards": shards}
	cfg["mdapi_endpoints"] = endpoints
	cfg["mdapi_databases"] = databases
	cfg["mdapi_direct_db"] = true
}
