package evacuate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/storetest"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openStore opens the job store named by dsn, a postgres:// URL or a SQLite
// file, as sqlitestore and pgstore do (which this package's tests cannot
// import).
func openStore(ctx context.Context, dsn string, opts StoreOptions) (*Store, error) {
	db := StoreDB{Dialect: SQLite, File: dsn}
	var err error
	if strings.HasPrefix(dsn, "postgres") {
		db = StoreDB{Dialect: PostgreSQL, Name: "test PostgreSQL"}
		db.DB, err = storetest.Postgres(dsn)
	} else {
		db.DB, err = storetest.SQLite(dsn)
	}
	if err != nil {
		return nil, err
	}
	return OpenStore(ctx, db, opts)
}

// stores runs a test against both job store backends.
func stores(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "jobs.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, pgtest.NewDatabase(t)) })
}

// fastOptions makes every timer of a job short enough for tests.
func fastOptions() Options {
	o := DefaultOptions()
	o.FlushAge = Duration(20 * time.Millisecond)
	o.PollInterval = Duration(10 * time.Millisecond)
	o.AssignmentTimeout = Duration(30 * time.Second)
	o.AgentUnreachableTimeout = Duration(300 * time.Millisecond)
	o.BusyBackoff = Backoff{Initial: Duration(5 * time.Millisecond), Step: Duration(5 * time.Millisecond), Max: Duration(20 * time.Millisecond), Tries: 20}
	o.UnreachableBackoff = Backoff{Initial: Duration(5 * time.Millisecond), Max: Duration(5 * time.Millisecond), Tries: 2}
	o.MetadataRetryWindow = Duration(3 * time.Second)
	o.MaxTasksPerAssignment = 20
	return o
}

type harness struct {
	t      *testing.T
	store  *Store
	js     *jobstore.Store // store's, for what the engine keeps to itself
	moray  *fakes.Moray
	place  *fakes.Placement
	agents *fakes.Agents
	src    *fakes.Source
	engine *Engine
	from   rebalancer.StorageNode
	objs   []rebalancer.Object
	keys   map[string]string // object id -> key
	log    *slog.Logger      // the engine's, when set before newEngine
	// metadata, when set, stands between the engine and moray (newEngine
	// uses it).
	metadata rebalancer.MetadataStore
}

// newHarness builds a fleet: shark 1 is evacuated, sharks 2 and 7 hold the
// other copies, sharks 3-6 receive. Object i lives on shard i%3.
func newHarness(t *testing.T, dsn string, n int, layout func(i int) []rebalancer.StorageNode) *harness {
	t.Helper()
	ctx := context.Background()
	// A SQLite store's mark sits beside it, as the manager keeps it; a
	// PostgreSQL store's goes in the test's directory (the URL plus ".mark"
	// would be a relative path into the package).
	mark := dsn + ".mark"
	if strings.HasPrefix(dsn, "postgres://") {
		mark = filepath.Join(t.TempDir(), "postgres.mark")
	}
	st, err := openStore(ctx, dsn, StoreOptions{MarkFile: mark})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: st, js: st.s, moray: fakes.NewMoray(), place: fakes.NewPlacement(fakes.Shark(3), fakes.Shark(4), fakes.Shark(5), fakes.Shark(6)),
		agents: fakes.NewAgents(), from: fakes.Shark(1), keys: map[string]string{}}
	if layout == nil {
		layout = func(int) []rebalancer.StorageNode { return []rebalancer.StorageNode{fakes.Shark(1), fakes.Shark(2)} }
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		o := h.moray.Put(i%3, fakes.ObjectValue("acct", id, int64(1000+i), layout(i)...))
		o.ScanID = int64(i + 1)
		h.objs = append(h.objs, o)
		h.keys[id] = o.Key
	}
	h.src = &fakes.Source{Objects: h.objs}
	h.engine = h.newEngine()
	t.Cleanup(func() {
		h.engine.Close()
		st.Close()
	})
	return h
}

