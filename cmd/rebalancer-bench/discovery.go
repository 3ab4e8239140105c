package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	_ "github.com/lib/pq" // the PostgreSQL driver

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

// benchDiscovery compares the direct-PostgreSQL scan with the fastest way
// to read the same table off the same server: psql running COPY (SELECT
// ...) TO STDOUT into /dev/null. The table is shaped like a production
// shard's manta table (~600-byte values, two copies per object over 20
// sharks, so the evacuated shark holds one object in ten). Rows/s counts
// the table's rows per second of scan, whatever the scan had to read.
func benchDiscovery(ctx context.Context, o Options) ([]Figure, error) {
	psql, err := findPsql()
	if err != nil {
		return nil, err
	}
	dsn := o.Postgres
	if dsn == "" {
		fmt.Fprintln(o.Log, "   starting PostgreSQL")
		cluster, err := pgtest.Start(ctx)
		if err != nil {
			return nil, err
		}
		defer cluster.Stop()
		if dsn, err = newDatabase(ctx, cluster.URL, "bench"); err != nil {
			return nil, err
		}
	}
	n := pick(o.Quick, 2_000, 500_000)
	fmt.Fprintf(o.Log, "   loading %d rows\n", n)
	if err := loadMantaTable(ctx, dsn, n); err != nil {
		return nil, fmt.Errorf("loading the table: %w", err)
	}

	rounds := pick(o.Quick, 1, 3)
	var copyBest time.Duration
	for range rounds {
		cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn, "-c",
			"COPY (SELECT _id, _key, _value, _etag FROM manta ORDER BY _id) TO STDOUT")
		cmd.Stdout, cmd.Stderr = io.Discard, o.Log
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("psql COPY: %w", err)
		}
		copyBest = best(copyBest, time.Since(start))
	}
	copyRate := float64(n) / copyBest.Seconds()

	const shark = "3.stor.example.com"
	var figs []Figure
	for _, mode := range []struct {
		name       string
		exhaustive bool
	}{{"direct-PostgreSQL scan", false}, {"direct-PostgreSQL scan, every row parsed", true}} {
		s := &sharkspotter.PostgresScanner{DSNs: map[int]string{1: dsn}, Options: sharkspotter.Options{Shards: []int{1},
			Exhaustive: mode.exhaustive, Logger: o.Logger.With("component", "sharkspotter")}}
		var d time.Duration
		for range rounds {
			found := 0
			start := time.Now()
			err := s.Discover(ctx, rebalancer.DiscoverRequest{Shark: shark}, func(rebalancer.Object) error {
				found++
				return nil
			})
			if err != nil {
				return figs, err
			}
			if found != n/10 {
				return figs, fmt.Errorf("%s found %d objects, want %d", mode.name, found, n/10)
			}
			d = best(d, time.Since(start))
		}
		f := Figure{Name: mode.name, Unit: "rows/s", Value: float64(n) / d.Seconds(), Baseline: "psql COPY", Base: copyRate}
		if !mode.exhaustive {
			f.Target = ">= 0.3"
			f.Met = met(f.Ratio() >= 0.3)
		} else {
			f.Note = "without the server-side prefilter on the storage id (Exhaustive): every row crosses the wire and is parsed"
		}
		figs = append(figs, f)
	}
	return figs, nil
}

// newDatabase creates a database on the server at url and returns its URL.
func newDatabase(ctx context.Context, url, name string) (string, error) {
	admin, err := sql.Open("postgres", url)
	if err != nil {
		return "", err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return pgtest.WithDatabase(url, name)
}

// loadMantaTable creates a moray-shaped manta table and fills it with n
// objects, each on two of 20 sharks.
func loadMantaTable(ctx context.Context, dsn string, n int) error {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE SEQUENCE manta_serial",
		`CREATE TABLE manta (_id BIGINT DEFAULT nextval('manta_serial'), _txn_snap INTEGER, _key TEXT PRIMARY KEY,
			_value TEXT NOT NULL, _etag CHAR(8) NOT NULL, _mtime BIGINT NOT NULL, _vnode BIGINT,
			dirname TEXT, name TEXT, owner TEXT, objectid TEXT, type TEXT)`,
		"CREATE INDEX manta__id_idx ON manta USING btree (_id) WHERE _id IS NOT NULL",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, "COPY manta (_id, _key, _value, _etag, _mtime, _vnode, dirname, name, owner, objectid, type) FROM STDIN")
	if err != nil {
		return err
	}
	acct := uuid.NewString()
	for i := range n {
		objID := uuid.NewString()
		a, c := i%20, (i+10)%20
		sharks := fmt.Sprintf(`[{"datacenter":"us-east-%d","manta_storage_id":"%d.stor.example.com"},`+
			`{"datacenter":"us-east-%d","manta_storage_id":"%d.stor.example.com"}]`, a%3, a+1, c%3, c+1)
		dir := fmt.Sprintf("/%s/stor/logs/manatee-sitter/2019/10/%02d/%02d", acct, i%28+1, i%24)
		name := objID + ".log"
		key := dir + "/" + name
		value := fmt.Sprintf(`{"contentLength":%d,"contentMD5":"L9NrIZXTY37AYVZN9+gZ7w==","contentType":"text/plain","creator":%q,`+
			`"dirname":%q,"etag":%q,"headers":{"m-custom":"value"},"key":%q,"mtime":1570611723062,"name":%q,`+
			`"objectId":%q,"owner":%q,"roles":[],"sharks":%s,"type":"object","vnode":%d}`,
			9099176+i, acct, dir, objID, key, name, objID, acct, sharks, i%131072)
		if _, err := stmt.ExecContext(ctx, i+1, key, value, "0123ABCD", 1570611723062, i%131072, dir, name, acct, objID, "object"); err != nil {
			return err
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return err
	}
	if err := stmt.Close(); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "ANALYZE manta")
	return err
}

// findPsql finds the psql client, in PATH or in Debian's versioned
// directories, as pgtest finds the server.
func findPsql() (string, error) {
	if p, err := exec.LookPath("psql"); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
	for i := len(matches) - 1; i >= 0; i-- {
		if fi, err := os.Stat(matches[i]); err == nil && !fi.IsDir() {
			return matches[i], nil
		}
	}
	return "", fmt.Errorf("no psql binary for the COPY baseline (PATH=%s)", strings.TrimSpace(os.Getenv("PATH")))
}
