package testbed

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/storedsn"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// FastJobOptions are job options with every timer short enough for tests
// and the demo (see FastTimers).
func FastJobOptions() evacuate.Options { return FastTimers(evacuate.DefaultOptions()) }

// FastTimers returns o with every timer short enough for tests and the
// demo: assignments flush after 20 ms and are polled every 10 ms, and
// retries back off in milliseconds rather than seconds. Other options are
// kept, so it suits manager.Deps.JobOptions.
func FastTimers(o evacuate.Options) evacuate.Options {
	o.FlushAge = evacuate.Duration(20 * time.Millisecond)
	o.PollInterval = evacuate.Duration(10 * time.Millisecond)
	o.AssignmentTimeout = evacuate.Duration(time.Minute)
	o.AgentUnreachableTimeout = evacuate.Duration(2 * time.Second)
	o.BusyBackoff = evacuate.Backoff{Initial: evacuate.Duration(10 * time.Millisecond), Step: evacuate.Duration(10 * time.Millisecond),
		Max: evacuate.Duration(100 * time.Millisecond), Tries: 50}
	o.UnreachableBackoff = evacuate.Backoff{Initial: evacuate.Duration(10 * time.Millisecond), Step: evacuate.Duration(10 * time.Millisecond),
		Max: evacuate.Duration(50 * time.Millisecond), Tries: 4}
	o.MetadataRetryWindow = evacuate.Duration(5 * time.Second)
	return o
}

// ManagerConfig returns the legacy manager configuration (config.json, as
// config-agent renders it) of a manager for this fleet, as a map so that
// callers can change keys before encoding it: the fleet's domain and
// shards, its storinfo, discovery through Moray (direct_db false: the
// fleet has no PostgreSQL copies), and the job store in the fleet's
// directory. The fleet's Moray and agents are reached through Shards and
// AgentClient, which the manager needs as manager.Deps. A fleet with a
// buckets tier adds its buckets-mdapi shards (mdapi, with mdapi_endpoints
// at their loopback addresses) and their databases for direct discovery
// (mdapi_databases, mdapi_direct_db true).
func (f *Fleet) ManagerConfig() map[string]any {
	var shards []map[string]any
	for _, n := range f.ShardNumbers() {
		shards = append(shards, map[string]any{"host": fmt.Sprintf("%d.moray.%s", n, f.Domain())})
	}
	cfg := map[string]any{
		"domain_name":               f.Domain(),
		"shards":                    shards,
		"direct_db":                 false,
		"snaplink_cleanup_required": false,
		"listen_port":               80,
		"max_fill_percentage":       100,
		"log_level":                 "info",
		"storinfo_url":              f.StorinfoURL(),
		"storinfo_poll_interval_ms": 1000,
		"database":                  filepath.Join(f.Dir(), "manager"),
		"options": map[string]any{
			"max_tasks_per_assignment":     50,
			"max_metadata_update_threads":  10,
			"max_sharks":                   5,
			"use_static_md_update_threads": true,
			"static_queue_depth":           10,
			"max_assignment_age":           600,
			"use_batched_updates":          true,
			"md_read_chunk_size":           500,
			"max_md_read_threads":          4,
		},
	}
	f.bucketsManagerConfig(cfg)
	return cfg
}

