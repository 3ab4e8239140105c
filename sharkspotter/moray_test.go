package sharkspotter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
)

// morayFixture is a few shards, each its own moraytest server.
type morayFixture struct {
	servers map[int]*moraytest.Server
	rows    map[int][]fixtureRow
	etags   map[int]map[string]string
	clients *moray.Shards
}

type morayShardSpec struct {
	rows        int
	extendedIDs int64 // moraytest.BucketConfig.ExtendedIDFrom
	noBucket    bool
	badAt       int64 // the row with this id names the shark but has no objectId
}

// badRow is a row that lists the shark but cannot be evacuated.
func badRow(id int64) fixtureRow {
	key := fmt.Sprintf("/%s/stor/noid-%d", owner, id)
	return fixtureRow{id: id, key: key, typ: "object",
		value: fmt.Sprintf(`{"key":%q,"owner":%q,"type":"object","sharks":[{"datacenter":"dc0","manta_storage_id":%q}]}`, key, owner, testShark)}
}

// shardRows is the fixture of one shard, with its bad row if any.
func (spec morayShardSpec) shardRows(shard int) []fixtureRow {
	if spec.badAt == 0 || int(spec.badAt) > spec.rows {
		return fixtureRows(shard, 1, spec.rows)
	}
	rows := fixtureRows(shard, 1, int(spec.badAt)-1)
	rows = append(rows, badRow(spec.badAt))
	return append(rows, fixtureRows(shard, spec.badAt+1, spec.rows-int(spec.badAt))...)
}

