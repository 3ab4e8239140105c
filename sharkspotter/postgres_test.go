package sharkspotter

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lib/pq"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

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

// newPGFixture gives each shard a database of its own on the test server,
// with the manta table as Moray creates it, read through a proxy that can
// cut connections.
func newPGFixture(t *testing.T, specs map[int]shardSpec) *scanFixture {
	t.Helper()
	f := &scanFixture{t: t, rows: map[int][]fixtureRow{}, etags: map[int]map[string]string{}, transient: pgTransient,
		// PostgreSQL hands values back byte for byte.
		sameValue: func(got json.RawMessage, r fixtureRow) bool { return string(got) == r.value }}
	dsns := map[int]string{}
	dbs := map[int]*sql.DB{}
	proxies := map[int]*cutProxy{}
	for shard, spec := range specs {
		dsn := pgtest.NewDatabase(t)
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[shard] = db
		proxies[shard], dsns[shard] = newCutProxy(t, dsn)
		if spec.noTable {
			continue
		}
		if err := createMantaTable(db, spec.intID, spec.extendedIDs > 0); err != nil {
			t.Fatal(err)
		}
		rows := spec.shardRows(shard)
		if f.etags[shard], err = loadRows(db, rows, spec.extendedIDs); err != nil {
			t.Fatal(err)
		}
		f.rows[shard] = rows
	}
	f.put = func(t *testing.T, shard int, r fixtureRow) {
		etags, err := loadRows(dbs[shard], []fixtureRow{r}, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.etags[shard][r.key] = etags[r.key]
		f.rows[shard] = append(f.rows[shard], r)
	}
	f.newScanner = func(o Options) rebalancer.ObjectSource {
		// Spans end some queries, the chunk others.
		return &PostgresScanner{Options: o, DSNs: dsns, Chunk: 100, span: 150}
	}
	f.dropTable = func(shard int) {
		if _, err := dbs[shard].Exec("DROP TABLE manta"); err != nil {
			t.Error(err)
		}
	}
	f.cut = func(shard int) { proxies[shard].armed.Store(true) }
	f.cuts = func() int {
		n := 0
		for _, p := range proxies {
			n += int(p.cuts.Load())
		}
		return n
	}
	f.unreachable = func(shard int) {
		dsns[shard] = "postgres://postgres@127.0.0.1:1/moray?sslmode=disable&connect_timeout=5"
	}
	return f
}

// The SQL prefilter and the one in Go find the same objects.
func TestPostgresPrefilters(t *testing.T) {
	f := newPGFixture(t, map[int]shardSpec{1: {rows: 1500}, 3: {rows: 1200, intID: true, extendedIDs: 800}})
	for _, noPushdown := range []bool{false, true} {
		t.Run(fmt.Sprintf("in Go=%v", noPushdown), func(t *testing.T) {
			s := f.newScanner(f.opts(1, 3)).(*PostgresScanner)
			s.noPushdown = noPushdown
			col := newCollector(t)
			if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
				t.Fatal(err)
			}
			f.check(t, col.objs, false)
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
	etags, err := loadRows(db, rows, 0)
	if err != nil {
		t.Fatal(err)
	}
	var throughs []int64
	s := &PostgresScanner{DSNs: map[int]string{1: dsn}, Chunk: 100, Options: Options{Shards: []int{1}, Logger: testutil.Logger(t),
		OnProgress: func(p Progress) { throughs = append(throughs, p.Through) }}}
	col := newCollector(t)
	if err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
		t.Fatal(err)
	}
	checkFound(t, col.objs, map[int]map[string]fixtureRow{1: wanted(rows, false)}, map[int]map[string]string{1: etags},
		func(got json.RawMessage, r fixtureRow) bool { return string(got) == r.value })
	if !slices.Contains(throughs, pgSpan) || !slices.Contains(throughs, 2*pgSpan) {
		t.Errorf("progress %v does not go through the empty spans", throughs)
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

func TestPostgresConfig(t *testing.T) {
	req := rebalancer.DiscoverRequest{Shark: testShark}
	visit := func(rebalancer.Object) error { return nil }
	err := (&PostgresScanner{Options: Options{Shards: []int{1, 2}}, DSNs: map[int]string{1: "postgres://x/moray"}}).Discover(context.Background(), req, visit)
	if err == nil || !strings.Contains(err.Error(), "no Domain and no DSN for shards [2]") {
		t.Errorf("missing DSN: %v", err)
	}
	if err := (&PostgresScanner{Domain: "x", Options: Options{Shards: []int{1}}, Chunk: -1}).Discover(context.Background(), req, visit); err == nil {
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
