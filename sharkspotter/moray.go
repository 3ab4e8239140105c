package sharkspotter

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray"
)

// Defaults of MorayScanner.
const (
	// DefaultWindow is the span of ids one sql query covers: the legacy
	// sharkspotter's default chunk_size. (The legacy manager passes its
	// md_read_chunk_size, 10000 by default.)
	DefaultWindow = 1000
	// DefaultSQLTimeout is the statement timeout sent with each query, as
	// the legacy sends {"timeout":10000}.
	DefaultSQLTimeout = 10 * time.Second
)

// MorayScanner is a rebalancer.ObjectSource that scans the "manta" bucket of
// each shard through its Moray, with the statements the legacy sharkspotter
// sends over the sql RPC (docs/protocols.md, Discovery): SELECT MAX(_id), then
//
//	SELECT * FROM manta WHERE _id >= lo AND _id <= hi AND type = 'object' LIMIT n;
//
// for consecutive windows of Window ids up to that maximum, and the same
// over _idx on shards that have Moray's extended-id column. Whether a shard
// has it is asked of information_schema.columns rather than found
// out, as the legacy does, by a SELECT MAX(_idx) that fails and leaves an
// ERROR in the shard's PostgreSQL log at every scan. Where it has one, one
// more query (SELECT * FROM manta WHERE _idx >= 0 AND _idx <= <MAX(_id)>
// LIMIT 1) tells whether the _idx windows can start above the last _id
// rather than at 1, as the legacy's do. Rows come back in no particular order; each window's
// matches are sorted by id before they are visited.
//
// The fields configure the scan and must not change during Discover; several
// Discover calls may run at once. Clients and Shards are required. Give the
// scanner Moray clients of its own, not those that update metadata: a long
// scan's replies would queue ahead of their requests on the shared
// connections.
type MorayScanner struct {
	Options
	// Clients gives each shard's Moray client.
	Clients moray.ShardClients
	// Window is the span of ids per query (0: DefaultWindow).
	Window int64
	// SQLTimeout is the statement timeout sent with each query (0:
	// DefaultSQLTimeout).
	SQLTimeout time.Duration
}

// Discover calls visit for every object of type "object" whose sharks array
// lists req.Shark, in the shards s.Shards, skipping the ids up to
// req.After[shard] of each. visit is never called concurrently: objects of
// all shards are visited from the goroutine that called Discover, each
// shard's in ascending id order. If visit returns an error the scan stops and
// Discover returns that error; if ctx ends it returns ctx.Err(). Failed shards
// do not stop the others: the error, returned at the end, joins a
// *ShardError for each.
func (s *MorayScanner) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	if s.Clients == nil {
		return errors.New("sharkspotter: MorayScanner has no Clients")
	}
	if s.Window < 0 {
		return fmt.Errorf("sharkspotter: negative window %d", s.Window)
	}
	c, err := newCommon(req, s.Options, moray.IsTransient)
	if err != nil {
		return err
	}
	b := &morayBackend{clients: s.Clients, window: cmp.Or(s.Window, DefaultWindow),
		opts: moray.SQLOptions{Timeout: cmp.Or(s.SQLTimeout, DefaultSQLTimeout)}}
	return c.discover(ctx, b, req.After, visit)
}

// idxColumnQuery asks whether the manta table has Moray's extended-id
// column _idx: one row if it has, none otherwise, and no error either way.
const idxColumnQuery = "SELECT column_name FROM information_schema.columns WHERE table_name = 'manta' AND column_name = '_idx';"

type morayBackend struct {
	clients moray.ShardClients
	window  int64
	opts    moray.SQLOptions
}

func (b *morayBackend) open(ctx context.Context, c *common, shard int) (shardSource, error) {
	cl := b.clients.Client(shard)
	var maxID, maxIdx int64
	var hasIdx bool
	err := c.retry(ctx, shard, "max _id", func() (err error) {
		maxID, err = b.max(ctx, cl, "_id")
		return err
	})
	if err != nil {
		return shardSource{}, err
	}
	err = c.retry(ctx, shard, "has _idx", func() error {
		hasIdx = false
		return cl.SQL(ctx, idxColumnQuery, nil, b.opts, func(map[string]json.RawMessage) error {
			hasIdx = true
			return nil
		})
	})
	if err != nil {
		return shardSource{}, err
	}
	if hasIdx {
		err = c.retry(ctx, shard, "max _idx", func() (err error) {
			maxIdx, err = b.max(ctx, cl, "_idx")
			if isMissingColumn(err, "_idx") {
				// information_schema saw another schema's manta table.
				hasIdx, err = false, nil
			}
			return err
		})
		if err != nil {
			return shardSource{}, err
		}
	}
	limit := func(n int64) int64 {
		if c.endID > 0 {
			return min(n, c.endID)
		}
		return n
	}
	src := shardSource{
		streams: []stream{&morayStream{b: b, cl: cl, c: c, shard: shard, col: "_id", limit: limit(maxID)}},
		max:     max(maxID, maxIdx),
		close:   func() {},
	}
	if hasIdx && maxIdx > 0 {
		// Extended ids are normally all above the last _id, and then the
		// _idx windows can start there instead of at 1 (which would double
		// the number of queries over the whole _id range). One query tells.
		var below bool
		err := c.retry(ctx, shard, "probe _idx", func() error {
			below = false
			q := fmt.Sprintf("SELECT * FROM manta WHERE _idx >= 0 AND _idx <= %d LIMIT 1;", maxID)
			return cl.SQL(ctx, q, nil, b.opts, func(map[string]json.RawMessage) error {
				below = true
				return nil
			})
		})
		if err != nil {
			return shardSource{}, err
		}
		st := &morayStream{b: b, cl: cl, c: c, shard: shard, col: "_idx", limit: limit(maxIdx)}
		if !below {
			st.skip = maxID
		}
		src.streams = append(src.streams, st)
	}
	return src, nil
}

