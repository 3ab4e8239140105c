package sharkspotter

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
)

// BenchmarkPostgresScan measures PostgresScanner against the fastest way
// to read the same table off the same server: psql running
// COPY (SELECT _id, _key, _value, _etag FROM manta ORDER BY _id) TO STDOUT.
// Each scanner run reports rows/s (rows of the table per second of scan)
// and ratio_vs_copy, plus peak_heap_MB, sampled during the scan, for two
// table sizes: memory must not grow with the table.
//
// The table is shaped like a production shard: ~600-byte values, two copies
// per object over 20 sharks, so the shark holds 10% of the objects.
//
//	./scripts/test.sh -run '^$' -bench PostgresScan -benchtime 3x ./sharkspotter/
func BenchmarkPostgresScan(b *testing.B) {
	if os.Getenv(pgtest.EnvURL) == "" {
		b.Skipf("%s is not set: this benchmark needs a PostgreSQL server (run it through ./scripts/test.sh)", pgtest.EnvURL)
	}
	for _, n := range []int{50_000, 200_000} {
		dsn := pgtest.NewDatabase(b)
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			b.Fatal(err)
		}
		if err := createMantaTable(db, false, false); err != nil {
			b.Fatal(err)
		}
		if _, err := loadRows(db, benchRows(n), 0); err != nil {
			b.Fatal(err)
		}
		var plan []string
		rows, err := db.Query(`EXPLAIN SELECT _id, _key, _value, _etag FROM manta WHERE _id > $1 AND _id <= $2
			AND type = 'object' AND _value LIKE $4 ORDER BY _id LIMIT $3`, 0, pgSpan, DefaultChunk, likePattern(`"`+testShark+`"`))
		if err == nil {
			for rows.Next() {
				var l string
				rows.Scan(&l)
				plan = append(plan, strings.TrimSpace(l))
			}
			rows.Close()
		}
		db.Close()

		copyRate := measureCopy(b, dsn, n)
		b.Logf("%d rows: psql COPY reads %.0f rows/s; scanner plan: %s", n, copyRate, strings.Join(plan, " / "))

		report := func(b *testing.B, start time.Time, peak uint64) {
			rate := float64(n) * float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "rows/s")
			b.ReportMetric(rate/copyRate, "ratio_vs_copy")
			if peak > 0 {
				b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MB")
			}
		}
		b.Run(fmt.Sprintf("rows=%d/raw=select", n), func(b *testing.B) {
			start := time.Now()
			for range b.N {
				readAll(b, dsn, "SELECT _id, _key, _value, _etag FROM manta ORDER BY _id")
			}
			report(b, start, 0)
		})
		for _, mode := range []struct {
			name       string
			exhaustive bool
			noPushdown bool
		}{{"scanner=pushdown", false, false}, {"scanner=client-filter", false, true}, {"scanner=exhaustive", true, false}} {
			b.Run(fmt.Sprintf("rows=%d/%s", n, mode.name), func(b *testing.B) {
				s := &PostgresScanner{DSNs: map[int]string{1: dsn}, noPushdown: mode.noPushdown,
					Options: Options{Shards: []int{1}, Exhaustive: mode.exhaustive, Logger: testutil.Discard()}}
				b.ReportAllocs()
				stop := sampleHeap()
				start := time.Now()
				for range b.N {
					found := 0
					err := s.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark}, func(rebalancer.Object) error {
						found++
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
					if found != n/10 {
						b.Fatalf("found %d objects, want %d", found, n/10)
					}
				}
				report(b, start, stop())
			})
		}
	}
}

