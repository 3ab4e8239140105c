package sharkspotter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// The scanners' shared behaviour is tested here, table-driven over both
// backends: MorayScanner on moraytest servers (moray_test.go) and
// PostgresScanner on real PostgreSQL databases (postgres_test.go), each
// loaded with the same fixture rows. What only one backend does (Moray's
// legacy statements, PostgreSQL's SQL prefilter and sparse ids) is tested
// in that backend's file.

// shardSpec describes one shard of a fixture.
type shardSpec struct {
	rows        int
	extendedIDs int64 // ids from this one on are in _idx, with _id NULL (Moray's extended ids)
	badAt       int64 // the row with this id names the shark but has no objectId
	noTable     bool  // the shard has no manta table (bucket)
	intID       bool  // _id is an INTEGER, as on older shards (PostgreSQL only)
}

// shardRows is the fixture of one shard, with its bad row if any.
func (spec shardSpec) shardRows(shard int) []fixtureRow {
	if spec.badAt == 0 || int(spec.badAt) > spec.rows {
		return fixtureRows(shard, 1, spec.rows)
	}
	rows := fixtureRows(shard, 1, int(spec.badAt)-1)
	rows = append(rows, badRow(spec.badAt))
	return append(rows, fixtureRows(shard, spec.badAt+1, spec.rows-int(spec.badAt))...)
}

// badRow is a row that lists the shark but cannot be evacuated.
func badRow(id int64) fixtureRow {
	key := fmt.Sprintf("/%s/stor/noid-%d", owner, id)
	return fixtureRow{id: id, key: key, typ: "object",
		value: fmt.Sprintf(`{"key":%q,"owner":%q,"type":"object","sharks":[{"datacenter":"dc0","manta_storage_id":%q}]}`, key, owner, testShark)}
}

// scanFixture is a few shards of one backend, loaded with fixture rows, and
// the means to make them fail.
type scanFixture struct {
	t     *testing.T
	rows  map[int][]fixtureRow
	etags map[int]map[string]string
	// sameValue compares a visited object's value with its row's.
	sameValue func(got json.RawMessage, r fixtureRow) bool
	// newScanner returns the backend's scanner with o.
	newScanner func(o Options) rebalancer.ObjectSource
	// transient is the backend's test of a retryable failure.
	transient func(error) bool
	// dropTable makes every later query of shard fail for good, as
	// PostgreSQL does once the table is gone: relation "manta" does not
	// exist.
	dropTable func(shard int)
	// cut breaks the connection of shard's next sizeable reply, a
	// transient failure; cuts counts the cuts made.
	cut  func(shard int)
	cuts func() int
	// unreachable makes shard refuse connections.
	unreachable func(shard int)
	// put adds a row to shard after the fixture's (the conformance suite's
	// records), noting its etag.
	put func(t *testing.T, shard int, r fixtureRow)
}

// kind is a kind of shard, which a fixture is loaded into.
type kind struct {
	name string
	load func(t *testing.T, specs map[int]shardSpec) *scanFixture
}

var kinds = []kind{{"moray", newMorayFixture}, {"postgres", newPGFixture}}

// forEachBackend runs test once per backend, as a subtest.
func forEachBackend(t *testing.T, test func(t *testing.T, b kind)) {
	for _, b := range kinds {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// opts returns the tests' settings for a scan of shards: small windows and
// chunks, quick retries, logs in the test's log.
func (f *scanFixture) opts(shards ...int) Options {
	return Options{Shards: shards, Workers: 2, RetryBackoff: time.Millisecond, Logger: testutil.Logger(f.t)}
}

func (f *scanFixture) scanner(shards ...int) rebalancer.ObjectSource {
	return f.newScanner(f.opts(shards...))
}

func (f *scanFixture) want(exclude bool) map[int]map[string]fixtureRow {
	out := map[int]map[string]fixtureRow{}
	for shard, rows := range f.rows {
		out[shard] = wanted(rows, exclude)
	}
	return out
}

func (f *scanFixture) check(t *testing.T, objs []rebalancer.Object, exclude bool) {
	t.Helper()
	checkFound(t, objs, f.want(exclude), f.etags, f.sameValue)
}

// Both scanners keep the rebalancer.ObjectSource contract.
func TestScannersConformance(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b kind) {
		rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
			specs := map[int]shardSpec{}
			for _, s := range shards {
				specs[s.Number] = shardSpec{}
			}
			f := b.load(t, specs)
			for _, s := range shards {
				for i, o := range s.Objects {
					f.put(t, s.Number, fixtureRow{id: int64(i + 1), key: o.Key, value: string(o.Value), typ: "object"})
				}
			}
			return rebalancertest.SourceHarness{
				Source: f.scanner(slices.Sorted(maps.Keys(specs))...),
				Etag:   func(shard int, key string) string { return f.etags[shard][key] },
				Break:  f.unreachable,
			}
		})
	})
}

func TestScanFindsEveryObjectOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b kind) {
		f := b.load(t, map[int]shardSpec{
			1: {rows: 1200},
			2: {rows: 50, intID: true},
			4: {rows: 1500, extendedIDs: 901},
			7: {rows: 0},
		})
		for _, exhaustive := range []bool{false, true} {
			t.Run(fmt.Sprintf("exhaustive=%v", exhaustive), func(t *testing.T) {
				o := f.opts(1, 2, 4, 7)
				o.Exhaustive = exhaustive
				done := map[int]Progress{}
				var progress []Progress
				o.OnProgress = func(p Progress) {
					progress = append(progress, p)
					if p.Done {
						done[p.Shard] = p
					}
				}
				col := newCollector(t)
				if err := f.newScanner(o).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
					t.Fatal(err)
				}
				f.check(t, col.objs, false)
				// Progress per shard never goes back, and ends Done at (or,
				// for PostgreSQL's spans of ids, past) the shard's maximum
				// having counted what it found.
				last := map[int]Progress{}
				for _, p := range progress {
					if prev := last[p.Shard]; p.Through < prev.Through || p.Found < prev.Found {
						t.Errorf("progress went back: %+v after %+v", p, prev)
					}
					last[p.Shard] = p
				}
				for shard, max := range map[int]int64{1: 1200, 2: 50, 4: 1500, 7: 0} {
					p, ok := done[shard]
					if !ok || p.Through < max || p.Max != max || p.Found != int64(len(f.want(false)[shard])) {
						t.Errorf("shard %d final progress %+v, want max %d, through at least that, found %d", shard, p, max, len(f.want(false)[shard]))
					}
				}
			})
		}
	})
}

func TestScanExcludeKeyPrefixesAndEndID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b kind) {
		f := b.load(t, map[int]shardSpec{1: {rows: 600}, 2: {rows: 600, extendedIDs: 301}})
		o := f.opts(1, 2)
		o.ExcludeKeyPrefixes = []string{excludedDir, "/nothing/like/this/"}
		col := newCollector(t)
		if err := f.newScanner(o).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
			t.Fatal(err)
		}
		f.check(t, col.objs, true)

		o.ExcludeKeyPrefixes = []string{"none"}
		o.EndID = 450
		col = newCollector(t)
		if err := f.newScanner(o).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
			t.Fatal(err)
		}
		for shard, rows := range f.rows {
			f.rows[shard] = rows[:450]
		}
		f.check(t, col.objs, false)
	})
}

func TestScanResume(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b kind) {
		f := b.load(t, map[int]shardSpec{1: {rows: 700}, 2: {rows: 700, extendedIDs: 350}, 3: {rows: 700, intID: true}})
		s := f.scanner(1, 2, 3)
		req := rebalancer.DiscoverRequest{Shark: testShark}
		stop := errors.New("stop")

		// Stop partway, resume from the visited objects' checkpoints, stop
		// again, then resume to the end: together exactly every object.
		var all []rebalancer.Object
		for _, stopAt := range []int{40, 150, 0} {
			col := newCollector(t)
			col.stopAt, col.stopErr = stopAt, stop
			req.After = checkpoints(all)
			err := s.Discover(context.Background(), req, col.visit)
			if stopAt > 0 && err != stop || stopAt == 0 && err != nil {
				t.Fatalf("run stopping at %d: %v", stopAt, err)
			}
			for _, o := range col.objs {
				if o.ScanID <= req.After[o.Shard] {
					t.Errorf("shard %d id %d visited again after resuming from %d", o.Shard, o.ScanID, req.After[o.Shard])
				}
			}
			all = append(all, col.objs...)
		}
		f.check(t, all, false)

		// Progress marks are resume points too, also through windows or
		// chunks where nothing matched.
		o := f.opts(1)
		var through int64
		o.OnProgress = func(p Progress) {
			if through == 0 && p.Through >= 300 {
				through = p.Through
			}
		}
		col := newCollector(t)
		if err := f.newScanner(o).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
			t.Fatal(err)
		}
		before := 0
		for _, o := range col.objs {
			if o.ScanID <= through {
				before++
			}
		}
		col2 := newCollector(t)
		err := f.scanner(1).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark, After: map[int]int64{1: through}}, col2.visit)
		if err != nil {
			t.Fatal(err)
		}
		if before+len(col2.objs) != len(col.objs) || len(col2.objs) == 0 {
			t.Errorf("resuming from progress %d found %d objects, %d were before it, %d in all", through, len(col2.objs), before, len(col.objs))
		}
	})
}

