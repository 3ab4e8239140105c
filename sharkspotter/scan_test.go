package sharkspotter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// The runner is tested here against a fake backend, which makes merging,
// concurrency limits and failures exact; moray_test.go and postgres_test.go
// run the real backends.

const testShark = "1.stor.example.com"

func testValue(id int64, sharks ...string) string {
	var s []string
	for _, sh := range sharks {
		s = append(s, fmt.Sprintf(`{"datacenter":"dc0","manta_storage_id":%q}`, sh))
	}
	return fmt.Sprintf(`{"key":"/acct/stor/o%d","owner":"acct","objectId":"obj-%d","type":"object","sharks":[%s]}`,
		id, id, strings.Join(s, ","))
}

type fakeRow struct {
	id    int64
	col   string // "_id" or "_idx"
	value string
}

type fakeBackend struct {
	rows    map[int][]fakeRow // per shard, any order
	chunk   int
	openErr map[int]error
	// fetchErr makes the n-th fetch of a shard (from 1) fail with err.
	fetchErr map[int]struct {
		n   int
		err error
	}
	transientFails atomic.Int32 // how many fetches fail transiently first

	mu        sync.Mutex
	fetches   map[int]int
	active    int
	maxActive int
	gate      chan struct{} // when set, each fetch waits for a token
}

func (b *fakeBackend) open(_ context.Context, c *common, shard int) (shardSource, error) {
	if err := b.openErr[shard]; err != nil {
		return shardSource{}, err
	}
	b.mu.Lock()
	b.active++
	b.maxActive = max(b.maxActive, b.active)
	b.mu.Unlock()
	src := shardSource{close: func() { b.mu.Lock(); b.active--; b.mu.Unlock() }}
	for _, col := range []string{"_id", "_idx"} {
		var rows []fakeRow
		for _, r := range b.rows[shard] {
			if r.col == col {
				rows = append(rows, r)
				src.max = max(src.max, r.id)
			}
		}
		slices.SortFunc(rows, func(a, b fakeRow) int { return int(a.id - b.id) })
		if col == "_id" || len(rows) > 0 {
			src.streams = append(src.streams, &fakeStream{b: b, c: c, shard: shard, col: col, rows: rows})
		}
	}
	return src, nil
}

type fakeStream struct {
	b     *fakeBackend
	c     *common
	shard int
	col   string
	rows  []fakeRow
}

func (s *fakeStream) column() string { return s.col }

func (s *fakeStream) fetch(ctx context.Context, after int64) (piece, error) {
	b := s.b
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return piece{}, ctx.Err()
		}
	}
	b.mu.Lock()
	if b.fetches == nil {
		b.fetches = map[int]int{}
	}
	b.fetches[s.shard]++
	n := b.fetches[s.shard]
	b.mu.Unlock()
	if f, ok := b.fetchErr[s.shard]; ok && f.n == n {
		return piece{}, f.err
	}
	if b.transientFails.Add(-1) >= 0 {
		return piece{}, errTransient
	}
	p := piece{last: after}
	for _, r := range s.rows {
		if r.id <= after {
			continue
		}
		if p.rows == int64(b.chunk) {
			return p, nil
		}
		p.rows++
		p.last = r.id
		obj, ok, err := s.c.m.match(s.shard, row{id: r.id, key: []byte(fmt.Sprintf("/k/%d", r.id)), value: []byte(r.value)})
		switch {
		case err != nil:
			p.bad = append(p.bad, err)
		case ok:
			p.objs = append(p.objs, obj)
		}
	}
	p.done = true
	return p, nil
}

var errTransient = errors.New("transient")