func (h *harness) newEngine() *Engine {
	var md rebalancer.MetadataStore = h.moray
	if h.metadata != nil {
		md = h.metadata
	}
	e, err := NewEngine(Config{
		Store:     h.store,
		Source:    func(JobRecord) (rebalancer.ObjectSource, error) { return h.src, nil },
		Metadata:  md,
		Placement: h.place,
		Agent:     h.agents,
		LookupShark: func(ctx context.Context, id string) (rebalancer.StorageNode, error) {
			for n := 1; n <= 9; n++ {
				if id == fakes.Shark(n).MantaStorageID {
					return fakes.Shark(n), nil
				}
			}
			return rebalancer.StorageNode{}, fmt.Errorf("no shark %s: %w", id, rebalancer.ErrSharkNotFound)
		},
		Defaults:           fastOptions(),
		Logger:             cmp.Or(h.log, testutil.Logger(h.t)),
		Metrics:            NewMetrics(MetricLabels{}),
		RestartDelay:       50 * time.Millisecond,
		StoreCheckInterval: 50 * time.Millisecond,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

// wait waits until the job no longer runs (Engine.Wait) and fails the test
// unless it ended in a terminal state within testutil.Timeout.
func (h *harness) wait(id string) JobRecord {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	defer cancel()
	j, err := h.engine.Wait(ctx, id)
	if err != nil || !j.State.Terminal() {
		st, _ := h.engine.JobStatus(context.Background(), id)
		h.t.Fatalf("job %s did not finish: %v; its status: %+v", id, err, st)
	}
	return j
}

func (h *harness) run(opts Options) (JobRecord, Status) {
	h.t.Helper()
	j, err := h.engine.CreateJob(context.Background(), h.from.MantaStorageID, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	j = h.wait(j.ID)
	st, err := h.engine.JobStatus(context.Background(), j.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return j, st
}

// check verifies the invariants every job must keep, whatever happened:
// counters equal a recount, every complete object's metadata names its
// verified new copy and not the evacuated shark, no metadata names a copy
// that was not verified, and every reservation was released.
func (h *harness) check(jobID string) map[string]int64 {
	h.t.Helper()
	ctx := context.Background()
	counts, err := h.js.Counts(ctx, jobID)
	if err != nil {
		h.t.Fatal(err)
	}
	recount, err := h.js.Recount(ctx, jobID)
	if err != nil {
		h.t.Fatal(err)
	}
	if !reflect.DeepEqual(counts, recount) {
		h.t.Errorf("counters drifted:\n counts %v\nrecount %v", counts, recount)
	}
	byStatus := map[string]int64{}
	for _, c := range counts {
		byStatus[c.Status] += c.N
		if c.Reason != "" {
			byStatus[c.Status+"/"+c.Reason] += c.N
		}
	}
	for _, o := range h.objs {
		cur, ok := h.moray.Get(o.Shard, o.Key)
		if !ok {
			continue
		}
		row, err := h.js.GetObject(ctx, jobID, o.ID)
		if err == nil && row.Status == rebalancer.ObjectComplete.String() && row.DestShark != "" && cur.HasShark(h.from.MantaStorageID) {
			h.t.Errorf("object %s complete but metadata still lists %s", o.ID, h.from.MantaStorageID)
		}
		for _, s := range cur.Sharks {
			if o.HasShark(s.MantaStorageID) {
				continue // an original copy
			}
			if !h.agents.Copied(s.MantaStorageID, o.ID) {
				h.t.Errorf("object %s: metadata names %s, where no copy was verified", o.ID, s.MantaStorageID)
			}
		}
	}
	if n := h.place.Outstanding(); n != 0 {
		h.t.Errorf("%d bytes of placement reservations not released", n)
	}
	return byStatus
}

func TestEvacuateMovesEverything(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, 300, func(i int) []rebalancer.StorageNode {
			switch {
			case i%50 == 7:
				return []rebalancer.StorageNode{fakes.Shark(1)} // the only copy
			case i%50 == 9:
				return []rebalancer.StorageNode{fakes.Shark(2), fakes.Shark(7)} // not on shark 1
			}
			return []rebalancer.StorageNode{fakes.Shark(1), fakes.Shark(2)}
		})
		j, st := h.run(fastOptions())
		if j.State != rebalancer.JobComplete || j.Error != "" {
			t.Fatalf("job ended %v %q", j.State, j.Error)
		}
		got := h.check(j.ID)
		if got["complete"] != 288 || got["skipped/source_is_evac_shark"] != 6 || got["skipped"] != 6 || len(got) != 3 {
			t.Errorf("counts %v", got)
		}
		if j.From.Datacenter != "dc1" {
			t.Errorf("shark not resolved: %+v", j.From)
		}
		if n, b := st.Total(rebalancer.ObjectComplete); n != 288 || b == 0 {
			t.Errorf("status totals %d %d", n, b)
		}
	})
}

// Metadata updates go to each shard in one batch per assignment unless
// IndividualUpdates is set; a batch that fails (a conflict, a deleted
// object) is done again object by object, with the same outcome as the
// individual path.
func TestBatchedUpdates(t *testing.T) {
	tests := []struct {
		name       string
		individual bool
		setup      func(h *harness)
		want       map[string]int64
		batched    bool // some objects were written by batches
		allBatched bool // every object was
	}{
		{name: "batched", want: map[string]int64{"complete": 90}, batched: true, allBatched: true},
		{name: "individual", individual: true, want: map[string]int64{"complete": 90}},
		{
			name: "batches falling back on conflicts and deletions",
			setup: func(h *harness) {
				for i, obj := range h.objs {
					switch {
					case i%10 == 0:
						h.moray.ConflictOnce(obj.Shard, obj.Key)
					case i == 1:
						h.moray.Delete(obj.Shard, obj.Key)
					}
				}
			},
			want:    map[string]int64{"complete": 89, "error": 1, "error/moray_object_not_found": 1},
			batched: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 90, nil)
			if tt.setup != nil {
				tt.setup(h)
			}
			o := fastOptions()
			o.IndividualUpdates = tt.individual
			j, _ := h.run(o)
			if j.State != rebalancer.JobComplete {
				t.Fatalf("job ended %v %q", j.State, j.Error)
			}
			if got := h.check(j.ID); !maps.Equal(got, tt.want) {
				t.Errorf("counts %v, want %v", got, tt.want)
			}
			writes, batchWrites, batches := h.moray.Writes()
			if got := batches > 0; got != tt.batched {
				t.Errorf("%d batches", batches)
			}
			if tt.allBatched && batchWrites != writes {
				t.Errorf("%d of %d writes in batches", batchWrites, writes)
			}
			if !tt.allBatched && tt.batched && batchWrites == writes {
				t.Errorf("no object was updated on its own after a failed batch")
			}
		})
	}
}