// EngineConfig returns an evacuate.Config wired to the fleet: the job store
// (Config.JobStore, by default SQLite in the fleet's directory), Moray's
// MetadataStore and LookupShark, a storinfo View refreshing from the
// fleet's storinfo and a Placement on it (one of each per fleet, shared by
// every engine), the agent client, and Config.Source (by default
// ScanSource, with a buckets tier joined by direct discovery of its v2
// objects). With a buckets tier, Metadata routes v2 objects to its
// buckets-mdapi (mdapi.Router) and Buckets fixes upload records with the
// fleet's UploadFixer. The fleet owns all of it and closes it in Close;
// Logger and Metrics are left for the caller.
func (f *Fleet) EngineConfig(ctx context.Context) (evacuate.Config, error) {
	store, placement, err := f.managerParts(ctx)
	if err != nil {
		return evacuate.Config{}, err
	}
	// Config.Source may call back into the fleet (NewShardClients): no
	// lock is held here.
	src := f.defaultSource()
	if f.cfg.Source != nil {
		if src, err = f.cfg.Source(f); err != nil {
			return evacuate.Config{}, fmt.Errorf("testbed: object source: %w", err)
		}
	}
	defaults := FastJobOptions()
	if f.cfg.JobDefaults != nil {
		defaults = *f.cfg.JobDefaults
	}
	return evacuate.Config{
		Store:       store,
		Source:      func(evacuate.JobRecord) (rebalancer.ObjectSource, error) { return src, nil },
		Metadata:    f.routedMetadata(),
		Placement:   placement,
		Agent:       f.AgentClient(),
		LookupShark: f.LookupShark,
		Fleet:       f.fleetNodes,
		Blocklist:   func() []string { return placement.Tunables().BlocklistSharks },
		Defaults:    defaults,
		Logger:      f.log.With("component", "engine"),
		Buckets:     f.engineBuckets(),
		// As the manager's: dry runs project each destination's fill, and
		// jobs estimate their ETA while discovery runs.
		Capacity: func(id string) (int64, float64, bool) {
			snap := f.view.Snapshot()
			if snap == nil {
				return 0, 0, false
			}
			n, ok := snap.Node(id)
			return n.AvailableMB, n.PercentUsed, ok
		},
	}, nil
}

// managerParts makes, once, the parts every engine of the fleet shares:
// the job store, and the storinfo view and placement.
func (f *Fleet) managerParts(ctx context.Context) (*evacuate.Store, *storinfo.Placement, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, nil, errClosed
	}
	if f.store == nil {
		dsn := f.cfg.JobStore
		if dsn == "" {
			dsn = filepath.Join(f.dir, "manager", "jobs.db")
		}
		st, err := storedsn.Open(ctx, dsn, evacuate.StoreOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("testbed: %w", err)
		}
		f.store = st
	}
	if f.placement == nil {
		client, err := storinfo.NewClient(storinfo.ClientConfig{BaseURL: f.storinfo.URL})
		if err != nil {
			return nil, nil, fmt.Errorf("testbed: %w", err)
		}
		view := storinfo.NewView(storinfo.ViewConfig{Source: client, Interval: f.cfg.StorinfoInterval,
			Logger: f.log.With("component", "storinfo")})
		if err := view.Refresh(ctx); err != nil {
			return nil, nil, fmt.Errorf("testbed: first storinfo refresh: %w", err)
		}
		placement, err := storinfo.NewPlacement(storinfo.PlacementConfig{Tunables: f.cfg.Placement, Snapshots: view,
			Logger: f.log.With("component", "placement")})
		if err != nil {
			return nil, nil, fmt.Errorf("testbed: %w", err)
		}
		runCtx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			view.Run(runCtx)
		}()
		f.view, f.placement, f.viewCancel, f.viewDone = view, placement, cancel, done
		f.viewClient = client
	}
	return f.store, f.placement, nil
}

// NewEngine returns an engine built from EngineConfig, with metrics (which
// may be nil). The fleet's Close closes it before anything else; callers
// may close it earlier.
func (f *Fleet) NewEngine(ctx context.Context, metrics *evacuate.Metrics) (*evacuate.Engine, error) {
	cfg, err := f.EngineConfig(ctx)
	if err != nil {
		return nil, err
	}
	cfg.Metrics = metrics
	e, err := evacuate.NewEngine(cfg)
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		e.Close()
		return nil, errClosed
	}
	f.engines = append(f.engines, e)
	return e, nil
}

// Placement returns the Placement EngineConfig made, or nil before the
// first call.
func (f *Fleet) Placement() *storinfo.Placement {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.placement
}

// fleetNodes lists the fleet's storage nodes, as the manager lists those
// storinfo knows.
func (f *Fleet) fleetNodes(context.Context) ([]rebalancer.StorageNode, error) {
	sharks := f.Sharks()
	out := make([]rebalancer.StorageNode, len(sharks))
	for i, s := range sharks {
		out[i] = s.Node()
	}
	return out, nil
}
