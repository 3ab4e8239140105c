// Package pgstore keeps evacuation jobs in a PostgreSQL database, for
// managers whose job store must outlive their zone or be shared with
// other tools. It links the PostgreSQL driver (github.com/lib/pq); a
// program that keeps its jobs in SQLite uses package sqlitestore instead,
// and does not link it.
package pgstore

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "github.com/lib/pq" // the driver "postgres"

	"github.com/TritonDataCenter/rebalancer/evacuate"
)

// Open opens the job store in the database at dsn, a postgres:// or
// postgresql:// URL (lib/pq's syntax), creating the store's tables in it
// when missing. The database must exist.
func Open(ctx context.Context, dsn string, opts evacuate.StoreOptions) (*evacuate.Store, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("open job store %s: %w", Redact(dsn), err)
	}
	db.SetMaxOpenConns(16)
	return evacuate.OpenStore(ctx, evacuate.StoreDB{DB: db, Dialect: evacuate.PostgreSQL, Name: Redact(dsn)}, opts)
}

// Redact returns dsn without its password and query (which may hold
// one), for messages and the store's mark file.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(PostgreSQL)"
	}
	u.RawQuery = ""
	return u.Redacted()
}
