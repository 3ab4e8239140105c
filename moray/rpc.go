package moray

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// Record is one object as getObject and findObjects return it.
type Record struct {
	Bucket string
	Key    string
	// Value is the object's JSON value exactly as the server sent it.
	Value json.RawMessage
	ID    int64  // _id: the row's id, from the bucket's sequence
	Etag  string // _etag: the stored etag, for conditional writes
	MTime int64  // _mtime: milliseconds since the epoch
	// TxnSnap is _txn_snap, nil unless the bucket guarantees ordering.
	TxnSnap *int64
	// Count is _count: on findObjects, the number of rows the query matched
	// before its limit; nil for getObject and with FindOptions.NoCount.
	Count *int64
}

// Modified is MTime as a time.
func (r *Record) Modified() time.Time { return time.UnixMilli(r.MTime) }

// UnmarshalJSON decodes a Moray record. Integers are read exactly, whether
// sent as numbers or (as some paths do for BIGINT columns) digit strings.
// Members are read as JSON.parse reads them (names exactly, the last of a
// repeated one), and null is the same as absent. Value refers to b's bytes
// (with no room to append into them): b must not change afterwards, which
// holds for the replies the client decodes.
func (r *Record) UnmarshalJSON(b []byte) error {
	if !json.Valid(b) {
		return errors.New("bad record: invalid JSON")
	}
	return r.decode(b)
}

// decode is UnmarshalJSON for b that is known to be valid JSON (the Fast
// decoder validated the whole frame), in one pass with no reflection: a
// record costs its three strings and nothing else.
func (r *Record) decode(b []byte) error {
	var (
		bucket, key, value, id, etag, mtime, txnSnap, count []byte
		bad                                                 string
	)
	isObject := fast.Members(b, func(name, v []byte) {
		if string(v) == "null" {
			v = nil
		}
		switch string(name) {
		case "bucket":
			bucket = v
		case "key":
			key = v
		case "value":
			value = v
		case "_id":
			id = v
		case "_etag":
			etag = v
		case "_mtime":
			mtime = v
		case "_txn_snap":
			txnSnap = v
		case "_count":
			count = v
		}
	})
	if !isObject {
		return errors.New("bad record: not a JSON object")
	}
	for _, f := range []struct {
		name string
		v    []byte
	}{{"bucket", bucket}, {"key", key}, {"_etag", etag}} {
		if f.v != nil && f.v[0] != '"' {
			bad = f.name
		}
	}
	if bad != "" {
		return fmt.Errorf("bad record: %s is not a string", bad)
	}
	if key == nil {
		return errors.New("bad record: no key")
	}
	*r = Record{Key: fast.Unquote(key)}
	if bucket != nil {
		r.Bucket = fast.Unquote(bucket)
	}
	if etag != nil {
		r.Etag = fast.Unquote(etag)
	}
	if len(value) == 0 || value[0] != '{' {
		return fmt.Errorf("bad record %s: value is not a JSON object", r.Key)
	}
	r.Value = json.RawMessage(value[:len(value):len(value)])
	for _, f := range []struct {
		name string
		v    []byte
		dst  *int64
		ptr  **int64
	}{
		{"_id", id, &r.ID, nil},
		{"_mtime", mtime, &r.MTime, nil},
		{"_txn_snap", txnSnap, nil, &r.TxnSnap},
		{"_count", count, nil, &r.Count},
	} {
		if f.v == nil {
			continue
		}
		n, ok := parseInteger(f.v)
		if !ok {
			return fmt.Errorf("bad record %s: %s %s is not an integer", r.Key, f.name, f.v)
		}
		if f.dst != nil {
			*f.dst = n
		} else {
			*f.ptr = &n
		}
	}
	return nil
}

