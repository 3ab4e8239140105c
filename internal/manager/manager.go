// Package manager composes the library into the rebalancer manager: the
// job engine over a job store, Moray for metadata, sharkspotter for
// discovery, storinfo for placement, and the agents' HTTP API, behind the
// manager's HTTP API and metrics.
//
// cmd/rebalancer-manager is this package plus flags, signals and
// listeners; the demo builds the same Manager over an in-process fleet by
// overriding the parts in Deps.
package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/jobapi"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// DefaultDatabase is the job store when the configuration names none: a
// SQLite file in this directory.
const DefaultDatabase = "/var/tmp/rebalancer-manager"

// StorageShard is the metadata shard holding the manta_storage bucket.
const StorageShard = 1

// Deps replaces parts of the production wiring; the zero value means
// production: Moray and PostgreSQL found through DNS under domain_name,
// storinfo at storinfo_url, agents on agent_port.
type Deps struct {
	// Shards gives each metadata shard's Moray client.
	Shards moray.ShardClients
	// Source builds the object source of a new job.
	Source func(evacuate.JobRecord) (rebalancer.ObjectSource, error)
	// Storinfo lists the storage nodes.
	Storinfo storinfo.Lister
	// AgentClient talks to the agents. Without a token of its own it is
	// given the configuration's agent_token.
	AgentClient *agent.Client
	// AgentProxy, when set and AgentClient is nil, is an HTTP proxy
	// through which every request to an agent goes (tests that run agents
	// as processes under made-up names, unusual networks). Proxies from
	// the environment are ignored on purpose.
	AgentProxy *url.URL
	// Logger receives everything the manager logs (default slog.Default).
	Logger *slog.Logger
	// LogLevel, when set, is the level Logger's handler logs at: New sets
	// it to the configuration's log_level and Reload to the new one. Leave
	// it nil when something else fixes the level (a --log-level flag).
	LogLevel *slog.LevelVar
	// MetricLabels are the constant labels of every metric.
	MetricLabels evacuate.MetricLabels
	// Version goes in the API's Server header.
	Version string
	// JobOptions, when set, adjusts the options new jobs get from the
	// configuration (the demo and tests shorten timers with it).
	JobOptions func(evacuate.Options) evacuate.Options
}

// Manager is a running rebalancer manager. Build it with New, start it
// with Run, and apply a new configuration with Reload.
type Manager struct {
	log       *slog.Logger
	level     *slog.LevelVar // Deps.LogLevel
	store     *evacuate.Store
	engine    *evacuate.Engine
	view      *storinfo.View
	placement *storinfo.Placement
	metrics   *evacuate.Metrics
	api       *jobapi.Server
	closers   []func() error

	tune func(evacuate.Options) evacuate.Options // Deps.JobOptions

	mu  sync.Mutex // guards cfg
	cfg *Config
}

