// Command rebalancer-demo shows a real evacuation from start to finish in
// one process, on nothing but this machine.
//
// It starts a small Manta: a Moray per metadata shard with the manta bucket
// (moraytest, speaking the real Fast protocol), a buckets-mdapi per shard
// for buckets (v2) objects (mdapitest, over a throwaway PostgreSQL when
// PostgreSQL's server binaries are installed), storinfo (storinfotest),
// and storage nodes, each a directory served like mako plus a real
// rebalancer agent writing into it. It writes v1 objects, v2 objects and
// multipart uploads in progress with two copies each, starts the real
// manager (job store, HTTP API and status page, metrics served with the
// agents' on --metrics-listen) and asks it, through its HTTP API, to
// evacuate one shark, showing progress as it goes. Then it checks the whole
// fleet from scratch: no metadata names the evacuated shark
// except objects the job reports it could not move, every copy metadata
// names is on disk with the right MD5, every upload record whose parts
// moved names where they went, and the counts match. It ends with the
// manager's answer to "is the shark safe to retire?" (rebalancer-adm shark
// check), which must agree with that verification.
//
// Faults can be injected to see what skips, errors and retries look like: a
// dead source shark, corrupt source copies, and another writer changing
// objects while the job updates them. Every object the job could not move
// must be explained by an injected fault. The last line states the
// verdict; the exit status is 0 when verification passes, 1 when it fails,
// 2 for bad flags (a busy --listen, objects that would not fit in the
// scratch directory), 130 when interrupted (143 for SIGTERM).
//
// Before writing anything it checks that --listen is free and estimates
// the bytes it will write (every copy, plus the agents' new copies) against
// the free space of the scratch directory, refusing without --force what
// cannot fit. The default scratch directory is in /dev/shm (memory) when
// that has room, else the system's temporary directory.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/jobapi"
	"github.com/TritonDataCenter/rebalancer/storinfo/storinfotest"
)

type cli struct {
	Objects     int      `help:"Objects to write." default:"5000"`
	MinSize     byteSize `help:"Smallest object (e.g. 4KiB, 16MiB)." default:"4KiB"`
	MaxSize     byteSize `help:"Largest object." default:"64KiB"`
	Copies      int      `help:"Copies of each object, on distinct sharks (datacenters first)." default:"2"`
	OnEvacuated float64  `name:"on-evacuated" help:"Share of the objects with a copy on the evacuated shark, in (0,1]." default:"0.5"`
	Sharks      int      `help:"Storage nodes." default:"6"`
	Datacenters int      `help:"Datacenters the sharks are spread over." default:"3"`
	Shards      int      `help:"Metadata shards: a Moray each, and a buckets-mdapi each for the v2 objects." default:"2"`
	V2Objects   int      `name:"v2-objects" help:"Buckets (v2) objects to write, in several buckets and vnodes, with --copies copies each like v1 objects. v2 objects need PostgreSQL's server binaries (initdb, postgres): the demo starts a throwaway PostgreSQL; without the binaries it says so and moves v1 objects only." default:"1000"`
	Uploads     int      `help:"Multipart uploads in progress to write (v2 as well): each a record naming its preallocated sharks and 3 parts on each of them. The job must move an upload's parts together and fix its record." default:"20"`
	Evacuate    string   `help:"Storage id of the shark to evacuate." default:"1.stor.demo.example"`
	Seed        uint64   `help:"Seed of the objects (same seed, same objects)." default:"1"`

	DeadSource    string `name:"dead-source" help:"Storage id of a shark whose file server is down during the job: objects whose only other copy is there cannot be copied." placeholder:"ID"`
	Corrupt       int    `help:"Source copies of v1 objects to corrupt before the job (bit rot): the agents' MD5 check refuses them." placeholder:"N"`
	EtagConflicts int    `name:"etag-conflicts" help:"v1 objects another writer changes just as the job updates their metadata: the job re-reads and retries them, keeping the writer's change." placeholder:"N"`

	Dir     string `help:"Directory for the fleet (sharks, agent state, job store), kept afterwards. Default: a temporary directory, removed at the end: in /dev/shm (memory) when it has room for the objects, else in $TMPDIR or /tmp." type:"path"`
	Force   bool   `help:"Write the objects even if the estimate of what the demo writes exceeds the free space of the scratch directory."`
	Listen  string `help:"Address of the manager's HTTP API and status page (checked before anything else starts; 127.0.0.1:0 picks a free port)." default:"127.0.0.1:0"`
	Metrics string `name:"metrics-listen" help:"Address of the manager's and the agents' Prometheus metrics (/manager, /agent/<shark>), checked with --listen." default:"127.0.0.1:0"`
	Hold    bool   `help:"After the verdict, keep the fleet and the manager running until interrupted (Ctrl-C), to explore them with rebalancer-adm or curl."`
	Verbose bool   `short:"v" help:"Log every component to stderr, as bunyan records (pipe them to bunyan to read them)."`
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
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		// A second Ctrl-C kills at once, should stopping hang.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		cancel(interrupted{sig})
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, hooks{}))
}

