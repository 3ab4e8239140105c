package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/TritonDataCenter/rebalancer/agent"
)

// DefaultConfigFile is where config-agent renders the legacy SAPI template.
const DefaultConfigFile = "/opt/smartdc/rebalancer-agent/etc/config.toml"

// fileConfig is the legacy agent's config.toml (docs/compatibility.md), every
// key of it, plus new optional keys. Absent keys keep their defaults;
// unknown keys are logged and ignored.
type fileConfig struct {
	Server struct {
		Host                 string `toml:"host"`
		Port                 int    `toml:"port"`
		Workers              int    `toml:"workers"`
		WorkersPerAssignment int    `toml:"workers_per_assignment"`
		DownloadTimeoutSecs  int    `toml:"download_timeout_secs"`

		// New keys.
		MantaRoot            string   `toml:"manta_root"`
		DataDir              string   `toml:"data_dir"`
		MaxBodyBytes         int64    `toml:"max_body_bytes"`
		MaxBodyBytesInFlight int64    `toml:"max_body_bytes_in_flight"`
		Retention            duration `toml:"retention"` // e.g. "336h"
		Token                string   `toml:"token"`
		AllowSources         []string `toml:"allow_sources"`
		MinSourceRate        int64    `toml:"min_source_rate"`
		MinSourceRateWindow  duration `toml:"min_source_rate_window"`
		HeaderTimeout        duration `toml:"header_timeout"`
		BodyTimeout          duration `toml:"body_timeout"`
		IdleTimeout          duration `toml:"idle_timeout"`
	} `toml:"server"`
	Metrics struct {
		Host       string `toml:"host"`
		Port       int    `toml:"port"`
		Datacenter string `toml:"datacenter"`
		Service    string `toml:"service"`
		Server     string `toml:"server"`
	} `toml:"metrics"`
}

// duration reads a TOML string such as "336h".
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// settings is everything the command needs, resolved from defaults, the
// config file and flags, in that order of precedence (last wins).
type settings struct {
	agent         agent.Config
	listen        string
	metricsListen string // "" means no metrics server
	configFile    string // the file read, if any
	unknownKeys   []string
}