// New builds a manager from a parsed configuration. Nothing runs until Run.
func New(ctx context.Context, cfg *Config, deps Deps) (*Manager, error) {
	m := &Manager{cfg: cfg, log: deps.Logger, level: deps.LogLevel, tune: deps.JobOptions}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.level != nil {
		m.level.Set(cfg.slogLevel())
	}
	m.warnIgnored(cfg)
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()

	store, err := OpenStore(ctx, cfg, m.log)
	if err != nil {
		return nil, err
	}
	m.store = store
	m.closers = append(m.closers, store.Close)

	shards := deps.Shards
	if shards == nil {
		s := moray.NewShards(cfg.shardResolver(), moray.Options{Logger: m.log.With("component", "moray")})
		m.closers = append(m.closers, s.Close)
		shards = s
	}
	buckets := m.newBuckets(cfg)
	source := deps.Source
	if source == nil {
		scan := deps.Shards
		if scan == nil {
			s := moray.NewShards(cfg.shardResolver(), moray.Options{Logger: m.log.With("component", "moray-scan")})
			m.closers = append(m.closers, s.Close)
			scan = s
		}
		source = defaultSource(m.config, scan, buckets, m.log)
	}

	lister := deps.Storinfo
	if lister == nil {
		lister, err = storinfo.NewClient(storinfo.ClientConfig{
			BaseURL: cfg.StorinfoURL, Domain: cfg.DomainName, Logger: m.log.With("component", "storinfo"),
		})
		if err != nil {
			return nil, err
		}
	}
	m.view = storinfo.NewView(storinfo.ViewConfig{
		Source:        lister,
		Interval:      time.Duration(cfg.StorinfoPollInterval) * time.Millisecond,
		RetryInterval: time.Duration(cfg.Options.SharkListRetryDelayMillis) * time.Millisecond,
		Logger:        m.log.With("component", "storinfo"),
	})
	m.placement, err = storinfo.NewPlacement(storinfo.PlacementConfig{
		Tunables: cfg.Tunables(), Snapshots: m.view, Logger: m.log.With("component", "placement"),
	})
	if err != nil {
		return nil, err
	}

	ac := deps.AgentClient
	if ac != nil && ac.Token == "" && cfg.AgentToken != "" {
		ac = &agent.Client{HTTPClient: ac.HTTPClient, BaseURL: ac.BaseURL, Token: cfg.AgentToken, MaxResponseBytes: ac.MaxResponseBytes}
	}
	if ac == nil {
		ac = &agent.Client{BaseURL: agent.PortBaseURL(cfg.AgentPort), Token: cfg.AgentToken}
		if p := deps.AgentProxy; p != nil {
			if (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				return nil, fmt.Errorf("agent proxy %q is not an http:// or https:// URL with a host", p.Redacted())
			}
			hc := agent.NewHTTPClient()
			hc.Transport.(*http.Transport).Proxy = http.ProxyURL(p)
			ac.HTTPClient = hc
		}
	}
	labels := deps.MetricLabels
	if labels == (evacuate.MetricLabels{}) {
		labels = cfg.MetricLabels()
	}
	m.metrics = evacuate.NewMetrics(labels)
	m.engine, err = evacuate.NewEngine(evacuate.Config{
		Store:     store,
		Source:    source,
		Metadata:  metadataStore(moray.NewMetadataStore(shards), buckets),
		Placement: m.placement,
		Agent:     ac,
		LookupShark: func(ctx context.Context, id string) (rebalancer.StorageNode, error) {
			return moray.LookupShark(ctx, shards.Client(StorageShard), id)
		},
		Fleet:     m.fleet,
		Blocklist: func() []string { return m.placement.Tunables().BlocklistSharks },
		Capacity: func(id string) (int64, float64, bool) {
			snap := m.view.Snapshot()
			if snap == nil {
				return 0, 0, false
			}
			n, ok := snap.Node(id)
			return n.AvailableMB, n.PercentUsed, ok
		},
		Defaults: m.jobOptions(cfg),
		Logger:   m.log,
		Metrics:  m.metrics,
		Buckets:  m.engineBuckets(buckets),
	})
	if err != nil {
		return nil, err
	}
	m.api = &jobapi.Server{
		Engine:                  m.engine,
		Domain:                  cfg.DomainName,
		SnaplinkCleanupRequired: func() bool { return m.config().SnaplinkCleanupRequired },
		JobOptions:              func() evacuate.Options { return m.jobOptions(m.config()) },
		Metrics:                 m.metrics,
		Version:                 deps.Version,
		Logger:                  m.log.With("component", "api"),
		Token:                   cfg.APIToken,
	}
	m.api.Sharks = m.sharkStates
	ok = true
	return m, nil
}

// The placement is told the sharks out of service, and a reload of its
// tunables keeps them out.
var _ evacuate.SharkExcluder = (*storinfo.Placement)(nil)

// fleet lists the storage nodes storinfo knows, which are those of the
// manta_storage records.
func (m *Manager) fleet(context.Context) ([]rebalancer.StorageNode, error) {
	snap := m.view.Snapshot()
	if snap == nil {
		return nil, errors.New("no storinfo snapshot yet")
	}
	out := make([]rebalancer.StorageNode, len(snap.Nodes))
	for i, n := range snap.Nodes {
		out[i] = n.StorageNode()
	}
	return out, nil
}

func (m *Manager) config() *Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// jobOptions are the options of a new job under cfg.
func (m *Manager) jobOptions(cfg *Config) evacuate.Options {
	o := cfg.JobOptions()
	if m.tune != nil {
		o = m.tune(o)
	}
	return o
}

// Handler serves the manager's HTTP API (see jobapi.Server).
func (m *Manager) Handler() http.Handler { return m.api.Handler() }

// MetricsHandler serves the Prometheus metrics.
func (m *Manager) MetricsHandler() http.Handler { return m.metrics.Handler() }

// Engine is the job engine, for callers that drive jobs in-process.
func (m *Manager) Engine() *evacuate.Engine { return m.engine }

