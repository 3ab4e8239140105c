// Command rebalancer-manager runs the Manta rebalancer manager: it serves
// the job API (legacy routes and JSON, plus stop/pause/resume and dry
// runs), discovers the objects on a shark being evacuated, has agents on
// healthy sharks copy them, and rewrites their metadata in Moray.
//
// It reads the legacy JSON config file that config-agent renders
// (/opt/smartdc/rebalancer/config.json); flags and environment variables
// override the listen addresses and the job store. SIGUSR1 re-reads the
// file and applies what can change at runtime (placement limits, the
// snaplink gate, the options of new jobs, metadata threads of running
// jobs, the log level); the rest is logged as needing a restart. Unknown
// keys are warned about, or refused with --strict; "rebalancer-manager
// check-config FILE" checks a file without starting anything, and
// "rebalancer-manager import-legacy --from URL" imports the legacy
// manager's jobs into the job store.
// SIGTERM or SIGINT stops it gracefully at any moment, leaving running jobs
// resumable, and exits 0.
// Logs are bunyan records on standard output, one JSON line each, named
// "rebalancer" as the legacy manager's are (see internal/logging).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
)

// DefaultConfigFile is where config-agent renders the manager's config.
const DefaultConfigFile = "/opt/smartdc/rebalancer/config.json"