func TestScanShardFailureIsReported(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b kind) {
		f := b.load(t, map[int]shardSpec{1: {rows: 1000}, 2: {rows: 2000}, 3: {rows: 1000}, 4: {noTable: true}})
		col := newCollector(t)
		dropped := false
		col.onVisit = func(o rebalancer.Object) {
			// The table goes away under shard 2's scan.
			if o.Shard == 2 && !dropped {
				dropped = true
				f.dropTable(2)
			}
		}
		err := f.scanner(1, 2, 3, 4).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
		if err == nil {
			t.Fatal("no error")
		}
		var se *ShardError
		if !errors.As(err, &se) || se.Shard != 2 {
			t.Errorf("first shard error %v, want shard 2", se)
		}
		for _, want := range []string{"2 of 4 shards failed [2 4]", "shard 2:", "shard 4:", `relation "manta" does not exist`, testShark} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		count := map[int]int{}
		for _, o := range col.objs {
			count[o.Shard]++
		}
		want := f.want(false)
		if count[1] != len(want[1]) || count[3] != len(want[3]) {
			t.Errorf("healthy shards: found %v, want %d and %d", count, len(want[1]), len(want[3]))
		}
		if count[2] == 0 || count[2] >= len(want[2]) {
			t.Errorf("shard 2: found %d of %d objects before its table was dropped", count[2], len(want[2]))
		}
	})
}

// countingHandler counts warnings.
type countingHandler struct {
	slog.Handler
	warns *atomic.Int32
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.warns.Add(1)
	}
	return nil
}

func TestScanConnectionCutMidScan(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b kind) {
		f := b.load(t, map[int]shardSpec{1: {rows: 1500}, 2: {rows: 1500, extendedIDs: 1000}})
		for _, retries := range []int{0, -1} {
			t.Run(fmt.Sprintf("retries=%d", retries), func(t *testing.T) {
				o := f.opts(1, 2)
				o.Retries = retries
				var warns atomic.Int32
				o.Logger = slog.New(countingHandler{slog.DiscardHandler, &warns})
				cuts := f.cuts()
				armed := 0
				o.OnProgress = func(p Progress) {
					// Twice, in the middle of shard 2.
					if p.Shard == 2 && p.Through > 300*int64(armed+1) && armed < 2 {
						armed++
						f.cut(2)
					}
				}
				col := newCollector(t)
				err := f.newScanner(o).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
				if f.cuts() == cuts {
					t.Fatal("no connection was cut")
				}
				if retries < 0 {
					var se *ShardError
					if !errors.As(err, &se) || se.Shard != 2 || !f.transient(err) {
						t.Fatalf("got %v, want shard 2's transient error", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				f.check(t, col.objs, false)
				if warns.Load() == 0 {
					t.Error("no retry was logged")
				}
			})
		}
	})
}

func TestScanUnreachableShard(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b kind) {
		f := b.load(t, map[int]shardSpec{1: {rows: 200}, 2: {rows: 100}})
		f.unreachable(2)
		o := f.opts(1, 2)
		o.Retries = 2
		col := newCollector(t)
		err := f.newScanner(o).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
		var se *ShardError
		if !errors.As(err, &se) || se.Shard != 2 || !f.transient(err) || !strings.Contains(err.Error(), "after 3 attempts") {
			t.Fatalf("got %v, want shard 2's connection error after retries", err)
		}
		delete(f.rows, 2)
		f.check(t, col.objs, false)
	})
}

func TestScanBadRowsAreReported(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b kind) {
		f := b.load(t, map[int]shardSpec{1: {rows: 300, badAt: 150}, 2: {rows: 100}})
		col := newCollector(t)
		err := f.scanner(1, 2).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
		var re *RowError
		if !errors.As(err, &re) || re.ID != 150 || re.Shard != 1 || re.Key != badRow(150).key {
			t.Fatalf("got %v, want a RowError for shard 1 row 150", err)
		}
		var se *ShardError
		if !errors.As(err, &se) || se.Shard != 1 {
			t.Errorf("got %v, want it in shard 1's error", err)
		}
		f.check(t, col.objs, false) // everything else, before and after the bad row
	})
}

func TestScanCancel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b kind) {
		testutil.CheckLeaks(t)
		f := b.load(t, map[int]shardSpec{1: {rows: 1000}, 2: {rows: 1000}, 3: {rows: 1000}})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		col := newCollector(t)
		col.onVisit = func(rebalancer.Object) {
			if len(col.objs) == 25 {
				cancel()
			}
		}
		err := f.scanner(1, 2, 3).Discover(ctx, rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if len(col.objs) != 25 {
			t.Errorf("visit called %d times after the cancel at 25", len(col.objs))
		}
	})
}
