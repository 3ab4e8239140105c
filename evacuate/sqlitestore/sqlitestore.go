// Package sqlitestore keeps evacuation jobs in a SQLite file: the default
// job store, with nothing to run beside the manager and one file to back
// up. It links the SQLite driver (modernc.org/sqlite, in Go, no cgo); a
// program that keeps its jobs in PostgreSQL uses package pgstore instead,
// and does not link it.
package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // the driver "sqlite"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/sqlitedsn"
)

// FileName is the database file of a store given as a directory.
const FileName = "jobs.db"

// File returns the database file of the store at path: path itself, or
// the file FileName inside it when path is a directory.
func File(path string) string {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return filepath.Join(path, FileName)
	}
	return path
}

// DefaultMarkFile returns the usual mark file of the store at path
// (evacuate.StoreOptions.MarkFile): its database file's name with ".mark"
// appended, beside it.
func DefaultMarkFile(path string) string { return File(path) + ".mark" }

// Open opens the job store at path, a file or a directory holding
// FileName, creating the directory and the file when missing, and the
// store's tables in it.
func Open(ctx context.Context, path string, opts evacuate.StoreOptions) (*evacuate.Store, error) {
	file := File(path)
	if err := create(file); err != nil {
		return nil, err
	}
	// The file must exist from now on: a connection opened after it was
	// deleted fails instead of starting an empty store in its place.
	db, err := sql.Open("sqlite", sqlitedsn.ReadWrite(file, true))
	if err != nil {
		return nil, fmt.Errorf("open job store %s: %w", file, err)
	}
	db.SetMaxOpenConns(8)
	return evacuate.OpenStore(ctx, evacuate.StoreDB{DB: db, Dialect: evacuate.SQLite, File: file}, opts)
}

// create creates the directory of a store and its file when missing (an
// empty file is an empty SQLite database).
func create(file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("job store directory: %w", err)
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("job store: %w", err)
	}
	return f.Close()
}
