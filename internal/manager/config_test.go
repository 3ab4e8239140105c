package manager

import (
	"log/slog"
	"reflect"
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
		{`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"mdapi":{"shards":[{"host":"buckets.d"}]}}`, "mdapi shard host"},
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
			if !reflect.DeepEqual(s.Shards, []int{1, 2, 3}) || s.DSNs[2] != "postgres://h/moray" || s.Domain != "us-east.joyent.us" ||
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
			src, err := defaultSource(c, nil, slog.Default())(job)
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