func testCommon(t *testing.T, shards []int, workers int) *common {
	t.Helper()
	c, err := newCommon(rebalancer.DiscoverRequest{Shark: testShark},
		Options{Shards: shards, Workers: workers, Retries: 2, RetryBackoff: time.Millisecond, Logger: testutil.Logger(t)},
		func(err error) bool { return errors.Is(err, errTransient) })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// collect visits and checks that visits are never concurrent and that each
// shard's ScanIDs ascend.
type collector struct {
	t       *testing.T
	in      atomic.Bool
	lastID  map[int]int64
	objs    []rebalancer.Object
	stopAt  int
	stopErr error
	onVisit func(rebalancer.Object)
}

func newCollector(t *testing.T) *collector {
	return &collector{t: t, lastID: map[int]int64{}}
}

func (c *collector) visit(o rebalancer.Object) error {
	if !c.in.CompareAndSwap(false, true) {
		c.t.Error("visit called concurrently")
	}
	defer c.in.Store(false)
	if c.lastID != nil { // nil: the caller checks the order
		if prev, ok := c.lastID[o.Shard]; ok && o.ScanID <= prev {
			c.t.Errorf("shard %d: ScanID %d visited after %d", o.Shard, o.ScanID, prev)
		}
		c.lastID[o.Shard] = o.ScanID
	}
	c.objs = append(c.objs, o)
	if c.onVisit != nil {
		c.onVisit(o)
	}
	if c.stopAt > 0 && len(c.objs) == c.stopAt {
		return c.stopErr
	}
	return nil
}

func TestRunnerMergesIDColumnsInOrder(t *testing.T) {
	// Shard 1's _idx rows interleave with its _id rows, which a real
	// extended-id table should not have but must not break the order.
	b := &fakeBackend{chunk: 3, rows: map[int][]fakeRow{
		1: {{5, "_id", testValue(5, testShark)}, {1, "_idx", testValue(1, testShark)}, {2, "_id", testValue(2, "9.stor")},
			{3, "_id", testValue(3, testShark)}, {4, "_idx", testValue(4, testShark, testShark)}, {9, "_idx", testValue(9, testShark)},
			{7, "_id", testValue(7, testShark)}, {8, "_idx", testValue(8, "2.stor")}, {6, "_id", testValue(6, testShark)}},
		2: {{10, "_id", testValue(10, testShark)}},
	}}
	c := testCommon(t, []int{1, 2}, 2)
	var progress []Progress
	c.onProgress = func(p Progress) { progress = append(progress, p) }
	col := newCollector(t)
	if err := c.discover(context.Background(), b, nil, col.visit); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range col.objs {
		got = append(got, fmt.Sprintf("%d:%d", o.Shard, o.ScanID))
	}
	slices.Sort(got)
	want := []string{"1:1", "1:3", "1:4", "1:5", "1:6", "1:7", "1:9", "2:10"}
	if !slices.Equal(got, want) {
		t.Errorf("visited %v, want %v", got, want)
	}
	// Progress per shard never goes back, never claims more than visited,
	// and ends Done at the shard's maximum.
	last := map[int]Progress{}
	for _, p := range progress {
		prev := last[p.Shard]
		if p.Through < prev.Through || p.Found < prev.Found {
			t.Errorf("progress went back: %+v after %+v", p, prev)
		}
		last[p.Shard] = p
	}
	if p := last[1]; !p.Done || p.Through != 9 || p.Found != 7 || p.Max != 9 {
		t.Errorf("last progress of shard 1: %+v", p)
	}
	if p := last[2]; !p.Done || p.Through != 10 || p.Found != 1 {
		t.Errorf("last progress of shard 2: %+v", p)
	}
}

func TestRunnerProgressThroughIsSafe(t *testing.T) {
	// Every Through reported must have every matching object at or below it
	// already visited: a resume from it loses nothing.
	var rows []fakeRow
	for i := int64(1); i <= 60; i++ {
		col := "_id"
		if i%4 == 0 {
			col = "_idx"
		}
		sh := "3.stor"
		if i%3 == 0 {
			sh = testShark
		}
		rows = append(rows, fakeRow{i, col, testValue(i, sh)})
	}
	b := &fakeBackend{chunk: 4, rows: map[int][]fakeRow{1: rows}}
	c := testCommon(t, []int{1}, 1)
	col := newCollector(t)
	c.onProgress = func(p Progress) {
		for i := int64(3); i <= p.Through; i += 3 {
			if !slices.ContainsFunc(col.objs, func(o rebalancer.Object) bool { return o.ScanID == i }) {
				t.Errorf("progress through %d before object %d was visited", p.Through, i)
			}
		}
	}
	if err := c.discover(context.Background(), b, nil, col.visit); err != nil {
		t.Fatal(err)
	}
	if len(col.objs) != 20 {
		t.Errorf("found %d objects, want 20", len(col.objs))
	}
}

func TestRunnerBoundsWorkers(t *testing.T) {
	rows := map[int][]fakeRow{}
	var shards []int
	for s := 1; s <= 7; s++ {
		shards = append(shards, s)
		for i := int64(1); i <= 5; i++ {
			rows[s] = append(rows[s], fakeRow{i, "_id", testValue(i, testShark)})
		}
	}
	b := &fakeBackend{chunk: 1, rows: rows}
	c := testCommon(t, shards, 3)
	col := newCollector(t)
	if err := c.discover(context.Background(), b, nil, col.visit); err != nil {
		t.Fatal(err)
	}
	if len(col.objs) != 35 {
		t.Errorf("found %d objects, want 35", len(col.objs))
	}
	if b.maxActive > 3 || b.maxActive < 1 {
		t.Errorf("%d shards scanned at once, limit 3", b.maxActive)
	}
}

func TestRunnerResumesAfter(t *testing.T) {
	var rows []fakeRow
	for i := int64(1); i <= 10; i++ {
		rows = append(rows, fakeRow{i, "_id", testValue(i, testShark)})
	}
	b := &fakeBackend{chunk: 2, rows: map[int][]fakeRow{1: rows, 2: rows}}
	c := testCommon(t, []int{1, 2}, 2)
	col := newCollector(t)
	if err := c.discover(context.Background(), b, map[int]int64{1: 7, 2: -5}, col.visit); err != nil {
		t.Fatal(err)
	}
	count := map[int]int{}
	for _, o := range col.objs {
		count[o.Shard]++
		if o.Shard == 1 && o.ScanID <= 7 {
			t.Errorf("shard 1 object %d visited, resume point 7", o.ScanID)
		}
	}
	if count[1] != 3 || count[2] != 10 {
		t.Errorf("visited per shard %v, want 1:3 2:10", count)
	}
}

func TestRunnerVisitErrorStopsScan(t *testing.T) {
	var rows []fakeRow
	for i := int64(1); i <= 100; i++ {
		rows = append(rows, fakeRow{i, "_id", testValue(i, testShark)})
	}
	b := &fakeBackend{chunk: 1, rows: map[int][]fakeRow{1: rows, 2: rows, 3: rows}}
	c := testCommon(t, []int{1, 2, 3}, 3)
	col := newCollector(t)
	stop := errors.New("enough")
	col.stopAt, col.stopErr = 5, stop
	err := c.discover(context.Background(), b, nil, col.visit)
	if err != stop {
		t.Fatalf("got %v, want the visit error itself", err)
	}
	if len(col.objs) != 5 {
		t.Errorf("visit called %d times, want 5", len(col.objs))
	}
}

func TestRunnerShardFailuresAreJoined(t *testing.T) {
	var rows []fakeRow
	for i := int64(1); i <= 20; i++ {
		rows = append(rows, fakeRow{i, "_id", testValue(i, testShark)})
	}
	boom := errors.New("relation \"manta\" does not exist")
	b := &fakeBackend{chunk: 4, rows: map[int][]fakeRow{1: rows, 2: rows, 3: rows, 4: rows},
		openErr: map[int]error{4: boom},
		fetchErr: map[int]struct {
			n   int
			err error
		}{2: {3, boom}}}
	c := testCommon(t, []int{1, 2, 3, 4}, 2)
	col := newCollector(t)
	err := c.discover(context.Background(), b, nil, col.visit)
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, boom) {
		t.Errorf("%v does not wrap the cause", err)
	}
	var se *ShardError
	if !errors.As(err, &se) {
		t.Fatalf("%v holds no *ShardError", err)
	}
	for _, want := range []string{"2 of 4 shards failed", "shard 2:", "shard 4:", testShark} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	count := map[int]int{}
	for _, o := range col.objs {
		count[o.Shard]++
	}
	// The healthy shards were finished; shard 2 got its first two chunks.
	if count[1] != 20 || count[3] != 20 || count[2] != 8 || count[4] != 0 {
		t.Errorf("visited per shard %v, want 1:20 2:8 3:20", count)
	}
}