func TestEvacuateFaults(t *testing.T) {
	threeCopies := func(i int) []rebalancer.StorageNode {
		if i%2 == 0 {
			return []rebalancer.StorageNode{fakes.Shark(1), fakes.Shark(2), fakes.Shark(7)}
		}
		return []rebalancer.StorageNode{fakes.Shark(1), fakes.Shark(2)}
	}
	tests := []struct {
		name   string
		layout func(int) []rebalancer.StorageNode
		setup  func(h *harness, o *Options)
		want   map[string]int64
		state  rebalancer.JobState
	}{
		{
			name:  "agents busy for a while",
			setup: func(h *harness, o *Options) { h.agents.SetBusy(15) },
			want:  map[string]int64{"complete": 100},
		},
		{
			name:   "bad source copy with another copy to read",
			layout: threeCopies,
			setup: func(h *harness, o *Options) {
				h.agents.SetFailTask(func(t rebalancer.Task) rebalancer.SkipReason {
					if t.Source.MantaStorageID == "2.stor.test" {
						return rebalancer.SkipSourceObjectNotFound
					}
					return 0
				})
			},
			want: map[string]int64{"complete": 50, "skipped": 50, "skipped/source_object_not_found": 50},
		},
		{
			name: "corrupt source",
			setup: func(h *harness, o *Options) {
				h.agents.SetFailTask(func(t rebalancer.Task) rebalancer.SkipReason { return rebalancer.SkipMD5Mismatch })
			},
			want: map[string]int64{"skipped": 100, "skipped/md5_mismatch": 100},
		},
		{
			name: "destination agent down",
			setup: func(h *harness, o *Options) {
				h.agents.SetDown("3.stor.test", true)
				h.agents.SetDown("4.stor.test", true)
			},
			want: map[string]int64{"complete": 100},
		},
		{
			// Posted again once under the same id, then skipped: not
			// placed elsewhere, since a copy may be on the destination.
			name: "agent loses its assignments",
			setup: func(h *harness, o *Options) {
				h.agents.SetForget("3.stor.test")
			},
			want: map[string]int64{"complete": 75, "skipped": 25, "skipped/agent_assignment_no_ent": 25},
		},
		{
			name:  "agent reports complete but lost a task",
			setup: func(h *harness, o *Options) { h.agents.SetLie(true) },
			want:  map[string]int64{"skipped": 100, "skipped/assignment_mismatch": 100},
		},
		{
			name: "agents never finish",
			setup: func(h *harness, o *Options) {
				h.agents.SetSlow(true)
				o.AssignmentTimeout = Duration(50 * time.Millisecond)
			},
			want: map[string]int64{"skipped": 100, "skipped/agent_assignment_timeout": 100},
		},
		{
			name: "etag conflicts from a concurrent writer",
			setup: func(h *harness, o *Options) {
				for i, obj := range h.objs {
					if i%3 == 0 {
						h.moray.ConflictOnce(obj.Shard, obj.Key)
					}
				}
			},
			want: map[string]int64{"complete": 100},
		},
		{
			name: "objects deleted before their metadata update",
			setup: func(h *harness, o *Options) {
				for _, obj := range h.objs[:10] {
					h.moray.Delete(obj.Shard, obj.Key)
				}
			},
			want: map[string]int64{"complete": 90, "error": 10, "error/moray_object_not_found": 10},
		},
		{
			name: "moray down for a while",
			setup: func(h *harness, o *Options) {
				h.moray.SetDown(true)
				time.AfterFunc(300*time.Millisecond, func() { h.moray.SetDown(false) })
			},
			want: map[string]int64{"complete": 100},
		},
		{
			name: "moray down for good",
			setup: func(h *harness, o *Options) {
				h.moray.SetDown(true)
				o.MetadataRetryWindow = Duration(100 * time.Millisecond)
			},
			want: map[string]int64{"error": 100, "error/moray_update_failed": 100},
		},
		{
			name: "no capacity information for a while",
			setup: func(h *harness, o *Options) {
				h.place.SetUnavailable(true)
				time.AfterFunc(1500*time.Millisecond, func() { h.place.SetUnavailable(false) })
			},
			want: map[string]int64{"complete": 100},
		},
		{
			name:  "discovery fails midway",
			setup: func(h *harness, o *Options) { h.src.FailAt = 60 },
			want:  map[string]int64{"complete": 60},
			state: rebalancer.JobFailed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 100, tt.layout)
			o := fastOptions()
			if tt.setup != nil {
				tt.setup(h, &o)
			}
			j, _ := h.run(o)
			want := tt.state
			if want == 0 {
				want = rebalancer.JobComplete
			}
			if j.State != want {
				t.Errorf("job ended %v (%q), want %v", j.State, j.Error, want)
			}
			got := h.check(j.ID)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("counts %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResumeAfterRestart(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, 400, nil)
		// Slow the agents so the engine is interrupted mid-job.
		h.agents.SetSlow(true)
		j, err := h.engine.CreateJob(context.Background(), h.from.MantaStorageID, fastOptions())
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "the job to record objects in two statuses", func() bool {
			c, _ := h.js.Counts(context.Background(), j.ID)
			return len(c) > 1
		})
		h.engine.Close()
		if got, _ := h.js.GetJob(context.Background(), j.ID); got.State != rebalancer.JobRunning {
			t.Fatalf("interrupted job is %v, want it left running", got.State)
		}
		h.agents.SetSlow(false)
		h.engine = h.newEngine()
		if err := h.engine.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		j = h.wait(j.ID)
		if j.State != rebalancer.JobComplete {
			t.Fatalf("resumed job ended %v %q", j.State, j.Error)
		}
		if got := h.check(j.ID); got["complete"] != 400 || len(got) != 1 {
			t.Errorf("counts %v", got)
		}
	})
}

