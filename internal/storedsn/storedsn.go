// Package storedsn opens the job store that one string names, as the
// manager's configuration ("database") and the test fleet do: a PostgreSQL
// URL, or a SQLite file or directory. It links both drivers; a program
// embedding the engine picks one of evacuate/sqlitestore and
// evacuate/pgstore instead, and links only its driver.
package storedsn

import (
	"context"
	"strings"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/pgstore"
	"github.com/TritonDataCenter/rebalancer/evacuate/sqlitestore"
)

// IsPostgres reports whether dsn names a PostgreSQL database (a
// postgres:// or postgresql:// URL); anything else is a SQLite file or
// directory.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens the job store named by dsn: with package pgstore for a
// PostgreSQL URL, with package sqlitestore otherwise.
func Open(ctx context.Context, dsn string, opts evacuate.StoreOptions) (*evacuate.Store, error) {
	if IsPostgres(dsn) {
		return pgstore.Open(ctx, dsn, opts)
	}
	return sqlitestore.Open(ctx, dsn, opts)
}
