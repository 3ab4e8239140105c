package legacydb

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer/internal/legacydb/legacytest"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

const benchObjects = 50000

// largeJob lays out one legacy job of n rows whose metadata is the size of a
// real Moray value (about 600 bytes), and as many duplicates.
func largeJob(b testing.TB, n int) (*Reader, string) {
	b.Helper()
	jobsURL := pgtest.NewDatabase(b)
	id := uuid.NewString()
	legacytest.LargeJob(b, jobsURL, id, n,
		fmt.Sprintf(`INSERT INTO duplicates SELECT lpad(to_hex(g), 8, '0'), '/k', '{1,2}' FROM generate_series(1, %d) g`, n))
	r, err := Open(b.Context(), jobsURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r, id
}

// TestPagePlans checks that paging through a large job walks the primary
// keys' indexes: a sequential scan and sort of a job of tens of millions of
// rows, once per page, would make an import quadratic.
func TestPagePlans(t *testing.T) {
	r, id := largeJob(t, 20000)
	ctx := testContext(t)
	db, err := r.OpenJob(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct{ query, index string }{
		{objectsPageQuery, "evacuateobjects_pkey"},
		{duplicatesPageQuery, "duplicates_pkey"},
	} {
		for _, first := range []bool{true, false} {
			rows, err := db.tx.QueryContext(ctx, "EXPLAIN "+tc.query, "00001000", DefaultPageSize, first)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, strings.TrimSpace(line))
			}
			rows.Close()
			got := strings.Join(plan, " / ")
			t.Logf("first page %v: %s", first, got)
			if !strings.Contains(got, "Index Scan using "+tc.index) || strings.Contains(got, "Sort") {
				t.Errorf("first page %v: plan %q, want an index scan of %s", first, got, tc.index)
			}
		}
	}
}

// BenchmarkObjects streams a 50,000-object legacy job, by page size.
func BenchmarkObjects(b *testing.B) {
	r, id := largeJob(b, benchObjects)
	ctx := b.Context()
	for _, page := range []int{100, DefaultPageSize, 10000} {
		b.Run(fmt.Sprintf("page=%d", page), func(b *testing.B) {
			r.PageSize = page
			var bytes int64
			for b.Loop() {
				db, err := r.OpenJob(ctx, id)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				if err := db.Objects(ctx, "", func(o Object) error {
					n++
					bytes += int64(len(o.Object))
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				db.Close()
				if n != benchObjects {
					b.Fatalf("%d objects, want %d", n, benchObjects)
				}
			}
			b.ReportMetric(float64(benchObjects)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
			b.SetBytes(bytes / int64(b.N))
		})
	}
	// The floor: one query for the whole table, rows scanned and dropped.
	b.Run("baseline=one query", func(b *testing.B) {
		for b.Loop() {
			db, err := r.OpenJob(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			rows, err := db.tx.QueryContext(ctx, `SELECT id, assignment_id, object, shard, dest_shark, etag, status, skipped_reason, error FROM evacuateobjects`)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			var cols [9]any
			for i := range cols {
				cols[i] = new(any)
			}
			for rows.Next() {
				if err := rows.Scan(cols[:]...); err != nil {
					b.Fatal(err)
				}
				n++
			}
			rows.Close()
			db.Close()
			if n != benchObjects {
				b.Fatalf("%d rows", n)
			}
		}
		b.ReportMetric(float64(benchObjects)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
	})
}

// BenchmarkStatus computes the legacy status document of the same job.
func BenchmarkStatus(b *testing.B) {
	r, id := largeJob(b, benchObjects)
	ctx := b.Context()
	for b.Loop() {
		st, err := r.Status(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if st.Results.Total != 2*benchObjects {
			b.Fatalf("total %d", st.Results.Total)
		}
	}
}
