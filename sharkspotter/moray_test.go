package sharkspotter

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lib/pq"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
)

// newMorayFixture serves each shard from its own moraytest server, with
// the manta bucket as node-libmanta creates it.
func newMorayFixture(t *testing.T, specs map[int]shardSpec) *scanFixture {
	f, _, _ := loadMoray(t, specs)
	return f
}

// loadMoray is newMorayFixture, also returning the servers and clients.
func loadMoray(t *testing.T, specs map[int]shardSpec) (*scanFixture, map[int]*moraytest.Server, *moray.Shards) {
	t.Helper()
	servers := map[int]*moraytest.Server{}
	f := &scanFixture{t: t, rows: map[int][]fixtureRow{}, etags: map[int]map[string]string{}, transient: moray.IsTransient,
		// Moray keeps what node made of a value (2^60 becomes
		// 1152921504606847000); the rows hold what was read back.
		sameValue: func(got json.RawMessage, r fixtureRow) bool { return sameJSON(got, []byte(r.value)) }}
	addrs := moray.StaticShards{}
	f.put = func(t *testing.T, shard int, r fixtureRow) {
		srv := servers[shard]
		etag, err := srv.Put("manta", r.key, json.RawMessage(r.value))
		if err != nil {
			t.Fatal(err)
		}
		o, err := srv.Get("manta", r.key)
		if err != nil {
			t.Fatal(err)
		}
		if o.ID != r.id {
			t.Fatalf("shard %d: %s got id %d, want %d", shard, r.key, o.ID, r.id)
		}
		f.etags[shard][r.key] = etag
		r.value = string(o.Value)
		f.rows[shard] = append(f.rows[shard], r)
	}
	for shard, spec := range specs {
		srv := moraytest.Start(t)
		servers[shard] = srv
		addrs[shard] = srv.Addr()
		if spec.noTable {
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
			f.put(t, shard, r)
		}
	}
	clients := moray.NewShards(addrs, moray.Options{Conns: 1, Logger: testutil.Logger(t)})
	t.Cleanup(func() { clients.Close() })
	f.newScanner = func(o Options) rebalancer.ObjectSource {
		return &MorayScanner{Options: o, Clients: clients, Window: 100}
	}
	f.dropTable = func(shard int) {
		servers[shard].SetHook(func(r moraytest.Request) moraytest.Action {
			if r.Method == "sql" {
				return moraytest.Action{Error: &fast.Error{Name: "error", Message: `relation "manta" does not exist`}}
			}
			return moraytest.Action{}
		})
	}
	var cuts atomic.Int32
	f.cuts = func() int { return int(cuts.Load()) }
	f.cut = func(shard int) {
		var once atomic.Bool
		servers[shard].SetHook(func(r moraytest.Request) moraytest.Action {
			if r.Method == "sql" && once.CompareAndSwap(false, true) {
				cuts.Add(1)
				return moraytest.Action{Drop: true}
			}
			return moraytest.Action{}
		})
	}
	f.unreachable = func(shard int) { servers[shard].Offline() }
	return f, servers, clients
}

// Every statement is one the legacy sharkspotter sends, or the question to
// information_schema that replaces its failing SELECT MAX(_idx) on shards
// without the column; the _idx windows start above the last _id rather
// than at 1.
func TestMorayLegacyStatements(t *testing.T) {
	f, servers, _ := loadMoray(t, map[int]shardSpec{1: {rows: 1200}, 4: {rows: 1500, extendedIDs: 901}})
	legacy := regexp.MustCompile(`^SELECT MAX\((_id|_idx)\) FROM manta;$|` +
		`^SELECT \* FROM manta WHERE (_id|_idx) >= \d+ AND (_id|_idx) <= \d+( AND type = 'object')? LIMIT \d+;$`)
	statements := map[int]*sync.Map{}
	for shard, srv := range servers {
		sent := &sync.Map{}
		statements[shard] = sent
		srv.SetHook(func(r moraytest.Request) moraytest.Action {
			if r.Method == "sql" {
				var stmt string
				json.Unmarshal(r.Args[0], &stmt)
				if !legacy.MatchString(stmt) && stmt != idxColumnQuery {
					t.Errorf("statement %q is not of the legacy shapes", stmt)
				}
				sent.Store(stmt, true)
			}
			return moraytest.Action{}
		})
	}
	col := newCollector(t)
	if err := f.scanner(1, 4).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
		t.Fatal(err)
	}
	f.check(t, col.objs, false)
	for _, stmt := range []string{
		idxColumnQuery,
		"SELECT MAX(_idx) FROM manta;",
		"SELECT * FROM manta WHERE _idx >= 901 AND _idx <= 1000 AND type = 'object' LIMIT 100;",
		"SELECT * FROM manta WHERE _id >= 801 AND _id <= 900 AND type = 'object' LIMIT 100;",
	} {
		if _, ok := statements[4].Load(stmt); !ok {
			t.Errorf("statement %q not sent to the shard with _idx", stmt)
		}
	}
	if _, ok := statements[4].Load("SELECT * FROM manta WHERE _idx >= 1 AND _idx <= 100 AND type = 'object' LIMIT 100;"); ok {
		t.Error("_idx windows scanned below the first extended id")
	}
	// The shard without the column is asked about it, and sent nothing
	// that names it: no statement fails, so none leaves an ERROR in its
	// PostgreSQL's log.
	if _, ok := statements[1].Load(idxColumnQuery); !ok {
		t.Error("the shard without _idx was not asked whether it has it")
	}
	statements[1].Range(func(k, _ any) bool {
		if stmt := k.(string); stmt != idxColumnQuery && strings.Contains(stmt, "_idx") {
			t.Errorf("statement %q sent to the shard without _idx", stmt)
		}
		return true
	})
}

