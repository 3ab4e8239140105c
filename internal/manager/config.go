package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/sqlitestore"
	"github.com/TritonDataCenter/rebalancer/internal/storedsn"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// Config is the manager's configuration file: the legacy JSON that
// config-agent renders from the SAPI template at
// /opt/smartdc/rebalancer/config.json, every key of it, plus keys the legacy
// lacks (marked "new"). Unknown keys are ignored, as in the legacy, but
// listed by UnknownKeys, so that a typo does not pass silently.
// docs/compatibility.md says for every legacy key what the manager does
// with it.
type Config struct {
	DomainName              string      `json:"domain_name"`
	Shards                  []ShardHost `json:"shards"`
	SnaplinkCleanupRequired bool        `json:"snaplink_cleanup_required"`
	Options                 Options     `json:"options"`
	Mdapi                   MdapiConfig `json:"mdapi"`
	// DirectDB scans each shard's read-only PostgreSQL copy instead of
	// going through Moray. The legacy code defaults an absent key to false
	// while its template writes true; here absent means true, as the
	// template intends.
	DirectDB          *bool  `json:"direct_db"`
	ListenPort        int    `json:"listen_port"`
	MaxFillPercentage int    `json:"max_fill_percentage"`
	LogLevel          string `json:"log_level"`

	// New keys.
	Database             string            `json:"database"`     // job store: SQLite path or postgres:// URL
	MetricsPort          int               `json:"metrics_port"` // default 8878
	StorinfoURL          string            `json:"storinfo_url"` // default http://storinfo.{domain_name}
	StorinfoPollInterval int               `json:"storinfo_poll_interval_ms"`
	MinAvailMB           int               `json:"min_avail_mb"`          // default 1000
	BlocklistSharks      []string          `json:"blocklist_sharks"`      // never destinations
	BlocklistDatacenters []string          `json:"blocklist_datacenters"` // never destinations
	AgentPort            int               `json:"agent_port"`            // default 7878
	ShardDatabases       map[string]string `json:"shard_databases"`       // direct_db: shard number -> PostgreSQL URL override
	MorayEndpoints       map[string]string `json:"moray_endpoints"`       // shard number -> host:port, instead of DNS
	MaxInflightPerSource int               `json:"max_inflight_per_source"`
	// AgentToken is sent to every agent as "Authorization: Bearer
	// <token>": the agents' --token. Empty (the default, as the legacy)
	// sends none.
	AgentToken string `json:"agent_token"`
	// APIToken, when set, is required as "Authorization: Bearer <token>"
	// on every route of the job API but GET /health.
	APIToken string `json:"api_token"`
	// StoreMark is the file where the manager remembers which job store it
	// used and how many jobs it held (evacuate.StoreOptions). Default:
	// beside a SQLite store, DefaultPostgresMark for PostgreSQL.
	StoreMark string `json:"store_mark"`
	// Metrics are the constant labels of the manager's metrics (new).
	Metrics MetricsConfig `json:"metrics"`

	// Buckets (v2) discovery and metadata (new keys; see buckets.go).
	// MdapiEndpoints maps a buckets-mdapi shard number to host:port,
	// instead of DNS.
	MdapiEndpoints map[string]string `json:"mdapi_endpoints"`
	// MdapiDatabases maps a buckets-mdapi shard number to the PostgreSQL
	// connection string of its read-only copy, instead of
	// {N}.rebalancer-buckets-postgres.{domain_name}.
	MdapiDatabases map[string]string `json:"mdapi_databases"`
	// MdapiDirectDB discovers v2 objects from the buckets PostgreSQL
	// copies (true) or through buckets-mdapi's listings (false); absent,
	// as direct_db.
	MdapiDirectDB *bool `json:"mdapi_direct_db"`

	// ImportLegacyFrom, when set, is the postgres:// URL of the legacy
	// manager's jobs database: at every start, before it resumes its own
	// jobs, the manager imports the legacy jobs it does not have yet
	// (package legacyimport; idempotent, so "once" needs no bookkeeping).
	ImportLegacyFrom string `json:"import_legacy_from"`

	// AcceptEmptyStore opens a job store that does not match its mark
	// (--accept-empty-store; never from the file).
	AcceptEmptyStore bool `json:"-"`

	unknown []UnknownKey // the file's keys that no field has
}