func newMorayFixture(t *testing.T, specs map[int]morayShardSpec) *morayFixture {
	t.Helper()
	f := &morayFixture{servers: map[int]*moraytest.Server{}, rows: map[int][]fixtureRow{}, etags: map[int]map[string]string{}}
	addrs := moray.StaticShards{}
	for shard, spec := range specs {
		srv := moraytest.Start(t)
		f.servers[shard] = srv
		addrs[shard] = srv.Addr()
		if spec.noBucket {
			continue
		}
		cfg := moraytest.BucketConfig{
			Index: []moraytest.Index{{Name: "dirname", Type: "string"}, {Name: "name", Type: "string"},
				{Name: "owner", Type: "string"}, {Name: "objectId", Type: "string"}, {Name: "type", Type: "string"}},
			Options:        json.RawMessage(`{"version":2}`),
			ExtendedIDFrom: spec.extendedIDs,
		}
		if err := srv.CreateBucket("manta", cfg); err != nil {
			t.Fatal(err)
		}
		f.etags[shard] = map[string]string{}
		for _, r := range spec.shardRows(shard) {
			etag, err := srv.Put("manta", r.key, json.RawMessage(r.value))
			if err != nil {
				t.Fatal(err)
			}
			f.etags[shard][r.key] = etag
			// Moray keeps what node made of the value (2^60 becomes
			// 1152921504606847000), and that is what a scan sees.
			o, err := srv.Get("manta", r.key)
			if err != nil {
				t.Fatal(err)
			}
			r.value = string(o.Value)
			f.rows[shard] = append(f.rows[shard], r)
		}
		// Moray assigns the ids; the fixture numbered rows from 1 in the
		// same order, but check rather than assume.
		i := 0
		for o := range srv.Objects("manta") {
			if o.ID != f.rows[shard][i].id || o.Key != f.rows[shard][i].key {
				t.Fatalf("shard %d: row %d is %s id %d", shard, i, o.Key, o.ID)
			}
			i++
		}
	}
	f.clients = moray.NewShards(addrs, moray.Options{Conns: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { f.clients.Close() })
	return f
}

func (f *morayFixture) want(exclude bool) map[int]map[string]fixtureRow {
	out := map[int]map[string]fixtureRow{}
	for shard, rows := range f.rows {
		out[shard] = wanted(rows, exclude)
	}
	return out
}

func (f *morayFixture) scanner(shards ...int) *MorayScanner {
	return &MorayScanner{
		Clients:      f.clients,
		Shards:       shards,
		Workers:      2,
		Window:       100,
		RetryBackoff: time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func (f *morayFixture) check(t *testing.T, objs []rebalancer.Object, exclude bool) {
	t.Helper()
	checkFound(t, objs, f.want(exclude), f.etags, func(got json.RawMessage, r fixtureRow) bool {
		return sameJSON(got, []byte(r.value))
	})
}

func TestMorayFindsEveryObjectOnce(t *testing.T) {
	f := newMorayFixture(t, map[int]morayShardSpec{
		1: {rows: 1200},
		2: {rows: 50},
		4: {rows: 1500, extendedIDs: 901}, // ids from 901 on are in _idx
		7: {rows: 0},
	})
	// Every statement must be one the legacy sharkspotter sends.
	legacy := regexp.MustCompile(`^SELECT MAX\((_id|_idx)\) FROM manta;$|` +
		`^SELECT \* FROM manta WHERE (_id|_idx) >= \d+ AND (_id|_idx) <= \d+( AND type = 'object')? LIMIT \d+;$`)
	var statements sync.Map
	for _, srv := range f.servers {
		srv.SetHook(func(r moraytest.Request) moraytest.Action {
			if r.Method == "sql" {
				var stmt string
				json.Unmarshal(r.Args[0], &stmt)
				if !legacy.MatchString(stmt) {
					t.Errorf("statement %q is not of the legacy shapes", stmt)
				}
				statements.Store(stmt, true)
			}
			return moraytest.Action{}
		})
	}
	s := f.scanner(1, 2, 4, 7)
	var progress []Progress
	s.OnProgress = func(p Progress) { progress = append(progress, p) }
	col := newCollector(t)
	if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
		t.Fatal(err)
	}
	f.check(t, col.objs, false)
	// The _idx windows start above the last _id instead of at 1.
	for _, stmt := range []string{
		"SELECT MAX(_idx) FROM manta;",
		"SELECT * FROM manta WHERE _idx >= 901 AND _idx <= 1000 AND type = 'object' LIMIT 100;",
		"SELECT * FROM manta WHERE _id >= 801 AND _id <= 900 AND type = 'object' LIMIT 100;",
	} {
		if _, ok := statements.Load(stmt); !ok {
			t.Errorf("statement %q not sent", stmt)
		}
	}
	if _, ok := statements.Load("SELECT * FROM manta WHERE _idx >= 1 AND _idx <= 100 AND type = 'object' LIMIT 100;"); ok {
		t.Error("_idx windows scanned below the first extended id")
	}
	done := map[int]Progress{}
	for _, p := range progress {
		if p.Done {
			done[p.Shard] = p
		}
	}
	for shard, max := range map[int]int64{1: 1200, 2: 50, 4: 1500, 7: 0} {
		if p, ok := done[shard]; !ok || p.Through != max || p.Max != max {
			t.Errorf("shard %d final progress %+v, want through and max %d", shard, p, max)
		}
	}
}

func TestMorayExcludeKeyPrefixesAndEndID(t *testing.T) {
	f := newMorayFixture(t, map[int]morayShardSpec{1: {rows: 600}, 2: {rows: 600, extendedIDs: 301}})
	s := f.scanner(1, 2)
	s.ExcludeKeyPrefixes = []string{excludedDir}
	col := newCollector(t)
	if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
		t.Fatal(err)
	}
	f.check(t, col.objs, true)

	s.ExcludeKeyPrefixes = nil
	s.EndID = 450
	col = newCollector(t)
	if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
		t.Fatal(err)
	}
	for shard, rows := range f.rows {
		f.rows[shard] = rows[:450]
	}
	f.check(t, col.objs, false)
}

