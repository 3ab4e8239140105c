// Package crashtest SIGKILLs the real rebalancer binaries in the middle of
// evacuations and checks that nothing was lost, corrupted or miscounted.
//
// Each run starts a fleet (internal/testbed) whose Moray, storinfo and
// shark file servers run in this process (and, with Config.Databases, a
// buckets-mdapi per buckets shard over PostgreSQL, holding buckets (v2)
// objects and multipart uploads in progress) while every shark's agent is a
// rebalancer-agent process over the shark's directories, and starts a
// rebalancer-manager process configured as config-agent would configure
// it. The processes reach the fleet by its production names
// ("1.stor.demo.example:7878", "2.stor.demo.example:80") through one
// forward proxy in this process (testbed's ProxyHandler, passed as
// --source-proxy and --agent-proxy). The run creates an evacuation through
// the manager's HTTP API, then one to three times, at points drawn from
// its seed (a share of the objects discovered or finished, plus a short
// delay), SIGKILLs the agent of a destination shark or the manager, leaves
// it dead for a while (sometimes longer than the job's agent unreachable
// timeout, so that its assignments are given up and placed again) and
// restarts it over the same data. Once the job has ended, every process is
// stopped with SIGTERM and the run checks:
//
//   - the job is Complete, and its counts are exact: the per-status counts
//     add up to the objects discovered, which are the objects that listed
//     the evacuated shark, v1 and v2; none is left unprocessed, assigned or
//     in post processing; Complete equals the objects whose metadata moved
//     off the shark, and Skipped plus Error the objects still on it; the v2
//     counts are those of the v2 objects, and the record of every upload
//     whose parts all moved was fixed;
//   - testbed's Verify of the evacuated shark is clean: no metadata names a
//     copy that is not on disk with the right size and MD5, no object still
//     names the shark when it could have moved, no upload record names it
//     when no part is left there, no partial download is left in an
//     agent's temp directory;
//   - every object still has as many copies as it was written with;
//   - every file on every shark outside the agent's temp directory is at a
//     final path ({owner}/{object}, or a v2 object's path) of an object and
//     is a whole copy of it
//     (size and MD5), whether or not metadata names it: no partial file
//     ever appears at a final path.
//
// Run does the runs; the package's test does a few for CI and
// cmd/rebalancer-crash the long version.
package crashtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/testbed"
)

// Target is the process a run kills.
type Target string

// Targets.
const (
	// Agent kills the agent of a destination shark (a different one each
	// time, drawn from the seed).
	Agent Target = "agent"
	// Manager kills the manager.
	Manager Target = "manager"
)

// Binary names, as Build makes them in its directory.
const (
	AgentBinary   = "rebalancer-agent"
	ManagerBinary = "rebalancer-manager"
)

// Config describes crash runs.
type Config struct {
	// Kill is the process killed in every run.
	Kill Target
	// Seeds are the runs: one per seed. A seed fixes the objects and the
	// kill plan (when, whom, how long dead); the exact moments still
	// depend on timing.
	Seeds []int64
	// Objects is how many objects each run writes (default 300); about
	// four in five have a copy on the evacuated shark.
	Objects int
	// Databases, when set, creates an empty PostgreSQL database and returns
	// its URL and a function that drops it (pgtest.CreateDatabase): each
	// run then has a buckets tier of bucketsShards shards, and writes
	// V2Objects buckets (v2) objects (default a third of Objects) and
	// Uploads multipart uploads in progress (default 4), each with 3
	// parts, as many of them on the evacuated shark as of v1 objects.
	Databases func(ctx context.Context, who string) (url string, drop func(), err error)
	V2Objects int
	Uploads   int
	// MaxSize is the largest object in bytes (default 1 MiB): most objects
	// take several writes, so that kills land in the middle of them.
	MaxSize int64
	// BinDir holds rebalancer-agent and rebalancer-manager. Empty: Run
	// builds them (Build) into a temporary directory, which needs the
	// module's source and a Go toolchain.
	BinDir string
	// Dir is where runs make their directories (default: /dev/shm when it
	// is a roomy tmpfs, else the system's temp directory).
	Dir string
	// KeepFailed keeps the directory of a failed run (fleet, job store and
	// every process's log) and names it in the result.
	KeepFailed bool
	// JobTimeout bounds every wait on the job, from its creation to its
	// end (default 2 minutes); a job that takes longer fails the run.
	JobTimeout time.Duration
	// Log receives a line per run as it ends (nil: none).
	Log io.Writer
}

