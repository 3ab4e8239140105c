// Command rebalancer-demo shows a real evacuation from start to finish in
// one process, on nothing but this machine.
//
// It starts a small Manta: a Moray per metadata shard with the manta bucket
// (moraytest, speaking the real Fast protocol), storinfo (storinfotest),
// and storage nodes, each a directory served like mako plus a real
// rebalancer agent writing into it. It writes objects with two copies each,
// starts the real manager (job store, HTTP API, metrics) and asks it,
// through its HTTP API, to evacuate one shark, showing progress as it goes.
// Then it checks the whole fleet from scratch: no metadata names the
// evacuated shark except objects the job reports it could not move, every
// copy metadata names is on disk with the right MD5, and the counts match.
//
// Faults can be injected to see what skips, errors and retries look like: a
// dead source shark, corrupt source copies, and another writer changing
// objects while the job updates them. The last line states the verdict;
// the exit status is 0 when verification passes, 1 when it fails, 2 for
// bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

type cli struct {
	Objects     int      `help:"Objects to write." default:"5000"`
	MinSize     byteSize `help:"Smallest object (e.g. 4KiB, 16MiB)." default:"4KiB"`
	MaxSize     byteSize `help:"Largest object." default:"64KiB"`
	Copies      int      `help:"Copies of each object, on distinct sharks (datacenters first)." default:"2"`
	OnEvacuated float64  `name:"on-evacuated" help:"Share of the objects with a copy on the evacuated shark, in (0,1]." default:"0.5"`
	Sharks      int      `help:"Storage nodes." default:"6"`
	Datacenters int      `help:"Datacenters the sharks are spread over." default:"3"`
	Shards      int      `help:"Metadata shards (one Moray each)." default:"2"`
	Evacuate    string   `help:"Storage id of the shark to evacuate." default:"1.stor.demo.example"`
	Seed        uint64   `help:"Seed of the objects (same seed, same objects)." default:"1"`

	DeadSource    string `name:"dead-source" help:"Storage id of a shark whose file server is down during the job: objects whose only other copy is there cannot be copied." placeholder:"ID"`
	Corrupt       int    `help:"Source copies to corrupt before the job (bit rot): the agents' MD5 check refuses them." placeholder:"N"`
	EtagConflicts int    `name:"etag-conflicts" help:"Objects another writer changes just as the job updates their metadata: the job re-reads and retries them, keeping the writer's change." placeholder:"N"`

	Dir     string `help:"Directory for the fleet (sharks, agent state, job store), kept afterwards. Default: a temporary directory, removed." type:"path"`
	Listen  string `help:"Address of the manager's HTTP API." default:"127.0.0.1:0"`
	Hold    bool   `help:"After the verdict, keep the fleet and the manager running until interrupted, to explore them with rebalancer-adm or curl."`
	Verbose bool   `short:"v" help:"Log every component (JSON) to stderr."`
}

// byteSize is a flag taking "4KiB", "16MiB", "1000"...
type byteSize int64

func (b *byteSize) UnmarshalText(text []byte) error {
	n, err := humanize.ParseBytes(string(text))
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, hooks{})
	stop()
	os.Exit(code)
}

// hooks let tests break things the demo must then catch.
type hooks struct {
	afterJob func(ctx context.Context, f *testbed.Fleet) error // after the job, before verification
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, h hooks) (code int) {
	var c cli
	if _, code, ok := (cmdline.Command{Name: "rebalancer-demo", Stdout: stdout, Stderr: stderr,
		Description: "Evacuates a storage node of a small Manta running in this process, through the real manager and agents, then verifies the result from scratch.",
	}).Parse(&c, args); !ok {
		return code
	}
	if err := c.validate(); err != nil {
		fmt.Fprintln(stderr, "rebalancer-demo:", err)
		return 2
	}
	d := &demo{cli: c, out: stdout, errOut: stderr, hooks: h, tty: isTerminal(stdout)}
	ok, err := d.run(ctx)
	switch {
	case err != nil:
		fmt.Fprintln(stdout, "FAIL: the demo could not run:", err)
		return 1
	case !ok:
		return 1
	}
	return 0
}

