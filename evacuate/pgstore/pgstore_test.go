package pgstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/pgstore"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// A store in PostgreSQL, with its mark in a local file naming the
// database without its password; the database recreated is another
// store, refused.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	mark := filepath.Join(t.TempDir(), "postgres.mark")
	st, err := pgstore.Open(ctx, url, evacuate.StoreOptions{MarkFile: mark})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
	st.Close()
	b, err := os.ReadFile(mark)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct{ Database string }
	if err := json.Unmarshal(b, &rec); err != nil || rec.Database != pgstore.Redact(url) || !strings.HasPrefix(rec.Database, "postgres://") {
		t.Errorf("mark %s: database %q, want %q", b, rec.Database, pgstore.Redact(url))
	}

	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
		t.Fatal(err)
	}
	if _, err := pgstore.Open(ctx, url, evacuate.StoreOptions{MarkFile: mark}); !errors.Is(err, evacuate.ErrStoreReplaced) {
		t.Errorf("opening the recreated database = %v, want ErrStoreReplaced", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@db.example:5432/jobs?sslmode=disable&password=x": "postgres://u:xxxxx@db.example:5432/jobs",
		"postgresql://db.example/jobs":                                        "postgresql://db.example/jobs",
		"postgres://%zz":                                                      "(PostgreSQL)",
	} {
		if got := pgstore.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func ExampleOpen() {
	ctx := context.Background()
	store, err := pgstore.Open(ctx, "postgres://rebalancer@db.example/jobs?sslmode=verify-full",
		evacuate.StoreOptions{MarkFile: "/var/tmp/rebalancer-manager-postgres.mark"})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	// evacuate.NewEngine(evacuate.Config{Store: store, ...})
}
