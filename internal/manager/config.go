package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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
// lacks (marked "new"). Unknown keys are ignored, as in the legacy.
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

	// AcceptEmptyStore opens a job store that does not match its mark
	// (--accept-empty-store; never from the file).
	AcceptEmptyStore bool `json:"-"`
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
	MaxTasksPerAssignment     int      `json:"max_tasks_per_assignment"`
	MaxMetadataUpdateThreads  int      `json:"max_metadata_update_threads"`
	MaxSharks                 int      `json:"max_sharks"`
	UseStaticMdUpdateThreads  bool     `json:"use_static_md_update_threads"`
	StaticQueueDepth          int      `json:"static_queue_depth"`
	MaxAssignmentAge          int      `json:"max_assignment_age"`
	UseBatchedUpdates         bool     `json:"use_batched_updates"`
	MdReadChunkSize           int      `json:"md_read_chunk_size"`
	MaxMdReadThreads          int      `json:"max_md_read_threads"`
	SharkListRetryDelayMillis int      `json:"shark_list_retry_delay_ms"`
	ExcludeKeyPrefixes        []string `json:"exclude_key_prefixes"`
}

// MdapiConfig is the legacy "mdapi" block. Buckets (v2) metadata is not
// updated by this rebalancer yet; the block is parsed so that configs load.
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

// ParseConfig parses and validates a configuration, filling defaults.
func ParseConfig(b []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config is not a JSON object: %w", err)
	}
	c := &Config{ListenPort: 80, MetricsPort: 8878, AgentPort: 7878, MaxFillPercentage: 100, LogLevel: "debug"}
	c.Options = Options{
		MaxTasksPerAssignment: 50, MaxMetadataUpdateThreads: 10, MaxSharks: 5, StaticQueueDepth: 10,
		MaxAssignmentAge: 3600, MdReadChunkSize: 10000, MaxMdReadThreads: 10, SharkListRetryDelayMillis: 500,
	}
	c.Mdapi = MdapiConfig{ConnectionTimeoutMS: 5000, MaxBatchSize: 100, OperationTimeoutMS: 30000, MaxRetries: 3, InitialBackoffMS: 100, MaxBackoffMS: 5000}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// The SAPI template misspells max_fill_percentage; honour the typo so
	// that MUSKIE_MAX_UTILIZATION_PCT takes effect (legacy bug 11.2 #5).
	if typo, ok := raw["max_fill_precentage"]; ok {
		if _, right := raw["max_fill_percentage"]; !right {
			if err := json.Unmarshal(typo, &c.MaxFillPercentage); err != nil {
				return nil, fmt.Errorf("config: max_fill_precentage: %w", err)
			}
		}
	}
	if _, ok := raw["options"]; ok {
		var opts map[string]json.RawMessage
		json.Unmarshal(raw["options"], &opts)
		if _, ok := opts["exclude_key_prefixes"]; !ok {
			c.Options.ExcludeKeyPrefixes = defaultExcludeKeyPrefixes()
		}
	} else {
		c.Options.ExcludeKeyPrefixes = defaultExcludeKeyPrefixes()
	}
	if c.DirectDB == nil {
		t := true
		c.DirectDB = &t
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	sort.SliceStable(c.Shards, func(i, j int) bool { return c.Shards[i].Number() < c.Shards[j].Number() })
	return c, nil
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

func (c *Config) validate() error {
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
	for _, s := range c.Mdapi.Shards {
		if (ShardHost{s.Host}).Number() == 0 && !strings.HasPrefix(s.Host, "0.") {
			errs = append(errs, fmt.Errorf("mdapi shard host %q does not start with a shard number", s.Host))
		}
	}
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
	// What the engine, the placement and the storinfo client would refuse
	// must fail here, not at startup or, after a reload, on every new job
	// (found by FuzzParseConfig); the options of new jobs are held to the
	// ranges the job API holds requests to.
	if len(errs) == 0 {
		if err := c.JobOptions().ValidateStrict(); err != nil {
			errs = append(errs, fmt.Errorf("options: %w", err))
		}
	}
	if err := c.Tunables().Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := storinfo.NewClient(storinfo.ClientConfig{BaseURL: c.StorinfoURL, Domain: c.DomainName}); err != nil {
		errs = append(errs, fmt.Errorf("storinfo_url: %w", err))
	}
	return errors.Join(errs...)
}

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
