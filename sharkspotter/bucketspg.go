package sharkspotter

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/hstore"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/mdapi"
)

// DefaultBucketsDSN is the connection string of a buckets-mdapi shard's
// read-only PostgreSQL copy, as the legacy sharkspotter reaches it: host
// {shard}.rebalancer-buckets-postgres.{domain} (the name pgclone.sh
// clone-buckets provisions), port 5432, user postgres, database
// buckets_metadata, no TLS.
func DefaultBucketsDSN(shard int, domain string) string {
	return fmt.Sprintf("host=%d.rebalancer-buckets-postgres.%s port=5432 user=postgres dbname=buckets_metadata sslmode=disable "+
		"connect_timeout=10 fallback_application_name=sharkspotter", shard, domain)
}

// BucketsPostgresScanner is a rebalancer.ObjectSource for buckets (v2)
// objects that reads buckets-mdapi's tables straight from PostgreSQL: the
// read-only copy of each buckets shard's buckets_metadata database. It puts
// no load on buckets-mdapi and needs none of its discovery RPCs.
//
// On each shard it lists the vnode schemas (manta_bucket_<vnode>) and reads
// each vnode's manta_bucket_object table in the order of its primary key,
// with keyset pagination,
//
//	SELECT ... FROM manta_bucket_<vnode>.manta_bucket_object
//	    WHERE (owner, bucket_id, name) > ($1, $2, $3)
//	    AND array_to_string(sharks, ',') LIKE '%<shark>%'
//	    ORDER BY owner, bucket_id, name LIMIT $chunk
//
// so that memory stays flat and every query walks the table's primary key
// index. The LIKE (left out when Exhaustive is set) makes PostgreSQL send
// only rows whose sharks may name the shark; each is then read as
// buckets-mdapi reads it. Objects are made with mdapi.ObjectFromRecord, with
// every column buckets-mdapi returns (headers and properties included, so
// that a metadata update sends them back unchanged), and numbered as the
// package documentation says (ScanID = vnode<<40 + n).
//
// Vnodes are listed from pg_namespace rather than information_schema,
// which hides the schemas a non-superuser may not use: a vnode left out
// there would be objects silently left on the shark.
//
// The fields configure the scan and must not change during Discover;
// several Discover calls may run at once. Shards is required, and so is
// Domain unless DSNs names every shard. EndID must be 0.
type BucketsPostgresScanner struct {
	Options
	// Domain is the Manta domain, for the default hosts (DefaultBucketsDSN).
	Domain string
	// DSNs overrides the connection of some shards: a lib/pq URL or
	// key=value connection string per buckets shard number.
	DSNs map[int]string
	// Chunk is how many rows one query returns at most (0: DefaultChunk).
	Chunk int
	// OnVnodes, when set, is called with the vnodes of each shard before
	// the scan begins, from the goroutine that called Discover, for every
	// shard whose vnodes could be listed (see mdapi.VnodeMap).
	OnVnodes func(shard int, vnodes []uint64)

	// noPushdown leaves the shark filter to the client (tests).
	noPushdown bool
}

