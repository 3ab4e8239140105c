package manager

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

// Buckets (v2) objects: the legacy "mdapi" block names the buckets-mdapi
// shards (config-agent renders it from BUCKETS_MORAY_SHARDS). With shards
// listed, every job discovers v2 objects as well as v1 ones
// (sharkspotter.Multi), updates their metadata through buckets-mdapi
// (mdapi.Router) and fixes the records of the multipart uploads whose
// parts it moved. Without, jobs move v1 objects only, and each job's
// status and end-of-job log say that v2 objects were not scanned.

// NotScannedNoMdapi is why jobs do not look for v2 objects when the
// configuration lists no buckets-mdapi shard.
const NotScannedNoMdapi = "no buckets-mdapi shards are configured (mdapi.shards, rendered from the SAPI metadata BUCKETS_MORAY_SHARDS)"

// The legacy's defaults for mdapi.max_retries, initial_backoff_ms and
// max_backoff_ms, which the legacy parsed and never read. The engine's
// retries of a metadata update back off from 100 ms to 5 s, as these say,
// for the job's metadata_retry_window rather than a number of tries.
const (
	legacyMdapiRetries    = 3
	legacyMdapiBackoffMin = 100
	legacyMdapiBackoffMax = 5000
)

// MdapiShardNumbers returns the distinct buckets-mdapi shard numbers of
// mdapi.shards, ascending.
func (c *Config) MdapiShardNumbers() []int {
	var ns []int
	for _, s := range c.Mdapi.Shards {
		if n, err := mdapi.ShardNumber(s.Host); err == nil {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return slices.Compact(ns)
}

// HasBuckets reports whether the configuration lists buckets-mdapi shards.
func (c *Config) HasBuckets() bool { return len(c.Mdapi.Shards) > 0 }

// BucketsDirect says whether v2 objects are discovered straight from the
// buckets PostgreSQL copies (mdapi_direct_db, by default direct_db) rather
// than through buckets-mdapi's listings.
func (c *Config) BucketsDirect() bool {
	if c.MdapiDirectDB != nil {
		return *c.MdapiDirectDB
	}
	return c.DirectDB == nil || *c.DirectDB
}

// mdapiProblems are the problems of the mdapi settings.
func (c *Config) mdapiProblems() []error {
	var errs []error
	m := c.Mdapi
	for _, s := range m.Shards {
		if _, err := mdapi.ShardNumber(s.Host); err != nil {
			errs = append(errs, fmt.Errorf("mdapi.shards: %w (as in 1.buckets-mdapi.%s)", err, c.DomainName))
		}
	}
	if m.MaxBatchSize < 1 || m.MaxBatchSize > mdapi.MaxBatch {
		errs = append(errs, fmt.Errorf("mdapi.max_batch_size must be in 1..%d (objects per batchupdateobjects), got %d", mdapi.MaxBatch, m.MaxBatchSize))
	}
	for _, k := range []struct {
		key string
		v   int
	}{{"connection_timeout_ms", m.ConnectionTimeoutMS}, {"operation_timeout_ms", m.OperationTimeoutMS}} {
		if k.v < 1 || k.v > maxMdapiTimeout {
			errs = append(errs, fmt.Errorf("mdapi.%s must be in 1..%d, got %d", k.key, maxMdapiTimeout, k.v))
		}
	}
	for _, k := range []struct {
		key       string
		v, legacy int
	}{
		{"max_retries", m.MaxRetries, legacyMdapiRetries},
		{"initial_backoff_ms", m.InitialBackoffMS, legacyMdapiBackoffMin},
		{"max_backoff_ms", m.MaxBackoffMS, legacyMdapiBackoffMax},
	} {
		if k.v != k.legacy && k.v >= 0 {
			errs = append(errs, fmt.Errorf("mdapi.%s %d is not supported: a buckets-mdapi update failing transiently is retried, "+
				"waiting 100 ms doubling to 5 s between tries, for the job option metadata_retry_window (5m by default); "+
				"remove the key or set it to %d (the legacy never read it either)", k.key, k.v, k.legacy))
		}
	}
	if _, err := c.mdapiDSNs(); err != nil {
		errs = append(errs, err)
	}
	if _, err := shardMap("mdapi_endpoints", c.MdapiEndpoints); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// maxMdapiTimeout bounds the mdapi timeouts (an hour).
const maxMdapiTimeout = 3600 * 1000

// mdapiDSNs parses mdapi_databases as shardDSNs parses shard_databases.
func (c *Config) mdapiDSNs() (map[int]string, error) {
	m, err := shardMap("mdapi_databases", c.MdapiDatabases)
	if err != nil {
		return nil, err
	}
	for n, dsn := range m {
		if m[n], err = withSSLModeDefault(dsn); err != nil {
			return nil, fmt.Errorf("mdapi_databases: shard %d: %w", n, err)
		}
	}
	return m, nil
}

// mdapiResolver finds each buckets-mdapi shard: mdapi_endpoints where it
// names the shard, else DNS (SRV _buckets-mdapi._tcp.<host>, else
// <host>:2030) for the host of mdapi.shards.
func (c *Config) mdapiResolver() mdapi.ShardResolver {
	static, _ := shardMap("mdapi_endpoints", c.MdapiEndpoints) // validated by ParseConfig
	hosts := map[int]string{}
	for _, s := range c.Mdapi.Shards {
		if n, err := mdapi.ShardNumber(s.Host); err == nil {
			hosts[n] = s.Host
		}
	}
	dns := mdapi.DNSShards{Hosts: hosts}
	return moray.ShardFunc(func(ctx context.Context, shard int) (string, error) {
		if addr, ok := static[shard]; ok {
			return addr, nil
		}
		return dns.ResolveShard(ctx, shard)
	})
}

// mdapiOptions are the client options of the mdapi block:
// connection_timeout_ms bounds connecting, operation_timeout_ms the wait
// for each reply.
func (c *Config) mdapiOptions(log *slog.Logger) mdapi.Options {
	return mdapi.Options{
		DialTimeout: time.Duration(c.Mdapi.ConnectionTimeoutMS) * time.Millisecond,
		RPCTimeout:  time.Duration(c.Mdapi.OperationTimeoutMS) * time.Millisecond,
		Logger:      log,
	}
}

// bucketsScanner is a buckets scanner that can also list the vnodes.
type bucketsScanner interface {
	rebalancer.ObjectSource
	ListVnodes(ctx context.Context) (*mdapi.VnodeMap, error)
}

// bucketsScanner returns the v2 discovery of the configuration: the buckets
// PostgreSQL copies when BucketsDirect, else buckets-mdapi's listings
// through clients.
func (c *Config) bucketsScanner(clients mdapi.ShardClients, exclude []string, log *slog.Logger) (bucketsScanner, error) {
	o := sharkspotter.Options{Shards: c.MdapiShardNumbers(), Workers: c.Options.MaxMdReadThreads, ExcludeKeyPrefixes: exclude, Logger: log}
	if c.BucketsDirect() {
		dsns, err := c.mdapiDSNs()
		if err != nil {
			return nil, err
		}
		return &sharkspotter.BucketsPostgresScanner{Options: o, Domain: c.DomainName, DSNs: dsns, Chunk: c.Options.MdReadChunkSize}, nil
	}
	return &sharkspotter.BucketsMdapiScanner{Options: o, Clients: clients}, nil
}

// bucketsWiring is what the manager makes for v2 objects.
type bucketsWiring struct {
	updates *mdapi.Shards        // metadata updates and upload records
	store   *mdapi.MetadataStore // over updates
	scan    *mdapi.Shards        // listings, on connections of their own
}

// newBuckets connects (lazily) to the configuration's buckets-mdapi shards,
// or returns nil when it lists none.
func (m *Manager) newBuckets(cfg *Config) *bucketsWiring {
	if !cfg.HasBuckets() {
		return nil
	}
	log := m.log.With("component", "buckets-mdapi")
	updates := mdapi.NewShards(cfg.mdapiResolver(), cfg.mdapiOptions(log))
	scan := mdapi.NewShards(cfg.mdapiResolver(), cfg.mdapiOptions(m.log.With("component", "buckets-mdapi-scan")))
	m.closers = append(m.closers, updates.Close, scan.Close)
	store := mdapi.NewMetadataStore(updates)
	store.BatchSize = cfg.Mdapi.MaxBatchSize
	return &bucketsWiring{updates: updates, store: store, scan: scan}
}

// engineBuckets is the engine's Buckets of the configuration.
func (m *Manager) engineBuckets(b *bucketsWiring) evacuate.Buckets {
	if b == nil {
		return evacuate.Buckets{NotScanned: NotScannedNoMdapi}
	}
	return evacuate.Buckets{
		Scanned: true,
		Uploads: func(ctx context.Context) (evacuate.UploadFixer, error) {
			c := m.config()
			sc, err := c.bucketsScanner(b.scan, nil, m.log.With("component", "sharkspotter"))
			if err != nil {
				return nil, err
			}
			vnodes, err := sc.ListVnodes(ctx)
			if err != nil {
				return nil, fmt.Errorf("list the buckets vnodes: %w", err)
			}
			ring, err := vnodes.Ring()
			if err != nil {
				return nil, fmt.Errorf("%w (every buckets-mdapi shard must be listed in mdapi.shards)", err)
			}
			return &mdapi.UploadFixer{Shards: b.updates, Ring: ring, Vnodes: vnodes}, nil
		},
	}
}

// metadataStore routes v1 objects to Moray and v2 objects to buckets-mdapi.
func metadataStore(v1 rebalancer.MetadataStore, b *bucketsWiring) rebalancer.MetadataStore {
	r := mdapi.Router{Moray: v1}
	if b != nil {
		r.Buckets = b.store
	}
	return r
}