func TestRetryJob(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, 120, nil)
		h.moray.SetDown(true)
		o := fastOptions()
		o.MetadataRetryWindow = Duration(50 * time.Millisecond)
		j, _ := h.run(o)
		if got := h.check(j.ID); got["error/moray_update_failed"] != 120 {
			t.Fatalf("first job counts %v", got)
		}
		h.moray.SetDown(false)
		r, err := h.engine.RetryJob(context.Background(), j.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.RetryOf != j.ID || r.From != j.From {
			t.Errorf("retry job %+v", r)
		}
		r = h.wait(r.ID)
		if r.State != rebalancer.JobComplete {
			t.Fatalf("retry ended %v %q", r.State, r.Error)
		}
		if got := h.check(r.ID); got["complete"] != 120 || len(got) != 1 {
			t.Errorf("retry counts %v", got)
		}
		// A retry of the retry finds nothing left on the shark.
		rr, err := h.engine.RetryJob(context.Background(), r.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		rr = h.wait(rr.ID)
		if got := h.check(rr.ID); rr.State != rebalancer.JobComplete || len(got) != 0 {
			t.Errorf("second retry %v counts %v", rr.State, got)
		}
	})
}

func TestDryRun(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 80, func(i int) []rebalancer.StorageNode {
		if i < 5 {
			return []rebalancer.StorageNode{fakes.Shark(1)}
		}
		return []rebalancer.StorageNode{fakes.Shark(1), fakes.Shark(2)}
	})
	o := fastOptions()
	o.DryRun = true
	j, st := h.run(o)
	if j.State != rebalancer.JobComplete {
		t.Fatalf("dry run ended %v %q", j.State, j.Error)
	}
	h.check(j.ID)
	if writes, _, _ := h.moray.Writes(); writes != 0 || h.agents.Posts() != 0 {
		t.Errorf("dry run wrote %d metadata and posted %d assignments", writes, h.agents.Posts())
	}
	rep := st.DryRun
	if rep == nil || rep.Objects != 80 || rep.SingleCopy != 5 || len(rep.Destinations) != 4 {
		t.Fatalf("report %+v", rep)
	}
	var placed int64
	for _, d := range rep.Destinations {
		placed += d.Objects
	}
	if placed != 75 {
		t.Errorf("%d objects placed, want 75", placed)
	}
}

