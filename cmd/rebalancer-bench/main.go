// Command rebalancer-bench measures the rebalancer on this machine and
// prints each figure next to its baseline, as a ratio, with the target it
// is held to:
//
//   - agent: copy MB/s against a raw HTTP GET + MD5 of the same files from
//     the same server;
//   - e2e: an evacuation of 4 KiB objects (objects/s) and of 16 MiB objects
//     (MB/s), and the time to the first copied object;
//   - discovery: rows/s of the direct-PostgreSQL scan against a raw COPY of
//     the same table;
//   - moray: client RPCs/s and allocations against a minimal raw Fast
//     exchange;
//   - rss: the manager's peak RSS with 1M discovered objects (--objects)
//     against 100k, and its job store's bytes per object.
//
// Everything runs on loopback in temporary directories; discovery starts a
// throwaway PostgreSQL from the machine's binaries (or uses --postgres).
// `--quick` shrinks every workload to a smoke run of a few seconds, which
// its test does; `--only` picks benches. The figures go to standard
// output; progress lines, and the logs of the components under test
// (bunyan records, from --log-level on: warn by default), to standard error.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
)

// Figure is one measured number and what it is compared with.
type Figure struct {
	Bench    string  `json:"bench"`
	Name     string  `json:"name"`               // what was measured, e.g. "copy rate"
	Unit     string  `json:"unit"`               // e.g. "MB/s", "objects/s", "s", "MiB"
	Value    float64 `json:"value"`              // in Unit
	Baseline string  `json:"baseline,omitempty"` // what Value is compared with
	Base     float64 `json:"base,omitempty"`     // the baseline's value in Unit; 0: no ratio
	// Target is the promise, e.g. ">= 0.85" (of the ratio) or ">= 3000"
	// (of the value); empty for a figure only reported.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	Note   string `json:"note,omitempty"` // what bounds it, when the target is missed
}

// Ratio is Value/Base, or 0 without a baseline.
func (f Figure) Ratio() float64 {
	if f.Base == 0 {
		return 0
	}
	return f.Value / f.Base
}

// Options are shared by every bench.
type Options struct {
	Quick bool      // tiny workloads: a smoke run of seconds
	Dir   string    // scratch directory (each bench makes its own under it)
	Log   io.Writer // progress lines
	// Logger receives the components' logs (bunyan records on standard
	// error, from --log-level on).
	Logger *slog.Logger
	// LogLevel is --log-level, for the rss bench's children.
	LogLevel string
	// ProfileDir, when set, receives CPU profiles.
	ProfileDir string
	// RSSObjects, when set, is the rss bench's large job size.
	RSSObjects int
	// RSSSizes, when set, are the rss bench's two job sizes.
	RSSSizes []int
	// Postgres, when set, is an empty database for the discovery bench,
	// which otherwise starts a throwaway server.
	Postgres string
}

// A bench measures and returns its figures.
type bench struct {
	name string
	run  func(ctx context.Context, o Options) ([]Figure, error)
}

var benches = []bench{
	{"agent", benchAgent},
	{"e2e", benchE2E},
	{"discovery", benchDiscovery},
	{"moray", benchMoray},
	{"rss", benchRSS},
}

