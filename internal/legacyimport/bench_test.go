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
	legacytest.LargeJob(b, jobsURL, "b16b16b1-0000-4000-8000-000000000000", n,
		fmt.Sprintf(`INSERT INTO duplicates SELECT lpad(to_hex(g), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(g), 12, '0'), '/k', '{1,2}'
			FROM generate_series(1, %d, 10) g`, n))
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