func TestMaxObjectsAndExclusions(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 100, nil)
	for i := 0; i < 10; i++ {
		h.src.Objects[i].Key = "/acct/stor/logs/x" + h.src.Objects[i].ID
	}
	o := fastOptions()
	o.MaxObjects = 40
	o.ExcludeKeyPrefixes = []string{"/stor/logs/"}
	j, _ := h.run(o)
	got := h.check(j.ID)
	if j.State != rebalancer.JobComplete || got["complete"] != 40 {
		t.Errorf("job %v counts %v", j.State, got)
	}
}

func TestDuplicates(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 20, nil)
	// The same object id under a second key, on another shard (a snaplink).
	dup := h.src.Objects[3]
	dup.Key, dup.Shard, dup.ScanID = "/acct/stor/link", 2, 1000
	h.src.Objects = append(h.src.Objects, dup)
	j, st := h.run(fastOptions())
	got := h.check(j.ID)
	if got["complete"] != 20 || st.Duplicates != 1 {
		t.Errorf("counts %v duplicates %d", got, st.Duplicates)
	}
}

func TestPauseResumeStop(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 400, nil)
	ctx := context.Background()
	o := fastOptions()
	o.MaxTasksPerAssignment = 5
	o.MaxOutstandingPerDest = 1
	h.agents.SetSlowAt("6.stor.test", true)
	j, err := h.engine.CreateJob(ctx, h.from.MantaStorageID, o)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "objects to complete", func() bool { return completeCount(h, j.ID) > 0 })
	if err := h.engine.PauseJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.js.GetJob(ctx, j.ID); got.State != rebalancer.JobPaused {
		t.Errorf("state %v, want paused", got.State)
	}
	// While paused, nothing new is posted, although stored assignments
	// wait for their destinations (one assignment in flight per agent,
	// and the one on 6.stor.test never finishes). The poll rounds of that
	// one are the test's clock: 10 rounds for a post begun before the
	// pause to land, then 20 rounds without a post.
	const clock = "6.stor.test"
	rounds := func(n int) {
		t.Helper()
		from := h.agents.LeastPolled(clock)
		testutil.Eventually(t, fmt.Sprintf("%d more poll rounds", n), func() bool { return h.agents.LeastPolled(clock) >= from+n })
	}
	rounds(10)
	posts := h.agents.Posts()
	rounds(20)
	if n := h.agents.Posts(); n != posts {
		t.Errorf("posted %d assignments while paused", n-posts)
	}
	if c, _ := h.js.Counts(ctx, j.ID); !slices.ContainsFunc(c, func(c jobstore.Count) bool { return c.Status == "assigned" && c.N > 5 }) {
		t.Fatalf("no assignment waits to be posted while paused (counts %v): the check above proves nothing", c)
	}
	h.agents.SetSlowAt(clock, false)
	if err := h.engine.SetMetadataThreads(ctx, j.ID, 3); err != nil {
		t.Fatal(err)
	}
	if err := h.engine.SetMetadataThreads(ctx, j.ID, 251); err == nil {
		t.Error("251 metadata threads accepted")
	}
	if err := h.engine.ResumeJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.engine.StopJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	j = h.wait(j.ID)
	if j.State != rebalancer.JobStopped {
		t.Fatalf("state %v %q, want stopped", j.State, j.Error)
	}
	got := h.check(j.ID)
	total := got["complete"] + got["unprocessed"]
	if got["assigned"] != 0 || got["post_processing"] != 0 || got["complete"] == 0 || total == 0 || total != got["complete"]+got["unprocessed"]+got["skipped"]+got["error"] {
		t.Errorf("stopped job counts %v", got)
	}
	if j.Options.MetadataThreads != 3 {
		t.Errorf("metadata threads not stored: %d", j.Options.MetadataThreads)
	}
	if err := h.engine.PauseJob(ctx, j.ID); err == nil {
		t.Error("paused a stopped job")
	}
	// What the stopped job recorded but did not move is retried to
	// completion (with the usual limit on assignments per agent).
	ro := fastOptions()
	r, err := h.engine.RetryJob(ctx, j.ID, &ro)
	if err != nil {
		t.Fatal(err)
	}
	r = h.wait(r.ID)
	if got := h.check(r.ID); r.State != rebalancer.JobComplete || got["complete"] != total-int64(completeCount(h, j.ID)) {
		t.Errorf("retry %v counts %v, want %d complete", r.State, got, total-int64(completeCount(h, j.ID)))
	}
}

