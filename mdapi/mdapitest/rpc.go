package mdapitest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/TritonDataCenter/rebalancer/internal/fastserver"
	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// call is one request being handled.
type call struct {
	s      *Server
	ctx    context.Context
	method string
	rep    *reply
}

type handler func(*call, *fields)

// methods maps each RPC to its handler and payload struct name; needs says
// which servers have it.
var methods = map[string]struct {
	h      handler
	what   string
	exists func(Version) bool
}{
	"getobject":          {(*call).getObject, "GetObjectPayload", always},
	"updateobject":       {(*call).updateObject, "UpdateObjectPayload", always},
	"listobjects":        {(*call).listObjects, "ListObjectsPayload", always},
	"listbuckets":        {(*call).listBuckets, "ListBucketsPayload", always},
	"batchupdateobjects": {(*call).batchUpdate, "BatchUpdateObjectsPayload", Version.batch},
	"listvnodes":         {(*call).listVnodes, "ListVnodesPayload", Version.discovery},
	"listowners":         {(*call).listOwners, "ListOwnersPayload", Version.discovery},
	// Served by buckets-mdapi but not emulated: the rebalancer never calls
	// them.
	"createobject":  {notImplemented, "", always},
	"deleteobject":  {notImplemented, "", always},
	"getbucket":     {notImplemented, "", always},
	"createbucket":  {notImplemented, "", always},
	"deletebucket":  {notImplemented, "", always},
	"getgcbatch":    {notImplemented, "", always},
	"deletegcbatch": {notImplemented, "", always},
}

func always(Version) bool { return true }

func notImplemented(c *call, _ *fields) {
	c.rep.fastError("mdapitest: " + c.method + " is not implemented")
}

// handle runs one request on the connection's goroutine.
func (s *Server) handle(c *fastserver.Conn, m *fast.Message) {
	s.srv.CountCall(m.Method)
	rep := &reply{c.NewReply(m)}
	var args []json.RawMessage
	if err := json.Unmarshal(m.Data, &args); err != nil {
		rep.fastError("mdapitest: cannot parse arguments: " + err.Error())
		return
	}
	var first json.RawMessage
	if len(args) > 0 {
		first = args[0]
	}
	act := s.action(c.ID(), m.Method, m.ID, first)
	if act.Delay > 0 && !retry.Sleep(c.Context(), act.Delay) {
		return
	}
	switch {
	case act.Drop:
		c.Drop()
		return
	case act.Fault != nil && act.Fault.Frame:
		rep.fail(act.Fault.Name, act.Fault.Message)
		return
	case act.Fault != nil:
		rep.appError(act.Fault.Name, act.Fault.Message)
		return
	}

	meth, ok := methods[m.Method]
	if !ok || !meth.exists(s.opts.Version) {
		rep.fastError("Unsupported functon: " + m.Method) // sic
		return
	}
	if meth.what == "" {
		meth.h(&call{s: s, ctx: c.Context(), method: m.Method, rep: rep}, nil)
		return
	}
	// The server decodes every element of d as the payload and uses the
	// first.
	if len(args) == 0 {
		rep.fastError("Failed to parse JSON data as payload for " + m.Method + " function")
		return
	}
	var f *fields
	for i := len(args) - 1; i >= 0; i-- {
		f = decodeFields(args[i], meth.what)
		if f.err == nil {
			meth.h(&call{s: s, method: m.Method}, f) // a dry run: decoding only
		}
		if f.err != nil {
			rep.fastError(f.err.Error())
			return
		}
	}
	meth.h(&call{s: s, ctx: c.Context(), method: m.Method, rep: rep}, decodeFields(args[0], meth.what))
}

// decoding reports whether the call only decodes its payload (a dry run).
func (c *call) decoding() bool { return c.rep == nil }

// pgError answers a PostgreSQL failure as buckets-mdapi does: an
// application error named PostgresError.
func (c *call) pgError(err error) {
	var bad *BadRowError
	if errors.As(err, &bad) {
		// The real server's handler panics; the request fails.
		c.rep.fastError(bad.Error())
		return
	}
	c.rep.appError("PostgresError", pgMessage(err))
}

func pgMessage(err error) string {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return "db error: " + pe.Severity + ": " + pe.Message
	}
	return err.Error()
}