type cli struct {
	Config        string           `short:"c" aliases:"config_file" help:"Legacy JSON config file (${default}). SIGUSR1 re-reads it." default:"${default_config}" placeholder:"FILE" env:"REBALANCER_CONFIG"`
	Listen        string           `help:"Address of the job API. Default: 0.0.0.0:<listen_port from the config> (80)." placeholder:"ADDR" env:"REBALANCER_LISTEN"`
	MetricsListen string           `help:"Address of the Prometheus metrics; \"off\" disables them. Default: 0.0.0.0:<metrics_port> (8878)." placeholder:"ADDR" env:"REBALANCER_METRICS_LISTEN"`
	Database      string           `help:"Job store: a postgres:// URL, or a SQLite file or directory. Default: the config's \"database\", else ${default_database}." placeholder:"URL-OR-PATH" env:"REBALANCER_DATABASE"`
	LogLevel      string           `help:"Log level (debug, info, warn, error), overriding the config's log_level, also on SIGUSR1." enum:"debug,info,warn,error," default:"" env:"REBALANCER_LOG_LEVEL"`
	AgentProxy    string           `help:"HTTP proxy for requests to the agents (tests, unusual networks); environment proxies are ignored on purpose. Default: none." placeholder:"URL" env:"REBALANCER_AGENT_PROXY"`
	AgentToken    string           `help:"Bearer token sent to every agent (the agents' --token), overriding the config's agent_token. Prefer the environment variable: flags show in ps. Default: none, as the legacy." placeholder:"TOKEN" env:"REBALANCER_AGENT_TOKEN"`
	APIToken      string           `name:"api-token" help:"Bearer token the job API requires on every route but GET /health, overriding the config's api_token. Default: none (anyone who reaches the port can drive jobs)." placeholder:"TOKEN" env:"REBALANCER_API_TOKEN"`
	AcceptEmpty   bool             `name:"accept-empty-store" help:"Start on a job store that does not match the manager's record of it (replaced by an empty one, restored from an old copy, a recreated database), forgetting the jobs it lost. Without it such a store is refused."`
	Strict        bool             `help:"Refuse a config file with unknown keys: exit 2 at start, keep the running config on SIGUSR1. Without it they are logged as warnings and ignored, as the legacy ignored them." env:"REBALANCER_STRICT_CONFIG"`
	Version       kong.VersionFlag `help:"Print the version and exit."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGUSR1)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, reload, manager.Deps{}, nil)
	stop()
	os.Exit(code)
}

// run is the whole command. reload delivers SIGUSR1; deps replace parts of
// the production wiring (tests); ready, when set, receives the API's and
// metrics' addresses once they listen.
// It returns 0 after a clean stop, 2 for a usage or configuration error
// and 1 for anything else.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, reload <-chan os.Signal, deps manager.Deps, ready func(api, metrics string)) (code int) {
	if len(args) > 0 && args[0] == checkConfigCommand {
		return checkConfig(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == importLegacyCommand {
		return importLegacy(ctx, args[1:], stdout, stderr)
	}
	var c cli
	if _, code, ok := (cmdline.Command{
		Name: "rebalancer-manager",
		Description: "Evacuates Manta storage nodes: the rebalancer manager and its job API.\n\n" +
			"SIGUSR1 re-reads the config file and applies placement limits, the snaplink gate, job options, " +
			"metadata threads of running jobs and the log level; other keys need a restart. " +
			"SIGTERM stops gracefully at any moment: running jobs resume at the next start. GET /health answers 503 " +
			"while the job store fails. API reference: docs/api.md; securing a deployment: README.\n\n" +
			"rebalancer-manager check-config [FILE] checks a config file without starting anything (see its --help).\n\n" +
			"rebalancer-manager import-legacy --from URL imports the legacy manager's jobs into the job store (see its --help).",
		Stdout:  stdout,
		Stderr:  stderr,
		Options: []kong.Option{kong.Vars{"default_config": DefaultConfigFile, "default_database": manager.DefaultDatabase}},
	}).Parse(&c, args); !ok {
		return code
	}
	cfg, err := load(&c)
	if err != nil {
		fmt.Fprintln(stderr, "rebalancer-manager: error parsing config file:", err.Error()+configHint(err))
		return 2
	}
	if c.AgentProxy != "" {
		u, err := url.Parse(c.AgentProxy)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fmt.Fprintf(stderr, "rebalancer-manager: --agent-proxy %q is not an http:// or https:// URL with a host\n", c.AgentProxy)
			return 2
		}
		deps.AgentProxy = u
	}
	level := new(slog.LevelVar)
	setLevel(level, &c, cfg)
	if c.LogLevel == "" {
		deps.LogLevel = level // log_level applies, and SIGUSR1 changes it
	}
	log := logging.New(stdout, "rebalancer", level)
	deps.Logger, deps.Version = log, cmdline.Version()
	err = serve(ctx, &c, cfg, deps, reload, ready)
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil:
		// Stopped while starting (opening the job store, say): a stop at
		// any moment is a clean one.
		log.Info("stopped while starting", "err", err)
		return 0
	case errors.Is(err, evacuate.ErrStoreReplaced):
		log.Error("manager failed", "err", err)
		fmt.Fprintln(stderr, "rebalancer-manager:", err)
		return 2
	}
	log.Error("manager failed", "err", err)
	return 1
}

// load reads the config file and applies the flag overrides to it.
func load(c *cli) (*manager.Config, error) {
	cfg, err := manager.LoadConfig(c.Config)
	if err != nil {
		return nil, err
	}
	if c.Database != "" {
		cfg.Database = c.Database
	}
	if c.AgentToken != "" {
		cfg.AgentToken = c.AgentToken
	}
	if c.APIToken != "" {
		cfg.APIToken = c.APIToken
	}
	cfg.AcceptEmptyStore = c.AcceptEmpty
	if c.Strict {
		if err := cfg.UnknownKeysError(); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Config, err)
		}
	}
	return cfg, nil
}

// configHint says what to do about a configuration file that cannot be
// read: where the manager looked, and how to point it elsewhere.
func configHint(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "; give the manager's config file with --config FILE or $REBALANCER_CONFIG (" + DefaultConfigFile +
			" is where config-agent renders it in the rebalancer zone)"
	case errors.Is(err, fs.ErrPermission):
		return "; the manager needs to read it (it runs as nobody under SMF)"
	}
	return ""
}

func setLevel(v *slog.LevelVar, c *cli, cfg *manager.Config) {
	name := c.LogLevel
	if name == "" {
		name = cfg.SlogLevel()
	}
	if l, err := logging.ParseLevel(name); err == nil {
		v.Set(l)
	}
}

func serve(ctx context.Context, c *cli, cfg *manager.Config, deps manager.Deps, reload <-chan os.Signal, ready func(string, string)) error {
	log := deps.Logger
	m, err := manager.New(ctx, cfg, deps)
	if err != nil {
		return err
	}
	defer m.Close()

	listen := c.Listen
	if listen == "" {
		listen = net.JoinHostPort("0.0.0.0", strconv.Itoa(cfg.ListenPort))
	}
	metricsListen := c.MetricsListen
	if metricsListen == "" {
		metricsListen = net.JoinHostPort("0.0.0.0", strconv.Itoa(cfg.MetricsPort))
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("job API: %w", err)
	}
	servers := []*http.Server{newServer(m.Handler(), log)}
	listeners := []net.Listener{ln}
	metricsAddr := ""
	if metricsListen != "off" {
		mln, err := net.Listen("tcp", metricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics: %w", err)
		}
		servers = append(servers, newServer(m.MetricsHandler(), log))
		listeners = append(listeners, mln)
		metricsAddr = mln.Addr().String()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvs := cmdline.Serve(servers, listeners)
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(ctx) }()
	log.Info("listening", "addr", ln.Addr().String(), "metrics_addr", metricsAddr, "config", c.Config)
	if ready != nil {
		ready(ln.Addr().String(), metricsAddr)
	}

	var failure error
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping; running jobs will resume at the next start")
			break loop
		case <-reload:
			next, err := load(c)
			if err != nil {
				// Legacy behaviour: a bad file changes nothing.
				log.Error("error parsing config after signal received; not updating", "err", err)
				continue
			}
			if _, err := m.Reload(ctx, next); err != nil {
				log.Error("reload failed", "err", err)
			}
		case err := <-srvs.Failed():
			failure = fmt.Errorf("serve: %w", err)
			cancel()
			break loop
		case err := <-runErr:
			runErr <- err // read again below
			failure = fmt.Errorf("engine stopped: %w", err)
			cancel()
			break loop
		}
	}
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer done()
	serveErr := srvs.Shutdown(shutdownCtx)
	cancel()
	if err := <-runErr; err != nil && failure == nil {
		failure = err
	}
	if serveErr != nil && failure == nil {
		failure = serveErr
	}
	return failure
}

func newServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
