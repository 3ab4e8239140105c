package manager

import (
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

// templateConfig is what config-agent renders from the legacy SAPI template
// with typical metadata (including the template's misspelt
// max_fill_precentage).
const templateConfig = `{
    "domain_name": "us-east.joyent.us",
    "shards": [
        {"host": "2.moray.us-east.joyent.us"},
        {"host": "1.moray.us-east.joyent.us"}
    ],
    "mdapi": {
        "shards": [{"host": "1.buckets-mdapi.us-east.joyent.us"}],
        "connection_timeout_ms": 5000
    },
    "listen_port": 80,
    "max_fill_precentage": 92,
    "direct_db": true,
    "log_level": "debug",
    "options": {
        "max_tasks_per_assignment": 50,
        "max_metadata_update_threads": 10,
        "max_sharks": 5,
        "use_static_md_update_threads": false,
        "static_queue_depth": 10,
        "max_assignment_age": 3600,
        "use_batched_updates": false,
        "md_read_chunk_size": 10000,
        "max_md_read_threads": 10,
        "exclude_key_prefixes": ["/stor/logs/", "/stor/usage/"]
    }
}`

func TestConfigTemplate(t *testing.T) {
	c, err := ParseConfig([]byte(templateConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenPort != 80 || c.MaxFillPercentage != 92 || !*c.DirectDB || c.SnaplinkCleanupRequired || c.SlogLevel() != "debug" {
		t.Errorf("parsed %+v", c)
	}
	if c.Shards[0].Number() != 1 || c.Shards[1].Number() != 2 {
		t.Errorf("shards not sorted: %v", c.Shards)
	}
	o := c.JobOptions()
	if o.MaxTasksPerAssignment != 50 || o.MetadataThreads != 10 || o.AssignmentTimeout.D() != 2*time.Hour ||
		!reflect.DeepEqual(o.ExcludeKeyPrefixes, []string{"/stor/logs/", "/stor/usage/"}) {
		t.Errorf("job options %+v", o)
	}
}

func TestConfigMinMaxShards(t *testing.T) {
	// Legacy min_max_shards.
	tests := []struct {
		hosts    []string
		min, max int
	}{
		{[]string{"3."}, 3, 3},
		{[]string{"99.moray.x", "1000.moray.x", "200.moray.x", "2.moray.x", "100.moray.x"}, 2, 1000},
		{[]string{"10.m", "2.m", "100.m", "1.m"}, 1, 100},
	}
	for _, tt := range tests {
		var parts []string
		for _, h := range tt.hosts {
			parts = append(parts, `{"host":"`+h+`"}`)
		}
		c, err := ParseConfig([]byte(`{"domain_name":"x","shards":[` + strings.Join(parts, ",") + `]}`))
		if err != nil {
			t.Fatal(err)
		}
		if lo, hi := c.MinMaxShard(); lo != tt.min || hi != tt.max {
			t.Errorf("%v: min %d max %d", tt.hosts, lo, hi)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	// Legacy config_options_test and missing_snaplink_cleanup_required: a
	// partial options block keeps the other defaults.
	c, err := ParseConfig([]byte(`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"options":{"max_sharks":7}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Options{MaxTasksPerAssignment: 50, MaxMetadataUpdateThreads: 10, MaxSharks: 7, StaticQueueDepth: 10,
		MaxAssignmentAge: 3600, MdReadChunkSize: 10000, MaxMdReadThreads: 10, SharkListRetryDelayMillis: 500,
		ExcludeKeyPrefixes: []string{"/stor/logs/", "/stor/usage/", "/stor/manatee_backups/"}}
	if !reflect.DeepEqual(c.Options, want) {
		t.Errorf("options %+v", c.Options)
	}
	if c.SnaplinkCleanupRequired || c.ListenPort != 80 || c.MaxFillPercentage != 100 || c.LogLevel != "debug" || !*c.DirectDB {
		t.Errorf("defaults %+v", c)
	}
	// An explicit empty prefix list disables exclusion.
	c, _ = ParseConfig([]byte(`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"options":{"exclude_key_prefixes":[]},"direct_db":false,"snaplink_cleanup_required":true}`))
	if len(c.Options.ExcludeKeyPrefixes) != 0 || *c.DirectDB || !c.SnaplinkCleanupRequired {
		t.Errorf("explicit values %+v", c)
	}
}

func TestConfigRejects(t *testing.T) {
	for _, tt := range []struct{ config, want string }{
		{`[]`, "not a JSON object"},
		{`{"shards":[{"host":"1.moray.d"}]}`, "domain_name"},
		{`{"domain_name":"d"}`, "at least one shard"},
		{`{"domain_name":"d","shards":[]}`, "at least one shard"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"max_fill_percentage":101}`, "max_fill_percentage"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"max_fill_percentage":0}`, "max_fill_percentage"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"log_level":"loud"}`, "log_level"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"options":{"max_metadata_update_threads":251}}`, "max_metadata_update_threads"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"mdapi":{"shards":[{"host":"buckets.d"}]}}`, `buckets-mdapi host "buckets.d" does not start with a shard number`},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"listen_port":"80"}`, "listen_port"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"moray_endpoints":{"x":"h:2020"}}`, `moray_endpoints: key "x"`},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"moray_endpoints":{"1":""}}`, `moray_endpoints: shard 1 has an empty value`},
		// Accepted by the legacy keys' checks but refused later by the
		// engine, the placement or the storinfo client (FuzzParseConfig).
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"options":{"max_tasks_per_assignment":20000}}`, "max_tasks_per_assignment"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"options":{"exclude_key_prefixes":[""]}}`, "exclude_key_prefixes"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"options":{"max_assignment_age":9000000000}}`, "max_assignment_age"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"max_inflight_per_source":-1}`, "max_inflight_per_source"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"agent_token":"s3cret\n"}`, "agent_token must not have spaces around it"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"api_token":" s3cret"}`, "api_token must not have spaces around it"},
		// An assignment given up after 2 x max_assignment_age: under a
		// minute, the job would give up on copies the agents go on making.
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"options":{"max_assignment_age":29}}`, "max_assignment_age must be in 30..1296000 seconds"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"options":{"max_assignment_age":0}}`, "max_assignment_age must be in 30..1296000 seconds"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"min_avail_mb":9000000000000}`, "min available"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"storinfo_url":"ftp://storinfo.d"}`, "storinfo_url"},
		{`{"domain_name":"d d","shards":[{"host":"1.moray.d"}]}`, "storinfo_url"},
		// Legacy keys the engine does not read yet are held to ranges too;
		// the legacy's unsigned ones refuse negative values, as serde did.
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"options":{"static_queue_depth":0}}`, "options.static_queue_depth must be in 1..10000"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"options":{"shark_list_retry_delay_ms":0}}`, "options.shark_list_retry_delay_ms must be in 1..3600000"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"mdapi":{"max_retries":-1}}`, "mdapi.max_retries must not be negative"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"shard_databases":{"1":"postgres://h:port/moray"}}`, "shard_databases: shard 1: not a PostgreSQL connection string"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"shard_databases":{"1":"host='h"}}`, "shard_databases: shard 1: not a PostgreSQL connection string"},
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}]} {}`, "not a JSON object"},
	} {
		if _, err := ParseConfig([]byte(tt.config)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tt.config, err, tt.want)
		}
	}
	for _, level := range []string{"critical", "CRIT", "Error", "warning", "warn", "info", "debug", "TRACE"} {
		if _, err := ParseConfig([]byte(`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"log_level":"` + level + `"}`)); err != nil {
			t.Errorf("log_level %s: %v", level, err)
		}
	}
}

func TestDefaultSource(t *testing.T) {
	tests := []struct {
		name, extra string
		check       func(t *testing.T, src any)
	}{
		{"direct_db reads PostgreSQL", `"direct_db": true, "shard_databases": {"2": "postgres://h/moray"}`, func(t *testing.T, src any) {
			s, ok := src.(*sharkspotter.PostgresScanner)
			if !ok {
				t.Fatalf("source %T, want *sharkspotter.PostgresScanner", src)
			}
			if !reflect.DeepEqual(s.Shards, []int{1, 2, 3}) || s.DSNs[2] != "postgres://h/moray?sslmode=disable" || s.Domain != "us-east.joyent.us" ||
				s.Chunk != 10000 || s.Workers != 10 || !reflect.DeepEqual(s.ExcludeKeyPrefixes, []string{"/stor/logs/"}) {
				t.Errorf("scanner %+v", s)
			}
		}},
		{"moray otherwise", `"direct_db": false`, func(t *testing.T, src any) {
			s, ok := src.(*sharkspotter.MorayScanner)
			if !ok {
				t.Fatalf("source %T, want *sharkspotter.MorayScanner", src)
			}
			if !reflect.DeepEqual(s.Shards, []int{1, 2, 3}) || s.Window != 10000 || s.Workers != 10 {
				t.Errorf("scanner %+v", s)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(`{"domain_name": "us-east.joyent.us", ` + tt.extra + `,
				"shards": [{"host": "3.moray.us-east.joyent.us"}, {"host": "1.moray.us-east.joyent.us"}, {"host": "2.moray.us-east.joyent.us"}, {"host": "1.moray.us-east.joyent.us"}]}`))
			if err != nil {
				t.Fatal(err)
			}
			job := evacuate.JobRecord{ID: "j", Options: evacuate.Options{ExcludeKeyPrefixes: []string{"/stor/logs/"}}}
			src, err := defaultSource(func() *Config { return c }, nil, nil, slog.Default())(job)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, src)
		})
	}
	if _, err := ParseConfig([]byte(`{"domain_name": "x", "shards": [{"host": "1.moray.x"}], "shard_databases": {"one": "postgres://h"}}`)); err == nil ||
		!strings.Contains(err.Error(), `"one" is not a shard number`) {
		t.Errorf("bad shard_databases key: %v", err)
	}
}

// Unknown keys, at any depth, are listed with the key most likely meant,
// and take no effect: keys match exactly, case included, as serde matched
// them for the legacy. The SAPI template's misspelling is not unknown.
func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		extra string
		want  []string
	}{
		{`"max_fill_precentage": 92, "options": {}, "mdapi": {"shards": []}`, nil},
		{`"max_fill_percentag": 92`, []string{"unknown key max_fill_percentag (did you mean max_fill_percentage?)"}},
		{`"storinfo_ulr": "http://s"`, []string{"unknown key storinfo_ulr (did you mean storinfo_url?)"}},
		{`"options": {"max_sharkz": 3, "Max_Sharks": 4}`, []string{
			"unknown key options.Max_Sharks (did you mean options.max_sharks?)",
			"unknown key options.max_sharkz (did you mean options.max_sharks?)"}},
		{`"mdapi": {"shards": [{"host": "1.b.d"}, {"host": "2.b.d", "hots": "3.b.d"}]}`, []string{"unknown key mdapi.shards[1].hots (did you mean mdapi.shards[1].host?)"}},
		{`"max_sharks": 3`, []string{"unknown key max_sharks (did you mean options.max_sharks?)"}},
		{`"LISTEN_PORT": 81`, []string{"unknown key LISTEN_PORT (did you mean listen_port?)"}},
		{`"zzz": {"a": 1}`, []string{"unknown key zzz"}},
		// Map keys are values, not keys of the schema.
		{`"shard_databases": {"1": "host=h"}, "moray_endpoints": {"1": "h:2020"}`, nil},
	}
	for _, tt := range tests {
		c, err := ParseConfig([]byte(`{"domain_name": "d", "shards": [{"host": "1.moray.d"}], ` + tt.extra + `}`))
		if err != nil {
			t.Fatalf("%s: %v", tt.extra, err)
		}
		var got []string
		for _, u := range c.UnknownKeys() {
			got = append(got, u.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: unknown keys %q, want %q", tt.extra, got, tt.want)
		}
		if err := c.UnknownKeysError(); (err != nil) != (len(tt.want) > 0) || err != nil && !strings.Contains(err.Error(), "--strict") {
			t.Errorf("%s: UnknownKeysError %v", tt.extra, err)
		}
		if c.ListenPort != 80 || c.Options.MaxSharks != 5 {
			t.Errorf("%s: an unknown key took effect: listen_port %d, max_sharks %d", tt.extra, c.ListenPort, c.Options.MaxSharks)
		}
	}
}

// An override of a shard's PostgreSQL copy gets the sslmode=disable of the
// built-in connection, unless it or PGSSLMODE sets an sslmode.
func TestShardDatabasesSSLMode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://postgres@10.0.0.7:5432/moray", "postgres://postgres@10.0.0.7:5432/moray?sslmode=disable"},
		{"postgresql://u:p%40ss@h/moray?connect_timeout=5", "postgresql://u:p%40ss@h/moray?connect_timeout=5&sslmode=disable"},
		{"postgres://h/moray?sslmode=require", "postgres://h/moray?sslmode=require"},
		{"host=h dbname=moray", "host=h dbname=moray sslmode=disable"},
		{"host=h sslmode = 'verify-full' dbname=moray", "host=h sslmode = 'verify-full' dbname=moray"},
		{"host=h password='sslmode=require'", "host=h password='sslmode=require' sslmode=disable"},
	}
	t.Setenv("PGSSLMODE", "") // restored at the end
	os.Unsetenv("PGSSLMODE")
	for _, tt := range tests {
		c, err := ParseConfig([]byte(`{"domain_name": "d", "shards": [{"host": "1.moray.d"}], "shard_databases": {"7": ` + strconv.Quote(tt.in) + `}}`))
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		dsns, err := c.shardDSNs()
		if err != nil || dsns[7] != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.in, dsns[7], err, tt.want)
		}
	}
	t.Setenv("PGSSLMODE", "require")
	c, _ := ParseConfig([]byte(`{"domain_name": "d", "shards": [{"host": "1.moray.d"}], "shard_databases": {"1": "postgres://h/moray"}}`))
	if dsns, _ := c.shardDSNs(); dsns[1] != "postgres://h/moray" {
		t.Errorf("with PGSSLMODE set: %q", dsns[1])
	}
}

// check-config's view: every problem at once, the settings in effect with
// their defaults, and no secret in clear.
func TestCheckConfig(t *testing.T) {
	cfg, problems := CheckConfig([]byte(`{"domain_name": "d", "shards": [{"host": "2.moray.d"}],
		"max_fill_percentage": 120, "max_fill_percentag": 90, "agent_token": "s3cret-token",
		"database": "postgres://rb:hunter2@db/rebalancer", "shard_databases": {"2": "host=h password=hunter2"}}`))
	if cfg == nil {
		t.Fatal(problems)
	}
	want := []string{"max_fill_percentage must be in 1..100, got 120", "unknown key max_fill_percentag (did you mean max_fill_percentage?)"}
	if !slices.Equal(problems, want) {
		t.Errorf("problems %q, want %q", problems, want)
	}
	settings := map[string]Setting{}
	for _, s := range cfg.Settings() {
		settings[s.Key] = s
		if strings.Contains(s.Value, "hunter2") || strings.Contains(s.Value, "s3cret") {
			t.Errorf("%s shows a secret: %s", s.Key, s.Value)
		}
	}
	for key, want := range map[string]Setting{
		"domain_name":               {Value: `"d"`},
		"max_fill_percentage":       {Value: "120", Default: "100"},
		"options.max_sharks":        {Value: "5", Default: "5"},
		"storinfo_url":              {Value: `"http://storinfo.d"`, Default: `"http://storinfo.d"`},
		"storinfo_poll_interval_ms": {Value: "10000", Default: "10000"},
		"min_avail_mb":              {Value: "1000", Default: "1000"},
		"agent_token":               {Value: `"(set, 12 characters)"`, Default: `""`},
		"database":                  {Value: `"postgres://rb:xxxxx@db/rebalancer"`, Default: `"/var/tmp/rebalancer-manager"`},
		"store_mark":                {Value: `"/var/tmp/rebalancer-manager-postgres.mark"`, Default: `"/var/tmp/rebalancer-manager.mark"`},
		"shard_databases.2":         {Value: `"host=h password=xxxxx sslmode=disable"`, Default: strconv.Quote(sharkspotter.DefaultDSN(2, "d"))},
		"moray_endpoints.2":         {Value: `"(DNS) 2.moray.d"`, Default: `"(DNS) 2.moray.d"`},
	} {
		want.Key = key
		if got := settings[key]; got != want {
			t.Errorf("setting %+v, want %+v", got, want)
		}
	}
	if !settings["options.max_sharks"].IsDefault() || settings["max_fill_percentage"].IsDefault() {
		t.Error("IsDefault")
	}
	if cfg, problems := CheckConfig([]byte(`{"domain_name": `)); cfg != nil || len(problems) != 1 || !strings.Contains(problems[0], "not a JSON object") {
		t.Errorf("broken JSON: %v, %q", cfg, problems)
	}
}

// A job's discovery settings are those in effect when it starts.
func TestDefaultSourceFollowsReload(t *testing.T) {
	text := `{"domain_name": "d", "shards": [{"host": "1.moray.d"}], "options": {"md_read_chunk_size": %d, "max_md_read_threads": %d}}`
	cur, _ := ParseConfig(fmt.Appendf(nil, text, 100, 2))
	src := defaultSource(func() *Config { return cur }, nil, nil, slog.Default())
	cur, _ = ParseConfig(fmt.Appendf(nil, text, 300, 4))
	s, err := src(evacuate.JobRecord{ID: "j"})
	if err != nil {
		t.Fatal(err)
	}
	if p := s.(*sharkspotter.PostgresScanner); p.Chunk != 300 || p.Workers != 4 {
		t.Errorf("chunk %d, workers %d; want the reloaded 300 and 4", p.Chunk, p.Workers)
	}
}
