package crashtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/jobapi"
	"github.com/TritonDataCenter/rebalancer/mdapi"
)

const (
	// evacuated is the shark every run empties.
	evacuated = "1.stor.demo.example"
	sharks    = 4
	copies    = 2
	// bucketsShards is how many buckets shards a run with v2 objects has.
	bucketsShards = 2
	// uploadParts is how many parts each upload in progress has written.
	uploadParts = 3
	// pinFraction of the objects have a copy on the evacuated shark, so
	// that the job's counts are checked against a number that differs
	// from the fleet's total.
	pinFraction = 0.8

	// unreachableTimeout is the job's agent_unreachable_timeout. Agents
	// stay dead up to maxAgentDown, so that some kills outlast it and the
	// manager gives their assignments up and places the objects again
	// while the restarted agent may still finish them.
	unreachableTimeout = time.Second
	maxAgentDown       = 1500 * time.Millisecond
	maxManagerDown     = 800 * time.Millisecond
	// stopGrace bounds a graceful stop at the end of a run.
	stopGrace = 20 * time.Second
)

// jobOptions are the job's per-job options (POST /jobs params.options):
// timers short enough for many runs, small assignments so that many are in
// flight when a process dies, and enough attempts that objects whose
// assignments were given up several times in one run are still copied (an
// object running out of attempts is not a crash bug).
var jobOptions = map[string]any{
	"max_tasks_per_assignment":  10,
	"flush_age":                 "20ms",
	"poll_interval":             "20ms",
	"assignment_timeout":        "2m",
	"agent_unreachable_timeout": unreachableTimeout.String(),
	"max_attempts":              10,
	"busy_backoff":              map[string]any{"initial": "10ms", "step": "10ms", "max": "100ms", "tries": 200},
	"unreachable_backoff":       map[string]any{"initial": "20ms", "step": "20ms", "max": "200ms", "tries": 30},
	"metadata_retry_window":     "10s",
}

// run is one crash run.
type run struct {
	cfg  Config
	bins string
	seed int64
	rng  *rand.Rand
	dir  string

	fleet    *testbed.Fleet
	fleetLog *os.File
	pinned   int // objects with a copy on the evacuated shark, v1 and v2
	v2       testbed.BucketPopulation
	drops    []func() // the buckets databases	// content is every object as written, by the path of its copies
	// ("{owner}/{object id}"): what any file at that path must hold.
	content map[string]rebalancer.Object
	// proxies are the forward proxies into the fleet: one per agent (by
	// storage id) and one for the manager ("").
	proxies map[string]*proxy

	agents  map[string]*proc // by storage id
	manager *proc
	client  *http.Client   // to the manager
	jobs    *jobapi.Client // its job API, through client

	job     string
	created time.Time
	kills   []string // what was killed, when (since the job's creation)
	last    jobDoc   // the job as last read
	ended   time.Time
}

// kill is one planned SIGKILL.
type kill struct {
	// The kill comes once metric(job) reaches frac of the objects on the
	// evacuated shark, then delay later.
	metric string // "started" (left unprocessed) or "done" (terminal)
	frac   float64
	delay  time.Duration
	down   time.Duration // dead for this long before the restart
	victim string        // agent runs: the shark whose agent dies
	// midCopy: the victim is instead the first agent found receiving an
	// object (waiting up to maxCopyWait), so that it dies while a partial
	// file exists somewhere.
	midCopy bool
}

// maxCopyWait bounds the wait for a download before a midCopy kill.
const maxCopyWait = time.Second

func (k kill) String() string {
	s := fmt.Sprintf("at %.0f%% %s +%v, down %v", k.frac*100, k.metric, k.delay, k.down.Round(time.Millisecond))
	if k.midCopy {
		s += ", mid-copy"
	}
	if k.victim != "" {
		s = k.victim + " " + s
	}
	return s
}