func (c *cli) validate() error {
	var errs []error
	if c.Objects < 1 {
		errs = append(errs, errors.New("--objects must be positive"))
	}
	if c.MaxSize < c.MinSize {
		errs = append(errs, fmt.Errorf("--max-size %s is below --min-size %s", humanize.IBytes(uint64(c.MaxSize)), humanize.IBytes(uint64(c.MinSize))))
	}
	if c.Sharks < 3 {
		errs = append(errs, errors.New("--sharks must be at least 3: the evacuated one, a source and a destination"))
	}
	if c.Copies < 1 || c.Copies >= c.Sharks {
		errs = append(errs, fmt.Errorf("--copies must be in 1..%d (fewer than the sharks)", c.Sharks-1))
	}
	if c.Datacenters < 1 || c.Datacenters > c.Sharks {
		errs = append(errs, errors.New("--datacenters must be in 1..--sharks"))
	}
	if c.Shards < 1 {
		errs = append(errs, errors.New("--shards must be positive"))
	}
	if c.OnEvacuated <= 0 || c.OnEvacuated > 1 {
		errs = append(errs, errors.New("--on-evacuated must be in (0,1]"))
	}
	if c.Corrupt < 0 || c.EtagConflicts < 0 {
		errs = append(errs, errors.New("--corrupt and --etag-conflicts must not be negative"))
	}
	if c.DeadSource != "" && c.DeadSource == c.Evacuate {
		errs = append(errs, errors.New("--dead-source must differ from --evacuate"))
	}
	return errors.Join(errs...)
}