// DefaultPostgresMark is the mark file of a PostgreSQL job store when
// store_mark is not set.
const DefaultPostgresMark = "/var/tmp/rebalancer-manager-postgres.mark"

// markFile returns the store mark file in effect for the job store dsn.
func (c *Config) markFile(dsn string) string {
	if c.StoreMark != "" {
		return c.StoreMark
	}
	if storedsn.IsPostgres(dsn) {
		return DefaultPostgresMark
	}
	return sqlitestore.DefaultMarkFile(dsn)
}

// ShardHost is one metadata shard, as "N.moray.<domain>".
type ShardHost struct {
	Host string `json:"host"`
}

// Number is the shard's leading integer (0 when there is none, as the
// legacy parses it).
func (s ShardHost) Number() int {
	head, _, _ := strings.Cut(s.Host, ".")
	n, err := strconv.Atoi(head)
	if err != nil {
		return 0
	}
	return n
}

// Options are the legacy "options" block.
type Options struct {
	MaxTasksPerAssignment    int `json:"max_tasks_per_assignment"`
	MaxMetadataUpdateThreads int `json:"max_metadata_update_threads"`
	MaxSharks                int `json:"max_sharks"`
	// UseStaticMdUpdateThreads is the legacy's static metadata mode: each
	// job created while it is set updates metadata with a fixed pool of
	// max_metadata_update_threads workers fed through a queue of
	// StaticQueueDepth assignments, and PUT /jobs/{uuid} cannot change it
	// (400), nor can a reload (evacuate.Options.StaticMetadataThreads).
	UseStaticMdUpdateThreads bool `json:"use_static_md_update_threads"`
	StaticQueueDepth         int  `json:"static_queue_depth"`
	MaxAssignmentAge         int  `json:"max_assignment_age"`
	UseBatchedUpdates        bool `json:"use_batched_updates"`
	MdReadChunkSize          int  `json:"md_read_chunk_size"`
	MaxMdReadThreads         int  `json:"max_md_read_threads"`
	// SharkListRetryDelayMillis is how often storinfo is asked while it has
	// listed no storage node (no listing yet, or an empty one), instead of
	// every storinfo_poll_interval_ms (storinfo.ViewConfig.RetryInterval).
	// The legacy waited this long between its three looks at an empty list
	// of destinations, then failed the job.
	SharkListRetryDelayMillis int      `json:"shark_list_retry_delay_ms"`
	ExcludeKeyPrefixes        []string `json:"exclude_key_prefixes"`
}

// MdapiConfig is the legacy "mdapi" block: the buckets-mdapi shards of v2
// (buckets) objects, and the clients' settings (see buckets.go).
type MdapiConfig struct {
	Shards              []ShardHost `json:"shards"`
	ConnectionTimeoutMS int         `json:"connection_timeout_ms"`
	MaxBatchSize        int         `json:"max_batch_size"`
	OperationTimeoutMS  int         `json:"operation_timeout_ms"`
	MaxRetries          int         `json:"max_retries"`
	InitialBackoffMS    int         `json:"initial_backoff_ms"`
	MaxBackoffMS        int         `json:"max_backoff_ms"`
}

// defaultExcludeKeyPrefixes is the legacy default for exclude_key_prefixes.
func defaultExcludeKeyPrefixes() []string {
	return []string{"/stor/logs/", "/stor/usage/", "/stor/manatee_backups/"}
}