func TestOneJobPerShark(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 50, nil)
	h.agents.SetSlow(true)
	ctx := context.Background()
	j, err := h.engine.CreateJob(ctx, h.from.MantaStorageID, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.engine.CreateJob(ctx, h.from.MantaStorageID, fastOptions()); err == nil {
		t.Error("a second job on the same shark started")
	}
	if _, err := h.engine.RetryJob(ctx, j.ID, nil); err == nil {
		t.Error("retried a running job")
	}
	if err := h.engine.StopJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	h.agents.SetSlow(false)
	h.wait(j.ID)
}

// A shark no one knows is refused at create, with the known names closest
// to it, and nothing is stored; a lookup that fails otherwise is refused
// too, as something to try again.
func TestUnknownShark(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, 5, nil)
		ctx := context.Background()
		fleet := []rebalancer.StorageNode{fakes.Shark(1), fakes.Shark(2), fakes.Shark(3)}
		h.engine.cfg.Fleet = func(context.Context) ([]rebalancer.StorageNode, error) { return fleet, nil }
		_, err := h.engine.CreateJob(ctx, "2.stor.tset", fastOptions())
		var unknown *UnknownSharkError
		if !errors.As(err, &unknown) || !errors.Is(err, rebalancer.ErrSharkNotFound) {
			t.Fatalf("create on an unknown shark: %v", err)
		}
		if want := "no storage node is named 2.stor.tset; did you mean 2.stor.test?"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
		h.engine.cfg.LookupShark = func(context.Context, string) (rebalancer.StorageNode, error) {
			return rebalancer.StorageNode{}, errors.New("look up shark 1.stor.test: moray: connection refused")
		}
		if _, err := h.engine.CreateJob(ctx, h.from.MantaStorageID, fastOptions()); !errors.Is(err, ErrSharkLookup) {
			t.Fatalf("create with a failing lookup: %v", err)
		}
		if jobs, err := h.engine.Jobs(ctx); err != nil || len(jobs) != 0 {
			t.Errorf("refused creates stored %d jobs (%v)", len(jobs), err)
		}
		if st, err := h.engine.Sharks(ctx); err != nil || slices.ContainsFunc(st, func(s SharkStatus) bool { return s.State != SharkInService }) {
			t.Errorf("refused creates changed shark states: %+v (%v)", st, err)
		}
	})
}

