// Command rebalancer-agent runs the rebalancer agent on a storage node: it
// accepts assignments from the rebalancer manager, copies each object from
// another shark into the Manta root after verifying its MD5, and reports
// progress. See package agent for the API, the on-disk layout and the
// safety rules.
//
// It reads the legacy agent's config file
// (/opt/smartdc/rebalancer-agent/etc/config.toml) when present; flags and
// environment variables override it. Logs are bunyan records on standard
// output, named "rebalancer-agent" (see internal/logging). SIGTERM or
// SIGINT stops it gracefully: no new work is started, downloads in flight
// get --shutdown-grace to finish, and unfinished work resumes at the next
// start.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
)

// cli is the command line. Zero values mean "not given": the config file
// or the built-in default applies.
type cli struct {
	Config               string           `help:"Legacy agent config file (TOML). Without this flag ${default_config} is read if it exists." placeholder:"FILE" env:"REBALANCER_AGENT_CONFIG"`
	Listen               string           `help:"Address of the agent API. Default: [server] host:port of the config file, else 0.0.0.0:7878." placeholder:"ADDR" env:"REBALANCER_AGENT_LISTEN"`
	MetricsListen        string           `help:"Address of the Prometheus metrics, served on any path; \"off\" disables them. Default: [metrics] host:port, else 0.0.0.0:8878." placeholder:"ADDR" env:"REBALANCER_AGENT_METRICS_LISTEN"`
	Root                 string           `help:"Manta root: objects are written to ROOT/{owner}/{object_id} (and ROOT/v2/...); partial downloads to ROOT/.rebalancer-tmp. Must exist. Default: /manta." placeholder:"DIR" env:"REBALANCER_AGENT_ROOT"`
	DataDir              string           `help:"State directory: agent.db, and a legacy agent's scheduled/ and completed/ files, imported at startup. Default: /var/tmp/rebalancer." placeholder:"DIR" env:"REBALANCER_AGENT_DATA_DIR"`
	Workers              int              `help:"Assignments processed at once; the agent holds at most 50 per worker (then 503). Default: [server] workers, else 4." placeholder:"N" env:"REBALANCER_AGENT_WORKERS"`
	WorkersPerAssignment int              `help:"Concurrent downloads per assignment. Default: [server] workers_per_assignment, else 4." placeholder:"N" env:"REBALANCER_AGENT_WORKERS_PER_ASSIGNMENT"`
	DownloadTimeout      time.Duration    `help:"Longest wait for a source's response headers or for the next piece of its body (not a cap on the whole transfer). Default: [server] download_timeout_secs, else 120s." placeholder:"DURATION" env:"REBALANCER_AGENT_DOWNLOAD_TIMEOUT"`
	RetryDelays          []time.Duration  `help:"Waits between attempts to reach a source that does not answer. Default: 1s,2s,4s (4 attempts)." placeholder:"D" env:"REBALANCER_AGENT_RETRY_DELAYS"`
	Token                string           `help:"Require \"Authorization: Bearer TOKEN\" on the assignment routes. Off by default: legacy managers send no token." placeholder:"TOKEN" env:"REBALANCER_AGENT_TOKEN"`
	Retention            time.Duration    `help:"How long completed assignments are kept before they are pruned. Default: 336h (14 days)." placeholder:"DURATION" env:"REBALANCER_AGENT_RETENTION"`
	AllowSources         []string         `help:"Only download from these sources: a domain suffix such as .stor.us-east.joyent.us (storage ids without a port under it), or an exact host or host:port. A task from any other source is refused (400). Default: [server] allow_sources, else any source (legacy)." placeholder:"HOST" env:"REBALANCER_AGENT_ALLOW_SOURCES"`
	MinSourceRate        int64            `help:"Slowest a source may send, in bytes a second, measured over each --min-source-rate-window from its response headers; a slower download fails (SourceOtherError). Default: [server] min_source_rate, else 4096." placeholder:"BYTES" env:"REBALANCER_AGENT_MIN_SOURCE_RATE"`
	MinSourceRateWindow  time.Duration    `help:"Period over which --min-source-rate is measured. Default: [server] min_source_rate_window, else 60s." placeholder:"DURATION" env:"REBALANCER_AGENT_MIN_SOURCE_RATE_WINDOW"`
	MaxBodyBytes         int64            `help:"Largest POST /assignments body accepted (400 beyond). Default: 67108864 (64 MiB)." placeholder:"BYTES" env:"REBALANCER_AGENT_MAX_BODY_BYTES"`
	MaxBodyBytesInFlight int64            `help:"Memory all POST bodies being read may take at once; a POST that would go over it gets 503 (managers retry). Default: [server] max_body_bytes_in_flight, else twice --max-body-bytes." placeholder:"BYTES" env:"REBALANCER_AGENT_MAX_BODY_BYTES_IN_FLIGHT"`
	HeaderTimeout        time.Duration    `help:"Time a client has to send a request's headers before it is disconnected. Default: [server] header_timeout, else 10s." placeholder:"DURATION" env:"REBALANCER_AGENT_HEADER_TIMEOUT"`
	BodyTimeout          time.Duration    `help:"Time a client has to send a POST body once its headers are in (408 after). Default: [server] body_timeout, else 2m." placeholder:"DURATION" env:"REBALANCER_AGENT_BODY_TIMEOUT"`
	IdleTimeout          time.Duration    `help:"Time a kept-alive connection may wait for its next request. Default: [server] idle_timeout, else 2m." placeholder:"DURATION" env:"REBALANCER_AGENT_IDLE_TIMEOUT"`
	ShutdownGrace        time.Duration    `help:"On SIGTERM/SIGINT, how long downloads in flight may run on; the rest are abandoned and redone at the next start. Default: 30s." placeholder:"DURATION" env:"REBALANCER_AGENT_SHUTDOWN_GRACE"`
	SourceProxy          string           `help:"HTTP proxy for downloads from other sharks (tests, unusual networks); environment proxies are ignored on purpose. Default: none." placeholder:"URL" env:"REBALANCER_AGENT_SOURCE_PROXY"`
	LogLevel             string           `help:"Log level: debug, info, warn or error." default:"info" enum:"debug,info,warn,error" env:"REBALANCER_AGENT_LOG_LEVEL"`
	Version              kong.VersionFlag `help:"Print the version and exit."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, DefaultConfigFile)
	stop()
	os.Exit(code)
}

// run is the whole command; it returns the process exit status: 0 after a
// clean stop, 2 for a usage or configuration error, 1 for anything else.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, defaultConfig string) (code int) {
	var c cli
	if _, code, ok := (cmdline.Command{
		Name:        "rebalancer-agent",
		Description: "Copies objects onto this storage node for the Manta rebalancer manager.",
		Stdout:      stdout,
		Stderr:      stderr,
		Options:     []kong.Option{kong.Vars{"default_config": defaultConfig}},
	}).Parse(&c, args); !ok {
		return code
	}
	s, err := resolve(&c, defaultConfig)
	if err != nil {
		fmt.Fprintln(stderr, "rebalancer-agent:", err)
		return 2
	}
	level, _ := logging.ParseLevel(c.LogLevel) // kong checked the name
	log := logging.New(stdout, "rebalancer-agent", level)
	if err := serve(ctx, s, log); err != nil {
		log.Error("agent failed", "err", err)
		return 1
	}
	return 0
}

// serve runs the agent until ctx ends or a listener fails.
func serve(ctx context.Context, s settings, log *slog.Logger) error {
	if s.configFile != "" {
		log.Info("read config file", "path", s.configFile)
	}
	for _, k := range s.unknownKeys {
		log.Warn("ignoring unknown config key", "key", k, "path", s.configFile)
	}
	a, err := agent.New(s.agent, log)
	if err != nil {
		return err
	}
	defer a.Close()

	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("agent API: %w", err)
	}
	api := a.APIServer(slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	servers := []*http.Server{api}
	listeners := []net.Listener{ln}
	attrs := []any{"addr", ln.Addr().String()}
	if s.metricsListen != "" {
		mln, err := net.Listen("tcp", s.metricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics: %w", err)
		}
		cfg := a.Config()
		servers = append(servers, &http.Server{
			Handler:           a.MetricsHandler(),
			ReadHeaderTimeout: cfg.HeaderTimeout,
			ReadTimeout:       cfg.HeaderTimeout,
			WriteTimeout:      time.Minute,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		})
		listeners = append(listeners, mln)
		attrs = append(attrs, "metrics_addr", mln.Addr().String())
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvs := cmdline.Serve(servers, listeners)
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	log.Info("listening", attrs...)

	var failure error
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-srvs.Failed():
		failure = fmt.Errorf("serve: %w", err)
		cancel()
	}
	// Stop taking requests first, then let Run finish its downloads.
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer done()
	serveErr := srvs.Shutdown(shutdownCtx)
	if err := <-runErr; err != nil && failure == nil {
		failure = err
	}
	if serveErr != nil && failure == nil {
		failure = serveErr
	}
	return failure
}