func (c *call) getObject(f *fields) {
	owner, bucket, name := f.uuid("owner"), f.uuid("bucket_id"), f.str("name")
	vnode := f.u64("vnode")
	f.uuid("request_id")
	cond := f.conditions()
	if c.decoding() {
		return
	}
	obj, err := c.s.selectObject(c.ctx, c.s.db, vnode, owner, bucket, name)
	switch {
	case err != nil:
		c.pgError(err)
	case obj == nil:
		c.rep.appError("ObjectNotFound", "requested object not found")
	default:
		if name, msg := cond.check(obj); name != "" {
			c.rep.appError(name, msg)
			return
		}
		c.rep.Data(objectJSON(obj))
		c.rep.end()
	}
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// selectObject reads an object; nil when it does not exist.
func (s *Server) selectObject(ctx context.Context, q queryer, vnode uint64, owner, bucket, name string) (*Object, error) {
	row := q.QueryRowContext(ctx, `SELECT `+objectColumns+` FROM `+objectTable(vnode)+
		` WHERE owner = $1 AND bucket_id = $2 AND name = $3`, owner, bucket, name)
	o, err := scanObject(row, vnode)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// update is one decoded update payload.
type update struct {
	raw                 json.RawMessage
	owner, bucket, name string
	id                  string
	vnode               uint64
	contentType         string
	headers             map[string]*string
	sharks              []shark
	hasSharks           bool
	properties          json.RawMessage
	requestID           string
	cond                cond
}

func (c *call) decodeUpdate(f *fields) update {
	u := update{
		owner: f.uuid("owner"), bucket: f.uuid("bucket_id"), name: f.str("name"), id: f.uuid("id"),
		vnode: f.u64("vnode"), contentType: f.str("content_type"), headers: f.hstore("headers"),
	}
	if c.s.opts.Version.sharks() {
		u.sharks, u.hasSharks = f.optSharks("sharks")
	}
	u.properties = f.optValue("properties")
	u.requestID = f.uuid("request_id")
	u.cond = f.conditions()
	return u
}

// apply runs one update in tx: conditions, then the UPDATE. It returns the
// updated row, or the error to answer with.
func (c *call) apply(tx *sql.Tx, u update, returning bool) (obj *Object, errName, errMsg string) {
	s := c.s
	if u.cond.present {
		cur, err := s.selectObject(c.ctx, tx, u.vnode, u.owner, u.bucket, u.name)
		if err != nil {
			return nil, "PostgresError", pgMessage(err)
		}
		if name, msg := u.cond.check(cur); name != "" {
			return nil, name, msg
		}
		if cur != nil && s.forcedConflict(u.owner, u.bucket, u.name) {
			return nil, "PreconditionFailedError", fmt.Sprintf("mdapitest: another writer changed %s first", u.name)
		}
	}
	headers := headersValue(u.headers)
	var props any
	if u.properties != nil {
		props = string(u.properties)
	}
	var q string
	var args []any
	if s.opts.Version.sharks() {
		var sharks any // NULL keeps the stored sharks (COALESCE)
		if u.hasSharks {
			arr := pq.StringArray{}
			for _, sh := range u.sharks {
				arr = append(arr, sh.DC+":"+sh.ID)
			}
			sharks = arr
		}
		q = `UPDATE ` + objectTable(u.vnode) + ` SET content_type = $1, headers = $2, sharks = COALESCE($3::text[], sharks),
			properties = $4, modified = current_timestamp
			WHERE owner = $5 AND bucket_id = $6 AND name = $7 AND id = $8`
		args = []any{u.contentType, headers, sharks, props, u.owner, u.bucket, u.name, u.id}
	} else {
		q = `UPDATE ` + objectTable(u.vnode) + ` SET content_type = $1, headers = $2, properties = $3,
			modified = current_timestamp
			WHERE owner = $4 AND bucket_id = $5 AND name = $6`
		args = []any{u.contentType, headers, props, u.owner, u.bucket, u.name}
	}
	if !returning {
		r, err := tx.ExecContext(c.ctx, q, args...)
		if err != nil {
			return nil, "PostgresError", pgMessage(err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return nil, "ObjectNotFound", "requested object not found"
		}
		return nil, "", ""
	}
	o, err := scanObject(tx.QueryRowContext(c.ctx, q+` RETURNING `+objectColumns, args...), u.vnode)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, "ObjectNotFound", "requested object not found"
	case err != nil:
		return nil, "PostgresError", pgMessage(err)
	}
	return &o, "", ""
}

func (c *call) updateObject(f *fields) {
	u := c.decodeUpdate(f)
	if c.decoding() {
		return
	}
	tx, err := c.s.db.BeginTx(c.ctx, nil)
	if err != nil {
		c.pgError(err)
		return
	}
	defer tx.Rollback()
	obj, name, msg := c.apply(tx, u, true)
	if name != "" {
		c.rep.appError(name, msg)
		return
	}
	if err := tx.Commit(); err != nil {
		c.pgError(err)
		return
	}
	c.rep.Data(objectJSON(obj))
	c.rep.end()
}

func (c *call) batchUpdate(f *fields) {
	raw, ok := f.required("objects")
	var items []json.RawMessage
	if ok && (json.Unmarshal(raw, &items) != nil || items == nil) {
		f.fail("invalid type: %s, expected a sequence", jsonKind(raw))
	}
	updates := make([]update, 0, len(items))
	for _, it := range items {
		of := decodeFields(it, "UpdateObjectPayload")
		u := c.decodeUpdate(of)
		if of.err != nil {
			f.fail("%v", of.err)
			break
		}
		u.raw = it
		updates = append(updates, u)
	}
	f.uuid("request_id")
	if c.decoding() {
		return
	}
	if len(updates) > 1000 {
		c.rep.appError("LimitConstraintError", fmt.Sprintf("batch size %d exceeds maximum of 1000", len(updates)))
		return
	}
	byVnode := map[uint64][]update{}
	for _, u := range updates {
		byVnode[u.vnode] = append(byVnode[u.vnode], u)
	}
	vnodes := make([]uint64, 0, len(byVnode))
	for v := range byVnode {
		vnodes = append(vnodes, v)
	}
	slices.Sort(vnodes)
	w := jsonstr.Object{Form: jsonstr.Serde}
	w.Open()
	w.Key("failed_vnodes")
	w.B = append(w.B, '[')
	failed := 0
	for _, v := range vnodes {
		name, msg := c.updateVnode(byVnode[v])
		if name == "" {
			continue
		}
		if failed > 0 {
			w.B = append(w.B, ',')
		}
		failed++
		vw := jsonstr.Object{B: w.B, Form: jsonstr.Serde}
		vw.Open()
		vw.Key("vnode")
		vw.B = strconv.AppendUint(vw.B, v, 10)
		vw.Raw("error", wrappedError(name, msg))
		vw.Key("objects")
		vw.B = append(vw.B, '[')
		for i, u := range byVnode[v] {
			if i > 0 {
				vw.B = append(vw.B, ',')
			}
			vw.B = appendEchoedUpdate(vw.B, u)
		}
		vw.B = append(vw.B, ']')
		vw.Close()
		w.B = vw.B
	}
	w.B = append(w.B, ']')
	w.Close()
	c.rep.Data(w.B)
	c.rep.end()
}

// updateVnode applies one vnode's updates in one transaction.
func (c *call) updateVnode(us []update) (errName, errMsg string) {
	tx, err := c.s.db.BeginTx(c.ctx, nil)
	if err != nil {
		return "PostgresError", pgMessage(err)
	}
	defer tx.Rollback()
	for _, u := range us {
		if _, name, msg := c.apply(tx, u, false); name != "" {
			return name, msg
		}
	}
	if err := tx.Commit(); err != nil {
		return "PostgresError", pgMessage(err)
	}
	return "", ""
}

// appendEchoedUpdate writes an update payload as the server echoes it in a
// failed vnode: every field of its payload struct, absent ones as null.
func appendEchoedUpdate(b []byte, u update) []byte {
	w := jsonstr.Object{B: b, Form: jsonstr.Serde}
	w.Open()
	w.Str("owner", u.owner)
	w.Str("bucket_id", u.bucket)
	w.Str("name", u.name)
	w.Str("id", u.id)
	w.Uint("vnode", u.vnode)
	w.Str("content_type", u.contentType)
	w.Raw("headers", headersJSON(u.headers))
	w.Key("sharks")
	if u.hasSharks {
		w.B = appendSharksJSON(w.B, u.sharks)
	} else {
		w.B = append(w.B, "null"...)
	}
	w.Key("properties")
	w.B = appendJSONValue(w.B, u.properties)
	w.Str("request_id", u.requestID)
	w.Key("conditions")
	cw := jsonstr.Object{B: w.B, Form: jsonstr.Serde}
	cw.Open()
	list := func(k string, has bool, l []string) {
		cw.Key(k)
		if !has {
			cw.B = append(cw.B, "null"...)
			return
		}
		cw.B = append(cw.B, '[')
		for i, s := range l {
			if i > 0 {
				cw.B = append(cw.B, ',')
			}
			cw.B = jsonstr.AppendSerde(cw.B, s)
		}
		cw.B = append(cw.B, ']')
	}
	when := func(k string, t *time.Time) {
		cw.Key(k)
		if t == nil {
			cw.B = append(cw.B, "null"...)
			return
		}
		cw.B = jsonstr.AppendSerde(cw.B, serdeTime(*t))
	}
	list("if_match", u.cond.hasIfMatch, u.cond.ifMatch)
	list("if_none_match", u.cond.hasIfNoneMatch, u.cond.ifNoneMatch)
	when("if_modified_since", u.cond.ifModifiedSince)
	when("if_unmodified_since", u.cond.ifUnmodifiedSince)
	cw.Close()
	w.B = cw.B
	w.Close()
	return w.B
}

// listOptions decodes and checks the paging fields of a listing.
func (c *call) listOptions(f *fields) (prefix, marker *string, limit uint64, ok bool) {
	if p, has := f.optStr("prefix"); has {
		prefix = &p
	}
	limit = f.u64("limit")
	if m, has := f.optStr("marker"); has {
		marker = &m
	}
	f.uuid("request_id")
	if c.decoding() {
		return nil, nil, 0, false
	}
	if limit < 1 || limit > 1024 {
		c.rep.appError("LimitConstraintError", fmt.Sprintf(
			"the %s limit option must be a value between 1 and 1024. the requested limit was %d", c.method, limit))
		return nil, nil, 0, false
	}
	return prefix, marker, limit, true
}

// pageQuery adds the prefix and marker conditions to a listing query.
func pageQuery(q string, args []any, prefix, marker *string, limit uint64) (string, []any) {
	if prefix != nil {
		args = append(args, *prefix+"%")
		q += fmt.Sprintf(" AND name LIKE $%d", len(args))
	}
	if marker != nil {
		args = append(args, *marker)
		q += fmt.Sprintf(" AND name > $%d", len(args))
	}
	return q + " ORDER BY name ASC LIMIT " + strconv.FormatUint(limit, 10), args
}

func (c *call) listObjects(f *fields) {
	owner, bucket, vnode := f.uuid("owner"), f.uuid("bucket_id"), f.u64("vnode")
	prefix, marker, limit, ok := c.listOptions(f)
	if !ok {
		return
	}
	q, args := pageQuery(`SELECT `+objectColumns+` FROM `+objectTable(vnode)+` WHERE owner = $1 AND bucket_id = $2`,
		[]any{owner, bucket}, prefix, marker, limit)
	rows, err := c.s.db.QueryContext(c.ctx, q, args...)
	if err != nil {
		c.pgError(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		o, err := scanObject(rows, vnode)
		if err != nil {
			c.pgError(err)
			return
		}
		c.rep.Data(objectJSON(&o))
	}
	if err := rows.Err(); err != nil {
		c.pgError(err)
		return
	}
	c.rep.end()
}

func (c *call) listBuckets(f *fields) {
	owner, vnode := f.uuid("owner"), f.u64("vnode")
	prefix, marker, limit, ok := c.listOptions(f)
	if !ok {
		return
	}
	q, args := pageQuery(`SELECT id::text, owner::text, name, created FROM `+bucketTable(vnode)+` WHERE owner = $1`,
		[]any{owner}, prefix, marker, limit)
	rows, err := c.s.db.QueryContext(c.ctx, q, args...)
	if err != nil {
		c.pgError(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id, owner, name string
		var created time.Time
		if err := rows.Scan(&id, &owner, &name, &created); err != nil {
			c.pgError(err)
			return
		}
		w := jsonstr.Object{Form: jsonstr.Serde}
		w.Open()
		w.Str("id", id)
		w.Str("owner", owner)
		w.Str("name", name)
		w.Str("created", serdeTime(created))
		w.Close()
		c.rep.Data(w.B)
	}
	if err := rows.Err(); err != nil {
		c.pgError(err)
		return
	}
	c.rep.end()
}

func (c *call) listVnodes(f *fields) {
	f.uuid("request_id")
	if c.decoding() {
		return
	}
	// As the server does: schemas in name order, as text (10 before 2).
	rows, err := c.s.db.QueryContext(c.ctx, `SELECT schema_name FROM information_schema.schemata
		WHERE left(schema_name, 13) = 'manta_bucket_' ORDER BY schema_name`)
	if err != nil {
		c.pgError(err)
		return
	}
	defer rows.Close()
	w := jsonstr.Object{Form: jsonstr.Serde}
	w.Open()
	w.Key("vnodes")
	w.B = append(w.B, '[')
	n := 0
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			c.pgError(err)
			return
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(name, "manta_bucket_"), 10, 64)
		if err != nil {
			continue
		}
		if n > 0 {
			w.B = append(w.B, ',')
		}
		n++
		w.B = strconv.AppendUint(w.B, v, 10)
	}
	if err := rows.Err(); err != nil {
		c.pgError(err)
		return
	}
	w.B = append(w.B, ']')
	w.Close()
	c.rep.Data(w.B)
	c.rep.end()
}

func (c *call) listOwners(f *fields) {
	vnode := f.u64("vnode")
	f.uuid("request_id")
	if c.decoding() {
		return
	}
	var exists bool
	err := c.s.db.QueryRowContext(c.ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)`,
		"manta_bucket_"+strconv.FormatUint(vnode, 10)).Scan(&exists)
	if err != nil {
		c.pgError(err)
		return
	}
	if !exists {
		c.rep.appError("PostgresError", fmt.Sprintf("vnode %d does not exist on this mdapi instance", vnode))
		return
	}
	rows, err := c.s.db.QueryContext(c.ctx, `SELECT DISTINCT owner::text FROM `+bucketTable(vnode))
	if err != nil {
		c.pgError(err)
		return
	}
	defer rows.Close()
	w := jsonstr.Object{Form: jsonstr.Serde}
	w.Open()
	w.Key("owners")
	w.B = append(w.B, '[')
	for n := 0; rows.Next(); n++ {
		var o string
		if err := rows.Scan(&o); err != nil {
			c.pgError(err)
			return
		}
		if n > 0 {
			w.B = append(w.B, ',')
		}
		w.B = jsonstr.AppendSerde(w.B, o)
	}
	if err := rows.Err(); err != nil {
		c.pgError(err)
		return
	}
	w.B = append(w.B, ']')
	w.Close()
	c.rep.Data(w.B)
	c.rep.end()
}

// objectJSON writes an object as the server's ObjectResponse.
func objectJSON(o *Object) []byte {
	w := jsonstr.Object{Form: jsonstr.Serde}
	w.Open()
	w.Str("id", o.ID)
	w.Str("owner", o.Owner)
	w.Str("bucket_id", o.BucketID)
	w.Str("name", o.Name)
	w.Str("created", serdeTime(o.Created))
	w.Str("modified", serdeTime(o.Modified))
	w.Int("content_length", o.ContentLength)
	w.Str("content_md5", o.ContentMD5)
	w.Str("content_type", o.ContentType)
	w.Raw("headers", headersJSON(o.Headers))
	sharks := make([]shark, len(o.Sharks))
	for i, s := range o.Sharks {
		sharks[i] = shark{s.Datacenter, s.MantaStorageID}
	}
	w.Key("sharks")
	w.B = appendSharksJSON(w.B, sharks)
	w.Key("properties")
	w.B = appendJSONValue(w.B, o.Properties)
	w.Close()
	return w.B
}

// headersJSON writes an hstore, keys sorted (the server's order is a hash
// map's).
func headersJSON(h map[string]*string) []byte {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w := jsonstr.Object{Form: jsonstr.Serde}
	w.Open()
	for _, k := range keys {
		w.Key(k)
		if v := h[k]; v != nil {
			w.B = jsonstr.AppendSerde(w.B, *v)
		} else {
			w.B = append(w.B, "null"...)
		}
	}
	w.Close()
	return w.B
}

func appendSharksJSON(b []byte, sharks []shark) []byte {
	b = append(b, '[')
	for i, s := range sharks {
		if i > 0 {
			b = append(b, ',')
		}
		w := jsonstr.Object{B: b, Form: jsonstr.Serde}
		w.Open()
		w.Str("datacenter", s.DC)
		w.Str("manta_storage_id", s.ID)
		w.Close()
		b = w.B
	}
	return append(b, ']')
}

// appendJSONValue writes a JSON value as serde_json writes a
// serde_json::Value: compact, object keys sorted. nil is null.
func appendJSONValue(b []byte, raw json.RawMessage) []byte {
	if raw == nil {
		return append(b, "null"...)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return append(b, "null"...)
	}
	return appendValue(b, v)
}

func appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case json.Number:
		return append(b, v.String()...)
	case string:
		return jsonstr.AppendSerde(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.AppendSerde(b, k)
			b = append(b, ':')
			b = appendValue(b, v[k])
		}
		return append(b, '}')
	}
	return append(b, "null"...)
}
