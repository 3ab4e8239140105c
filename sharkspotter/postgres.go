package sharkspotter

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/TritonDataCenter/rebalancer"
)

// DefaultChunk is how many rows PostgresScanner asks for per query.
const DefaultChunk = 2000

// pgSpan is how many ids one query covers at most. PostgreSQL reads about
// 300,000 rows a second per scan, so a query takes a few seconds at worst.
const pgSpan = 1 << 20

// DefaultDSN is the connection string of a shard's read-only PostgreSQL
// copy, as the legacy sharkspotter reaches it: host
// {shard}.rebalancer-postgres.{domain}, port 5432, user postgres, database
// moray, no TLS. A password, if one is needed, can come from PGPASSWORD or
// ~/.pgpass.
func DefaultDSN(shard int, domain string) string {
	return fmt.Sprintf("host=%d.rebalancer-postgres.%s port=5432 user=postgres dbname=moray sslmode=disable "+
		"connect_timeout=10 fallback_application_name=sharkspotter", shard, domain)
}

// PostgresScanner is a rebalancer.ObjectSource that reads the "manta" table
// of each shard's "moray" database straight from PostgreSQL: normally the
// read-only copies pgclone provisions (a copy is a snapshot, so an object
// changed since shows up as an etag conflict when its metadata is updated).
//
// Each shard is read in _id order with keyset pagination,
//
//	SELECT _id, _key, _value, _etag FROM manta WHERE _id > $last AND _id <= $last+span
//	    AND type = 'object' AND _value LIKE '%"<shark>"%' ORDER BY _id LIMIT $chunk
//
// so that memory stays flat whatever the table's size, no query runs for
// long, and a failed query is retried from where it stopped. The LIKE (left
// out when Exhaustive is set) makes PostgreSQL send only candidate rows;
// each is confirmed by parsing its value. The scan of a shard ends at the
// highest id it had when the scan began.
//
// The fields configure the scan and must not change during Discover; several
// Discover calls may run at once. Shards is required, and so is Domain unless
// DSNs names every shard.
type PostgresScanner struct {
	Options
	// Domain is the Manta domain, for the default hosts (DefaultDSN).
	Domain string
	// DSNs overrides the connection of some shards: a lib/pq URL
	// (postgres://...) or key=value connection string per shard number.
	DSNs map[int]string
	// Chunk is how many rows one query returns at most (0: DefaultChunk).
	Chunk int

	// noPushdown leaves the substring prefilter to the client (benchmarks).
	noPushdown bool
	// span overrides pgSpan (tests).
	span int64
}

// Discover calls visit for every object of type "object" whose sharks array
// lists req.Shark, in the shards s.Shards, skipping the ids up to
// req.After[shard] of each. The calling conventions are MorayScanner's:
// visit is called from one goroutine, in id order per shard; an error from
// visit stops the scan and is returned; failed shards are reported together
// at the end, each as a *ShardError.
func (s *PostgresScanner) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	if s.Chunk < 0 {
		return fmt.Errorf("sharkspotter: negative chunk %d", s.Chunk)
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
			return fmt.Errorf("sharkspotter: no Domain and no DSN for shards %v", missing)
		}
	}
	b := &pgBackend{s: s, chunk: cmp.Or(s.Chunk, DefaultChunk), span: cmp.Or(s.span, pgSpan)}
	if !s.Exhaustive && !s.noPushdown {
		b.like = likePattern(string(c.m.quoted))
	}
	return c.discover(ctx, b, req.After, visit)
}

func (s *PostgresScanner) dsn(shard int) string {
	if d := s.DSNs[shard]; d != "" {
		return d
	}
	return DefaultDSN(shard, s.Domain)
}

type pgBackend struct {
	s     *PostgresScanner
	chunk int
	span  int64  // ids per query
	like  string // the SQL prefilter's pattern, if any
}

