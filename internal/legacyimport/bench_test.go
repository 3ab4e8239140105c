package legacyimport

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/pgstore"
	"github.com/TritonDataCenter/rebalancer/evacuate/sqlitestore"
	"github.com/TritonDataCenter/rebalancer/internal/legacydb"
	"github.com/TritonDataCenter/rebalancer/internal/legacydb/legacytest"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

// largeLegacyJob lays out one legacy job of n objects whose metadata is the
// size of a real Moray value (about 600 bytes), a tenth of them skipped,
// and n/10 duplicates.
func largeLegacyJob(b *testing.B, n int) *legacydb.Reader {
	b.Helper()
	jobsURL := pgtest.NewDatabase(b)
	job := &legacytest.Job{ID: "b16b16b1-0000-4000-8000-000000000000", Action: "evacuate", State: "complete", Release: legacytest.MANTA5484,
		FromShark: `{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}`}
	legacytest.Layout(b, jobsURL, &legacytest.Set{Jobs: []*legacytest.Job{job}})
	const value = `{"dirname":"/61368287-aa5b-6c0f-f3a9-931a228215e4/stor/logs/2019/10","key":"/61368287-aa5b-6c0f-f3a9-931a228215e4/stor/logs/2019/10/OBJECTID.log",` +
		`"headers":{"m-source":"cron"},"mtime":1570611723062,"name":"OBJECTID.log","creator":"61368287-aa5b-6c0f-f3a9-931a228215e4",` +
		`"owner":"61368287-aa5b-6c0f-f3a9-931a228215e4","roles":[],"type":"object","contentLength":1048576,` +
		`"contentMD5":"1B2M2Y8AsgTpgAmY7PhCfg==","contentType":"application/octet-stream","etag":"OBJECTID","objectId":"OBJECTID",` +
		`"sharks":[{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"},{"datacenter":"dc2","manta_storage_id":"3.stor.example.com"}],"vnode":417}`
	legacytest.Exec(b, jobsURL, job.ID, fmt.Sprintf(`INSERT INTO evacuateobjects
		SELECT id, 'a0000000-0000-4000-8000-' || lpad(to_hex(g / 50), 12, '0'), replace('%s', 'OBJECTID', id)::jsonb,
			1 + g %% 4, '2.stor.example.com', upper(to_hex(g)),
			CASE WHEN g %% 10 = 0 THEN 'skipped' ELSE 'complete' END,
			CASE WHEN g %% 10 = 0 THEN '{http_status_code:500}' END, NULL
		FROM (SELECT g, lpad(to_hex(g), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(g), 12, '0') AS id
			FROM generate_series(1, %d) g) s`, value, n),
		fmt.Sprintf(`INSERT INTO duplicates SELECT lpad(to_hex(g), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(g), 12, '0'), '/k', '{1,2}'
			FROM generate_series(1, %d, 10) g`, n),
		`ANALYZE evacuateobjects`, `ANALYZE duplicates`)
	r, err := legacydb.Open(b.Context(), jobsURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

// BenchmarkImport imports a legacy job of 50,000 objects into a fresh
// store each time, and reports objects imported per second.
func BenchmarkImport(b *testing.B) {
	const n = 50000
	r := largeLegacyJob(b, n)
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				var st *evacuate.Store
				var err error
				if kind == "sqlite" {
					st, err = sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "jobs.db"), evacuate.StoreOptions{})
				} else {
					st, err = pgstore.Open(context.Background(), pgtest.NewDatabase(b), evacuate.StoreOptions{})
				}
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				sum, err := Import(b.Context(), r, st, Config{})
				total += time.Since(start)
				if err != nil || sum.Count(Imported) != 1 || sum.Jobs[0].Objects != n {
					b.Fatalf("import: %+v %v", sum, err)
				}
				b.StopTimer()
				st.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "objects/s")
		})
	}
}
