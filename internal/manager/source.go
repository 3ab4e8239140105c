package manager

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"

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

// shardDSNs parses shard_databases: shard number -> PostgreSQL URL.
func (c *Config) shardDSNs() (map[int]string, error) {
	return shardMap("shard_databases", c.ShardDatabases)
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
func defaultSource(cfg *Config, scan moray.ShardClients, log *slog.Logger) func(evacuate.JobRecord) (rebalancer.ObjectSource, error) {
	shards := cfg.ShardNumbers()
	direct := cfg.DirectDB == nil || *cfg.DirectDB
	o := cfg.Options
	return func(job evacuate.JobRecord) (rebalancer.ObjectSource, error) {
		exclude := job.Options.Exclusions()
		logger := log.With("component", "sharkspotter", "job", job.ID)
		if direct {
			dsns, err := cfg.shardDSNs()
			if err != nil {
				return nil, err
			}
			return &sharkspotter.PostgresScanner{
				Domain: cfg.DomainName, DSNs: dsns, Options: sharkspotter.Options{Shards: shards,
					Workers: o.MaxMdReadThreads, ExcludeKeyPrefixes: exclude, Logger: logger},
				Chunk: o.MdReadChunkSize,
			}, nil
		}
		return &sharkspotter.MorayScanner{
			Clients: scan, Options: sharkspotter.Options{Shards: shards,
				Workers: o.MaxMdReadThreads, ExcludeKeyPrefixes: exclude, Logger: logger},
			Window: int64(o.MdReadChunkSize),
		}, nil
	}
}