// Discover calls visit for every buckets object whose sharks name
// req.Shark, in the shards s.Shards, resuming after req.After[shard] of
// each (see the package documentation). The calling conventions are
// PostgresScanner's.
func (s *BucketsPostgresScanner) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	if s.Chunk < 0 {
		return fmt.Errorf("sharkspotter: negative chunk %d", s.Chunk)
	}
	if err := bucketsCheck(s.Options); err != nil {
		return err
	}
	c, err := newCommon(req, s.Options, pgTransient)
	if err != nil {
		return err
	}
	if s.Domain == "" {
		var missing []int
		for _, sh := range s.Shards {
			if s.DSNs[sh] == "" {
				missing = append(missing, sh)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("sharkspotter: no Domain and no DSN for buckets shards %v", missing)
		}
	}
	dbs := &shardDBs{dsn: s.dsn, open: map[int]*sqlx.DB{}}
	defer dbs.closeAll()
	vnodes, failed := c.listVnodes(ctx, func(ctx context.Context, shard int) ([]uint64, error) {
		db, err := dbs.get(shard)
		if err != nil {
			return nil, err
		}
		return listVnodeSchemas(ctx, db, c)
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.OnVnodes != nil {
		for _, shard := range slices.Sorted(maps.Keys(vnodes)) {
			s.OnVnodes(shard, slices.Clone(vnodes[shard]))
		}
	}
	pattern := ""
	if !s.Exhaustive && !s.noPushdown {
		// The storage id anywhere, not only after a ':', so that a row
		// naming the shark in an element the server cannot read is
		// reported rather than skipped.
		pattern = likePattern(req.Shark)
	}
	b := &bucketsBackend{vnodes: vnodes, failed: failed, pager: func(shard int) (vnodePager, func()) {
		db, err := dbs.get(shard)
		if err != nil { // it was opened to list the vnodes
			return errPager{err}, func() {}
		}
		return &pgPager{db: db, shark: req.Shark, chunk: cmp.Or(s.Chunk, DefaultChunk), like: pattern},
			func() { dbs.close(shard) }
	}}
	return c.discover(ctx, b, req.After, visit)
}

func (s *BucketsPostgresScanner) dsn(shard int) string {
	if d := s.DSNs[shard]; d != "" {
		return d
	}
	return DefaultBucketsDSN(shard, s.Domain)
}

// shardDBs opens one connection pool per shard, on first use, for the
// vnode listing and then the scan.
type shardDBs struct {
	dsn  func(int) string
	mu   sync.Mutex
	open map[int]*sqlx.DB
}

func (d *shardDBs) get(shard int) (*sqlx.DB, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if db := d.open[shard]; db != nil {
		return db, nil
	}
	db, err := sqlx.Open("postgres", d.dsn(shard))
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	// A shard's queries run one after the other: one connection, kept.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	d.open[shard] = db
	return db, nil
}

func (d *shardDBs) close(shard int) {
	d.mu.Lock()
	db := d.open[shard]
	delete(d.open, shard)
	d.mu.Unlock()
	if db != nil {
		db.Close()
	}
}

func (d *shardDBs) closeAll() {
	d.mu.Lock()
	dbs := d.open
	d.open = map[int]*sqlx.DB{}
	d.mu.Unlock()
	for _, db := range dbs {
		db.Close()
	}
}

// listVnodeSchemas lists the vnodes whose schemas a buckets database holds.
func listVnodeSchemas(ctx context.Context, db *sqlx.DB, c *common) ([]uint64, error) {
	rows, err := db.QueryContext(ctx, `SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname LIKE 'manta\_bucket\_%'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		v, ok := parseVnodeSchema(name)
		if !ok {
			// buckets-mdapi never names a vnode's schema so, nor reads one.
			c.log.Warn("schema is not a vnode's, not scanned", "schema", name)
			continue
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// errPager fails every page.
type errPager struct{ err error }

func (p errPager) page(context.Context, uint64, any) ([]bucketRow, int64, any, bool, error) {
	return nil, 0, nil, false, p.err
}

// pgPager reads a vnode's object table in primary key order.
type pgPager struct {
	db    *sqlx.DB
	shark string
	chunk int
	like  string // the SQL filter's pattern, if any
}

// pgKey is the primary key of the last row of a page.
type pgKey struct{ owner, bucket, name string }

// pgBucketColumns are the columns of a record, as buckets-mdapi selects
// them (src/object.rs), each in a form Go reads exactly.
const pgBucketColumns = `id::text, owner::text, bucket_id::text, name, created, modified, content_length,
	content_md5, content_type, headers, sharks, properties::text`

func (p *pgPager) page(ctx context.Context, vnode uint64, cur any) ([]bucketRow, int64, any, bool, error) {
	var q strings.Builder
	q.WriteString("SELECT " + pgBucketColumns + " FROM manta_bucket_" + strconv.FormatUint(vnode, 10) + ".manta_bucket_object")
	var where []string
	var args []any
	if k, ok := cur.(pgKey); ok {
		args = append(args, k.owner, k.bucket, k.name)
		where = append(where, "(owner, bucket_id, name) > ($1::uuid, $2::uuid, $3)")
	}
	if p.like != "" {
		args = append(args, p.like)
		where = append(where, fmt.Sprintf("array_to_string(sharks, ',') LIKE $%d", len(args)))
	}
	if len(where) > 0 {
		q.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	fmt.Fprintf(&q, " ORDER BY owner, bucket_id, name LIMIT %d", p.chunk)
	rows, err := p.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, 0, nil, false, err
	}
	defer rows.Close()
	var (
		out  []bucketRow
		read int64
		last pgKey
	)
	for rows.Next() {
		var (
			rec     mdapi.Record
			md5     []byte
			headers hstore.Hstore
			sharks  pq.StringArray
			props   sql.NullString
		)
		if err := rows.Scan(&rec.ID, &rec.Owner, &rec.BucketID, &rec.Name, &rec.Created, &rec.Modified, &rec.ContentLength,
			&md5, &rec.ContentType, &headers, &sharks, &props); err != nil {
			return nil, 0, nil, false, err
		}
		read++
		last = pgKey{rec.Owner, rec.BucketID, rec.Name}
		key := rec.Locator(vnode).Key()
		if sharks == nil {
			continue // NULL: no copies (the legacy's decoding panics here)
		}
		var names bool
		if rec.Sharks, names, err = readSharks(sharks, p.shark); err != nil {
			if names {
				out = append(out, bucketRow{key: key, bad: err})
			}
			continue
		}
		if !names {
			continue
		}
		rec.Created, rec.Modified = rec.Created.UTC(), rec.Modified.UTC()
		rec.ContentMD5 = base64.StdEncoding.EncodeToString(md5)
		if rec.Headers, err = headersJSON(headers); err != nil {
			out = append(out, bucketRow{key: key, bad: err})
			continue
		}
		rec.Properties = json.RawMessage("null")
		if props.Valid {
			rec.Properties = json.RawMessage(props.String)
		}
		out = append(out, bucketRow{rec: &rec, key: key})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, nil, false, err
	}
	return out, read, last, read < int64(p.chunk), nil
}

// readSharks reads a sharks column as buckets-mdapi does: each element is
// "<datacenter>:<storage id>", split at every ':' of which the first two
// parts are kept (src/object.rs, StorageNodeIdentifier). names says whether
// the row names shark; an element without a ':', on which the server's
// decoding panics, is an error, and names is then true when its text
// contains shark.
func readSharks(elems []string, shark string) (nodes []rebalancer.StorageNode, names bool, err error) {
	nodes = make([]rebalancer.StorageNode, 0, len(elems))
	for _, e := range elems {
		parts := strings.Split(e, ":")
		if len(parts) < 2 {
			if err == nil {
				err = fmt.Errorf("shark %q has no datacenter: buckets-mdapi cannot read this object", e)
			}
			names = names || strings.Contains(e, shark)
			continue
		}
		nodes = append(nodes, rebalancer.StorageNode{Datacenter: parts[0], MantaStorageID: parts[1]})
		names = names || parts[1] == shark
	}
	return nodes, names, err
}

// headersJSON writes an hstore as the JSON object buckets-mdapi returns:
// strings, and null for a NULL value. A NULL hstore (which the server
// fails to read) is an empty object, which is what an update would write.
func headersJSON(h hstore.Hstore) (json.RawMessage, error) {
	m := make(map[string]*string, len(h.Map))
	for k, v := range h.Map {
		if v.Valid {
			m[k] = &v.String
		} else {
			m[k] = nil
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("headers: %w", err)
	}
	return b, nil
}