// plan draws a run's kills from its seed: one to three, the first before
// half the objects have got anywhere.
func (r *run) plan() []kill {
	n := 1 + r.rng.IntN(3)
	fracs := make([]float64, n)
	for i := range fracs {
		fracs[i] = r.rng.Float64() * 0.9
	}
	fracs[0] *= 0.5
	slices.Sort(fracs)
	var dests []string
	for _, s := range r.fleet.Sharks() {
		if s.ID() != evacuated {
			dests = append(dests, s.ID())
		}
	}
	out := make([]kill, n)
	for i := range out {
		k := kill{metric: "started", frac: fracs[i], delay: time.Duration(r.rng.IntN(50)) * time.Millisecond}
		if r.rng.IntN(2) == 0 {
			k.metric = "done"
		}
		if r.cfg.Kill == Agent {
			k.down = time.Duration(r.rng.Int64N(int64(maxAgentDown)))
			k.victim = dests[r.rng.IntN(len(dests))]
			k.midCopy = r.rng.IntN(2) == 0
		} else {
			k.down = time.Duration(r.rng.Int64N(int64(maxManagerDown)))
		}
		out[i] = k
	}
	return out
}

func runOne(ctx context.Context, cfg Config, bins string, seed int64) (res Result) {
	start := time.Now()
	salt := uint64(1)
	if cfg.Kill == Manager {
		salt = 2
	}
	r := &run{cfg: cfg, bins: bins, seed: seed, rng: rand.New(rand.NewPCG(uint64(seed), salt)),
		agents: map[string]*proc{}, proxies: map[string]*proxy{}, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	res = Result{Kill: cfg.Kill, Seed: seed}
	defer func() {
		res.Kills, res.Objects, res.Counts = r.kills, r.pinned, r.last.counts()
		res.V2, res.Uploads = r.v2.Pinned, r.v2.UploadsPinned
		if k := r.last.kinds(); k != nil {
			res.UploadsFixed = int(k.V2.Uploads[mdapi.UploadFixed.String()])
		}
		if !r.created.IsZero() && r.last.JobStatus != nil && r.last.State.Terminal() {
			res.JobTime = r.ended.Sub(r.created)
		}
		res.Elapsed = time.Since(start)
		r.teardown()
		if r.dir != "" {
			if res.Err != nil && cfg.KeepFailed {
				res.Dir = r.dir
			} else {
				os.RemoveAll(r.dir)
			}
		}
	}()
	if err := r.setup(ctx); err != nil {
		res.Err = err
		return res
	}
	if err := r.crash(ctx); err != nil {
		res.Err = r.diagnose(err)
		return res
	}
	// Stop everything cleanly before looking at the disks: an agent may
	// still be copying for an assignment the manager gave up.
	var errs []error
	if r.manager != nil {
		errs = append(errs, r.manager.stop(stopGrace))
	}
	// The proxy's idle connections to the agents would hold up their
	// graceful stop (a server waits up to 5s for a connection that never
	// sent a request).
	r.fleet.Transport().CloseIdleConnections()
	for _, id := range r.sharkIDs() {
		errs = append(errs, r.agents[id].stop(stopGrace))
	}
	r.manager, r.agents = nil, map[string]*proc{}
	errs = append(errs, r.check(ctx))
	if err := errors.Join(errs...); err != nil {
		res.Err = r.diagnose(err)
	}
	return res
}

// setup starts the fleet, writes the objects, and starts the proxy, the
// agents and the manager.
func (r *run) setup(ctx context.Context) error {
	if err := os.MkdirAll(r.cfg.Dir, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(r.cfg.Dir, fmt.Sprintf("crash-%s-%d-", r.cfg.Kill, r.seed))
	if err != nil {
		return err
	}
	r.dir = dir
	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o755); err != nil {
		return err
	}
	fleetLog, err := os.Create(filepath.Join(dir, "logs", "fleet.log"))
	if err != nil {
		return err
	}
	r.fleetLog = fleetLog
	// The fleet's warnings and errors only; it closes with the run.
	logger := logging.New(fleetLog, "rebalancer-crash", slog.LevelWarn)
	var buckets testbed.Buckets
	if r.cfg.Databases != nil {
		for i := range bucketsShards {
			dsn, drop, err := r.cfg.Databases(ctx, fmt.Sprintf("crashtest %s seed %d buckets shard %d", r.cfg.Kill, r.seed, i+1))
			if err != nil {
				return fmt.Errorf("buckets shard %d: %w", i+1, err)
			}
			r.drops = append(r.drops, drop)
			buckets.DSNs = append(buckets.DSNs, dsn)
		}
	}
	f, err := testbed.Start(ctx, testbed.Config{Sharks: sharks, Dir: filepath.Join(dir, "fleet"), ExternalAgents: true, Logger: logger,
		Buckets: buckets})
	if err != nil {
		return err
	}
	r.fleet = f
	objs := testbed.Objects{Count: r.cfg.Objects, MinSize: 1 << 10, MaxSize: r.cfg.MaxSize,
		Copies: copies, Seed: uint64(r.seed), Pin: evacuated, PinFraction: pinFraction}
	pop, err := f.Populate(ctx, objs)
	if err != nil {
		return err
	}
	r.pinned = pop.Pinned
	if f.HasBuckets() {
		objs.Count = r.cfg.V2Objects
		if r.v2, err = f.PopulateBuckets(ctx, testbed.BucketObjects{Objects: objs, Uploads: r.cfg.Uploads, Parts: uploadParts}); err != nil {
			return err
		}
		r.pinned += r.v2.Pinned
	}
	if r.content, err = r.index(ctx); err != nil {
		return err
	}

	for _, id := range append(r.sharkIDs(), "") {
		p, err := startProxy(f.ProxyHandler(), logger)
		if err != nil {
			return err
		}
		r.proxies[id] = p
	}

	if err := os.WriteFile(filepath.Join(dir, "agent.toml"), nil, 0o644); err != nil {
		return err
	}
	for _, id := range r.sharkIDs() {
		if err := r.startAgent(id); err != nil {
			return err
		}
	}
	mcfg := f.ManagerConfig()
	endpoints := map[string]any{}
	for _, n := range f.ShardNumbers() {
		endpoints[fmt.Sprint(n)] = f.MorayAddr(n)
	}
	mcfg["moray_endpoints"] = endpoints
	b, err := json.MarshalIndent(mcfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manager.json"), b, 0o644); err != nil {
		return err
	}
	return r.startManager()
}

func (r *run) sharkIDs() []string {
	var ids []string
	for _, s := range r.fleet.Sharks() {
		ids = append(ids, s.ID())
	}
	return ids
}

func (r *run) startAgent(id string) error {
	s := r.fleet.Shark(id)
	p, err := startProc("agent "+id, filepath.Join(r.bins, AgentBinary), []string{
		"--config", filepath.Join(r.dir, "agent.toml"),
		"--root", s.Root(), "--data-dir", s.DataDir(),
		"--listen", "127.0.0.1:0", "--metrics-listen", "off",
		"--source-proxy", r.proxies[id].url, "--shutdown-grace", "2s",
		// As production agents should: only the fleet's sharks are sources.
		"--allow-sources", ".stor." + r.fleet.Domain(),
	}, filepath.Join(r.dir, "logs", "agent-"+id+".log"))
	if err != nil {
		return err
	}
	r.agents[id] = p
	s.SetAgentAddr(p.addr)
	return nil
}

func (r *run) startManager() error {
	p, err := startProc("manager", filepath.Join(r.bins, ManagerBinary), []string{
		"--config", filepath.Join(r.dir, "manager.json"),
		"--listen", "127.0.0.1:0", "--metrics-listen", "off",
		"--agent-proxy", r.proxies[""].url,
	}, filepath.Join(r.dir, "logs", "manager.log"))
	if err != nil {
		return err
	}
	r.manager = p
	if r.jobs, err = jobapi.NewClient(p.addr); err != nil {
		return err
	}
	r.jobs.HTTPClient = r.client
	return nil
}

// crash creates the job, carries out the kill plan, and waits for the job
// to end.
func (r *run) crash(ctx context.Context) error {
	plan := r.plan()
	if err := r.createJob(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(r.cfg.JobTimeout)
	for _, k := range plan {
		need := int64(k.frac * float64(r.pinned))
		ended, err := r.waitJob(ctx, deadline, fmt.Sprintf("%s >= %d", k.metric, need), func(d jobDoc) bool {
			return d.metric(k.metric) >= need
		})
		if err != nil {
			return fmt.Errorf("kill %d (%s): %w", len(r.kills)+1, k, err)
		}
		if ended {
			break // the job finished first
		}
		if !retry.Sleep(ctx, k.delay) {
			return ctx.Err()
		}
		if err := r.killAndRestart(ctx, &k); err != nil {
			return fmt.Errorf("kill %d (%s): %w", len(r.kills), k, err)
		}
	}
	if len(r.kills) == 0 {
		return errors.New("the job ended before the first kill: nothing was tested")
	}
	if _, err := r.waitJob(ctx, deadline, "the end of the job", func(jobDoc) bool { return false }); err != nil {
		return err
	}
	return nil
}

// killAndRestart carries out k; a midCopy kill sets its victim.
func (r *run) killAndRestart(ctx context.Context, k *kill) error {
	victim := r.manager
	if r.cfg.Kill == Agent {
		if k.midCopy {
			k.victim = r.copying(ctx, k.victim)
		}
		victim = r.agents[k.victim]
	}
	if err := victim.unexpectedExit(); err != nil {
		return err
	}
	victim.kill()
	killed := time.Now()
	what := "manager"
	if r.cfg.Kill == Agent {
		what = "agent of " + strings.TrimSuffix(k.victim, ".stor.demo.example")
	}
	if k.midCopy {
		what += " mid-copy"
	}
	r.kills = append(r.kills, fmt.Sprintf("%s at %.1fs for %v", what, killed.Sub(r.created).Seconds(), k.down.Round(time.Millisecond)))
	// Whatever a dead agent left at final paths stays there until it is
	// restarted, and a restarted agent redoes a task whose destination is
	// wrong, which would hide a partial file: look now. Running agents
	// must pass the same check at any moment.
	if err := r.checkFiles(ctx, r.fleet.Sharks()); err != nil {
		return fmt.Errorf("just after the kill: %w", err)
	}
	if !retry.Sleep(ctx, k.down-time.Since(killed)) {
		return ctx.Err()
	}
	if r.cfg.Kill == Agent {
		return r.startAgent(k.victim)
	}
	return r.startManager()
}

// copying waits, up to maxCopyWait, until an object is streaming to the
// agent of a destination shark and returns that shark, or fallback if none
// is receiving anything.
func (r *run) copying(ctx context.Context, fallback string) string {
	deadline := time.Now().Add(maxCopyWait)
	for time.Now().Before(deadline) {
		for _, id := range r.sharkIDs() {
			if id != evacuated && r.proxies[id].streaming.Load() > 0 {
				return id
			}
		}
		if !retry.Sleep(ctx, time.Millisecond) {
			break
		}
	}
	return fallback
}

// waitJob polls the job until it is terminal (true) or until cond holds
// (false). Errors reaching the manager are retried until the deadline (it
// may be restarting); a process that exits by itself fails at once.
func (r *run) waitJob(ctx context.Context, deadline time.Time, what string, cond func(jobDoc) bool) (bool, error) {
	var lastErr error
	for {
		if err := r.processErr(); err != nil {
			return false, err
		}
		d, err := r.getJob(ctx)
		if err == nil {
			r.last = d
			if d.State.Terminal() {
				if r.ended.IsZero() {
					r.ended = time.Now()
				}
				return true, nil
			}
			if cond(d) {
				return false, nil
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			return false, fmt.Errorf("waited %v for %s (last error: %v)", r.cfg.JobTimeout, what, lastErr)
		}
		if !retry.Sleep(ctx, 5*time.Millisecond) {
			return false, ctx.Err()
		}
	}
}

func (r *run) processErr() error {
	ps := []*proc{r.manager}
	for _, p := range r.agents {
		ps = append(ps, p)
	}
	return errProcesses(ps)
}

func (r *run) createJob(ctx context.Context) error {
	opts, err := json.Marshal(jobOptions)
	if err != nil {
		return err
	}
	if r.job, err = r.jobs.CreateJob(ctx, jobapi.CreateParams{FromShark: evacuated, Options: opts}); err != nil {
		return fmt.Errorf("create job: %w", err)
	}
	r.created = time.Now()
	return nil
}

func (r *run) getJob(ctx context.Context) (jobDoc, error) {
	raw, err := r.jobs.Get(ctx, jobapi.JobPath(r.job))
	if err != nil {
		return jobDoc{}, err
	}
	st, err := jobapi.ParseJobStatus(raw)
	if err != nil {
		return jobDoc{}, fmt.Errorf("GET /jobs/%s: %w", r.job, err)
	}
	if st.Progress == nil {
		return jobDoc{}, fmt.Errorf("GET /jobs/%s: no progress in %.200s", r.job, raw)
	}
	return jobDoc{st, raw}, nil
}

// teardown stops whatever still runs, hard: a run that got here cleanly
// has stopped its processes already.
func (r *run) teardown() {
	if r.manager != nil {
		r.manager.kill()
	}
	for _, p := range r.agents {
		p.kill()
	}
	for _, p := range r.proxies {
		p.close()
	}
	r.client.CloseIdleConnections()
	if r.fleet != nil {
		r.fleet.Close()
	}
	for _, drop := range r.drops {
		drop()
	}
	if r.fleetLog != nil {
		r.fleetLog.Close()
	}
}

// diagnose adds what helps make sense of a failure: the job as last seen
// and where the logs are.
func (r *run) diagnose(err error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%v\njob %s", err, r.job)
	var doc map[string]json.RawMessage
	if json.Unmarshal(r.last.raw, &doc) == nil {
		// The options and config are the same in every run.
		delete(doc, "options")
		delete(doc, "config")
		if short, err := json.Marshal(doc); err == nil {
			fmt.Fprintf(&b, " last seen: %s", short)
		}
	}
	if r.cfg.KeepFailed {
		fmt.Fprintf(&b, "\nlogs in %s", filepath.Join(r.dir, "logs"))
	}
	return errors.New(b.String())
}

// jobDoc is the job as a crash run last read it (GET /jobs/{id}), with the
// reply as it came, for diagnostics.
type jobDoc struct {
	*jobapi.JobStatus
	raw []byte
}

// kinds returns the job's v1/v2 breakdown, or nil.
func (d jobDoc) kinds() *jobapi.Kinds {
	if d.JobStatus == nil {
		return nil
	}
	return d.Kinds
}

// skipped returns how many objects the job skipped for reason.
func (d jobDoc) skipped(reason rebalancer.SkipReason) int64 {
	return d.Results.SkipBreakdown[reason.String()]
}

// counts returns the per-status counts, by Title Case name.
func (d jobDoc) counts() map[string]int64 {
	out := map[string]int64{}
	if d.JobStatus == nil {
		return out
	}
	for _, st := range rebalancer.ObjectStatuses() {
		out[st.Title()] = d.Results.Count(st)
	}
	return out
}

// metric is what a kill waits for: objects that left unprocessed, or that
// reached a terminal status.
func (d jobDoc) metric(name string) int64 {
	if name == "done" {
		return d.Progress.ObjectsDone
	}
	return d.Progress.Objects - d.Results.Unprocessed
}