// BenchmarkPostgresAccess compares the two ways of reading a table in id
// order in bounded pieces: keyset pagination (what PostgresScanner does)
// and a server-side cursor, each fetching DefaultChunk rows at a time.
func BenchmarkPostgresAccess(b *testing.B) {
	if os.Getenv(pgtest.EnvURL) == "" {
		b.Skipf("%s is not set: this benchmark needs a PostgreSQL server (run it through ./scripts/test.sh)", pgtest.EnvURL)
	}
	const n = 200_000
	dsn := pgtest.NewDatabase(b)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := createMantaTable(db, false, false); err != nil {
		b.Fatal(err)
	}
	if _, err := loadRows(db, benchRows(n), 0); err != nil {
		b.Fatal(err)
	}
	copyRate := measureCopy(b, dsn, n)
	for _, chunk := range []int{500, DefaultChunk, 10000} {
		b.Run(fmt.Sprintf("keyset/chunk=%d", chunk), func(b *testing.B) {
			start := time.Now()
			for range b.N {
				var last int64
				for got := chunk; got == chunk; {
					got = 0
					rows, err := db.Query(`SELECT _id, _key, _value, _etag FROM manta WHERE _id > $1 AND type = 'object'
						ORDER BY _id LIMIT $2`, last, chunk)
					if err != nil {
						b.Fatal(err)
					}
					for rows.Next() {
						var key, value, etag sql.RawBytes
						if err := rows.Scan(&last, &key, &value, &etag); err != nil {
							b.Fatal(err)
						}
						got++
					}
					if err := rows.Close(); err != nil {
						b.Fatal(err)
					}
				}
			}
			rate := float64(n) * float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "rows/s")
			b.ReportMetric(rate/copyRate, "ratio_vs_copy")
		})
		b.Run(fmt.Sprintf("cursor/chunk=%d", chunk), func(b *testing.B) {
			start := time.Now()
			for range b.N {
				tx, err := db.Begin()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.Exec(`DECLARE c NO SCROLL CURSOR FOR SELECT _id, _key, _value, _etag FROM manta
					WHERE _id > 0 AND type = 'object' ORDER BY _id`); err != nil {
					b.Fatal(err)
				}
				for got := chunk; got == chunk; {
					got = 0
					rows, err := tx.Query(fmt.Sprintf("FETCH %d FROM c", chunk))
					if err != nil {
						b.Fatal(err)
					}
					for rows.Next() {
						var id int64
						var key, value, etag sql.RawBytes
						if err := rows.Scan(&id, &key, &value, &etag); err != nil {
							b.Fatal(err)
						}
						got++
					}
					if err := rows.Close(); err != nil {
						b.Fatal(err)
					}
				}
				tx.Rollback()
			}
			rate := float64(n) * float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "rows/s")
			b.ReportMetric(rate/copyRate, "ratio_vs_copy")
		})
	}
}

// benchRows is a table of n objects, each on two of 20 sharks, so that
// testShark holds exactly one in ten.
func benchRows(n int) []fixtureRow {
	rows := make([]fixtureRow, n)
	acct := uuid.NewString()
	for i := range n {
		id := int64(i + 1)
		objID := uuid.NewString()
		a, c := i%20, (i+10)%20
		sharks := fmt.Sprintf(`[{"datacenter":"us-east-%d","manta_storage_id":"%d.stor.example.com"},`+
			`{"datacenter":"us-east-%d","manta_storage_id":"%d.stor.example.com"}]`, a%3, a+1, c%3, c+1)
		key := fmt.Sprintf("/%s/stor/logs/manatee-sitter/2019/10/%02d/%02d/%s.log", acct, i%28+1, i%24, objID[:8])
		rows[i] = fixtureRow{id: id, key: key, typ: "object", value: fmt.Sprintf(
			`{"contentLength":%d,"contentMD5":"L9NrIZXTY37AYVZN9+gZ7w==","contentType":"text/plain","creator":%q,`+
				`"dirname":%q,"etag":%q,"headers":{"m-custom":"value"},"key":%q,"mtime":1570611723062,"name":"%s.log",`+
				`"objectId":%q,"owner":%q,"roles":[],"sharks":%s,"type":"object","vnode":%d}`,
			9099176+i, acct, key[:strings.LastIndex(key, "/")], objID, key, objID[:8], objID, acct, sharks, i%131072)}
	}
	return rows
}

// measureCopy times psql's COPY of the table (the best of three) and
// returns rows per second.
func measureCopy(b *testing.B, dsn string, n int) float64 {
	b.Helper()
	psql, err := exec.LookPath("psql")
	if err != nil {
		b.Skipf("no psql binary for the COPY baseline: %v", err)
	}
	var best time.Duration
	for range 3 {
		cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn, "-c",
			"COPY (SELECT _id, _key, _value, _etag FROM manta ORDER BY _id) TO STDOUT")
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("psql COPY: %v", err)
		}
		if d := time.Since(start); best == 0 || d < best {
			best = d
		}
	}
	return float64(n) / best.Seconds()
}

// readAll streams a query's rows with lib/pq, keeping nothing.
func readAll(b *testing.B, dsn, q string) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(q)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var key, value, etag sql.RawBytes
		if err := rows.Scan(&id, &key, &value, &etag); err != nil {
			b.Fatal(err)
		}
	}
	if err := rows.Close(); err != nil {
		b.Fatal(err)
	}
}