// max runs SELECT MAX(col); an empty table gives 0.
func (b *morayBackend) max(ctx context.Context, cl *moray.Client, col string) (int64, error) {
	var (
		n    int64
		seen bool
	)
	err := cl.SQL(ctx, "SELECT MAX("+col+") FROM manta;", nil, b.opts, func(r map[string]json.RawMessage) error {
		raw, ok := r["max"]
		if !ok {
			return fmt.Errorf("MAX(%s): reply has no max column", col)
		}
		id, isNull, err := parseID(raw)
		if err != nil {
			return fmt.Errorf("MAX(%s): %w", col, err)
		}
		if !isNull {
			n = id
		}
		seen = true
		return nil
	})
	if err == nil && !seen {
		err = fmt.Errorf("MAX(%s): no reply row", col)
	}
	return n, err
}

// isMissingColumn reports whether err is PostgreSQL's complaint, passed on
// by Moray, that the column does not exist.
func isMissingColumn(err error, col string) bool {
	var se *moray.ServerError
	return errors.As(err, &se) && se.Err != nil &&
		strings.Contains(se.Err.Message, `column "`+col+`" does not exist`)
}

// parseID reads an id as node-pg and Moray send it: a BIGINT as a digit
// string, an INTEGER as a number, or null.
func parseID(raw json.RawMessage) (id int64, isNull bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, true, nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false, fmt.Errorf("bad id %s", raw)
		}
	}
	id, err = strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("bad id %s", raw)
	}
	return id, false, nil
}

// morayStream reads one id column of a shard in windows.
type morayStream struct {
	b     *morayBackend
	cl    *moray.Client
	c     *common
	shard int
	col   string
	limit int64 // the last id to read
	skip  int64 // no row of this column has an id up to skip
}

func (s *morayStream) column() string { return s.col }

func (s *morayStream) fetch(ctx context.Context, after int64) (piece, error) {
	lo := max(after, s.skip) + 1
	if lo > s.limit {
		return piece{last: max(after, s.limit), done: true}, nil
	}
	hi := min(lo+s.b.window-1, s.limit)
	q := fmt.Sprintf("SELECT * FROM manta WHERE %[1]s >= %[2]d AND %[1]s <= %[3]d AND type = 'object' LIMIT %[4]d;",
		s.col, lo, hi, hi-lo+1)
	p := piece{last: hi, done: hi >= s.limit}
	err := s.cl.SQL(ctx, q, nil, s.b.opts, func(r map[string]json.RawMessage) error {
		p.rows++
		id, isNull, err := parseID(r[s.col])
		if err != nil || isNull || id < lo || id > hi {
			return fmt.Errorf("%s: reply row has %s %s, outside the window", q, s.col, r[s.col])
		}
		rawValue := r["_value"]
		if !s.c.m.candidateEscaped(rawValue) {
			return nil
		}
		rw := row{id: id, owned: true}
		var key, etag string
		if err := unmarshalOptional(r["_key"], &key); err != nil {
			return fmt.Errorf("row %d: _key: %w", id, err)
		}
		if err := unmarshalOptional(r["_etag"], &etag); err != nil {
			return fmt.Errorf("row %d: _etag: %w", id, err)
		}
		rw.key, rw.etag = []byte(key), []byte(etag)
		switch rawValue = bytes.TrimSpace(rawValue); {
		case len(rawValue) > 0 && rawValue[0] == '"':
			var v string
			if err := json.Unmarshal(rawValue, &v); err != nil {
				return fmt.Errorf("row %d: _value: %w", id, err)
			}
			rw.value = []byte(v)
		default:
			rw.value = rawValue // already an object (or garbage, which ParseObject reports)
		}
		obj, ok, err := s.c.m.match(s.shard, rw)
		switch {
		case err != nil:
			p.bad = append(p.bad, err)
		case ok:
			p.objs = append(p.objs, obj)
		}
		return nil
	})
	if err != nil {
		return piece{}, err
	}
	slices.SortFunc(p.objs, func(a, b rebalancer.Object) int { return cmp.Compare(a.ScanID, b.ScanID) })
	return p, nil
}

// unmarshalOptional decodes a JSON string that may be absent or null.
func unmarshalOptional(raw json.RawMessage, s *string) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return json.Unmarshal(raw, s)
}
