package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
	"github.com/TritonDataCenter/rebalancer/storinfo"
	"github.com/TritonDataCenter/rebalancer/storinfo/storinfotest"
)

// Config describes a fleet. The zero value is a usable fleet of four sharks
// in one datacenter, with one metadata shard and no objects.
type Config struct {
	// Sharks is the number of storage nodes (default 4). Shark n is
	// "{n}.stor.{Domain}".
	Sharks int
	// Datacenters spreads the sharks round-robin over "dc1".."dcN"
	// (default 1).
	Datacenters int
	// Shards is the number of metadata shards, each its own in-process
	// Moray (default 1). Shard 1 also holds manta_storage, as in Manta.
	Shards int
	// Domain is the Manta domain (default "demo.example").
	Domain string
	// Dir holds every shark's root and data directory and the job store.
	// Empty means a temporary directory that Close removes, on /dev/shm
	// when it is a roomy tmpfs and TMPDIR is unset (several times faster
	// than a disk); a directory given here is left in place.
	Dir string

	// Objects, when Count is positive, are written before Start returns.
	Objects Objects

	// Buckets adds a buckets (v2) tier, with its objects (see Buckets).
	// It needs PostgreSQL.
	Buckets Buckets

	// Agent is the template of every shark's agent configuration (workers,
	// timeouts...). Root, DataDir and SourceClient are set per shark. Zero
	// fields take the agent's defaults, except that RetryDelays defaults to
	// 10ms, 20ms and ShutdownGrace to 500ms, so that fault tests are quick,
	// and AllowSources to ".stor.{Domain}", as a production agent would be
	// configured (an empty non-nil slice allows any source).
	Agent agent.Config

	// ExternalAgents starts every shark's file server but not its agent:
	// the caller runs the agents (rebalancer-agent processes, say) over
	// Shark.Root and Shark.DataDir, tells the fleet where each listens
	// with Shark.SetAgentAddr, and stops them itself. ProxyHandler lets
	// such processes reach the fleet by its production names.
	ExternalAgents bool

	// AvailableMB and PercentUsed are every shark's capacity as storinfo
	// and the manta_storage records report it (defaults 1,000,000 MiB free
	// at 10%).
	AvailableMB int64
	PercentUsed int

	// StorinfoInterval is how often the engine's storinfo view refreshes
	// (default 1s).
	StorinfoInterval time.Duration
	// Placement are the placement limits of EngineConfig's Placement.
	Placement storinfo.Tunables
	// JobStore is the job store of EngineConfig: a postgres:// URL or a
	// SQLite path. Empty means a SQLite file in Dir.
	JobStore string
	// JobDefaults are the options of jobs the engine creates; nil means
	// FastJobOptions().
	JobDefaults *evacuate.Options
	// Source builds the engine's object source; nil means the fleet's
	// ScanSource. Set it to run the product's discovery (sharkspotter)
	// against the fleet.
	Source func(f *Fleet) (rebalancer.ObjectSource, error)

	// Logger receives the logs of every component (default: discarded).
	Logger *slog.Logger
	// Strict, when set, makes every Moray protocol violation fail this test
	// (moraytest.Options.Strict). New sets it.
	Strict testing.TB
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Sharks, 4)
	def(&c.Datacenters, 1)
	def(&c.Shards, 1)
	if c.Domain == "" {
		c.Domain = "demo.example"
	}
	if c.AvailableMB <= 0 {
		c.AvailableMB = 1_000_000
	}
	if c.PercentUsed <= 0 {
		c.PercentUsed = 10
	}
	if c.StorinfoInterval <= 0 {
		c.StorinfoInterval = time.Second
	}
	if c.Agent.RetryDelays == nil {
		c.Agent.RetryDelays = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
	}
	if c.Agent.ShutdownGrace <= 0 {
		c.Agent.ShutdownGrace = 500 * time.Millisecond
	}
	if c.Agent.AllowSources == nil {
		c.Agent.AllowSources = []string{".stor." + c.Domain}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Fleet is a Manta in one process: Moray shards, storinfo, and sharks
// running mako-like file servers and real agents, all on loopback ports and
// all reached under their production names through HTTPClient. Its methods
// are safe for concurrent use.
type Fleet struct {
	cfg    Config
	dir    string
	ownDir bool
	log    *slog.Logger

	resolver  *resolver
	transport *http.Transport
	client    *http.Client

	morays   []*moraytest.Server // shard n at n-1
	buckets  *bucketsTier        // nil without Config.Buckets
	shards   *moray.Shards
	resolve  moray.ShardFunc
	storinfo *storinfotest.Server
	sharks   []*Shark
	byID     map[string]*Shark

	popMu sync.Mutex // one Populate at a time: owner directories, seeds

	mu         sync.Mutex
	closed     bool
	extraShard []*moray.Shards // from NewShardClients
	engines    []*evacuate.Engine
	store      *evacuate.Store
	view       *storinfo.View
	viewClient *storinfo.Client
	placement  *storinfo.Placement
	viewCancel context.CancelFunc
	viewDone   chan struct{}
}

// Start brings a fleet up: Morays with the manta bucket and every shark's
// manta_storage record, storinfo, and every shark's file server and agent;
// then it writes cfg.Objects. ctx bounds only the start. On error
// everything started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Fleet, err error) {
	cfg = cfg.withDefaults()
	if cfg.PercentUsed >= 100 {
		return nil, fmt.Errorf("testbed: PercentUsed %d must be below 100", cfg.PercentUsed)
	}
	f := &Fleet{cfg: cfg, log: cfg.Logger, resolver: newResolver(), byID: map[string]*Shark{}}
	f.transport = newTransport(f.resolver)
	f.client = &http.Client{Transport: f.transport}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()

	f.dir = cfg.Dir
	if f.dir == "" {
		if f.dir, err = os.MkdirTemp(memDir(), "testbed-"); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		f.ownDir = true
	}

	nodes := make([]rebalancer.StorageNode, cfg.Sharks)
	records := make([]storinfotest.Record, cfg.Sharks)
	total := int64(float64(cfg.AvailableMB) * 100 / float64(100-cfg.PercentUsed))
	for i := range nodes {
		nodes[i] = rebalancer.StorageNode{
			Datacenter:     fmt.Sprintf("dc%d", i%cfg.Datacenters+1),
			MantaStorageID: fmt.Sprintf("%d.stor.%s", i+1, cfg.Domain),
		}
		records[i] = storinfotest.NewRecord(nodes[i].MantaStorageID, nodes[i].Datacenter, total, cfg.AvailableMB)
	}

	for n := 1; n <= cfg.Shards; n++ {
		srv, err := moraytest.New(moraytest.Options{Strict: cfg.Strict, Logger: f.log.With("component", "moray", "shard", n)})
		if err != nil {
			return nil, fmt.Errorf("testbed: moray shard %d: %w", n, err)
		}
		f.morays = append(f.morays, srv)
		if err := srv.CreateMantaBucket(); err != nil {
			return nil, fmt.Errorf("testbed: moray shard %d: %w", n, err)
		}
	}
	if err := f.morays[0].CreateStorageBucket(); err != nil {
		return nil, fmt.Errorf("testbed: moray shard 1: %w", err)
	}
	for _, n := range nodes {
		sh := moraytest.Shark{StorageNode: n, AvailableMB: cfg.AvailableMB, PercentUsed: cfg.PercentUsed}
		if err := f.morays[0].AddShark(sh); err != nil {
			return nil, fmt.Errorf("testbed: manta_storage record of %s: %w", n, err)
		}
	}
	f.resolve = func(ctx context.Context, shard int) (string, error) {
		if shard < 1 || shard > len(f.morays) {
			return "", fmt.Errorf("testbed: shard %d: %w", shard, moray.ErrUnknownShard)
		}
		return f.morays[shard-1].Addr(), nil
	}
	f.shards = moray.NewShards(f.resolve, moray.Options{Logger: f.log.With("component", "moray-client")})

	f.storinfo = storinfotest.NewServer(records...)
	f.resolver.set("storinfo."+cfg.Domain+":80", strings.TrimPrefix(f.storinfo.URL, "http://"))

	for _, n := range nodes {
		s := &Shark{
			fleet:   f,
			node:    n,
			root:    filepath.Join(f.dir, n.MantaStorageID, "manta"),
			dataDir: filepath.Join(f.dir, n.MantaStorageID, "agent"),
			log:     f.log.With("shark", n.MantaStorageID),
		}
		if err := os.MkdirAll(s.root, 0o755); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		f.sharks = append(f.sharks, s)
		f.byID[n.MantaStorageID] = s
		if err := s.StartMako(); err != nil {
			return nil, err
		}
		if cfg.ExternalAgents {
			continue
		}
		if err := s.StartAgent(); err != nil {
			return nil, err
		}
	}

	if err := f.startBuckets(ctx); err != nil {
		return nil, err
	}

	if cfg.Objects.Count > 0 {
		if _, err := f.Populate(ctx, cfg.Objects); err != nil {
			return nil, err
		}
	}
	if bo := cfg.Buckets.Objects; f.buckets != nil && (bo.Count > 0 || bo.Uploads > 0) {
		if _, err := f.PopulateBuckets(ctx, bo); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// New starts a fleet for a test and stops it (removing its temporary
// directory) in t's cleanup. Moray protocol violations fail t.
func New(t testing.TB, cfg Config) *Fleet {
	t.Helper()
	if cfg.Strict == nil {
		cfg.Strict = t
	}
	f, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// Close stops everything the fleet started, engines made by NewEngine
// first, and waits for all of it; then it removes the fleet's directory if
// Start made it. It may be called more than once.
func (f *Fleet) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	engines, store, extra := f.engines, f.store, f.extraShard
	f.engines, f.store, f.extraShard = nil, nil, nil
	cancelView, viewDone, viewClient := f.viewCancel, f.viewDone, f.viewClient
	f.mu.Unlock()

	for _, e := range engines {
		e.Close()
	}
	if store != nil {
		if err := store.Close(); err != nil {
			f.log.Warn("close job store", "err", err)
		}
	}
	if cancelView != nil {
		cancelView()
		<-viewDone
		viewClient.CloseIdleConnections()
	}
	for _, s := range f.sharks {
		if err := s.stop(); err != nil {
			f.log.Warn("stop shark", "shark", s.ID(), "err", err)
		}
	}
	if f.storinfo != nil {
		f.storinfo.Close()
	}
	for _, s := range extra {
		s.Close()
	}
	if f.shards != nil {
		f.shards.Close()
	}
	for _, m := range f.morays {
		m.Close()
	}
	f.buckets.close()
	f.transport.CloseIdleConnections()
	if f.ownDir {
		os.RemoveAll(f.dir)
	}
}

func (f *Fleet) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func (f *Fleet) agentConfig(s *Shark) agent.Config {
	c := f.cfg.Agent
	c.Root = s.root
	c.DataDir = s.dataDir
	c.SourceClient = f.client
	if c.Metrics.Zonename == "" {
		c.Metrics.Zonename = s.ID()
	}
	return c
}

// Dir returns the directory holding the fleet's files.
func (f *Fleet) Dir() string { return f.dir }

// Domain returns the Manta domain.
func (f *Fleet) Domain() string { return f.cfg.Domain }

// Logger returns the fleet's logger.
func (f *Fleet) Logger() *slog.Logger { return f.log }

// Moray returns the in-process Moray of a metadata shard (1-based), or nil.
func (f *Fleet) Moray(shard int) *moraytest.Server {
	if shard < 1 || shard > len(f.morays) {
		return nil
	}
	return f.morays[shard-1]
}

// MorayAddr returns a shard's Moray address ("127.0.0.1:port").
func (f *Fleet) MorayAddr(shard int) string {
	if m := f.Moray(shard); m != nil {
		return m.Addr()
	}
	return ""
}

// ShardNumbers returns the metadata shard numbers, ascending.
func (f *Fleet) ShardNumbers() []int {
	out := make([]int, len(f.morays))
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// Shards returns the fleet's Moray clients, one per metadata shard. The
// fleet owns them and closes them in Close.
func (f *Fleet) Shards() moray.ShardClients { return f.shards }

// NewShardClients returns Moray clients of their own for every shard, such
// as a discovery scan wants so that its long streams do not queue ahead of
// metadata updates. The fleet closes them in Close.
func (f *Fleet) NewShardClients() moray.ShardClients {
	s := moray.NewShards(f.resolve, moray.Options{Logger: f.log.With("component", "moray-client")})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		s.Close()
	} else {
		f.extraShard = append(f.extraShard, s)
	}
	return s
}

// MorayClient returns the Moray client of a shard.
func (f *Fleet) MorayClient(shard int) *moray.Client { return f.shards.Client(shard) }

// MetadataStore returns a rebalancer.MetadataStore over the fleet's shards.
func (f *Fleet) MetadataStore() *moray.MetadataStore { return moray.NewMetadataStore(f.shards) }

// LookupShark resolves a storage id through the manta_storage bucket on
// shard 1, as the manager does when a job starts.
func (f *Fleet) LookupShark(ctx context.Context, storageID string) (rebalancer.StorageNode, error) {
	return moray.LookupShark(ctx, f.shards.Client(1), storageID)
}

// Storinfo returns the in-process storinfo, to change capacities or make
// it fail.
func (f *Fleet) Storinfo() *storinfotest.Server { return f.storinfo }

// StorinfoURL returns storinfo's base URL on its loopback port.
func (f *Fleet) StorinfoURL() string { return f.storinfo.URL }

// Sharks returns every shark, in storage id order.
func (f *Fleet) Sharks() []*Shark { return f.sharks }

// Shark returns the shark with a storage id, or nil.
func (f *Fleet) Shark(id string) *Shark { return f.byID[id] }

// Nodes returns every shark as object metadata names it.
func (f *Fleet) Nodes() []rebalancer.StorageNode {
	out := make([]rebalancer.StorageNode, len(f.sharks))
	for i, s := range f.sharks {
		out[i] = s.node
	}
	return out
}

// HTTPClient returns a client whose transport reaches the fleet by its
// production names: http://{storage id}/{owner}/{object} is that shark's
// file server, http://{storage id}:7878 its agent, and
// http://storinfo.{domain} the storinfo. Loopback addresses are dialled as
// given; other names fail.
func (f *Fleet) HTTPClient() *http.Client { return f.client }

// Transport returns HTTPClient's transport.
func (f *Fleet) Transport() *http.Transport { return f.transport }

// AgentClient returns an agent client that finds each shark's agent at
// http://{storage id}:7878, as the manager does.
func (f *Fleet) AgentClient() *agent.Client { return &agent.Client{HTTPClient: f.client} }

// errClosed is returned by methods that start something on a closed fleet.
var errClosed = errors.New("testbed: fleet closed")