func (b *pgBackend) open(ctx context.Context, c *common, shard int) (shardSource, error) {
	db, err := sqlx.Open("postgres", b.s.dsn(shard))
	if err != nil {
		return shardSource{}, fmt.Errorf("connection string: %w", err)
	}
	// A shard's queries run one after the other: one connection, kept.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	fail := func(err error) (shardSource, error) {
		db.Close()
		return shardSource{}, err
	}
	var cols []string
	err = c.retry(ctx, shard, "columns of manta", func() error {
		rows, err := db.QueryContext(ctx, "SELECT * FROM manta LIMIT 0")
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, err = rows.Columns()
		return err
	})
	if err != nil {
		return fail(err)
	}
	for _, want := range []string{"_id", "_key", "_value", "_etag", "type"} {
		if !slices.Contains(cols, want) {
			return fail(fmt.Errorf("table manta has no column %s", want))
		}
	}
	src := shardSource{close: func() { db.Close() }}
	columns := []string{"_id"}
	if slices.Contains(cols, "_idx") {
		columns = append(columns, "_idx")
	}
	for _, col := range columns {
		var maxID int64
		err = c.retry(ctx, shard, "max "+col, func() error {
			return db.QueryRowContext(ctx, "SELECT COALESCE(MAX("+col+"), 0) FROM manta").Scan(&maxID)
		})
		if err != nil {
			return fail(err)
		}
		src.max = max(src.max, maxID)
		src.streams = append(src.streams, &pgStream{b: b, db: db, c: c, shard: shard, col: col, max: maxID})
	}
	return src, nil
}

// pgStream reads one id column of a shard: each query covers a span of ids
// and returns at most a chunk of rows, so that no query runs long (the
// prefilter can make PostgreSQL read a whole span to return a few rows),
// progress is reported through empty spans, and a retry redoes little.
type pgStream struct {
	b     *pgBackend
	db    *sqlx.DB
	c     *common
	shard int
	col   string
	max   int64 // the column's highest id when the scan began
	query string
}

func (s *pgStream) column() string { return s.col }

func (s *pgStream) fetch(ctx context.Context, after int64) (piece, error) {
	if s.query == "" {
		var q strings.Builder
		fmt.Fprintf(&q, "SELECT %[1]s, _key, _value, _etag FROM manta WHERE %[1]s > $1 AND %[1]s <= $2 AND type = 'object'", s.col)
		if s.b.like != "" {
			q.WriteString(" AND _value LIKE $4")
		}
		fmt.Fprintf(&q, " ORDER BY %s LIMIT $3", s.col)
		s.query = q.String()
	}
	hi := after + min(s.b.span, math.MaxInt64-after)
	if s.c.endID > 0 {
		hi = min(hi, s.c.endID)
	}
	args := []any{after, hi, s.b.chunk}
	if s.b.like != "" {
		args = append(args, s.b.like)
	}
	rows, err := s.db.QueryContext(ctx, s.query, args...)
	if err != nil {
		return piece{}, err
	}
	defer rows.Close()
	var (
		p                piece
		rw               row
		key, value, etag sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&rw.id, &key, &value, &etag); err != nil {
			return piece{}, err
		}
		p.rows++
		p.last = rw.id
		if !s.c.m.candidate(value) {
			continue
		}
		rw.key, rw.value, rw.etag = key, value, etag
		obj, ok, err := s.c.m.match(s.shard, rw)
		switch {
		case err != nil:
			p.bad = append(p.bad, err)
		case ok:
			p.objs = append(p.objs, obj)
		}
	}
	if err := rows.Err(); err != nil {
		return piece{}, err
	}
	if p.rows < int64(s.b.chunk) {
		// The whole span was read.
		p.last = hi
		p.done = hi >= s.max || (s.c.endID > 0 && hi >= s.c.endID)
	}
	return p, nil
}

// pgTransient reports whether a PostgreSQL failure is worth retrying on a
// new connection: the connection broke, or the server is going away or
// overloaded.
func pgTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if pe := pq.As(err); pe != nil {
		switch code := string(pe.Code); {
		case strings.HasPrefix(code, "08"): // connection exception
			return true
		case code == "57P01", code == "57P02", code == "57P03": // admin shutdown, crash shutdown, cannot connect now
			return true
		case code == "53300", code == "40001", code == "40P01": // too many connections, serialization, deadlock
			return true
		}
	}
	return false
}