type cli struct {
	Only       []string `help:"Benches to run (agent, e2e, discovery, moray, rss); default all." sep:","`
	Quick      bool     `help:"Tiny workloads: a smoke run that takes seconds, not figures to quote."`
	JSON       bool     `help:"Print the figures as JSON lines instead of a table."`
	Dir        string   `help:"Scratch directory (default: a temporary directory, on /dev/shm when roomy)." type:"path"`
	ProfileDir string   `help:"Write a CPU profile of each bench (and of the rss children) into this directory." type:"path"`
	Postgres   string   `help:"URL of an empty PostgreSQL database for the discovery bench (default: a throwaway server started from this machine's initdb and postgres)." placeholder:"URL"`
	LogLevel   string   `help:"Level from which the logs of the components under test (agents, Moray, the engine...) are written to standard error, as bunyan records: debug, info, warn or error." default:"warn" enum:"debug,info,warn,error"`
	Objects    int      `help:"Objects in the rss bench's large job, measured against one of 100,000 (default 1,000,000: about 6 minutes on 2 cores). Its job store takes 1.3 KB of scratch per object: 10,000,000 takes over an hour and 13 GB, so give it a --dir on a disk." placeholder:"N"`
	// RSSSizes overrides the rss bench's two job sizes (tests: the race
	// detector makes big jobs slow).
	RSSSizes []int `hidden:"" name:"rss-sizes" sep:","`
	// rss runs a child process of this binary to measure peak RSS.
	RSSChild int `hidden:"" name:"rss-child"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	// Progress lines and the components' logs share standard error, from
	// many goroutines.
	stderr = &syncWriter{w: stderr}
	var c cli
	if _, code, ok := (cmdline.Command{Name: "rebalancer-bench", Stdout: stdout, Stderr: stderr,
		Description: "Measures the rebalancer on this machine; prints each figure with its baseline and target.",
	}).Parse(&c, args); !ok {
		return code
	}
	level, _ := logging.ParseLevel(c.LogLevel) // kong checked the name
	logger := logging.New(stderr, "rebalancer-bench", level)
	if c.RSSChild > 0 {
		stop, err := startProfile(c.ProfileDir, fmt.Sprintf("rss-%d", c.RSSChild))
		if err != nil {
			fmt.Fprintln(stderr, "rebalancer-bench:", err)
			return 1
		}
		defer stop()
		return rssChild(ctx, c.RSSChild, c.Dir, stdout, stderr, logger)
	}
	for _, name := range c.Only {
		if !slices.ContainsFunc(benches, func(b bench) bool { return b.name == name }) {
			fmt.Fprintf(stderr, "rebalancer-bench: unknown bench %q\n", name)
			return 2
		}
	}
	dir := c.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp(testbed.TempDir(), "rebalancer-bench-"); err != nil {
			fmt.Fprintln(stderr, "rebalancer-bench:", err)
			return 1
		}
		defer os.RemoveAll(dir)
	}
	if len(c.RSSSizes) != 0 && (len(c.RSSSizes) != 2 || c.RSSSizes[0] <= 0 || c.RSSSizes[1] <= c.RSSSizes[0]) {
		fmt.Fprintln(stderr, "rebalancer-bench: --rss-sizes wants two increasing sizes")
		return 2
	}
	if c.Objects < 0 {
		fmt.Fprintln(stderr, "rebalancer-bench: --objects must be positive")
		return 2
	}
	o := Options{Quick: c.Quick, Dir: dir, Log: stderr, Logger: logger, LogLevel: c.LogLevel, ProfileDir: c.ProfileDir,
		RSSObjects: c.Objects, RSSSizes: c.RSSSizes, Postgres: c.Postgres}
	fmt.Fprintf(stderr, "machine: %d CPUs, %s/%s, %s; scratch %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), dir)
	var all []Figure
	failed := false
	for _, b := range benches {
		if len(c.Only) > 0 && !slices.Contains(c.Only, b.name) {
			continue
		}
		start := time.Now()
		fmt.Fprintf(stderr, "== %s\n", b.name)
		stopProfile, err := startProfile(c.ProfileDir, b.name)
		if err != nil {
			fmt.Fprintln(stderr, "rebalancer-bench:", err)
			return 1
		}
		figs, err := b.run(ctx, o)
		stopProfile()
		if err != nil {
			fmt.Fprintf(stderr, "rebalancer-bench: %s: %v\n", b.name, err)
			failed = true
		}
		for i := range figs {
			figs[i].Bench = b.name
		}
		all = append(all, figs...)
		fmt.Fprintf(stderr, "   %s done in %s\n", b.name, time.Since(start).Round(time.Millisecond))
		if ctx.Err() != nil {
			break
		}
	}
	if c.JSON {
		enc := json.NewEncoder(stdout)
		for _, f := range all {
			enc.Encode(f)
		}
	} else {
		printTable(stdout, all)
	}
	if failed || ctx.Err() != nil {
		return 1
	}
	return 0
}

func printTable(w io.Writer, figs []Figure) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCH\tFIGURE\tVALUE\tBASELINE\tRATIO\tTARGET\tMET")
	for _, f := range figs {
		base, ratio, met := "-", "-", "-"
		if f.Baseline != "" {
			base = fmt.Sprintf("%s %s %s", f.Baseline, num(f.Base), f.Unit)
		}
		if f.Base != 0 {
			ratio = fmt.Sprintf("%.2f", f.Ratio())
		}
		if f.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*f.Met]
		}
		target := f.Target
		if target == "" {
			target = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", f.Bench, f.Name, num(f.Value), f.Unit, base, ratio, target, met)
	}
	tw.Flush()
	for _, f := range figs {
		if f.Note != "" {
			fmt.Fprintf(w, "note (%s, %s): %s\n", f.Bench, f.Name, strings.TrimSpace(f.Note))
		}
	}
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}

// startProfile starts a CPU profile into dir/name.cpu.pprof; with no dir
// it does nothing. The returned function stops it.
func startProfile(dir, name string) (stop func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// met returns a pointer for Figure.Met.
func met(ok bool) *bool { return &ok }

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