func TestMorayResume(t *testing.T) {
	f := newMorayFixture(t, map[int]morayShardSpec{1: {rows: 700}, 2: {rows: 700, extendedIDs: 350}, 3: {rows: 700}})
	s := f.scanner(1, 2, 3)
	req := rebalancer.DiscoverRequest{Shark: testShark}
	stop := errors.New("stop")

	// Stop partway, resume from the visited objects' checkpoints, stop
	// again, then resume to the end: together exactly every object.
	var all []rebalancer.Object
	for _, stopAt := range []int{40, 90, 0} {
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

	// Progress marks are resume points too, also through empty windows.
	s.Shards = []int{1}
	var through int64
	s.OnProgress = func(p Progress) {
		if through == 0 && p.Through >= 300 {
			through = p.Through
		}
	}
	col := newCollector(t)
	if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
		t.Fatal(err)
	}
	s.OnProgress = nil
	before := 0
	for _, o := range col.objs {
		if o.ScanID <= through {
			before++
		}
	}
	col2 := newCollector(t)
	if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark, After: map[int]int64{1: through}}, col2.visit); err != nil {
		t.Fatal(err)
	}
	if before+len(col2.objs) != len(col.objs) || len(col2.objs) == 0 {
		t.Errorf("resuming from progress %d found %d objects, %d were before it, %d in all", through, len(col2.objs), before, len(col.objs))
	}
	for _, o := range col2.objs {
		if o.ScanID <= through {
			t.Errorf("object %d visited again after resuming from %d", o.ScanID, through)
		}
	}
}

func TestMorayShardFailureIsReported(t *testing.T) {
	f := newMorayFixture(t, map[int]morayShardSpec{1: {rows: 500}, 2: {rows: 500}, 3: {rows: 500}, 5: {noBucket: true}})
	// Shard 2's fourth query fails with an error that retrying cannot fix.
	var n atomic.Int32
	f.servers[2].SetHook(func(r moraytest.Request) moraytest.Action {
		if r.Method == "sql" && n.Add(1) == 4 {
			return moraytest.Action{Error: &fast.Error{Name: "error", Message: "relation \"manta\" does not exist"}}
		}
		return moraytest.Action{}
	})
	s := f.scanner(1, 2, 3, 5)
	col := newCollector(t)
	err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
	if err == nil {
		t.Fatal("no error")
	}
	var se *ShardError
	if !errors.As(err, &se) || se.Shard != 2 {
		t.Errorf("first shard error %v, want shard 2", se)
	}
	var srvErr *moray.ServerError
	if !errors.As(err, &srvErr) {
		t.Errorf("%v does not wrap the Moray error", err)
	}
	for _, want := range []string{"2 of 4 shards failed [2 5]", "shard 2:", "shard 5:", `relation "manta" does not exist`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Shards 1 and 3 were scanned to the end, shard 2 up to the failure
	// (MAX _id, MAX _idx, one window, and the failing one).
	byShard := map[int][]rebalancer.Object{}
	for _, o := range col.objs {
		byShard[o.Shard] = append(byShard[o.Shard], o)
	}
	want := f.want(false)
	if len(byShard[1]) != len(want[1]) || len(byShard[3]) != len(want[3]) {
		t.Errorf("healthy shards: found %d and %d, want %d and %d", len(byShard[1]), len(byShard[3]), len(want[1]), len(want[3]))
	}
	for _, o := range byShard[2] {
		if o.ScanID > 100 {
			t.Errorf("shard 2 object %d visited beyond the failed window", o.ScanID)
		}
	}
}

func TestMorayRetriesTransientFailures(t *testing.T) {
	f := newMorayFixture(t, map[int]morayShardSpec{1: {rows: 400}, 2: {rows: 400}})
	f.servers[1].FailNext("sql", 3, &fast.Error{Name: "NoDatabasePeersError", Message: "no database peers available"})
	var drops atomic.Int32
	f.servers[2].SetHook(func(r moraytest.Request) moraytest.Action {
		// Drop the connection in the middle of the scan, twice.
		var stmt string
		json.Unmarshal(r.Args[0], &stmt)
		if r.Method == "sql" && strings.Contains(stmt, "_id >= 201 ") && drops.Add(1) <= 2 {
			return moraytest.Action{Drop: true}
		}
		return moraytest.Action{}
	})
	s := f.scanner(1, 2)
	col := newCollector(t)
	if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
		t.Fatal(err)
	}
	f.check(t, col.objs, false)
	if drops.Load() < 2 {
		t.Errorf("the connection was dropped %d times, want 2", drops.Load())
	}

	// Without retries the same failure is the shard's error.
	f.servers[1].FailNext("sql", 1, &fast.Error{Name: "NoDatabasePeersError", Message: "no database peers available"})
	s.Retries = -1
	err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, newCollector(t).visit)
	var se *ShardError
	if !errors.As(err, &se) || se.Shard != 1 || !moray.IsTransient(err) {
		t.Errorf("got %v, want shard 1's transient error", err)
	}
}