// parseInteger reads a JSON number or a string of one that is an integer
// an int64 holds. An empty string reads as 0, as encoding/json's
// json.Number did.
func parseInteger(v []byte) (int64, bool) {
	if v[0] == '"' {
		v = v[1 : len(v)-1]
		if len(v) == 0 {
			return 0, true
		}
		if bytes.IndexByte(v, '\\') >= 0 {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}

// reqOptions starts an options object with a fresh req_id.
func (c *Client) reqOptions(b []byte) objWriter {
	w := objWriter{b: b}
	w.open()
	c.reqID(&w)
	return w
}

// reqID writes a fresh req_id member.
func (c *Client) reqID(w *objWriter) {
	if c.newReqID != nil {
		w.str("req_id", c.newReqID())
		return
	}
	w.key("req_id")
	w.b = appendReqID(w.b)
}

// appendReqID appends a random (version 4) UUID as a JSON string. A
// req_id only ties a request to the server's logs, so the runtime's
// generator (ChaCha8, seeded at random) will do, and costs no allocation.
func appendReqID(b []byte) []byte {
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 0x4<<12 // version 4
	lo = lo&^(0x3<<62) | 0x2<<62 // RFC 4122 variant
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], hi)
	binary.BigEndian.PutUint64(u[8:], lo)
	b = append(b, '"')
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
	}
	return append(b, '"')
}

// GetObject reads one object. It always sends noCache:true: a Moray serving
// getObject from its cache has been seen to crash. A missing object gives an
// *ObjectNotFoundError; a missing bucket a *BucketNotFoundError.
func (c *Client) GetObject(ctx context.Context, bucket, key string) (*Record, error) {
	// Byte for byte the options node-moray 4.x sends (the capture in
	// fast/testdata/moray-getobject-capture.txt), so the server sees nothing new.
	bp := c.getBuf()
	b := append((*bp)[:0], '[')
	b = appendString(b, bucket)
	b = append(b, ',')
	b = appendString(b, key)
	b = append(b, ',')
	w := objWriter{b: b}
	w.open()
	w.boolean("requireOnlineReindexing", false)
	c.reqID(&w)
	w.defaults(false)
	w.close()
	b = append(w.b, ']')

	var rec *Record
	err := c.do(ctx, "getObject", b, target{bucket, key}, false, func(item json.RawMessage) error {
		if rec != nil {
			return errors.New("more than one record in the reply")
		}
		rec = new(Record)
		return rec.decode(item)
	})
	*bp = b
	c.putBuf(bp)
	if err == nil && rec == nil {
		err = errors.New("no record in the reply")
	}
	if err != nil {
		return nil, c.replyError("getObject", err)
	}
	return rec, nil
}