// completeCount returns the number of complete objects of a job.
func completeCount(h *harness, id string) int {
	c, _ := h.js.Counts(context.Background(), id)
	for _, v := range c {
		if v.Status == "complete" {
			return int(v.N)
		}
	}
	return 0
}

func TestDryRunProjection(t *testing.T) {
	tests := []struct {
		availMB   int64
		pct       float64
		bytes     int64
		wantProj  float64
		wantEqPct bool
	}{
		// 1000 MiB free at 90% used: a 10,000 MiB filesystem; 500 MiB more is 95%.
		{1000, 90, 500 << 20, 95, false},
		{1000, 90, 0, 90, false},
		// An empty filesystem of 2,000 MiB taking 1,000 MiB.
		{2000, 0, 1000 << 20, 50, false},
		// A full one stays full.
		{0, 100, 1 << 20, 100, true},
	}
	for _, tt := range tests {
		d := DryRunDestination{Bytes: tt.bytes}
		d.project(tt.availMB, tt.pct)
		if d.PercentUsed == nil || *d.PercentUsed != tt.pct || d.ProjectedPercentUsed == nil {
			t.Fatalf("%+v: got %+v", tt, d)
		}
		if got := *d.ProjectedPercentUsed; got < tt.wantProj-0.01 || got > tt.wantProj+0.01 {
			t.Errorf("%+v: projected %.3f, want %.3f", tt, got, tt.wantProj)
		}
	}
}

// Options left zero by the caller come from the engine's Defaults, not from
// DefaultOptions: an embedder that tuned its engine keeps its tuning.
func TestCreateJobFillsFromEngineDefaults(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 5, nil)
	j, err := h.engine.CreateJob(context.Background(), h.from.MantaStorageID, Options{MaxObjects: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := h.engine.Wait(context.Background(), j.ID); err != nil || got.State != rebalancer.JobComplete {
		t.Fatalf("Wait = %v %v, want a complete job", got.State, err)
	}
	want := fastOptions()
	want.MaxObjects = 3
	if j.Options.FlushAge != want.FlushAge || j.Options.PollInterval != want.PollInterval || j.Options.MaxObjects != 3 {
		t.Errorf("job options flush_age %v poll_interval %v max_objects %d; want %v %v 3",
			j.Options.FlushAge, j.Options.PollInterval, j.Options.MaxObjects, want.FlushAge, want.PollInterval)
	}
	if err := (Options{MaxTasksPerAssignment: -1}).withDefaults(want).Validate(); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Validate of a negative max_tasks_per_assignment = %v, want ErrInvalidOptions", err)
	}
}