func TestMorayUnreachableShard(t *testing.T) {
	f := newMorayFixture(t, map[int]morayShardSpec{1: {rows: 100}, 2: {rows: 100}})
	f.servers[2].Offline()
	s := f.scanner(1, 2)
	s.Retries = 2
	col := newCollector(t)
	err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
	var se *ShardError
	if !errors.As(err, &se) || se.Shard != 2 || !errors.Is(err, moray.ErrConnection) {
		t.Fatalf("got %v, want shard 2's connection error", err)
	}
	if !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("error %q does not say it was retried", err)
	}
	if len(col.objs) != len(f.want(false)[1]) {
		t.Errorf("found %d objects on shard 1, want %d", len(col.objs), len(f.want(false)[1]))
	}
}

func TestMorayCancel(t *testing.T) {
	f := newMorayFixture(t, map[int]morayShardSpec{1: {rows: 600}, 2: {rows: 600}, 3: {rows: 600}})
	s := f.scanner(1, 2, 3)
	s.Window = 10
	req := rebalancer.DiscoverRequest{Shark: testShark}
	// Connect every client first, so that their goroutines are in the
	// baseline: a scan for a shark that has nothing.
	if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: "9.stor.example.com"}, newCollector(t).visit); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	col := newCollector(t)
	col.onVisit = func(rebalancer.Object) {
		if len(col.objs) == 30 {
			cancel()
		}
	}
	err := s.Discover(ctx, req, col.visit)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if len(col.objs) != 30 {
		t.Errorf("visit called %d times after the cancel at 30", len(col.objs))
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Discover returned, %d before", n, before)
	}
}

func TestMorayBadRowsAreReported(t *testing.T) {
	f := newMorayFixture(t, map[int]morayShardSpec{1: {rows: 300, badAt: 150}, 2: {rows: 100}})
	s := f.scanner(1, 2)
	col := newCollector(t)
	err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
	var re *RowError
	if !errors.As(err, &re) || re.ID != 150 || re.Key != badRow(150).key {
		t.Fatalf("got %v, want a RowError for row 150", err)
	}
	var se *ShardError
	if !errors.As(err, &se) || se.Shard != 1 {
		t.Errorf("got %v, want it in shard 1's error", err)
	}
	f.check(t, col.objs, false) // everything else, before and after the bad row
}

func TestMorayConfigErrors(t *testing.T) {
	req := rebalancer.DiscoverRequest{Shark: testShark}
	visit := func(rebalancer.Object) error { return nil }
	if err := (&MorayScanner{Shards: []int{1}}).Discover(context.Background(), req, visit); err == nil || !strings.Contains(err.Error(), "no Clients") {
		t.Errorf("no clients: %v", err)
	}
	shards := moray.NewShards(moray.StaticShards{}, moray.Options{})
	defer shards.Close()
	if err := (&MorayScanner{Clients: shards, Shards: []int{1}, Window: -1}).Discover(context.Background(), req, visit); err == nil {
		t.Error("negative window accepted")
	}
	// A shard with no address fails alone, at once, naming the shard.
	err := (&MorayScanner{Clients: shards, Shards: []int{9}}).Discover(context.Background(), req, visit)
	if !errors.Is(err, moray.ErrUnknownShard) || !strings.Contains(err.Error(), "shard 9") {
		t.Errorf("unknown shard: %v", err)
	}
}