func TestRunnerRetriesTransientFailures(t *testing.T) {
	var rows []fakeRow
	for i := int64(1); i <= 10; i++ {
		rows = append(rows, fakeRow{i, "_id", testValue(i, testShark)})
	}
	b := &fakeBackend{chunk: 3, rows: map[int][]fakeRow{1: rows}}
	b.transientFails.Store(2)
	c := testCommon(t, []int{1}, 1)
	col := newCollector(t)
	if err := c.discover(context.Background(), b, nil, col.visit); err != nil {
		t.Fatal(err)
	}
	if len(col.objs) != 10 {
		t.Errorf("found %d objects, want 10", len(col.objs))
	}

	// More transient failures in a row than retries allowed: the shard fails.
	b.transientFails.Store(3)
	b.fetches = nil
	col = newCollector(t)
	err := c.discover(context.Background(), b, nil, col.visit)
	if !errors.Is(err, errTransient) || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("got %v, want the transient error after 3 attempts", err)
	}
}

func TestRunnerRowErrorsReportedAfterTheRest(t *testing.T) {
	rows := []fakeRow{
		{1, "_id", testValue(1, testShark)},
		{2, "_id", `{"key":"/acct/stor/bad","owner":"acct","sharks":[{"manta_storage_id":"` + testShark + `"}]}`},
		{3, "_id", `not json "` + testShark + `"`},
		{4, "_id", `{"key":"/acct/stor/other","owner":"acct","sharks":[{"manta_storage_id":"3.stor"}]}`},
		{5, "_id", testValue(5, testShark)},
	}
	b := &fakeBackend{chunk: 2, rows: map[int][]fakeRow{1: rows}}
	c := testCommon(t, []int{1}, 1)
	col := newCollector(t)
	err := c.discover(context.Background(), b, nil, col.visit)
	var re *RowError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want a *RowError", err)
	}
	if re.Shard != 1 || re.ID != 2 {
		t.Errorf("first row error %+v, want shard 1 row 2", re)
	}
	var bad *rebalancer.BadObjectError
	if !errors.As(err, &bad) {
		t.Errorf("%v does not wrap the parse error", err)
	}
	if !strings.Contains(err.Error(), "2 rows naming the shark") {
		t.Errorf("error %q does not count the bad rows", err)
	}
	if len(col.objs) != 2 {
		t.Errorf("found %d objects, want 2 (rows 1 and 5)", len(col.objs))
	}
}