// resolve merges the config file named by c (or the default file, when it
// exists) with the flags.
func resolve(c *cli, defaultFile string) (settings, error) {
	var s settings
	var fc fileConfig
	path, explicit := c.Config, c.Config != ""
	if !explicit {
		path = defaultFile
	}
	md, err := toml.DecodeFile(path, &fc)
	switch {
	case err == nil:
		s.configFile = path
		for _, k := range md.Undecoded() {
			s.unknownKeys = append(s.unknownKeys, k.String())
		}
	case errors.Is(err, fs.ErrNotExist) && !explicit:
		// No config file: defaults and flags only.
	default:
		return s, fmt.Errorf("config file %s: %w", path, err)
	}

	host := or(fc.Server.Host, "0.0.0.0")
	port := orInt(fc.Server.Port, agent.DefaultPort)
	s.listen = or(c.Listen, net.JoinHostPort(host, strconv.Itoa(port)))
	mhost := or(fc.Metrics.Host, "0.0.0.0")
	mport := orInt(fc.Metrics.Port, agent.DefaultMetricsPort)
	s.metricsListen = or(c.MetricsListen, net.JoinHostPort(mhost, strconv.Itoa(mport)))
	if strings.EqualFold(s.metricsListen, "off") {
		s.metricsListen = ""
	}

	cfg := agent.Config{
		Root:                 or(c.Root, fc.Server.MantaRoot),
		DataDir:              or(c.DataDir, fc.Server.DataDir),
		Workers:              orInt(c.Workers, fc.Server.Workers),
		WorkersPerAssignment: orInt(c.WorkersPerAssignment, fc.Server.WorkersPerAssignment),
		DownloadTimeout:      time.Duration(fc.Server.DownloadTimeoutSecs) * time.Second,
		Retention:            fc.Server.Retention.Duration,
		MaxBodyBytes:         fc.Server.MaxBodyBytes,
		MaxBodyBytesInFlight: fc.Server.MaxBodyBytesInFlight,
		Token:                or(c.Token, fc.Server.Token),
		// An empty list means any source, as no list does; the SAPI
		// template writes one whether or not the metadata has entries.
		AllowSources:        nilIfEmpty(fc.Server.AllowSources),
		MinSourceRate:       fc.Server.MinSourceRate,
		MinSourceRateWindow: fc.Server.MinSourceRateWindow.Duration,
		HeaderTimeout:       fc.Server.HeaderTimeout.Duration,
		BodyTimeout:         fc.Server.BodyTimeout.Duration,
		IdleTimeout:         fc.Server.IdleTimeout.Duration,
		ShutdownGrace:       c.ShutdownGrace,
		Metrics: agent.MetricLabels{
			Service:    fc.Metrics.Service,
			Server:     fc.Metrics.Server,
			Datacenter: fc.Metrics.Datacenter,
		},
	}
	if c.DownloadTimeout != 0 {
		cfg.DownloadTimeout = c.DownloadTimeout
	}
	if c.Retention != 0 {
		cfg.Retention = c.Retention
	}
	if c.MaxBodyBytes != 0 {
		cfg.MaxBodyBytes = c.MaxBodyBytes
	}
	if c.RetryDelays != nil {
		cfg.RetryDelays = c.RetryDelays
	}
	if c.AllowSources != nil {
		cfg.AllowSources = c.AllowSources
	}
	for _, f := range []struct {
		flag int64
		dst  *int64
	}{
		{c.MaxBodyBytesInFlight, &cfg.MaxBodyBytesInFlight},
		{c.MinSourceRate, &cfg.MinSourceRate},
	} {
		if f.flag != 0 {
			*f.dst = f.flag
		}
	}
	for _, f := range []struct {
		flag time.Duration
		dst  *time.Duration
	}{
		{c.MinSourceRateWindow, &cfg.MinSourceRateWindow},
		{c.HeaderTimeout, &cfg.HeaderTimeout},
		{c.BodyTimeout, &cfg.BodyTimeout},
		{c.IdleTimeout, &cfg.IdleTimeout},
	} {
		if f.flag != 0 {
			*f.dst = f.flag
		}
	}
	if c.SourceProxy != "" {
		u, err := url.Parse(c.SourceProxy)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return s, fmt.Errorf("--source-proxy %q is not an http:// or https:// URL with a host", c.SourceProxy)
		}
		cfg.SourceProxy = u
	}
	// Negative values are errors, not "use the default".
	for _, v := range []struct {
		name string
		n    int64
	}{
		{"workers", int64(cfg.Workers)},
		{"workers_per_assignment", int64(cfg.WorkersPerAssignment)},
		{"download timeout", int64(cfg.DownloadTimeout)},
		{"retention", int64(cfg.Retention)},
		{"max body bytes", cfg.MaxBodyBytes},
		{"max body bytes in flight", cfg.MaxBodyBytesInFlight},
		{"min source rate", cfg.MinSourceRate},
		{"min source rate window", int64(cfg.MinSourceRateWindow)},
		{"header timeout", int64(cfg.HeaderTimeout)},
		{"body timeout", int64(cfg.BodyTimeout)},
		{"idle timeout", int64(cfg.IdleTimeout)},
		{"shutdown grace", int64(cfg.ShutdownGrace)},
	} {
		if v.n < 0 {
			return s, fmt.Errorf("%s must not be negative (%d)", v.name, v.n)
		}
	}
	s.agent = cfg.WithDefaults()
	// The rest of the checks (the allow-list, the body caps) are the
	// agent's own, reported here as usage errors rather than at startup.
	if err := s.agent.Validate(); err != nil {
		return s, err
	}
	return s, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func orInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