var logLevels = map[string]string{
	"critical": "error", "crit": "error", "error": "error", "warning": "warn", "warn": "warn",
	"info": "info", "debug": "debug", "trace": "debug",
}

// defaultConfig is the configuration of an empty file: the legacy
// defaults and those of the new keys.
func defaultConfig() *Config {
	t := true
	return &Config{
		ListenPort: 80, MetricsPort: 8878, AgentPort: 7878, MaxFillPercentage: 100, LogLevel: "debug", DirectDB: &t,
		Options: Options{
			MaxTasksPerAssignment: 50, MaxMetadataUpdateThreads: 10, MaxSharks: 5, StaticQueueDepth: 10,
			MaxAssignmentAge: 3600, MdReadChunkSize: 10000, MaxMdReadThreads: 10, SharkListRetryDelayMillis: 500,
			ExcludeKeyPrefixes: defaultExcludeKeyPrefixes(),
		},
		Mdapi: MdapiConfig{ConnectionTimeoutMS: 5000, MaxBatchSize: 100, OperationTimeoutMS: 30000, MaxRetries: 3, InitialBackoffMS: 100, MaxBackoffMS: 5000},
	}
}

// ParseConfig parses and validates a configuration, filling defaults. Keys
// it does not know are ignored, as by the legacy, and listed by
// UnknownKeys; keys are matched exactly, case included, as the legacy's
// serde matched them.
func ParseConfig(b []byte) (*Config, error) {
	c, err := decodeConfig(b)
	if err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeConfig parses a configuration and fills defaults, without
// validating it.
func decodeConfig(b []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	err := dec.Decode(&doc)
	if err == nil && dec.More() {
		err = errors.New("data after the top-level object")
	}
	if err != nil {
		return nil, fmt.Errorf("config is not a JSON object: %w", err)
	}
	raw, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config is not a JSON object but %s", jsonKind(doc))
	}
	clean, unknown := checkKeys(raw, reflect.TypeFor[Config]())
	cleaned, err := json.Marshal(clean)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := defaultConfig()
	if err := json.Unmarshal(cleaned, c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.unknown = unknown
	// The SAPI template misspells max_fill_percentage; honour the typo so
	// that MUSKIE_MAX_UTILIZATION_PCT takes effect (legacy bug 11.2 #5).
	if typo, ok := raw["max_fill_precentage"]; ok {
		if _, right := raw["max_fill_percentage"]; !right {
			b, _ := json.Marshal(typo)
			if err := json.Unmarshal(b, &c.MaxFillPercentage); err != nil {
				return nil, fmt.Errorf("config: max_fill_precentage: %w", err)
			}
		}
	}
	if c.DirectDB == nil { // "direct_db": null
		t := true
		c.DirectDB = &t
	}
	sort.SliceStable(c.Shards, func(i, j int) bool { return c.Shards[i].Number() < c.Shards[j].Number() })
	return c, nil
}

// jsonKind names the JSON type of a decoded value, for messages.
func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}

// LoadConfig reads and parses a configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func (c *Config) validate() error { return errors.Join(c.problems()...) }