// replyError names the RPC in an error from decoding its reply; errors from
// the transport or the server already do.
func (c *Client) replyError(method string, err error) error {
	var te *TransportError
	var se *ServerError
	if errors.As(err, &te) || errors.As(err, &se) || errors.Is(err, ErrClosed) || isCtxErr(err) {
		return err
	}
	return fmt.Errorf("moray %s: %s: %w", c.name, method, err)
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// PutOptions qualifies PutObject.
type PutOptions struct {
	// Etag is the precondition on the stored object (default: none).
	Etag EtagCondition
}

// PutObject writes value (a JSON object, sent verbatim) under key and returns
// the new etag. A failed precondition gives an *EtagConflictError.
func (c *Client) PutObject(ctx context.Context, bucket, key string, value json.RawMessage, opts PutOptions) (string, error) {
	if err := checkObject(value); err != nil {
		return "", fmt.Errorf("moray %s: putObject %s::%s: %w", c.name, bucket, key, err)
	}
	if err := opts.Etag.check(); err != nil {
		return "", err
	}
	b := make([]byte, 0, 192+len(bucket)+len(key)+len(value))
	b = append(b, '[')
	b = appendString(b, bucket)
	b = append(b, ',')
	b = appendString(b, key)
	b = append(b, ',')
	b = append(b, value...)
	b = append(b, ',')
	w := c.reqOptions(b)
	opts.Etag.appendTo(&w)
	w.defaults(false)
	w.close()
	b = append(w.b, ']')

	var etag *string
	err := c.do(ctx, "putObject", b, target{bucket, key}, false, func(item json.RawMessage) error {
		var r struct {
			Etag *string `json:"etag"`
		}
		if err := json.Unmarshal(item, &r); err != nil || r.Etag == nil {
			return fmt.Errorf("bad reply %s", item)
		}
		etag = r.Etag
		return nil
	})
	if err == nil && etag == nil {
		err = errors.New("no etag in the reply")
	}
	if err != nil {
		return "", c.replyError("putObject", err)
	}
	return *etag, nil
}

// DeleteOptions qualifies DeleteObject.
type DeleteOptions struct {
	Etag EtagCondition
}

// DeleteObject deletes one object. A missing object gives an
// *ObjectNotFoundError.
func (c *Client) DeleteObject(ctx context.Context, bucket, key string, opts DeleteOptions) error {
	if err := opts.Etag.check(); err != nil {
		return err
	}
	b := make([]byte, 0, 192+len(bucket)+len(key))
	b = append(b, '[')
	b = appendString(b, bucket)
	b = append(b, ',')
	b = appendString(b, key)
	b = append(b, ',')
	w := c.reqOptions(b)
	opts.Etag.appendTo(&w)
	w.defaults(false)
	w.close()
	b = append(w.b, ']')
	// The reply's one item (an empty object) means nothing, as in node-moray.
	return c.do(ctx, "delObject", b, target{bucket, key}, false, func(json.RawMessage) error { return nil })
}

// Sort orders findObjects results by one attribute.
type Sort struct {
	Attribute  string
	Descending bool
}

// FindOptions qualifies FindObjects.
type FindOptions struct {
	// Limit caps the number of records (0: the server's default, 1000).
	Limit int
	// NoLimit lifts the server's default limit.
	NoLimit bool
	// Offset skips that many matching records.
	Offset int
	// Sort orders the records. Without it the order is PostgreSQL's whim:
	// sort by _id to page deterministically.
	Sort []Sort
	// NoCount skips the count query; Record.Count is then nil.
	NoCount bool
	// RequireIndexes makes the server fail rather than filter on an
	// unindexed field.
	RequireIndexes bool
	// Timeout is the server's query timeout (0: the server's default).
	Timeout time.Duration
}

// FindObjects streams the records of bucket matching filter (an LDAP-style
// filter such as "(&(type=object)(_id>=10))"; build values with
// filter.Escape) to fn, one at a time, as they arrive. If fn returns an
// error, FindObjects abandons the request and returns that error unchanged.
// An error reply after some records have been passed to fn is returned: the
// caller must not treat what it has seen as complete.
//
// A few dozen records are buffered ahead of fn. Fast has no per-request
// flow control, so a callback much slower than the server holds back the
// other RPCs sharing its connection: give long scans a Client of their own.
func (c *Client) FindObjects(ctx context.Context, bucket, filter string, opts FindOptions, fn func(*Record) error) error {
	if opts.Limit < 0 || opts.Offset < 0 {
		return fmt.Errorf("moray %s: findObjects %s: negative limit or offset", c.name, bucket)
	}
	b := make([]byte, 0, 256+len(bucket)+len(filter))
	b = append(b, '[')
	b = appendString(b, bucket)
	b = append(b, ',')
	b = appendString(b, filter)
	b = append(b, ',')
	w := c.reqOptions(b)
	if opts.Limit > 0 {
		w.integer("limit", int64(opts.Limit))
	}
	if opts.Offset > 0 {
		w.integer("offset", int64(opts.Offset))
	}
	switch len(opts.Sort) {
	case 0:
	case 1:
		w.key("sort")
		w.b = appendSort(w.b, opts.Sort[0])
	default:
		w.key("sort")
		w.b = append(w.b, '[')
		for i, s := range opts.Sort {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = appendSort(w.b, s)
		}
		w.b = append(w.b, ']')
	}
	if opts.NoLimit {
		w.boolean("noLimit", true)
	}
	if opts.NoCount {
		w.boolean("no_count", true)
	}
	if opts.RequireIndexes {
		w.boolean("requireIndexes", true)
	}
	if opts.Timeout > 0 {
		w.integer("timeout", timeoutMillis(opts.Timeout))
	}
	w.defaults(opts.NoCount)
	w.close()
	b = append(w.b, ']')

	return c.do(ctx, "findObjects", b, target{bucket: bucket}, true, func(item json.RawMessage) error {
		rec := new(Record)
		if err := rec.decode(item); err != nil {
			return fmt.Errorf("moray %s: findObjects %s: %w", c.name, bucket, err)
		}
		return fn(rec)
	})
}

func appendSort(b []byte, s Sort) []byte {
	w := objWriter{b: b}
	w.open()
	w.str("attribute", s.Attribute)
	if s.Descending {
		w.str("order", "DESC")
	} else {
		w.str("order", "ASC")
	}
	w.close()
	return w.b
}

// BatchOp is one operation of a Batch: a put (the default) or a delete.
type BatchOp struct {
	Delete bool // delete Key rather than put Value
	Bucket string
	Key    string
	Value  json.RawMessage // for a put: a JSON object, sent verbatim
	// Etag is this operation's precondition. It travels in the
	// operation's own options: Moray lets a top-level etag override every
	// operation's, so Batch never sends one.
	Etag EtagCondition
}

// BatchResult is the outcome of one operation of a successful Batch.
type BatchResult struct {
	Bucket string
	Key    string
	Etag   string // the new etag of a put
}

// Batch applies ops in one transaction: all of them or, on any failure
// (such as an *EtagConflictError naming the operation's key), none.
// Results are in the order of ops.
func (c *Client) Batch(ctx context.Context, ops []BatchOp) ([]BatchResult, error) {
	size := 256
	for i, op := range ops {
		if !op.Delete {
			if err := checkObject(op.Value); err != nil {
				return nil, fmt.Errorf("moray %s: batch op %d (%s::%s): %w", c.name, i, op.Bucket, op.Key, err)
			}
		}
		if err := op.Etag.check(); err != nil {
			return nil, fmt.Errorf("batch op %d (%s::%s): %w", i, op.Bucket, op.Key, err)
		}
		size += 96 + len(op.Bucket) + len(op.Key) + len(op.Value)
	}
	b := make([]byte, 0, size)
	b = append(b, '[', '[')
	for i, op := range ops {
		if i > 0 {
			b = append(b, ',')
		}
		w := objWriter{b: b}
		w.open()
		if op.Delete {
			w.str("operation", "delete")
		} else {
			w.str("operation", "put")
		}
		w.str("bucket", op.Bucket)
		w.key("options")
		o := objWriter{b: w.b}
		o.open()
		op.Etag.appendTo(&o)
		o.close()
		w.b = o.b
		w.str("key", op.Key)
		if !op.Delete {
			w.raw("value", op.Value)
		}
		w.close()
		b = w.b
	}
	b = append(b, ']', ',')
	w := c.reqOptions(b) // never an etag here: see BatchOp.Etag
	w.defaults(false)
	w.close()
	b = append(w.b, ']')

	var results []BatchResult
	got := false
	err := c.do(ctx, "batch", b, target{}, false, func(item json.RawMessage) error {
		var r struct {
			Etags []struct {
				Bucket string  `json:"bucket"`
				Key    string  `json:"key"`
				Etag   *string `json:"etag"`
			} `json:"etags"`
		}
		if err := json.Unmarshal(item, &r); err != nil {
			return fmt.Errorf("bad reply: %w", err)
		}
		if len(r.Etags) != len(ops) {
			return fmt.Errorf("bad reply: %d results for %d operations", len(r.Etags), len(ops))
		}
		results = make([]BatchResult, len(ops))
		for i, e := range r.Etags {
			results[i] = BatchResult{Bucket: e.Bucket, Key: e.Key}
			if e.Etag != nil {
				results[i].Etag = *e.Etag
			}
		}
		got = true
		return nil
	})
	if err == nil && !got && len(ops) > 0 {
		err = errors.New("no result in the reply")
	}
	if err != nil {
		return nil, c.replyError("batch", err)
	}
	return results, nil
}

// SQLOptions qualifies SQL.
type SQLOptions struct {
	// Timeout is the server's statement timeout (0: the server's default).
	Timeout time.Duration
}

// SQL runs statement with $1..$n bound to args (encoded as JSON) in a
// transaction on the shard's database, and streams the result rows to fn as
// PostgreSQL returns them through Moray: BIGINT columns as strings, _value
// as a string holding JSON. Null items, which electric-moray appends, are
// skipped. An error from fn abandons the request and is returned unchanged.
// Buffering is as for FindObjects.
func (c *Client) SQL(ctx context.Context, statement string, args []any, opts SQLOptions, fn func(row map[string]json.RawMessage) error) error {
	if args == nil {
		args = []any{}
	}
	vals, err := fast.MarshalData(args)
	if err != nil {
		return fmt.Errorf("moray %s: sql: arguments: %w", c.name, err)
	}
	b := make([]byte, 0, 128+len(statement)+len(vals))
	b = append(b, '[')
	b = appendString(b, statement)
	b = append(b, ',')
	b = append(b, vals...)
	b = append(b, ',')
	w := c.reqOptions(b) // node-moray sends only req_id
	if opts.Timeout > 0 {
		w.integer("timeout", timeoutMillis(opts.Timeout))
	}
	w.close()
	b = append(w.b, ']')
	return c.do(ctx, "sql", b, target{}, true, func(item json.RawMessage) error {
		if string(item) == "null" {
			return nil
		}
		var row map[string]json.RawMessage
		if err := json.Unmarshal(item, &row); err != nil {
			return fmt.Errorf("moray %s: sql: bad row: %w", c.name, err)
		}
		return fn(row)
	})
}

// IndexSpec describes one indexed field of a bucket.
type IndexSpec struct {
	Type   string `json:"type"` // "string", "number", "boolean", "[string]"...
	Unique bool   `json:"unique,omitempty"`
}

// BucketConfig is a bucket's schema, as CreateBucket takes it.
type BucketConfig struct {
	Index map[string]IndexSpec `json:"index"`
	// Pre and Post are trigger functions' JavaScript source.
	Pre  []string `json:"pre"`
	Post []string `json:"post"`
	// Options is the bucket's options object, such as {"version":2}.
	Options json.RawMessage `json:"options,omitempty"`
}

// Bucket is a bucket as GetBucket and ListBuckets return it.
type Bucket struct {
	Name string
	BucketConfig
	Version       int       // options.version, 0 if unset
	MTime         time.Time // last change of the schema
	ReindexActive json.RawMessage
}

// UnmarshalJSON decodes a buckets_config row, whose index, pre, post and
// options columns are JSON documents sent as strings.
func (bk *Bucket) UnmarshalJSON(b []byte) error {
	var row struct {
		Name          string          `json:"name"`
		Index         json.RawMessage `json:"index"`
		Pre           json.RawMessage `json:"pre"`
		Post          json.RawMessage `json:"post"`
		Options       json.RawMessage `json:"options"`
		MTime         string          `json:"mtime"`
		ReindexActive json.RawMessage `json:"reindex_active"`
	}
	if err := json.Unmarshal(b, &row); err != nil {
		return fmt.Errorf("bad bucket: %w", err)
	}
	*bk = Bucket{Name: row.Name}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  any
	}{
		{"index", row.Index, &bk.Index},
		{"pre", row.Pre, &bk.Pre},
		{"post", row.Post, &bk.Post},
		{"options", row.Options, &bk.Options},
		{"reindex_active", row.ReindexActive, &bk.ReindexActive},
	} {
		doc, err := unstring(f.raw)
		if err != nil {
			return fmt.Errorf("bucket %s: %s: %w", row.Name, f.name, err)
		}
		if doc == nil {
			continue
		}
		if err := json.Unmarshal(doc, f.dst); err != nil {
			return fmt.Errorf("bucket %s: %s: %w", row.Name, f.name, err)
		}
	}
	if len(bk.Options) > 0 {
		var o struct {
			Version json.Number `json:"version"`
		}
		if json.Unmarshal(bk.Options, &o) == nil && o.Version != "" {
			v, _ := strconv.ParseInt(o.Version.String(), 10, 64)
			bk.Version = int(v)
		}
	}
	if row.MTime != "" {
		t, err := time.Parse(time.RFC3339Nano, row.MTime)
		if err != nil {
			return fmt.Errorf("bucket %s: mtime: %w", row.Name, err)
		}
		bk.MTime = t
	}
	return nil
}