// interrupted is the cause of the context's end when a signal arrives.
type interrupted struct{ sig os.Signal }

func (i interrupted) Error() string { return "interrupted by " + i.sig.String() }

// exitStatus is the shell's status for a process that a signal ended:
// 130 for SIGINT (any other cause of the context's end counts as one),
// 143 for SIGTERM.
func exitStatus(cause error) int {
	var i interrupted
	if errors.As(cause, &i) && i.sig == syscall.SIGTERM {
		return 128 + int(syscall.SIGTERM)
	}
	return 128 + int(syscall.SIGINT)
}

// hooks let tests break things the demo must then catch, interrupt it at
// chosen moments, and pretend the disk is small.
type hooks struct {
	afterJob  func(ctx context.Context, f *testbed.Fleet) error // after the job, before verification
	populated func()                                            // after the objects are written
	holding   func()                                            // --hold: once everything is explained
	// free replaces the free space of the scratch directory.
	free func(dir string) (int64, error)
	// progressEvery replaces the interval of progress lines off a terminal.
	progressEvery time.Duration
	// buckets replaces the throwaway PostgreSQL of the v2 objects.
	buckets bucketsDatabases
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
	d := &demo{cli: c, out: stdout, errOut: stderr, hooks: h, tty: isTerminal(stdout), progressEvery: h.progressEvery}
	ok, err := d.run(ctx)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "rebalancer-demo:", err)
		return 2
	case d.held: // the interrupt that ends --hold is the way out
		if ok {
			return 0
		}
		return 1
	case ctx.Err() != nil:
		d.say("interrupted: the demo stopped before its verdict; everything it started is stopped%s.", d.removed())
		return exitStatus(context.Cause(ctx))
	case err != nil:
		fmt.Fprintln(stdout, "FAIL: the demo could not run:", err)
		return 1
	case !ok:
		return 1
	}
	return 0
}