// Placement is the shared destination picker.
func (m *Manager) Placement() *storinfo.Placement { return m.placement }

// Run refreshes the storinfo view and runs the engine's jobs, resuming the
// ones a previous run left unfinished (after importing the legacy
// manager's jobs, when import_legacy_from is set), until ctx ends; it then returns nil,
// however early that is (a stop is never a failure). Jobs are left
// resumable: the next Run picks them up where they stopped. A job store
// that cannot list the jobs to resume is retried every RetryInterval
// meanwhile, with /health answering 503.
func (m *Manager) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	viewDone := make(chan error, 1)
	go func() { viewDone <- m.view.Run(ctx) }()
	m.importLegacy(ctx)
	for attempt := 1; ; attempt++ {
		err := m.engine.Start(ctx)
		if err == nil || ctx.Err() != nil {
			break
		}
		m.log.Error("cannot list the jobs to resume; retrying", "attempt", attempt, "in", RetryInterval, "err", err)
		t := time.NewTimer(RetryInterval)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	<-ctx.Done()
	m.engine.Close()
	if err := <-viewDone; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// RetryInterval is how often Run tries again to list the jobs to resume.
const RetryInterval = 5 * time.Second

// Reload applies a new configuration to the running manager: placement
// limits, the snaplink gate, the options and discovery settings of new
// jobs, metadata threads of running jobs when max_metadata_update_threads
// changed, and the log level (through Deps.LogLevel). Keys that need a
// restart are logged and otherwise ignored, and so are the file's unknown
// keys. It returns the names of what it applied.
func (m *Manager) Reload(ctx context.Context, next *Config) ([]string, error) {
	m.mu.Lock()
	prev := m.cfg
	m.mu.Unlock()

	m.warnIgnored(next)
	for _, k := range restartOnly(prev, next) {
		m.log.Warn("configuration change needs a restart; keeping the running value", "key", k)
	}
	var applied []string
	if l := next.slogLevel(); l != prev.slogLevel() {
		if m.level != nil {
			// The reload's own lines are written at the more verbose of
			// the two levels: a new one at once, an old one until the end.
			if l < m.level.Level() {
				m.level.Set(l)
			}
			defer m.level.Set(l)
			applied = append(applied, "log_level")
		} else {
			m.log.Warn("log_level changed, but the log level is fixed by --log-level or REBALANCER_LOG_LEVEL; keeping it", "log_level", next.LogLevel)
		}
	}
	if !tunablesEqual(prev.Tunables(), next.Tunables()) {
		if err := m.placement.SetTunables(next.Tunables()); err != nil {
			return nil, fmt.Errorf("placement limits: %w", err)
		}
		applied = append(applied, "placement")
	}
	if prev.SnaplinkCleanupRequired != next.SnaplinkCleanupRequired {
		applied = append(applied, "snaplink_cleanup_required")
	}
	if !optionsEqual(prev.JobOptions(), next.JobOptions()) {
		applied = append(applied, "options")
	}
	if prev.Options.MdReadChunkSize != next.Options.MdReadChunkSize || prev.Options.MaxMdReadThreads != next.Options.MaxMdReadThreads {
		applied = append(applied, "discovery") // read by defaultSource when a job starts
	}
	// Keep the running values of what cannot change.
	merged := *next
	merged.DomainName, merged.Shards, merged.Database = prev.DomainName, prev.Shards, prev.Database
	merged.ListenPort, merged.MetricsPort, merged.AgentPort = prev.ListenPort, prev.MetricsPort, prev.AgentPort
	merged.StorinfoURL, merged.DirectDB, merged.ShardDatabases = prev.StorinfoURL, prev.DirectDB, prev.ShardDatabases
	merged.MorayEndpoints, merged.StorinfoPollInterval = prev.MorayEndpoints, prev.StorinfoPollInterval
	merged.Options.SharkListRetryDelayMillis = prev.Options.SharkListRetryDelayMillis
	merged.AgentToken, merged.APIToken, merged.StoreMark = prev.AgentToken, prev.APIToken, prev.StoreMark
	merged.AcceptEmptyStore, merged.ImportLegacyFrom = prev.AcceptEmptyStore, prev.ImportLegacyFrom
	merged.Mdapi, merged.MdapiEndpoints, merged.MdapiDatabases, merged.MdapiDirectDB = prev.Mdapi, prev.MdapiEndpoints, prev.MdapiDatabases, prev.MdapiDirectDB
	m.mu.Lock()
	m.cfg = &merged
	m.mu.Unlock()

	if n := next.Options.MaxMetadataUpdateThreads; n != prev.Options.MaxMetadataUpdateThreads {
		jobs, err := m.engine.Jobs(ctx)
		if err != nil {
			return applied, fmt.Errorf("list jobs: %w", err)
		}
		for _, j := range jobs {
			if j.State.Terminal() {
				continue
			}
			if j.Options.StaticMetadataThreads {
				// Fixed for the job's life, as in the legacy.
				m.log.Info("metadata threads of a static job kept", "job", j.ID, "threads", j.Options.MetadataThreads)
				continue
			}
			if err := m.engine.SetMetadataThreads(ctx, j.ID, n); err != nil && !errors.Is(err, evacuate.ErrJobNotRunning) {
				return applied, fmt.Errorf("job %s: metadata threads: %w", j.ID, err)
			}
			m.log.Info("metadata threads changed by reload", "job", j.ID, "threads", n)
		}
		applied = append(applied, "max_metadata_update_threads")
	}
	m.log.Info("configuration reloaded", "applied", applied)
	m.log.Debug("configuration in effect", "settings", settingsAttr(&merged))
	return applied, nil
}

// warnIgnored logs what the manager ignores in a configuration it is
// given: its unknown keys.
func (m *Manager) warnIgnored(cfg *Config) {
	for _, u := range cfg.unknown {
		args := []any{"key", u.Path}
		if u.Suggestion != "" {
			args = append(args, "did_you_mean", u.Suggestion)
		}
		m.log.Warn("unknown configuration key; ignored", args...)
	}
}

// restartOnly names the keys that differ and cannot change while running.
func restartOnly(a, b *Config) []string {
	var keys []string
	add := func(changed bool, k string) {
		if changed {
			keys = append(keys, k)
		}
	}
	add(a.DomainName != b.DomainName, "domain_name")
	add(!slices.Equal(a.Shards, b.Shards), "shards")
	add(a.Database != b.Database, "database")
	add(a.ListenPort != b.ListenPort, "listen_port")
	add(a.MetricsPort != b.MetricsPort, "metrics_port")
	add(a.AgentPort != b.AgentPort, "agent_port")
	add(a.StorinfoURL != b.StorinfoURL, "storinfo_url")
	add(*a.DirectDB != *b.DirectDB, "direct_db")
	add(fmt.Sprint(a.ShardDatabases) != fmt.Sprint(b.ShardDatabases), "shard_databases")
	add(fmt.Sprint(a.MorayEndpoints) != fmt.Sprint(b.MorayEndpoints), "moray_endpoints")
	add(a.AgentToken != b.AgentToken, "agent_token")
	add(a.APIToken != b.APIToken, "api_token")
	add(a.StoreMark != b.StoreMark, "store_mark")
	add(a.ImportLegacyFrom != b.ImportLegacyFrom, "import_legacy_from")
	add(a.StorinfoPollInterval != b.StorinfoPollInterval, "storinfo_poll_interval_ms")
	add(a.Options.SharkListRetryDelayMillis != b.Options.SharkListRetryDelayMillis, "options.shark_list_retry_delay_ms")
	add(fmt.Sprint(a.Mdapi) != fmt.Sprint(b.Mdapi), "mdapi")
	add(fmt.Sprint(a.MdapiEndpoints) != fmt.Sprint(b.MdapiEndpoints), "mdapi_endpoints")
	add(fmt.Sprint(a.MdapiDatabases) != fmt.Sprint(b.MdapiDatabases), "mdapi_databases")
	add(a.BucketsDirect() != b.BucketsDirect(), "mdapi_direct_db")
	return keys
}

func tunablesEqual(a, b storinfo.Tunables) bool {
	return a.MaxFillPercentage == b.MaxFillPercentage && a.MinAvailMB == b.MinAvailMB && a.MaxSharks == b.MaxSharks &&
		a.MaxStaleness == b.MaxStaleness && slices.Equal(a.BlocklistSharks, b.BlocklistSharks) &&
		slices.Equal(a.BlocklistDatacenters, b.BlocklistDatacenters)
}

func optionsEqual(a, b evacuate.Options) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

// redact removes the password from a postgres:// job store URL, for
// messages.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}

// Close releases the job store and connections. Call it after Run returns.
func (m *Manager) Close() error {
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		errs = append(errs, m.closers[i]())
	}
	m.closers = nil
	return errors.Join(errs...)
}