// problems returns everything wrong with the values of the configuration,
// one error each.
func (c *Config) problems() []error {
	var errs []error
	if c.DomainName == "" {
		errs = append(errs, errors.New("domain_name is required"))
	}
	if len(c.Shards) == 0 {
		errs = append(errs, errors.New("configuration must contain at least one shard"))
	}
	for _, s := range c.Shards {
		if s.Host == "" {
			errs = append(errs, errors.New("a shard has an empty host"))
		}
	}
	errs = append(errs, c.mdapiProblems()...)
	if c.MaxFillPercentage < 1 || c.MaxFillPercentage > 100 {
		errs = append(errs, fmt.Errorf("max_fill_percentage must be in 1..100, got %d", c.MaxFillPercentage))
	}
	if _, ok := logLevels[strings.ToLower(c.LogLevel)]; !ok {
		errs = append(errs, fmt.Errorf("log_level %q is not one of critical, error, warning, info, debug, trace", c.LogLevel))
	}
	for _, p := range []struct {
		key  string
		port int
	}{{"listen_port", c.ListenPort}, {"metrics_port", c.MetricsPort}, {"agent_port", c.AgentPort}} {
		if p.port < 1 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("%s %d out of range", p.key, p.port))
		}
	}
	if _, err := c.shardDSNs(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.morayEndpoints(); err != nil {
		errs = append(errs, err)
	}
	if c.MinAvailMB < 0 {
		errs = append(errs, fmt.Errorf("min_avail_mb must not be negative, got %d", c.MinAvailMB))
	}
	for _, tok := range []struct{ key, v string }{{"agent_token", c.AgentToken}, {"api_token", c.APIToken}} {
		if tok.v != strings.TrimSpace(tok.v) || strings.ContainsAny(tok.v, "\r\n") {
			errs = append(errs, fmt.Errorf("%s must not have spaces around it or line breaks in it", tok.key))
		}
	}
	if c.ImportLegacyFrom != "" && !storedsn.IsPostgres(c.ImportLegacyFrom) {
		errs = append(errs, errors.New("import_legacy_from must be the postgres:// URL of the legacy manager's jobs database (e.g. postgres://postgres@localhost/rebalancer)"))
	}
	if c.StorinfoPollInterval < 0 {
		errs = append(errs, fmt.Errorf("storinfo_poll_interval_ms must not be negative, got %d", c.StorinfoPollInterval))
	}
	o := c.Options
	if o.MaxTasksPerAssignment < 1 {
		errs = append(errs, errors.New("options.max_tasks_per_assignment must be positive"))
	}
	if o.MaxMetadataUpdateThreads < 1 || o.MaxMetadataUpdateThreads > evacuate.MaxMetadataThreads {
		errs = append(errs, fmt.Errorf("options.max_metadata_update_threads must be in 1..%d", evacuate.MaxMetadataThreads))
	}
	if o.MaxSharks < 1 {
		errs = append(errs, errors.New("options.max_sharks must be positive"))
	}
	if o.MaxAssignmentAge < minAssignmentAge || o.MaxAssignmentAge > maxAssignmentAge {
		errs = append(errs, fmt.Errorf("options.max_assignment_age must be in %d..%d seconds (an assignment is given up after twice it), got %d",
			minAssignmentAge, maxAssignmentAge, o.MaxAssignmentAge))
	}
	if o.MdReadChunkSize < 1 || o.MaxMdReadThreads < 1 {
		errs = append(errs, errors.New("options.md_read_chunk_size and max_md_read_threads must be positive"))
	}
	if o.StaticQueueDepth < 1 || o.StaticQueueDepth > maxStaticQueueDepth {
		errs = append(errs, fmt.Errorf("options.static_queue_depth must be in 1..%d (assignments waiting for a static metadata thread), got %d",
			maxStaticQueueDepth, o.StaticQueueDepth))
	}
	if o.SharkListRetryDelayMillis < 1 || o.SharkListRetryDelayMillis > maxSharkListRetryDelay {
		errs = append(errs, fmt.Errorf("options.shark_list_retry_delay_ms must be in 1..%d, got %d", maxSharkListRetryDelay, o.SharkListRetryDelayMillis))
	}
	// The legacy's types for these are unsigned: it refused negative values
	// as a parse error. (mdapiProblems checks the ranges of the others.)
	for _, k := range []struct {
		key string
		v   int
	}{
		{"max_retries", c.Mdapi.MaxRetries}, {"initial_backoff_ms", c.Mdapi.InitialBackoffMS}, {"max_backoff_ms", c.Mdapi.MaxBackoffMS},
	} {
		if k.v < 0 {
			errs = append(errs, fmt.Errorf("mdapi.%s must not be negative, got %d", k.key, k.v))
		}
	}
	// What the engine, the placement and the storinfo client would refuse
	// must fail here, not at startup or, after a reload, on every new job
	// (found by FuzzParseConfig); the options of new jobs are held to the
	// ranges the job API holds requests to.
	if len(errs) == 0 {
		if err := c.JobOptions().ValidateStrict(); err != nil {
			errs = append(errs, fmt.Errorf("options: %w", err))
		}
	}
	// Those the checks above did not already refuse (each problem once).
	if c.MaxFillPercentage >= 1 && c.MaxFillPercentage <= 100 && c.MinAvailMB >= 0 && o.MaxSharks >= 1 {
		if err := c.Tunables().Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.StorinfoURL != "" || c.DomainName != "" { // else domain_name is required, above
		if _, err := storinfo.NewClient(storinfo.ClientConfig{BaseURL: c.StorinfoURL, Domain: c.DomainName}); err != nil {
			errs = append(errs, fmt.Errorf("storinfo_url: %w", err))
		}
	}
	return errs
}

// The ranges of the legacy keys that the legacy left unbounded.
const (
	// maxStaticQueueDepth bounds static_queue_depth: each entry holds an
	// assignment waiting for a metadata thread.
	maxStaticQueueDepth = 10000
	// maxSharkListRetryDelay bounds shark_list_retry_delay_ms (an hour).
	maxSharkListRetryDelay = 3600 * 1000
)

// The range of max_assignment_age (seconds): twice it is the job option
// assignment_timeout, whose range is 1m..720h.
const (
	minAssignmentAge = 30
	maxAssignmentAge = 15 * 24 * 3600
)

// MinMaxShard returns the smallest and largest shard numbers.
func (c *Config) MinMaxShard() (int, int) {
	lo, hi := c.Shards[0].Number(), c.Shards[0].Number()
	for _, s := range c.Shards {
		lo, hi = min(lo, s.Number()), max(hi, s.Number())
	}
	return lo, hi
}

// JobOptions translates the configuration into the options of a new job.
// The legacy max_assignment_age is both the flush age of a partial
// assignment and half the agent timeout; here partial assignments are sent
// after a second so copying starts at once, and the timeout stays 2x.
func (c *Config) JobOptions() evacuate.Options {
	o := evacuate.DefaultOptions()
	o.MaxTasksPerAssignment = c.Options.MaxTasksPerAssignment
	o.MetadataThreads = c.Options.MaxMetadataUpdateThreads
	o.IndividualUpdates = !c.Options.UseBatchedUpdates
	o.AssignmentTimeout = evacuate.Duration(2 * time.Duration(c.Options.MaxAssignmentAge) * time.Second)
	o.ExcludeKeyPrefixes = append([]string(nil), c.Options.ExcludeKeyPrefixes...)
	o.MaxInflightPerSource = c.MaxInflightPerSource
	if c.Options.UseStaticMdUpdateThreads {
		o.StaticMetadataThreads = true
		o.StaticQueueDepth = c.Options.StaticQueueDepth
	}
	return o
}

// Tunables are the placement limits of the configuration.
func (c *Config) Tunables() storinfo.Tunables {
	return storinfo.Tunables{
		MaxFillPercentage:    c.MaxFillPercentage,
		MinAvailMB:           int64(c.MinAvailMB),
		MaxSharks:            c.Options.MaxSharks,
		BlocklistSharks:      slices.Clone(c.BlocklistSharks),
		BlocklistDatacenters: slices.Clone(c.BlocklistDatacenters),
	}
}

// SlogLevel maps log_level to a slog level name.
func (c *Config) SlogLevel() string { return logLevels[strings.ToLower(c.LogLevel)] }

// slogLevel is SlogLevel as a slog.Level.
func (c *Config) slogLevel() slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.SlogLevel())) // validated: one of slog's names
	return l
}
