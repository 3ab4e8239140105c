package jobstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// The batch updates and per-assignment reads must look objects up by
// primary key or by assignment, never walk the objects_status index over
// every object of the job in one status: that made a job quadratic in its
// size in SQLite (rebalancer-bench rss: 780 objects/s at 100k objects,
// 4,100 at 10k; 5,000 at both once fixed).
func TestSQLiteQueryPlans(t *testing.T) {
	ctx := context.Background()
	st, err := open(ctx, filepath.Join(t.TempDir(), "jobs.db"), MarkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tests := []struct {
		name  string
		query string
		want  string // the index the plan must use
	}{
		{"batch update by ids", `UPDATE objects SET status = 'x' WHERE ` + whereIDsInStatus(3), "sqlite_autoindex_objects_1"},
		{"one id", `UPDATE objects SET status = 'x' WHERE ` + whereIDsInStatus(1), "sqlite_autoindex_objects_1"},
		{"assignment objects", assignmentObjectsQuery, "objects_assignment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := make([]any, strings.Count(tt.query, "?"))
			for i := range args {
				args[i] = "x"
			}
			rows, err := st.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+tt.query, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, notused int
				var detail string
				if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(plan, "; ")
			if !strings.Contains(got, "USING INDEX "+tt.want) || strings.Contains(got, "objects_status") {
				t.Fatalf("plan %q, want a search using %s", got, tt.want)
			}
		})
	}
}