func (c Config) withDefaults() Config {
	if c.Objects <= 0 {
		c.Objects = 300
	}
	if c.Databases != nil && c.V2Objects <= 0 && c.Uploads <= 0 {
		c.V2Objects, c.Uploads = c.Objects/3, 4
	}
	if c.MaxSize <= 0 {
		c.MaxSize = 1 << 20
	}
	if c.Dir == "" {
		c.Dir = testbed.TempDir()
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = 2 * time.Minute
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return c
}

// Result is one run.
type Result struct {
	Kill Target
	Seed int64
	// Kills are the SIGKILLs delivered: whom, when after the job's
	// creation, and for how long.
	Kills []string
	// Objects is how many objects had a copy on the evacuated shark; V2
	// how many of them were v2 objects, and Uploads how many multipart
	// uploads had parts there, of which UploadsFixed had their record
	// fixed by the job.
	Objects, V2           int
	Uploads, UploadsFixed int
	// Counts are the job's final counts by status (the API's Title Case
	// names).
	Counts map[string]int64
	// JobTime is from the job's creation to its end; Elapsed is the whole
	// run.
	JobTime, Elapsed time.Duration
	// Dir is the run's directory, kept because the run failed and
	// Config.KeepFailed is set.
	Dir string
	// Err says what went wrong; nil means every invariant held.
	Err error
}

// String is the run's one-line summary.
func (r Result) String() string {
	verdict := "PASS"
	if r.Err != nil {
		verdict = "FAIL"
	}
	job := "-"
	if r.JobTime > 0 {
		job = fmt.Sprintf("%.1fs", r.JobTime.Seconds())
	}
	v2 := ""
	if r.V2 > 0 || r.Uploads > 0 {
		v2 = fmt.Sprintf(" (v2 %d, uploads %d, %d fixed)", r.V2, r.Uploads, r.UploadsFixed)
	}
	s := fmt.Sprintf("%s %-7s seed %-4d %d objects%s: complete %d, skipped %d, error %d; job %s, run %.1fs; killed %s",
		verdict, r.Kill, r.Seed, r.Objects, v2, r.Counts["Complete"], r.Counts["Skipped"], r.Counts["Error"],
		job, r.Elapsed.Seconds(), strings.Join(r.Kills, ", "))
	if r.Dir != "" {
		s += "; kept " + r.Dir
	}
	if r.Err != nil {
		s += "\n    " + indent(r.Err.Error())
	}
	return s
}

// Report is every run of a Run.
type Report struct {
	Runs    []Result
	Elapsed time.Duration
}

// Failed returns the runs that failed.
func (r Report) Failed() []Result {
	var out []Result
	for _, x := range r.Runs {
		if x.Err != nil {
			out = append(out, x)
		}
	}
	return out
}

// Run does one crash run per seed, one after the other, and reports each.
// Its error is for what kept runs from happening (a failed build, a
// cancelled ctx); what a run found is in its Result.
func Run(ctx context.Context, cfg Config) (Report, error) {
	start := time.Now()
	cfg = cfg.withDefaults()
	if cfg.Kill != Agent && cfg.Kill != Manager {
		return Report{}, fmt.Errorf("crashtest: kill %q: want %q or %q", cfg.Kill, Agent, Manager)
	}
	bins := cfg.BinDir
	if bins == "" {
		tmp, err := os.MkdirTemp("", "rebalancer-crash-bin-")
		if err != nil {
			return Report{}, fmt.Errorf("crashtest: %w", err)
		}
		defer os.RemoveAll(tmp)
		if err := Build(ctx, tmp); err != nil {
			return Report{}, err
		}
		bins = tmp
	}
	var rep Report
	for _, seed := range cfg.Seeds {
		if err := ctx.Err(); err != nil {
			rep.Elapsed = time.Since(start)
			return rep, err
		}
		res := runOne(ctx, cfg, bins, seed)
		rep.Runs = append(rep.Runs, res)
		fmt.Fprintln(cfg.Log, res)
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// Build compiles rebalancer-agent and rebalancer-manager into dir with the
// go command, from the module the current directory is in. No -race: the
// processes should run at production speed.
func Build(ctx context.Context, dir string) error {
	const mod = "github.com/TritonDataCenter/rebalancer/cmd/"
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), mod+AgentBinary, mod+ManagerBinary)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("crashtest: go build (run from the rebalancer module, or give prebuilt binaries): %w\n%s", err, out)
	}
	return nil
}

func indent(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, s[i])
		if s[i] == '\n' {
			out = append(out, "    "...)
		}
	}
	return string(out)
}
