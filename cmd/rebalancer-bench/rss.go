package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/sqlitestore"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// benchRSS runs a whole evacuation job in a child process twice, with 100k
// and with 1M objects discovered, and compares the child's peak resident
// set size: the manager must keep per-object state in its job store, not
// in memory, so the ratio should stay near 1. The child is the real engine
// (SQLite job store, storinfo Placement, every pipeline stage) with an
// object source generating objects, agents that copy instantly and a
// metadata store that accepts every update: what is measured is the
// manager alone.
func benchRSS(ctx context.Context, o Options) ([]Figure, error) {
	small, large := pick(o.Quick, 500, 100_000), pick(o.Quick, 2_000, 1_000_000)
	if o.RSSObjects > 0 {
		large = o.RSSObjects
	}
	if len(o.RSSSizes) == 2 {
		small, large = o.RSSSizes[0], o.RSSSizes[1]
	}
	if large <= small {
		return nil, fmt.Errorf("--objects %d: the large job must be larger than the small one (%d objects)", large, small)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	peak := map[int]float64{}
	rate := map[int]float64{}
	stored := map[int]float64{} // job store bytes per object
	took := map[int]time.Duration{}
	for _, n := range []int{small, large} {
		dir, err := os.MkdirTemp(o.Dir, "rss-")
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "   evacuating %d objects in a child process\n", n)
		var out bytes.Buffer
		args := []string{"--rss-child", strconv.Itoa(n), "--dir", dir, "--log-level", o.LogLevel}
		if o.ProfileDir != "" {
			args = append(args, "--profile-dir", o.ProfileDir)
		}
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Stdout, cmd.Stderr = &out, o.Log
		start := time.Now()
		err = cmd.Run()
		took[n] = time.Since(start)
		size, serr := storeSize(dir)
		os.RemoveAll(dir)
		if err != nil {
			return nil, fmt.Errorf("child with %d objects: %w", n, err)
		}
		if serr != nil {
			return nil, serr
		}
		rate[n] = float64(n) / took[n].Seconds()
		stored[n] = float64(size) / float64(n)
		kib, err := strconv.ParseFloat(strings.TrimSpace(out.String()), 64)
		if err != nil {
			return nil, fmt.Errorf("child with %d objects printed %q", n, out.String())
		}
		peak[n] = kib / 1024
	}
	f := Figure{Name: fmt.Sprintf("manager peak RSS, %s objects", thousands(large)), Unit: "MiB", Value: peak[large],
		Baseline: thousands(small) + " objects", Base: peak[small], Target: "<= 1.3"}
	f.Met = met(f.Ratio() <= 1.3)
	f.Note = fmt.Sprintf("manager alone (instant agents and metadata): %.0f objects/s at %s, %.0f at %s (%s); --objects sets the large job",
		rate[small], thousands(small), rate[large], thousands(large), took[large].Round(time.Second))
	disk := Figure{Name: fmt.Sprintf("job store size, %s objects", thousands(large)), Unit: "bytes/object", Value: stored[large],
		Baseline: thousands(small) + " objects", Base: stored[small],
		Note: fmt.Sprintf("the SQLite job store with its WAL after the job: %.0f MB at %s", stored[large]*float64(large)/1e6, thousands(large))}
	return []Figure{f, disk}, nil
}

// storeSize is the size of the SQLite job store in dir, with its WAL and
// shared memory.
func storeSize(dir string) (int64, error) {
	var n int64
	for _, suffix := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(filepath.Join(dir, "jobs.db"+suffix))
		if errors.Is(err, fs.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("job store: %w", err)
		}
		n += fi.Size()
	}
	return n, nil
}

// thousands writes 20000 as "20k" and 1000000 as "1M".
func thousands(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// rssChild runs one job of n generated objects to its end and prints the
// process's peak RSS in KiB.
func rssChild(ctx context.Context, n int, dir string, stdout, stderr io.Writer, log *slog.Logger) int {
	if err := evacuateGenerated(ctx, n, dir, log); err != nil {
		fmt.Fprintln(stderr, "rebalancer-bench: rss child:", err)
		return 1
	}
	kib, err := peakRSS()
	if err != nil {
		fmt.Fprintln(stderr, "rebalancer-bench:", err)
		return 1
	}
	fmt.Fprintln(stdout, kib)
	return 0
}

// peakRSS returns the process's peak resident set size in KiB: VmHWM of
// /proc/self/status. (getrusage's ru_maxrss will not do: exec carries the
// parent's high-water mark over into it.)
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("peak RSS: no VmHWM in /proc/self/status")
}

const rssShark = "1.stor.bench.example"