// demo is one run.
type demo struct {
	cli
	out, errOut io.Writer
	hooks       hooks
	tty         bool

	fleet *testbed.Fleet
	pop   testbed.Population
	api   string         // the manager's base URL
	jobs  *jobapi.Client // its job API

	// Injected faults, for the verdict.
	corrupted map[string]string // object id -> shark holding the corrupt copy
	writer    *concurrentWriter
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) run(ctx context.Context) (bool, error) {
	log := slog.New(slog.DiscardHandler)
	if d.Verbose {
		log = slog.New(slog.NewJSONHandler(d.errOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	start := time.Now()
	f, err := testbed.Start(ctx, testbed.Config{Sharks: d.Sharks, Datacenters: d.Datacenters, Shards: d.Shards,
		Dir: d.Dir, Logger: log, StorinfoInterval: time.Second})
	if err != nil {
		return false, err
	}
	defer f.Close()
	d.fleet = f
	if f.Shark(d.Evacuate) == nil {
		return false, fmt.Errorf("no shark %s: the sharks are 1.stor.demo.example .. %d.stor.demo.example", d.Evacuate, d.Sharks)
	}
	if d.DeadSource != "" && f.Shark(d.DeadSource) == nil {
		return false, fmt.Errorf("--dead-source: no shark %s", d.DeadSource)
	}
	d.say("Starting a small Manta in this process: %d sharks in %d datacenters, %d metadata shards (Moray over Fast), storinfo, an agent per shark.",
		d.Sharks, d.Datacenters, d.Shards)
	// The testbed's agents run with the source allow-list on, as
	// production agents should.
	d.say("  agents download only from: %s", strings.Join(f.Shark(d.Evacuate).Agent().Config().AllowSources, ", "))
	d.say("  fleet directory: %s", f.Dir())

	d.pop, err = f.Populate(ctx, testbed.Objects{Count: d.Objects, MinSize: int64(d.MinSize), MaxSize: int64(d.MaxSize),
		Copies: d.Copies, Seed: d.Seed, Pin: d.Evacuate, PinFraction: d.OnEvacuated})
	if err != nil {
		return false, err
	}
	d.say("Wrote %s objects (%s, %d copies each); %s have a copy on %s. [%s]",
		humanize.Comma(int64(d.pop.Objects)), humanize.IBytes(uint64(d.pop.Bytes)), d.Copies, humanize.Comma(int64(d.pop.Pinned)),
		d.Evacuate, time.Since(start).Round(time.Millisecond))

	if err := d.injectFaults(ctx); err != nil {
		return false, err
	}

	// The real manager, configured as config-agent would, with Moray
	// reached at its loopback address and job timers shortened.
	cfg := f.ManagerConfig()
	endpoints := map[string]any{}
	for _, n := range f.ShardNumbers() {
		endpoints[fmt.Sprint(n)] = f.MorayAddr(n)
	}
	cfg["moray_endpoints"] = endpoints
	raw, _ := json.Marshal(cfg)
	mcfg, err := manager.ParseConfig(raw)
	if err != nil {
		return false, fmt.Errorf("manager config: %w", err)
	}
	runCtx, stopManager := context.WithCancel(ctx)
	defer stopManager()
	m, err := manager.New(runCtx, mcfg, manager.Deps{AgentClient: f.AgentClient(), Logger: log.With("component", "manager"),
		JobOptions: testbed.FastTimers, Version: "demo"})
	if err != nil {
		return false, err
	}
	defer m.Close()
	ln, err := net.Listen("tcp", d.Listen)
	if err != nil {
		return false, fmt.Errorf("manager API: %w", err)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Serve(ln) }()
	go func() { defer wg.Done(); m.Run(runCtx) }()
	defer func() {
		srv.Close()
		stopManager()
		wg.Wait()
	}()
	d.api = "http://" + ln.Addr().String()
	if d.jobs, err = jobapi.NewClient(d.api); err != nil {
		return false, err
	}
	d.say("The manager is listening at %s (try: rebalancer-adm --manager %s job list).", d.api, d.api)

	id, err := d.createJob(ctx)
	if err != nil {
		return false, err
	}
	d.say("Evacuating %s: job %s", d.Evacuate, id)
	jobStart := time.Now()
	if err := d.watch(ctx, id); err != nil {
		return false, err
	}
	st, err := m.Engine().JobStatus(ctx, id)
	if err != nil {
		return false, err
	}
	elapsed := time.Since(jobStart)
	if d.hooks.afterJob != nil {
		if err := d.hooks.afterJob(ctx, f); err != nil {
			return false, err
		}
	}
	d.printJob(st, elapsed)

	d.say("Verifying the whole fleet from scratch (every copy's MD5 on disk, every metadata record)...")
	rep, err := f.Verify(ctx, d.Evacuate)
	if err != nil {
		return false, err
	}
	ok := d.verdict(ctx, st, rep)
	if d.Hold && ctx.Err() == nil {
		d.say("Holding the fleet and the manager at %s; interrupt (Ctrl-C) to stop.", d.api)
		<-ctx.Done()
	}
	return ok, nil
}

// createJob posts the evacuation through the manager's HTTP API, as an
// operator's rebalancer-adm would.
func (d *demo) createJob(ctx context.Context) (string, error) {
	id, err := d.jobs.CreateJob(ctx, jobapi.CreateParams{FromShark: d.Evacuate})
	if err != nil {
		return "", fmt.Errorf("create job: %w", err)
	}
	return id, nil
}

// watch polls the job through the API until it ends: a progress bar on a
// terminal, a line a second otherwise.
func (d *demo) watch(ctx context.Context, id string) error {
	var bar *progressbar.ProgressBar
	if d.tty {
		bar = progressbar.NewOptions64(int64(d.pop.Pinned), progressbar.OptionSetWriter(d.out),
			progressbar.OptionSetDescription("objects"), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("obj"), progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth(),
			progressbar.OptionThrottle(100*time.Millisecond))
	}
	var lastLine time.Time
	for {
		doc, err := d.jobs.JobStatus(ctx, id)
		if err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		p := doc.Progress
		if bar != nil {
			bar.Set64(p.ObjectsDone)
		} else if time.Since(lastLine) >= time.Second || doc.State.Terminal() {
			lastLine = time.Now()
			d.say("  %s: %s of %s objects done, %s moved (%s), %.0f objects/s",
				doc.State.Title(), humanize.Comma(p.ObjectsDone), humanize.Comma(int64(d.pop.Pinned)),
				humanize.Comma(p.ObjectsComplete), humanize.IBytes(uint64(p.BytesComplete)), p.ObjectsPerSecond)
		}
		if doc.State.Terminal() {
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(d.out)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
