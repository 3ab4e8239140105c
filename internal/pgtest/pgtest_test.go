package pgtest

import (
	"context"
	"database/sql"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestNewDatabase proves the tests reach a real server: a table round-trips
// a row, and two databases are isolated from each other.
func TestNewDatabase(t *testing.T) {
	ctx := context.Background()
	a, err := sql.Open("postgres", NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sql.Open("postgres", NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var version string
	if err := a.QueryRowContext(ctx, "SHOW server_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %s", version)
	if _, err := a.ExecContext(ctx, "CREATE TABLE t (id bigint PRIMARY KEY, v jsonb)"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ExecContext(ctx, `INSERT INTO t VALUES (9007199254740993, '{"k":[1,2]}')`); err != nil {
		t.Fatal(err)
	}
	var id int64
	var v string
	if err := a.QueryRowContext(ctx, "SELECT id, v::text FROM t").Scan(&id, &v); err != nil {
		t.Fatal(err)
	}
	if id != 9007199254740993 || v != `{"k": [1, 2]}` {
		t.Errorf("read back %d %s", id, v)
	}
	if _, err := b.ExecContext(ctx, "SELECT 1 FROM t"); err == nil {
		t.Error("second database sees the first one's table")
	}
}

func TestWithDatabase(t *testing.T) {
	got, err := WithDatabase("postgres://u@127.0.0.1:5/postgres?sslmode=disable", "x")
	if err != nil || got != "postgres://u@127.0.0.1:5/x?sslmode=disable" {
		t.Errorf("WithDatabase = %q, %v", got, err)
	}
}