func evacuateGenerated(ctx context.Context, n int, dir string, log *slog.Logger) error {
	if dir == "" {
		return fmt.Errorf("--dir is required")
	}
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "jobs.db"), evacuate.StoreOptions{})
	if err != nil {
		return err
	}
	defer store.Close()
	// A view refreshing from a storinfo that always reports the same
	// roomy fleet, as the manager's does: a snapshot left unrefreshed
	// goes stale after a few minutes, and Place refuses stale snapshots.
	view := storinfo.NewView(storinfo.ViewConfig{Source: roomyFleet(20), Interval: 10 * time.Second})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go view.Run(ctx)
	if err := view.Refresh(ctx); err != nil {
		return err
	}
	placement, err := storinfo.NewPlacement(storinfo.PlacementConfig{Snapshots: view, Rand: rand.NewPCG(1, 2)})
	if err != nil {
		return err
	}
	opts := evacuate.DefaultOptions()
	opts.FlushAge = evacuate.Duration(20 * time.Millisecond)
	opts.PollInterval = evacuate.Duration(10 * time.Millisecond)
	e, err := evacuate.NewEngine(evacuate.Config{
		Store:     store,
		Source:    func(evacuate.JobRecord) (rebalancer.ObjectSource, error) { return generated(n), nil },
		Metadata:  acceptAll{},
		Placement: placement,
		Agent:     &instantAgent{done: map[string]int{}},
		Logger:    log.With("component", "engine"),
	})
	if err != nil {
		return err
	}
	defer e.Close()
	j, err := e.CreateJob(ctx, rssShark, opts)
	if err != nil {
		return err
	}
	rec, err := e.Wait(ctx, j.ID)
	if err != nil {
		return err
	}
	if rec.State != rebalancer.JobComplete {
		return fmt.Errorf("job ended %s: %s", rec.State, rec.Error)
	}
	st, err := e.JobStatus(ctx, j.ID)
	if err != nil {
		return err
	}
	if got, _ := st.Total(rebalancer.ObjectComplete); got != int64(n) {
		return fmt.Errorf("%d objects complete, want %d", got, n)
	}
	return nil
}

// roomyFleet is a storinfo.Lister of n sharks over three datacenters, each
// with 100 TB free, measured now.
type roomyFleet int

func (n roomyFleet) List(ctx context.Context) ([]storinfo.Node, error) {
	nodes := make([]storinfo.Node, 0, n)
	for i := 1; i <= int(n); i++ {
		nodes = append(nodes, storinfo.Node{MantaStorageID: fmt.Sprintf("%d.stor.bench.example", i), Datacenter: fmt.Sprintf("dc%d", i%3+1),
			AvailableMB: 100_000_000, PercentUsed: 10, Timestamp: time.Now().UnixMilli()})
	}
	return nodes, nil
}

// generated is an ObjectSource of n objects shaped like muskie's, each
// with a copy on rssShark and one on another shark.
type generated int

func (g generated) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	owner := uuid.NewString()
	for i := int64(req.After[1]) + 1; i <= int64(g); i++ {
		id := uuid.NewString()
		other := i%19 + 2
		value := fmt.Sprintf(`{"contentLength":4096,"contentMD5":"L9NrIZXTY37AYVZN9+gZ7w==","contentType":"text/plain","creator":%q,`+
			`"dirname":"/%s/stor/bench","headers":{},"key":"/%s/stor/bench/%s","mtime":1570611723062,"name":%q,"objectId":%q,`+
			`"owner":%q,"roles":[],"sharks":[{"datacenter":"dc2","manta_storage_id":%q},{"datacenter":"dc%d","manta_storage_id":"%d.stor.bench.example"}],`+
			`"type":"object","vnode":%d}`, owner, owner, owner, id, id, id, owner, rssShark, other%3+1, other, i%131072)
		obj, err := rebalancer.ParseObject([]byte(value))
		if err != nil {
			return err
		}
		obj.Shard, obj.ScanID, obj.Etag = 1, i, "0123ABCD"
		if err := visit(obj); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// acceptAll is a MetadataStore whose conditional updates always succeed.
type acceptAll struct{}

func (acceptAll) GetObject(ctx context.Context, shard int, key string) (rebalancer.Object, error) {
	return rebalancer.Object{}, fmt.Errorf("%s: %w", key, rebalancer.ErrObjectNotFound)
}

func (acceptAll) ReplaceShark(ctx context.Context, obj rebalancer.Object, from string, to rebalancer.StorageNode) (string, error) {
	return "ABCD0123", nil
}

// instantAgent completes every assignment as soon as it is posted,
// remembering only its size.
type instantAgent struct {
	mu   sync.Mutex
	done map[string]int
}

func (a *instantAgent) PostAssignment(ctx context.Context, dest rebalancer.StorageNode, p rebalancer.AssignmentPayload) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.done[p.ID]; ok {
		return fmt.Errorf("%s: %w", p.ID, rebalancer.ErrAssignmentExists)
	}
	a.done[p.ID] = len(p.Tasks)
	return nil
}

func (a *instantAgent) GetAssignment(ctx context.Context, dest rebalancer.StorageNode, id string) (rebalancer.Assignment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, ok := a.done[id]
	if !ok {
		return rebalancer.Assignment{}, fmt.Errorf("%s: %w", id, rebalancer.ErrAssignmentNotFound)
	}
	return rebalancer.Assignment{UUID: id, Stats: rebalancer.AssignmentStats{
		State: rebalancer.AssignmentState{Phase: rebalancer.AssignmentComplete}, Complete: n, Total: n}}, nil
}

func (a *instantAgent) DeleteAssignment(ctx context.Context, dest rebalancer.StorageNode, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.done, id)
	return nil
}