// usageError is a request the demo refuses before doing any work: exit
// status 2, like bad flags.
type usageError struct{ error }

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
	if c.V2Objects < 0 || c.Uploads < 0 {
		errs = append(errs, errors.New("--v2-objects and --uploads must not be negative"))
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
	// progressEvery is the interval of progress lines off a terminal
	// while writing the objects (default 5s).
	progressEvery time.Duration

	fleet *testbed.Fleet
	pop   testbed.Population       // v1 objects
	v2    testbed.BucketPopulation // v2 objects and uploads
	// noBuckets, when set, is why the demo has no v2 objects.
	noBuckets string
	api       string         // the manager's base URL
	metrics   string         // the base URL of the metrics
	jobs      *jobapi.Client // its job API
	scratch   string         // the fleet's directory
	tmpDir    bool           // scratch is ours to remove
	held      bool           // --hold reached the point where it holds

	// Injected faults, for the verdict.
	corrupted map[string]string // object id -> shark holding the corrupt copy
	onDead    map[string]bool   // ids of the objects to move with a copy on --dead-source
	writer    *concurrentWriter
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

// pinned is how many objects, v1 and v2, have a copy on the evacuated
// shark.
func (d *demo) pinned() int { return d.pop.Pinned + d.v2.Pinned }

func (d *demo) run(ctx context.Context) (bool, error) {
	log := slog.New(slog.DiscardHandler)
	if d.Verbose {
		log = logging.New(d.errOut, "rebalancer-demo", slog.LevelDebug)
	}
	// The manager's port first: a busy one is noticed before any work.
	ln, err := net.Listen("tcp", d.Listen)
	if err != nil {
		return false, usageError{fmt.Errorf("--listen %s: %w; choose another address (127.0.0.1:0 picks a free port)", d.Listen, err)}
	}
	defer ln.Close()
	mln, err := net.Listen("tcp", d.Metrics)
	if err != nil {
		return false, usageError{fmt.Errorf("--metrics-listen %s: %w; choose another address (127.0.0.1:0 picks a free port)", d.Metrics, err)}
	}
	defer mln.Close()
	if err := d.chooseScratch(); err != nil {
		return false, err
	}
	defer func() {
		if d.tmpDir {
			os.RemoveAll(d.scratch)
		}
	}()

	start := time.Now()
	buckets, stopPostgres, err := d.startBuckets(ctx)
	if err != nil {
		return false, err
	}
	defer stopPostgres()
	f, err := testbed.Start(ctx, testbed.Config{Sharks: d.Sharks, Datacenters: d.Datacenters, Shards: d.Shards,
		Dir: d.scratch, Logger: log, StorinfoInterval: time.Second, Buckets: buckets})
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
	tier := ""
	if f.HasBuckets() {
		tier = fmt.Sprintf(", %d buckets-mdapi shards (Fast, their data in a throwaway PostgreSQL)", d.Shards)
	}
	d.say("Starting a small Manta in this process: %d sharks in %d datacenters, %d metadata shards (Moray over Fast)%s, storinfo, an agent per shark.",
		d.Sharks, d.Datacenters, d.Shards, tier)
	// The testbed's agents run with the source allow-list on, as
	// production agents should.
	d.say("  agents download only from: %s", strings.Join(f.Shark(d.Evacuate).Agent().Config().AllowSources, ", "))
	d.say("  fleet directory: %s", f.Dir())

	if err := d.populate(ctx); err != nil {
		return false, err
	}
	d.say("Wrote %s objects (%s, %d copies each); %s have a copy on %s. [%s]",
		humanize.Comma(int64(d.pop.Objects+d.v2.Objects)), humanize.IBytes(uint64(d.pop.Bytes+d.v2.Bytes)), d.Copies,
		humanize.Comma(int64(d.pinned())), d.Evacuate, time.Since(start).Round(time.Millisecond))
	if f.HasBuckets() {
		d.say("  v1 (Moray): %s objects, %s on %s", humanize.Comma(int64(d.pop.Objects)), humanize.Comma(int64(d.pop.Pinned)), d.Evacuate)
		d.say("  v2 (buckets-mdapi): %s objects in %d buckets, %s of them parts of %d multipart uploads in progress; %s on %s (parts of %d uploads among them)",
			humanize.Comma(int64(d.v2.Objects)), d.v2.Buckets, humanize.Comma(int64(d.v2.Parts)), d.v2.Uploads,
			humanize.Comma(int64(d.v2.Pinned)), d.Evacuate, d.v2.UploadsPinned)
	}
	if d.hooks.populated != nil {
		d.hooks.populated()
	}

	if err := d.injectFaults(ctx); err != nil {
		return false, err
	}
	if err := d.realisticCapacity(); err != nil {
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
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	msrv := &http.Server{Handler: d.metricsHandler(m.MetricsHandler()), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); srv.Serve(ln) }()
	go func() { defer wg.Done(); msrv.Serve(mln) }()
	go func() { defer wg.Done(); m.Run(runCtx) }()
	defer func() {
		srv.Close()
		msrv.Close()
		stopManager()
		wg.Wait()
	}()
	d.api = "http://" + ln.Addr().String()
	d.metrics = "http://" + mln.Addr().String()
	if d.jobs, err = jobapi.NewClient(d.api); err != nil {
		return false, err
	}
	if d.Hold {
		d.say("The manager is listening at %s (its status page: %s/); it stays up after the verdict (--hold).", d.api, d.api)
	} else {
		d.say("The manager is listening at %s (its status page: %s/) for this run only (--hold keeps it up afterwards, to explore with rebalancer-adm).", d.api, d.api)
	}
	d.say("  metrics: %s/manager, and each agent's at %s/agent/<shark>", d.metrics, d.metrics)

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
	notMoved, err := d.notMoved(ctx, id)
	if err != nil {
		return false, err
	}

	d.say("Verifying the whole fleet from scratch (every copy's MD5 on disk, every metadata record)...")
	var found problems
	rep, err := f.VerifyEach(ctx, d.Evacuate, func(p testbed.Problem) { found.add(d, p, notMoved) })
	if err != nil {
		return false, err
	}
	check, err := d.sharkCheck(ctx)
	if err != nil {
		return false, err
	}
	ok := d.verdict(ctx, st, rep, &found, notMoved, check)
	if d.Hold && ctx.Err() == nil {
		d.held = true
		d.explainHold(id)
		if d.hooks.holding != nil {
			d.hooks.holding()
		}
		<-ctx.Done()
		d.say("Stopping everything%s.", d.removed())
	}
	return ok, nil
}

// explainHold says what --hold keeps up and how to use and stop it.
func (d *demo) explainHold(job string) {
	d.say("")
	d.say("Holding everything up until you interrupt the demo (Ctrl-C, or kill -TERM %d):", os.Getpid())
	d.say("  the manager's API:  %s  (GET /jobs, /jobs/%s, ...; docs/api.md)", d.api, job)
	d.say("  its status page:    %s/  (a browser; it refreshes itself)", d.api)
	d.say("  metrics:            %s/manager (the manager's), %s/agent/%s (an agent's, each shark's likewise)", d.metrics, d.metrics, d.fleet.Sharks()[0].ID())
	d.say("    rebalancer-adm --manager %s job list", d.api)
	d.say("    rebalancer-adm --manager %s job get %s", d.api, job)
	d.say("    rebalancer-adm --manager %s shark list", d.api)
	d.say("    rebalancer-adm --manager %s shark check %s", d.api, d.Evacuate)
	for _, s := range d.fleet.Sharks() {
		if id := s.ID(); id != d.Evacuate && id != d.DeadSource {
			d.say("    rebalancer-adm --manager %s job create evacuate --shark %s --dry-run", d.api, id)
			break
		}
	}
	d.say("  storinfo:           %s/storagenodes", d.fleet.StorinfoURL())
	for _, n := range d.fleet.ShardNumbers() {
		d.say("  Moray, shard %d:     %s (Fast protocol)", n, d.fleet.MorayAddr(n))
	}
	for _, n := range d.fleet.BucketsShardNumbers() {
		d.say("  buckets-mdapi, shard %d: %s (Fast protocol; its data in %s)", n, d.fleet.Mdapi(n).Addr(), d.fleet.BucketsDSN(n))
	}
	for i, s := range d.fleet.Sharks() {
		if i == 6 {
			d.say("  ... and %d more sharks", len(d.fleet.Sharks())-i)
			break
		}
		mako := "stopped (--dead-source)"
		if a := s.MakoAddr(); a != "" {
			mako = "http://" + a
		}
		d.say("  %s: file server %s, agent http://%s", s.ID(), mako, s.AgentAddr())
	}
	d.say("  the fleet's files:  %s%s", d.fleet.Dir(), map[bool]string{true: " (removed when the demo stops)", false: " (kept: --dir)"}[d.tmpDir])
	d.say("The sharks are known to the manager by their names (N.stor.demo.example), which resolve only inside the demo.")
}

// removed says what happens to the scratch directory at the end.
func (d *demo) removed() string {
	if d.tmpDir {
		return " and " + d.scratch + " removed"
	}
	return ""
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
		bar = progressbar.NewOptions64(int64(d.pinned()), progressbar.OptionSetWriter(d.out),
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
			eta := ""
			if p.ETASeconds != nil {
				eta = fmt.Sprintf(", ETA %s%s", map[bool]string{true: "~"}[p.ETAEstimated], time.Duration(*p.ETASeconds)*time.Second)
			}
			d.say("  %s: %s of %s objects done, %s moved (%s), %s objects/s%s",
				doc.State.Title(), humanize.Comma(p.ObjectsDone), humanize.Comma(int64(d.pinned())),
				humanize.Comma(p.ObjectsComplete), humanize.IBytes(uint64(p.BytesComplete)), humanize.Comma(int64(p.ObjectsPerSecond+0.5)), eta)
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

// metricsHandler serves the manager's metrics at /manager and each
// agent's at /agent/<shark>, as a Prometheus scrape configuration would
// find them on their own ports in a real fleet.
func (d *demo) metricsHandler(manager http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /manager", manager)
	mux.HandleFunc("GET /agent/{shark}", func(w http.ResponseWriter, r *http.Request) {
		s := d.fleet.Shark(r.PathValue("shark"))
		if s == nil || s.Agent() == nil {
			http.Error(w, "no such shark: the sharks are 1.stor.demo.example and up", http.StatusNotFound)
			return
		}
		s.Agent().MetricsHandler().ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "The demo's metrics: /manager, and /agent/<shark> for each shark (%s ...).\n", d.fleet.Sharks()[0].ID())
	})
	return mux
}

// realisticCapacity has storinfo report the evacuated shark as holding
// what the demo wrote there (as minnow reports a real shark's disk), the
// disk 10% full: the job's ETA while discovery runs is estimated from it.
func (d *demo) realisticCapacity() error {
	s := d.fleet.Shark(d.Evacuate)
	var used int64
	err := filepath.WalkDir(s.Root(), func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		info, err := e.Info()
		if err == nil {
			used += info.Size()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sizing %s: %w", d.Evacuate, err)
	}
	usedMB := max(used>>20, 1)
	total := usedMB * 10
	d.fleet.Storinfo().Update(d.Evacuate, func(r *storinfotest.Record) {
		if r.Statvfs.Frsize == 0 {
			r.Statvfs.Frsize = 4096
		}
		r.Statvfs.Blocks = total << 20 / r.Statvfs.Frsize
		r.Statvfs.Bavail = (total - usedMB) << 20 / r.Statvfs.Frsize
		r.Statvfs.Bfree = r.Statvfs.Bavail
		r.AvailableMB, r.PercentUsed = total-usedMB, 10
	})
	return nil
}