// unstring returns the JSON document held in raw, which is either a JSON
// string containing it or (from servers that decode it) the document
// itself. null or absent gives nil.
func unstring(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '"' {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	if s == "" || s == "null" {
		return nil, nil
	}
	return json.RawMessage(s), nil
}

func (c *Client) bareOptions(b []byte) []byte {
	w := c.reqOptions(b)
	w.close()
	return w.b
}

// GetBucket reads a bucket's schema. A missing bucket gives a
// *BucketNotFoundError.
func (c *Client) GetBucket(ctx context.Context, name string) (*Bucket, error) {
	b := make([]byte, 0, 96+len(name))
	b = append(b, '[')
	b = c.bareOptions(b) // options first: getBucket is the odd one out
	b = append(b, ',')
	b = appendString(b, name)
	b = append(b, ']')
	var bk *Bucket
	err := c.do(ctx, "getBucket", b, target{bucket: name}, false, func(item json.RawMessage) error {
		if bk != nil {
			return errors.New("more than one bucket in the reply")
		}
		bk = new(Bucket)
		return json.Unmarshal(item, bk)
	})
	if err == nil && bk == nil {
		err = errors.New("no bucket in the reply")
	}
	if err != nil {
		return nil, c.replyError("getBucket", err)
	}
	return bk, nil
}

// ListBuckets reads every bucket's schema.
func (c *Client) ListBuckets(ctx context.Context) ([]Bucket, error) {
	b := append(c.bareOptions([]byte{'['}), ']')
	var out []Bucket
	err := c.do(ctx, "listBuckets", b, target{}, true, func(item json.RawMessage) error {
		var bk Bucket
		if err := json.Unmarshal(item, &bk); err != nil {
			return err
		}
		out = append(out, bk)
		return nil
	})
	if err != nil {
		return nil, c.replyError("listBuckets", err)
	}
	return out, nil
}

// CreateBucket creates a bucket. It exists for tests and the demo: the
// rebalancer never changes schemas.
func (c *Client) CreateBucket(ctx context.Context, name string, cfg BucketConfig) error {
	if cfg.Index == nil {
		cfg.Index = map[string]IndexSpec{}
	}
	if cfg.Pre == nil {
		cfg.Pre = []string{}
	}
	if cfg.Post == nil {
		cfg.Post = []string{}
	}
	doc, err := fast.MarshalData(cfg)
	if err != nil {
		return fmt.Errorf("moray %s: createBucket %s: %w", c.name, name, err)
	}
	b := make([]byte, 0, 96+len(name)+len(doc))
	b = append(b, '[')
	b = appendString(b, name)
	b = append(b, ',')
	b = append(b, doc...)
	b = append(b, ',')
	b = c.bareOptions(b)
	b = append(b, ']')
	return c.do(ctx, "createBucket", b, target{bucket: name}, false, func(json.RawMessage) error { return nil })
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	// node-moray's shape, byte for byte (vector V1, docs/golden.md).
	w := objWriter{b: make([]byte, 0, 80)}
	w.b = append(w.b, '[')
	w.open()
	w.boolean("deep", false)
	c.reqID(&w)
	w.close()
	b := append(w.b, ']')
	return c.do(ctx, "ping", b, target{}, false, func(json.RawMessage) error { return nil })
}

// Version returns the server's API version (2 for current Morays). It is
// for humans: behind a load balancer, the next RPC may reach another server.
func (c *Client) Version(ctx context.Context) (int, error) {
	b := append(c.bareOptions([]byte{'['}), ']')
	v := -1
	err := c.do(ctx, "version", b, target{}, false, func(item json.RawMessage) error {
		var r struct {
			Version *int `json:"version"`
		}
		if err := json.Unmarshal(item, &r); err != nil || r.Version == nil {
			return fmt.Errorf("bad reply %s", item)
		}
		v = *r.Version
		return nil
	})
	if err == nil && v < 0 {
		err = errors.New("no version in the reply")
	}
	if err != nil {
		return 0, c.replyError("version", err)
	}
	return v, nil
}
