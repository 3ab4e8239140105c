// Command rebalancer-crash is the long version of the crash tests: it runs
// evacuations on an in-process Manta with the real rebalancer-agent and
// rebalancer-manager binaries as processes, SIGKILLs destination agents
// (--agent-seeds runs) and the manager (--manager-seeds runs) at points
// drawn from each run's seed, restarts them, and checks that the job ends
// Complete with exact counts, that no metadata names a copy that is not on
// disk with the right MD5, and that no partial file is ever at a final
// path. The fleet holds v1 objects, and buckets (v2) objects and multipart
// uploads in progress as well when PostgreSQL's server binaries are
// installed (a throwaway PostgreSQL holds the buckets shards); without
// them the runs say so and move v1 objects only. See internal/crashtest
// for the details.
//
// It prints a line per run and a final PASS or FAIL line, and exits 1 if
// any run failed. Run it from the module (it builds the binaries with the
// go command) or give it prebuilt ones with --bin-dir:
//
//	go run ./cmd/rebalancer-crash
//	go run ./cmd/rebalancer-crash --agent-seeds 100 --manager-seeds 0 --keep-failed
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
	"github.com/TritonDataCenter/rebalancer/internal/crashtest"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

type cli struct {
	AgentSeeds   int           `help:"Runs that SIGKILL destination agents." default:"20"`
	ManagerSeeds int           `help:"Runs that SIGKILL the manager." default:"10"`
	SeedBase     int64         `help:"First seed; runs use SEED-BASE, SEED-BASE+1..." default:"1"`
	Objects      int           `help:"Objects per run (about 80% on the evacuated shark)." default:"300"`
	V2Objects    int           `name:"v2-objects" help:"Buckets (v2) objects per run, beside --objects (a throwaway PostgreSQL holds them; 0, with --uploads 0, for v1 objects only)." default:"100"`
	Uploads      int           `help:"Multipart uploads in progress per run, 3 parts each (v2 as well)." default:"4"`
	MaxSize      int64         `help:"Largest object in bytes." default:"1048576"`
	BinDir       string        `help:"Directory with prebuilt rebalancer-agent and rebalancer-manager (default: build them with the go command)." type:"path"`
	Dir          string        `help:"Where runs make their directories (default: /dev/shm when roomy, else the temp directory)." type:"path"`
	KeepFailed   bool          `help:"Keep the directory (fleet, job store, every process's log) of each failed run."`
	JobTimeout   time.Duration `help:"Longest a run's job may take before the run fails." default:"2m"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: 0 when every run passed, 1 when one failed or
// could not happen, 2 for a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var c cli
	if _, code, ok := (cmdline.Command{Name: "rebalancer-crash", Stdout: stdout, Stderr: stderr,
		Description: "Crash tests: SIGKILLs rebalancer agents and the manager during evacuations, restarts them, and checks that nothing was lost or miscounted.",
	}).Parse(&c, args); !ok {
		return code
	}
	if c.AgentSeeds < 0 || c.ManagerSeeds < 0 || c.AgentSeeds+c.ManagerSeeds == 0 {
		fmt.Fprintln(stderr, "rebalancer-crash: --agent-seeds and --manager-seeds must not be negative, nor both zero")
		return 2
	}
	if c.Objects < 10 {
		fmt.Fprintln(stderr, "rebalancer-crash: --objects must be at least 10")
		return 2
	}

	if c.V2Objects < 0 || c.Uploads < 0 {
		fmt.Fprintln(stderr, "rebalancer-crash: --v2-objects and --uploads must not be negative")
		return 2
	}
	var databases func(ctx context.Context, who string) (string, func(), error)
	if c.V2Objects+c.Uploads > 0 {
		if err := pgtest.Available(); err != nil {
			fmt.Fprintf(stdout, "no buckets (v2) objects: they need PostgreSQL (%v); runs move v1 objects only\n", err)
		} else {
			databases = pgtest.CreateDatabase
			defer pgtest.Stop()
		}
	}

	start := time.Now()
	bins := c.BinDir
	if bins == "" {
		tmp, err := os.MkdirTemp("", "rebalancer-crash-bin-")
		if err != nil {
			fmt.Fprintln(stderr, "rebalancer-crash:", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintln(stdout, "building rebalancer-agent and rebalancer-manager...")
		if err := crashtest.Build(ctx, tmp); err != nil {
			fmt.Fprintln(stderr, "rebalancer-crash:", err)
			return 1
		}
		bins = tmp
	}
	var runs, failed int
	for _, p := range []struct {
		kill crashtest.Target
		n    int
	}{{crashtest.Agent, c.AgentSeeds}, {crashtest.Manager, c.ManagerSeeds}} {
		if p.n == 0 {
			continue
		}
		seeds := make([]int64, p.n)
		for i := range seeds {
			seeds[i] = c.SeedBase + int64(i)
		}
		rep, err := crashtest.Run(ctx, crashtest.Config{Kill: p.kill, Seeds: seeds, Objects: c.Objects, MaxSize: c.MaxSize,
			Databases: databases, V2Objects: c.V2Objects, Uploads: c.Uploads,
			BinDir: bins, Dir: c.Dir, KeepFailed: c.KeepFailed, JobTimeout: c.JobTimeout, Log: stdout})
		runs += len(rep.Runs)
		failed += len(rep.Failed())
		if err != nil {
			fmt.Fprintf(stdout, "FAIL: %d of %d runs failed; stopped early: %v (%s)\n", failed, runs, err, time.Since(start).Round(time.Second))
			return 1
		}
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "FAIL: %d of %d runs failed (%s)\n", failed, runs, time.Since(start).Round(time.Second))
		return 1
	}
	fmt.Fprintf(stdout, "PASS: %d runs (%d agent, %d manager) in %s\n", runs, c.AgentSeeds, c.ManagerSeeds, time.Since(start).Round(time.Second))
	return 0
}