func TestRunnerCancelStopsWithoutLeaks(t *testing.T) {
	var rows []fakeRow
	for i := int64(1); i <= 1000; i++ {
		rows = append(rows, fakeRow{i, "_id", testValue(i, testShark)})
	}
	testutil.CheckLeaks(t)
	b := &fakeBackend{chunk: 1, rows: map[int][]fakeRow{1: rows, 2: rows, 3: rows, 4: rows}, gate: make(chan struct{})}
	c := testCommon(t, []int{1, 2, 3, 4}, 2)
	ctx, cancel := context.WithCancel(context.Background())
	col := newCollector(t)
	col.onVisit = func(rebalancer.Object) {
		if len(col.objs) == 3 {
			cancel()
		}
	}
	feed := make(chan struct{})
	go func() { // tokens for the first few fetches, then none: workers block in the gate
		defer close(feed)
		for range 4 {
			select {
			case b.gate <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	err := c.discover(ctx, b, nil, col.visit)
	<-feed
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := rebalancer.DiscoverRequest{Shark: testShark}
	for _, tc := range []struct {
		name   string
		req    rebalancer.DiscoverRequest
		shards []int
		end    int64
		excl   []string
		want   string
	}{
		{"no shark", rebalancer.DiscoverRequest{}, []int{1}, 0, nil, "no shark"},
		{"bad shark", rebalancer.DiscoverRequest{Shark: `a"b`}, []int{1}, 0, nil, "invalid shark"},
		{"no shards", ok, nil, 0, nil, "no shards"},
		{"negative shard", ok, []int{-1}, 0, nil, "invalid shard"},
		{"duplicate shard", ok, []int{1, 2, 1}, 0, nil, "shard 1 listed twice"},
		{"negative end", ok, []int{1}, -3, nil, "negative end"},
		{"empty prefix", ok, []int{1}, 0, []string{"/stor/logs", ""}, "empty exclude"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newCommon(tc.req, Options{Shards: tc.shards, EndID: tc.end, ExcludeKeyPrefixes: tc.excl}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestMatcher(t *testing.T) {
	m, err := newMatcher(testShark, []string{"/stor/logs/"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key, value string
		ok, bad          bool
	}{
		{"listed", "/a/stor/x", testValue(1, "2.stor.example.com", testShark), true, false},
		{"listed twice", "/a/stor/x", testValue(1, testShark, testShark), true, false},
		{"other shark", "/a/stor/x", testValue(1, "2.stor.example.com"), false, false},
		{"longer id", "/a/stor/x", testValue(1, "11.stor.example.com", testShark+".evil"), false, false},
		{"named elsewhere", "/a/stor/x", `{"key":"/a/stor/x","owner":"a","objectId":"o","headers":{"m-x":"` + testShark + `"},"sharks":[]}`, false, false},
		{"no sharks", "/a/stor/x", `{"key":"/a/stor/x","owner":"a","objectId":"o","note":"` + testShark + `"}`, false, false},
		{"excluded", "/a/stor/logs/x", testValue(1, testShark), false, false},
		{"no object id", "/a/stor/x", `{"key":"/a/stor/x","owner":"a","sharks":[{"manta_storage_id":"` + testShark + `"}]}`, false, true},
		{"bad sharks", "/a/stor/x", `{"key":"/a/stor/x","owner":"a","objectId":"o","sharks":"` + testShark + `"}`, false, true},
		{"unparseable", "/a/stor/x", `{"sharks":[{"manta_storage_id":"` + testShark + `"}]`, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj, ok, err := m.match(3, row{id: 42, key: []byte(tc.key), etag: []byte("ABCD1234"), value: []byte(tc.value)})
			if ok != tc.ok || (err != nil) != tc.bad {
				t.Fatalf("match = %v, %v; want ok=%v bad=%v", ok, err, tc.ok, tc.bad)
			}
			if ok && (obj.Shard != 3 || obj.ScanID != 42 || obj.Etag != "ABCD1234" || obj.Key != tc.key || string(obj.Metadata) != tc.value) {
				t.Errorf("object %+v", obj)
			}
			var re *RowError
			if tc.bad && (!errors.As(err, &re) || re.ID != 42 || re.Key != tc.key || re.Shard != 3) {
				t.Errorf("error %v is not a RowError for row 42", err)
			}
		})
	}

	// A value spelling the id with escapes is found only by an exhaustive
	// scan (Moray never writes one, but other tools could).
	escaped := `{"key":"/a/stor/x","owner":"a","objectId":"o","sharks":[{"manta_storage_id":"\u0031.stor.example.com"}]}`
	if _, ok, _ := m.match(1, row{key: []byte("/a/stor/x"), value: []byte(escaped)}); ok {
		t.Error("the text prefilter let an escaped id through")
	}
	ex, _ := newMatcher(testShark, nil, true)
	if _, ok, err := ex.match(1, row{key: []byte("/a/stor/x"), value: []byte(escaped)}); !ok || err != nil {
		t.Errorf("exhaustive match of an escaped id = %v, %v", ok, err)
	}
	if _, ok, err := ex.match(1, row{key: []byte("/a/stor/x"), value: []byte(testValue(1, "2.stor"))}); ok || err != nil {
		t.Errorf("exhaustive match of another shark = %v, %v", ok, err)
	}
	if _, _, err := ex.match(1, row{key: []byte("/a/stor/x"), value: []byte(`{"sharks":[{"manta_storage_id":7}]}`)}); err == nil {
		t.Error("exhaustive match of a malformed value gave no error")
	}

	// "none" alone disables exclusion, as in the legacy configuration.
	m, _ = newMatcher(testShark, []string{"none"}, false)
	if _, ok, _ := m.match(1, row{key: []byte("/a/stor/none/x"), value: []byte(testValue(1, testShark))}); !ok {
		t.Error(`["none"] excluded a key`)
	}
}

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		raw    string
		id     int64
		isNull bool
		bad    bool
	}{
		{`"123"`, 123, false, false},
		{`123`, 123, false, false},
		{` "9007199254740993" `, 9007199254740993, false, false},
		{`null`, 0, true, false},
		{``, 0, true, false},
		{`"12a"`, 0, false, true},
		{`1.5`, 0, false, true},
		{`{}`, 0, false, true},
	} {
		id, isNull, err := parseID([]byte(tc.raw))
		if id != tc.id || isNull != tc.isNull || (err != nil) != tc.bad {
			t.Errorf("parseID(%s) = %d, %v, %v", tc.raw, id, isNull, err)
		}
	}
}

func TestLikePattern(t *testing.T) {
	if got, want := likePattern(`"a_b%c\d"`), `%"a\_b\%c\\d"%`; got != want {
		t.Errorf("likePattern = %s, want %s", got, want)
	}
}