// sampleHeap samples the live heap until the returned function is called,
// which returns the peak.
func sampleHeap() (stop func() uint64) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var (
		mu   sync.Mutex
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			mu.Lock()
			peak = max(peak, s[0].Value.Uint64())
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// BenchmarkBucketsScan measures the buckets scanners against psql COPY of
// the same rows (every vnode's manta_bucket_object in key order) off the
// same server. The shards hold n objects over 64 vnodes and 12 buckets, each
// object on two of 20 sharks (testShark holds one in ten), with headers and
// properties as buckets-api writes them.
//
//	./scripts/test.sh -run '^$' -bench BucketsScan -benchtime 3x ./sharkspotter/
func BenchmarkBucketsScan(b *testing.B) {
	if os.Getenv(pgtest.EnvURL) == "" {
		b.Skipf("%s is not set: this benchmark needs a PostgreSQL server (run it through ./scripts/test.sh)", pgtest.EnvURL)
	}
	const n, vnodes = 100_000, 64
	dsn := pgtest.NewDatabase(b)
	ctx := context.Background()
	var vs []uint64
	for v := range uint64(vnodes) {
		vs = append(vs, v)
	}
	srv, err := mdapitest.New(ctx, mdapitest.Options{DSN: dsn, Vnodes: vs})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	var buckets []string
	for i := range 12 {
		bk, err := srv.CreateBucket(ctx, mdapitest.Bucket{Vnode: uint64(i * 5), Owner: v2Owner, Name: fmt.Sprintf("b%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		buckets = append(buckets, bk.ID)
	}
	var selects []string
	for v := range vnodes {
		// Rows g of vnode v: g ≡ v (mod vnodes), in bucket g mod 12.
		q := fmt.Sprintf(`INSERT INTO manta_bucket_%[1]d.manta_bucket_object (id, name, owner, bucket_id, created, modified,
				content_length, content_md5, content_type, headers, sharks, properties)
			SELECT gen_random_uuid(), 'logs/2019/10/' || g || '.log', $1::uuid, ($2::uuid[])[g %% 12 + 1], now(), now(),
				9099176 + g, decode('2fd36b2195d3637ec061564df7e819ef', 'hex'), 'text/plain', 'm-custom=>value'::hstore,
				ARRAY['us-east-' || (g %% 3) || ':' || (g %% 20 + 1) || '.stor.example.com',
				      'us-east-' || ((g + 10) %% 3) || ':' || ((g + 10) %% 20 + 1) || '.stor.example.com'],
				'{"roles":[],"tags":{"env":"prod"}}'::jsonb
			FROM generate_series(%[1]d, %[2]d, %[3]d) g`, v, n-1, vnodes)
		if _, err := srv.DB().Exec(q, v2Owner, pq.Array(buckets)); err != nil {
			b.Fatal(err)
		}
		selects = append(selects, fmt.Sprintf("(SELECT * FROM manta_bucket_%d.manta_bucket_object ORDER BY owner, bucket_id, name)", v))
	}
	if _, err := srv.DB().Exec("ANALYZE"); err != nil {
		b.Fatal(err)
	}
	copyRate := measureCopyQuery(b, dsn, n, strings.Join(selects, " UNION ALL "))
	b.Logf("%d rows in %d vnodes: psql COPY reads %.0f rows/s", n, vnodes, copyRate)
	clients := mdapi.NewShards(mdapi.StaticShards{1: srv.Addr()}, mdapi.Options{})
	defer clients.Close()
	for _, mode := range []struct {
		name string
		s    rebalancer.ObjectSource
	}{
		{"postgres/pushdown", &BucketsPostgresScanner{DSNs: map[int]string{1: dsn}, Options: Options{Shards: []int{1}, Logger: testutil.Discard()}}},
		{"postgres/exhaustive", &BucketsPostgresScanner{DSNs: map[int]string{1: dsn}, Options: Options{Shards: []int{1}, Exhaustive: true, Logger: testutil.Discard()}}},
		{"mdapi", &BucketsMdapiScanner{Clients: clients, Options: Options{Shards: []int{1}, Logger: testutil.Discard()}}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			b.ReportAllocs()
			stop := sampleHeap()
			start := time.Now()
			for range b.N {
				found := 0
				err := mode.s.Discover(ctx, rebalancer.DiscoverRequest{Shark: testShark}, func(rebalancer.Object) error {
					found++
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				if found != n/10 {
					b.Fatalf("found %d objects, want %d", found, n/10)
				}
			}
			rate := float64(n) * float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "rows/s")
			b.ReportMetric(rate/copyRate, "ratio_vs_copy")
			b.ReportMetric(float64(stop())/(1<<20), "peak_heap_MB")
		})
	}
}

// measureCopyQuery is measureCopy for any query.
func measureCopyQuery(b *testing.B, dsn string, n int, query string) float64 {
	b.Helper()
	psql, err := exec.LookPath("psql")
	if err != nil {
		b.Skipf("no psql binary for the COPY baseline: %v", err)
	}
	var best time.Duration
	for range 3 {
		cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn, "-c", "COPY ("+query+") TO STDOUT")
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("psql COPY: %v", err)
		}
		if d := time.Since(start); best == 0 || d < best {
			best = d
		}
	}
	return float64(n) / best.Seconds()
}
