package manager

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/lib/pq"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

// ShardNumbers returns the distinct shard numbers of the configuration, in
// ascending order. The legacy scanned every number between the smallest
// and the largest, listed or not; a gap in the list then made its scan
// fail on a shard that does not exist, so only listed shards are scanned.
func (c *Config) ShardNumbers() []int {
	var ns []int
	for _, s := range c.Shards {
		ns = append(ns, s.Number())
	}
	slices.Sort(ns)
	return slices.Compact(ns)
}

// shardDSNs parses shard_databases: shard number -> PostgreSQL connection
// string (a postgres:// URL or key=value pairs), each given sslmode=disable
// when neither it nor PGSSLMODE sets an sslmode. The built-in connection
// (sharkspotter.DefaultDSN) has sslmode=disable, as the legacy's, because
// the shards' read-only copies serve no TLS; lib/pq's own default would
// ask for TLS and fail there with "pq: SSL is not enabled on the server".
func (c *Config) shardDSNs() (map[int]string, error) {
	m, err := shardMap("shard_databases", c.ShardDatabases)
	if err != nil {
		return nil, err
	}
	for n, dsn := range m {
		if m[n], err = withSSLModeDefault(dsn); err != nil {
			return nil, fmt.Errorf("shard_databases: shard %d: %w", n, err)
		}
	}
	return m, nil
}

// withSSLModeDefault checks a lib/pq connection string and adds
// sslmode=disable to it unless it, or PGSSLMODE, sets an sslmode.
func withSSLModeDefault(dsn string) (string, error) {
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("not a PostgreSQL connection string (postgres://user@host:port/database, or host=... dbname=...): %w", err)
	}
	if cfg.SSLMode != "" {
		return dsn, nil
	}
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " sslmode=disable", nil
	}
	u, err := url.Parse(dsn)
	if err != nil { // lib/pq parsed it: cannot happen
		return "", err
	}
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// morayEndpoints parses moray_endpoints: shard number -> host:port.
func (c *Config) morayEndpoints() (map[int]string, error) {
	return shardMap("moray_endpoints", c.MorayEndpoints)
}

func shardMap(key string, in map[string]string) (map[int]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	m := make(map[int]string, len(in))
	for k, v := range in {
		n, err := strconv.Atoi(k)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s: key %q is not a shard number", key, k)
		}
		if v == "" {
			return nil, fmt.Errorf("%s: shard %d has an empty value", key, n)
		}
		m[n] = v
	}
	return m, nil
}

// shardResolver finds each shard's Moray: moray_endpoints where it names
// the shard, else DNS under domain_name as production Manta publishes it.
type shardResolver struct {
	static moray.StaticShards
	dns    moray.DNSShards
}

func (r shardResolver) ResolveShard(ctx context.Context, shard int) (string, error) {
	if addr, ok := r.static[shard]; ok {
		return addr, nil
	}
	return r.dns.ResolveShard(ctx, shard)
}

func (c *Config) shardResolver() moray.ShardResolver {
	static, _ := c.morayEndpoints() // validated by ParseConfig
	return shardResolver{static: static, dns: moray.DNSShards{Domain: c.DomainName}}
}

// defaultSource returns the object source of the configuration: each
// shard's read-only PostgreSQL copy when direct_db is set (the default),
// else Moray's sql RPC. The Moray scanner gets clients of its own (scan
// is the caller's), so that long scans do not queue ahead of metadata
// updates on shared connections. Key prefixes the job excludes are pushed
// down into the scan; the engine applies them again, whatever the source.
// The configuration in effect when a job starts (cfg) gives its discovery
// settings, so that a reload of md_read_chunk_size or max_md_read_threads
// applies to the next job. With buckets-mdapi shards configured (buckets
// non-nil), v2 objects are discovered too, from the buckets PostgreSQL
// copies or through buckets-mdapi (see Config.BucketsDirect), in one
// sharkspotter.Multi with the v1 scan.
func defaultSource(cfg func() *Config, scan moray.ShardClients, buckets *bucketsWiring, log *slog.Logger) func(evacuate.JobRecord) (rebalancer.ObjectSource, error) {
	return func(job evacuate.JobRecord) (rebalancer.ObjectSource, error) {
		c := cfg()
		shards := c.ShardNumbers()
		o := c.Options
		exclude := job.Options.Exclusions()
		logger := log.With("component", "sharkspotter", "job", job.ID)
		var v1 rebalancer.ObjectSource
		if c.DirectDB == nil || *c.DirectDB {
			dsns, err := c.shardDSNs()
			if err != nil {
				return nil, err
			}
			v1 = &sharkspotter.PostgresScanner{
				Domain: c.DomainName, DSNs: dsns, Options: sharkspotter.Options{Shards: shards,
					Workers: o.MaxMdReadThreads, ExcludeKeyPrefixes: exclude, Logger: logger},
				Chunk: o.MdReadChunkSize,
			}
		} else {
			v1 = &sharkspotter.MorayScanner{
				Clients: scan, Options: sharkspotter.Options{Shards: shards,
					Workers: o.MaxMdReadThreads, ExcludeKeyPrefixes: exclude, Logger: logger},
				Window: int64(o.MdReadChunkSize),
			}
		}
		if buckets == nil {
			return v1, nil
		}
		v2, err := c.bucketsScanner(buckets.scan, exclude, logger)
		if err != nil {
			return nil, err
		}
		return sharkspotter.Multi(sharkspotter.Part{Kind: sharkspotter.V1, Source: v1}, sharkspotter.Part{Kind: sharkspotter.V2, Source: v2}), nil
	}
}
