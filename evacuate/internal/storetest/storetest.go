// Package storetest opens databases for the job store in the tests of
// packages that cannot import evacuate/sqlitestore or evacuate/pgstore,
// which import them: evacuate itself and its internal job store. It links
// both drivers, as only tests may.
package storetest

import (
	"database/sql"
	"os"

	_ "github.com/lib/pq"  // the driver "postgres"
	_ "modernc.org/sqlite" // the driver "sqlite"

	"github.com/TritonDataCenter/rebalancer/internal/sqlitedsn"
)

// SQLite opens the SQLite database file at path, creating it when
// missing, as sqlitestore.Open does.
func SQLite(path string) (*sql.DB, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	f.Close()
	return sql.Open("sqlite", sqlitedsn.ReadWrite(path, true))
}

// Postgres opens the PostgreSQL database at url, as pgstore.Open does.
func Postgres(url string) (*sql.DB, error) { return sql.Open("postgres", url) }