// The question about _idx is valid PostgreSQL that fails on neither shape
// of the manta table, and tells them apart; the legacy's way of asking
// fails on the table without the column.
func TestIdxColumnQueryOnPostgres(t *testing.T) {
	for _, extended := range []bool{false, true} {
		db, err := sql.Open("postgres", pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := createMantaTable(db, false, extended); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Query(idxColumnQuery)
		if err != nil {
			t.Fatalf("extended %v: %v", extended, err)
		}
		var cols []string
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				t.Fatal(err)
			}
			cols = append(cols, c)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 0, true: 1}[extended]; len(cols) != want || want == 1 && cols[0] != "_idx" {
			t.Errorf("extended %v: rows %q", extended, cols)
		}
		_, err = db.Exec("SELECT MAX(_idx) FROM manta;")
		var pqErr *pq.Error
		if gotErr := errors.As(err, &pqErr) && pqErr.Code == "42703"; gotErr == extended {
			t.Errorf("extended %v: SELECT MAX(_idx): %v", extended, err)
		}
	}
}

// Moray's own transient error (no database peers) is retried like a lost
// connection; without retries it is the shard's error.
func TestMorayRetriesNoDatabasePeers(t *testing.T) {
	f, servers, _ := loadMoray(t, map[int]shardSpec{1: {rows: 400}, 2: {rows: 400}})
	peers := &fast.Error{Name: "NoDatabasePeersError", Message: "no database peers available"}
	servers[1].FailNext("sql", 3, peers)
	col := newCollector(t)
	if err := f.scanner(1, 2).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, col.visit); err != nil {
		t.Fatal(err)
	}
	f.check(t, col.objs, false)

	servers[1].FailNext("sql", 1, peers)
	o := f.opts(1, 2)
	o.Retries = -1
	err := f.newScanner(o).Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, newCollector(t).visit)
	var se *ShardError
	if !errors.As(err, &se) || se.Shard != 1 || !moray.IsTransient(err) {
		t.Errorf("got %v, want shard 1's transient error", err)
	}
}

func TestMorayConfigErrors(t *testing.T) {
	req := rebalancer.DiscoverRequest{Shark: testShark}
	visit := func(rebalancer.Object) error { return nil }
	one := Options{Shards: []int{1}}
	if err := (&MorayScanner{Options: one}).Discover(context.Background(), req, visit); err == nil || !strings.Contains(err.Error(), "no Clients") {
		t.Errorf("no clients: %v", err)
	}
	shards := moray.NewShards(moray.StaticShards{}, moray.Options{})
	defer shards.Close()
	if err := (&MorayScanner{Clients: shards, Options: one, Window: -1}).Discover(context.Background(), req, visit); err == nil {
		t.Error("negative window accepted")
	}
	// A shard with no address fails alone, at once, naming the shard.
	err := (&MorayScanner{Clients: shards, Options: Options{Shards: []int{9}}}).Discover(context.Background(), req, visit)
	if !errors.Is(err, moray.ErrUnknownShard) || !strings.Contains(err.Error(), "shard 9") {
		t.Errorf("unknown shard: %v", err)
	}
}
