package sharkspotter

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// pgShardSpec describes one shard's database.
type pgShardSpec struct {
	rows        int
	intID       bool  // _id INTEGER, as on older shards
	extendedIDs int64 // ids from this one on are in _idx (with _id NULL)
	badAt       int64 // see morayShardSpec
	noTable     bool
}

type pgFixture struct {
	dsns  map[int]string
	dbs   map[int]*sql.DB
	rows  map[int][]fixtureRow
	etags map[int]map[string]string
}

// createMantaTable creates the manta bucket's table as Moray does: its
// sequence, the internal columns, the index columns of node-libmanta's
// bucket (lower-cased), and a btree index on each.
func createMantaTable(db *sql.DB, intID, extended bool) error {
	idType := "BIGINT"
	if intID {
		idType = "INTEGER"
	}
	ddl := []string{
		"CREATE SEQUENCE manta_serial",
		`CREATE TABLE manta (_id ` + idType + ` DEFAULT nextval('manta_serial'), _txn_snap INTEGER, _key TEXT PRIMARY KEY,
			_value TEXT NOT NULL, _etag CHAR(8) NOT NULL, _mtime BIGINT NOT NULL, _vnode BIGINT,
			dirname TEXT, name TEXT, owner TEXT, objectid TEXT, type TEXT)`,
	}
	cols := []string{"_id", "_etag", "_mtime", "_vnode", "dirname", "name", "owner", "objectid", "type"}
	if extended {
		ddl = append(ddl, "ALTER TABLE manta ADD COLUMN _idx BIGINT")
		cols = append(cols, "_idx")
	}
	for _, c := range cols {
		ddl = append(ddl, fmt.Sprintf("CREATE INDEX manta_%s_idx ON manta USING btree (%s) WHERE %s IS NOT NULL", c, c, c))
	}
	for _, q := range ddl {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// loadRows copies rows into the manta table. Rows from extendedFrom on
// (when positive) get their id in _idx.
func loadRows(db *sql.DB, rows []fixtureRow, extendedFrom int64) (map[string]string, error) {
	etags := make(map[string]string, len(rows))
	tx, err := db.Begin()
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	cols := "_id, _key, _value, _etag, _mtime, _vnode, dirname, name, owner, objectid, type"
	if extendedFrom > 0 {
		cols += ", _idx"
	}
	stmt, err := tx.Prepare("COPY manta (" + cols + ") FROM STDIN")
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		var v struct {
			Dirname, Name, Owner, ObjectID string
			Vnode                          int64
		}
		json.Unmarshal([]byte(r.value), &v)
		etag := moraytest.Etag([]byte(r.value))
		etags[r.key] = etag
		args := []any{r.id, r.key, r.value, etag, 1570611723062, v.Vnode, v.Dirname, v.Name, v.Owner, v.ObjectID, r.typ}
		if extendedFrom > 0 {
			if r.id >= extendedFrom {
				args[0] = nil
				args = append(args, r.id)
			} else {
				args = append(args, nil)
			}
		}
		if _, err := stmt.Exec(args...); err != nil {
			return nil, err
		}
	}
	if _, err := stmt.Exec(); err != nil {
		return nil, err
	}
	if err := stmt.Close(); err != nil {
		return nil, err
	}
	if _, err := tx.Exec("ANALYZE manta"); err != nil {
		return nil, err
	}
	return etags, tx.Commit()
}

func newPGFixture(t testing.TB, specs map[int]pgShardSpec) *pgFixture {
	t.Helper()
	f := &pgFixture{dsns: map[int]string{}, dbs: map[int]*sql.DB{}, rows: map[int][]fixtureRow{}, etags: map[int]map[string]string{}}
	for shard, spec := range specs {
		dsn := pgtest.NewDatabase(t)
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		f.dsns[shard], f.dbs[shard] = dsn, db
		if spec.noTable {
			continue
		}
		if err := createMantaTable(db, spec.intID, spec.extendedIDs > 0); err != nil {
			t.Fatal(err)
		}
		rows := morayShardSpec{rows: spec.rows, badAt: spec.badAt}.shardRows(shard)
		if f.etags[shard], err = loadRows(db, rows, spec.extendedIDs); err != nil {
			t.Fatal(err)
		}
		f.rows[shard] = rows
	}
	return f
}

func (f *pgFixture) scanner(shards ...int) *PostgresScanner {
	return &PostgresScanner{
		DSNs:         f.dsns,
		Shards:       shards,
		Workers:      2,
		Chunk:        100,
		span:         150, // spans end some queries, the chunk others
		RetryBackoff: time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func (f *pgFixture) want(exclude bool) map[int]map[string]fixtureRow {
	out := map[int]map[string]fixtureRow{}
	for shard, rows := range f.rows {
		out[shard] = wanted(rows, exclude)
	}
	return out
}

// check checks what a scan found; values must be byte for byte as stored.
func (f *pgFixture) check(t *testing.T, objs []rebalancer.Object, exclude bool) {
	t.Helper()
	checkFound(t, objs, f.want(exclude), f.etags, func(got json.RawMessage, r fixtureRow) bool {
		return string(got) == r.value
	})
}

func TestPostgresFindsEveryObjectOnce(t *testing.T) {
	f := newPGFixture(t, map[int]pgShardSpec{
		1: {rows: 1500},
		2: {rows: 700, intID: true},
		3: {rows: 1200, intID: true, extendedIDs: 800},
		6: {rows: 0},
	})
	for _, mode := range []struct {
		name       string
		exhaustive bool
		noPushdown bool
	}{{"prefilter in SQL", false, false}, {"prefilter in Go", false, true}, {"exhaustive", true, false}} {
		t.Run(mode.name, func(t *testing.T) {
			s := f.scanner(1, 2, 3, 6)
			s.Exhaustive, s.noPushdown = mode.exhaustive, mode.noPushdown
			done := map[int]Progress{}
			s.OnProgress = func(p Progress) {
				if p.Done {
					done[p.Shard] = p
				}
			}
			col := newCollector(t)
			if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
				t.Fatal(err)
			}
			f.check(t, col.objs, false)
			for shard, max := range map[int]int64{1: 1500, 2: 700, 3: 1200} {
				if p := done[shard]; p.Max != max || p.Found != int64(len(f.want(false)[shard])) {
					t.Errorf("shard %d final progress %+v, want max %d", shard, p, max)
				}
			}
			if p, ok := done[6]; !ok || p.Found != 0 {
				t.Errorf("empty shard 6: %+v", p)
			}
		})
	}
}

func TestPostgresSparseIDs(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := createMantaTable(db, false, false); err != nil {
		t.Fatal(err)
	}
	// Two runs of ids, far apart: the scan crosses the empty ids a span at
	// a time and reports its progress through them.
	rows := append(fixtureRows(1, 1, 200), fixtureRows(1, 3*pgSpan, 200)...)
	f := &pgFixture{dsns: map[int]string{1: dsn}, rows: map[int][]fixtureRow{1: rows}, etags: map[int]map[string]string{}}
	if f.etags[1], err = loadRows(db, rows, 0); err != nil {
		t.Fatal(err)
	}
	s := f.scanner(1)
	s.span = 0 // the default
	var throughs []int64
	s.OnProgress = func(p Progress) { throughs = append(throughs, p.Through) }
	col := newCollector(t)
	if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
		t.Fatal(err)
	}
	f.check(t, col.objs, false)
	if !slices.Contains(throughs, pgSpan) || !slices.Contains(throughs, 2*pgSpan) {
		t.Errorf("progress %v does not go through the empty spans", throughs)
	}
}

func TestPostgresExcludeKeyPrefixesAndEndID(t *testing.T) {
	f := newPGFixture(t, map[int]pgShardSpec{1: {rows: 600}, 2: {rows: 600, extendedIDs: 301}})
	s := f.scanner(1, 2)
	s.ExcludeKeyPrefixes = []string{excludedDir, "/nothing/like/this/"}
	col := newCollector(t)
	if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
		t.Fatal(err)
	}
	f.check(t, col.objs, true)

	s.ExcludeKeyPrefixes = []string{"none"}
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

func TestPostgresResume(t *testing.T) {
	f := newPGFixture(t, map[int]pgShardSpec{1: {rows: 700}, 2: {rows: 700, extendedIDs: 350}, 3: {rows: 700, intID: true}})
	s := f.scanner(1, 2, 3)
	req := rebalancer.DiscoverRequest{Shark: testShark}
	stop := errors.New("stop")
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
}

func TestPostgresShardFailureIsReported(t *testing.T) {
	f := newPGFixture(t, map[int]pgShardSpec{1: {rows: 1000}, 2: {rows: 2000}, 3: {rows: 1000}, 4: {noTable: true}})
	s := f.scanner(1, 2, 3, 4)
	s.Chunk = 20
	col := newCollector(t)
	dropped := false
	col.onVisit = func(o rebalancer.Object) {
		// The table goes away under shard 2's scan.
		if o.Shard == 2 && !dropped {
			dropped = true
			if _, err := f.dbs[2].Exec("DROP TABLE manta"); err != nil {
				t.Error(err)
			}
		}
	}
	err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
	if err == nil {
		t.Fatal("no error")
	}
	var se *ShardError
	if !errors.As(err, &se) || se.Shard != 2 {
		t.Errorf("first shard error %v, want shard 2", se)
	}
	if pe := pq.As(err); pe == nil || pe.Code != "42P01" {
		t.Errorf("%v does not wrap PostgreSQL's undefined_table", err)
	}
	for _, want := range []string{"2 of 4 shards failed [2 4]", "shard 2:", "shard 4:", `relation "manta" does not exist`} {
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
}

// cutProxy forwards connections to a PostgreSQL server and, once armed,
// cuts the connection carrying the next reply of more than a few bytes in
// the middle of it, as a failing network or a restarting server would.
type cutProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	cuts   atomic.Int32
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, dsn string) (*cutProxy, string) {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: u.Host}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.wg.Add(2)
		go func() { // client to server
			defer p.wg.Done()
			io.Copy(s, c)
			s.Close()
		}()
		go func() { // server to client, cut when armed
			defer p.wg.Done()
			defer c.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 1000 && p.armed.CompareAndSwap(true, false) {
					c.Write(buf[:n/2])
					p.cuts.Add(1)
					s.Close()
					return
				}
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						s.Close()
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
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

func TestPostgresConnectionCutMidScan(t *testing.T) {
	f := newPGFixture(t, map[int]pgShardSpec{1: {rows: 1500}, 2: {rows: 1500, extendedIDs: 1000}})
	proxy, dsn := newCutProxy(t, f.dsns[2])
	f.dsns[2] = dsn
	for _, retries := range []int{0, -1} {
		t.Run(fmt.Sprintf("retries=%d", retries), func(t *testing.T) {
			s := f.scanner(1, 2)
			s.Chunk = 50
			s.Retries = retries
			var warns atomic.Int32
			s.Logger = slog.New(countingHandler{slog.DiscardHandler, &warns})
			cuts := proxy.cuts.Load()
			armed := 0
			s.OnProgress = func(p Progress) {
				// Twice, in the middle of shard 2.
				if p.Shard == 2 && p.Through > 300*int64(armed+1) && armed < 2 {
					armed++
					proxy.armed.Store(true)
				}
			}
			col := newCollector(t)
			err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
			proxy.armed.Store(false)
			if proxy.cuts.Load() == cuts {
				t.Fatal("the proxy cut no connection")
			}
			if retries < 0 {
				var se *ShardError
				if !errors.As(err, &se) || se.Shard != 2 || !pgTransient(err) {
					t.Fatalf("got %v, want shard 2's connection error", err)
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
}

func TestPostgresUnreachableShard(t *testing.T) {
	f := newPGFixture(t, map[int]pgShardSpec{1: {rows: 200}})
	f.dsns[2] = "postgres://postgres@127.0.0.1:1/moray?sslmode=disable&connect_timeout=5"
	s := f.scanner(1, 2)
	s.Retries = 2
	col := newCollector(t)
	err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
	var se *ShardError
	if !errors.As(err, &se) || se.Shard != 2 || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("got %v, want shard 2's connection error after retries", err)
	}
	f.check(t, col.objs, false)
}

func TestPostgresBadRowsAreReported(t *testing.T) {
	f := newPGFixture(t, map[int]pgShardSpec{1: {rows: 300, badAt: 150}, 2: {rows: 100}})
	s := f.scanner(1, 2)
	col := newCollector(t)
	err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
	var re *RowError
	if !errors.As(err, &re) || re.ID != 150 || re.Shard != 1 || re.Key != badRow(150).key {
		t.Fatalf("got %v, want a RowError for shard 1 row 150", err)
	}
	f.check(t, col.objs, false)
}

func TestPostgresCancel(t *testing.T) {
	f := newPGFixture(t, map[int]pgShardSpec{1: {rows: 1000}, 2: {rows: 1000}, 3: {rows: 1000}})
	s := f.scanner(1, 2, 3)
	s.Chunk = 10
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	col := newCollector(t)
	col.onVisit = func(rebalancer.Object) {
		if len(col.objs) == 25 {
			cancel()
		}
	}
	err := s.Discover(ctx, rebalancer.DiscoverRequest{Shark: testShark}, col.visit)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if len(col.objs) != 25 {
		t.Errorf("visit called %d times after the cancel at 25", len(col.objs))
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Discover returned, %d before", n, before)
	}
}

func TestPostgresConfig(t *testing.T) {
	req := rebalancer.DiscoverRequest{Shark: testShark}
	visit := func(rebalancer.Object) error { return nil }
	err := (&PostgresScanner{Shards: []int{1, 2}, DSNs: map[int]string{1: "postgres://x/moray"}}).Discover(context.Background(), req, visit)
	if err == nil || !strings.Contains(err.Error(), "no Domain and no DSN for shards [2]") {
		t.Errorf("missing DSN: %v", err)
	}
	if err := (&PostgresScanner{Domain: "x", Shards: []int{1}, Chunk: -1}).Discover(context.Background(), req, visit); err == nil {
		t.Error("negative chunk accepted")
	}
	s := &PostgresScanner{Domain: "us-east.example.com", DSNs: map[int]string{3: "postgres://h/db"}}
	if got, want := s.dsn(2), "host=2.rebalancer-postgres.us-east.example.com port=5432 user=postgres dbname=moray sslmode=disable connect_timeout=10 fallback_application_name=sharkspotter"; got != want {
		t.Errorf("dsn(2) = %q, want %q", got, want)
	}
	if got := s.dsn(3); got != "postgres://h/db" {
		t.Errorf("dsn(3) = %q", got)
	}
}

func TestPGTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pq.Error{Code: "57P01"}, true},
		{&pq.Error{Code: "08006"}, true},
		{fmt.Errorf("wrapped: %w", &pq.Error{Code: "53300"}), true},
		{&pq.Error{Code: "42P01"}, false},
		{&pq.Error{Code: "42703"}, false},
		{io.ErrUnexpectedEOF, true},
		{context.Canceled, false},
		{errors.New("other"), false},
	} {
		if got := pgTransient(tc.err); got != tc.want {
			t.Errorf("pgTransient(%v) = %v", tc.err, got)
		}
	}
}
