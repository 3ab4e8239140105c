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
		MantaRoot    string   `toml:"manta_root"`
		DataDir      string   `toml:"data_dir"`
		MaxBodyBytes int64    `toml:"max_body_bytes"`
		Retention    duration `toml:"retention"` // e.g. "336h"
		Token        string   `toml:"token"`
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
		Token:                or(c.Token, fc.Server.Token),
		ShutdownGrace:        c.ShutdownGrace,
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
		{"shutdown grace", int64(cfg.ShutdownGrace)},
	} {
		if v.n < 0 {
			return s, fmt.Errorf("%s must not be negative (%d)", v.name, v.n)
		}
	}
	s.agent = cfg.WithDefaults()
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
