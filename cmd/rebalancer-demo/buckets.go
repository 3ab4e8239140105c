package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
)

// Buckets (v2) objects: their metadata lives in buckets-mdapi, whose
// in-process stand-in (mdapitest) keeps its data in a real PostgreSQL
// schema laid out as buckets-mdapi's own, so that the manager's discovery
// reads the buckets databases as it reads the buckets PostgreSQL copies in
// production. The demo starts a throwaway PostgreSQL for them (initdb into
// a temporary directory, on loopback) when the server binaries are
// installed; without them it says so and moves v1 objects only.

// uploadParts is how many parts each multipart upload in progress has
// written.
const uploadParts = 3

// wantsBuckets says whether the flags ask for v2 objects at all.
func (c *cli) wantsBuckets() bool { return c.V2Objects > 0 || c.Uploads > 0 }

// bucketsDatabases returns n empty databases on a throwaway PostgreSQL and
// a function that stops it, or pgtest.ErrNoBinaries.
type bucketsDatabases func(ctx context.Context, n int) (dsns []string, stop func(), err error)

// throwawayPostgres starts a PostgreSQL of the demo's own and creates n
// databases in it, one per buckets shard.
func throwawayPostgres(ctx context.Context, n int) ([]string, func(), error) {
	c, err := pgtest.Start(ctx)
	if err != nil {
		return nil, nil, err
	}
	db, err := sql.Open("postgres", c.URL)
	if err != nil {
		c.Stop()
		return nil, nil, err
	}
	defer db.Close()
	var dsns []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("buckets_shard_%d", i)
		if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			c.Stop()
			return nil, nil, fmt.Errorf("create database %s: %w", name, err)
		}
		dsn, err := pgtest.WithDatabase(c.URL, name)
		if err != nil {
			c.Stop()
			return nil, nil, err
		}
		dsns = append(dsns, dsn)
	}
	return dsns, c.Stop, nil
}

// startBuckets gets the buckets shards' databases, when the flags ask for
// v2 objects. Without PostgreSQL's binaries it turns v2 off (noBuckets says
// why) and the demo goes on with v1 objects only; any other failure ends
// the demo.
func (d *demo) startBuckets(ctx context.Context) (testbed.Buckets, func(), error) {
	if !d.wantsBuckets() {
		d.noBuckets = "--v2-objects 0 --uploads 0"
		return testbed.Buckets{}, func() {}, nil
	}
	start := throwawayPostgres
	if d.hooks.buckets != nil {
		start = d.hooks.buckets
	}
	dsns, stop, err := start(ctx, d.Shards)
	switch {
	case errors.Is(err, pgtest.ErrNoBinaries):
		d.noBuckets = "no PostgreSQL server binaries (initdb, postgres) on this machine"
		d.say("No buckets (v2) objects: they need PostgreSQL's server binaries (initdb, postgres), which were not found in PATH or /usr/lib/postgresql/*/bin;")
		d.say("  the in-process buckets-mdapi keeps its data in PostgreSQL. Install them (e.g. apt-get install postgresql) to see v2 objects and multipart uploads moved. Going on with v1 objects only.")
		d.V2Objects, d.Uploads = 0, 0
		return testbed.Buckets{}, func() {}, nil
	case err != nil:
		return testbed.Buckets{}, nil, fmt.Errorf("start PostgreSQL for the buckets (v2) objects: %w (--v2-objects 0 --uploads 0 runs with v1 objects only)", err)
	}
	return testbed.Buckets{DSNs: dsns}, stop, nil
}
