package mdapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
)

// Limits the server enforces.
const (
	// MaxLimit is the largest page listbuckets and listobjects return.
	MaxLimit = 1024
	// MaxBatch is the most objects batchupdateobjects takes at once.
	MaxBatch = 1000
)

// payload starts a request payload: one JSON object, whose request_id the
// server logs.
func newPayload(size int) jsonstr.Object {
	w := jsonstr.Object{B: make([]byte, 0, size), Form: jsonstr.Serde}
	w.Open()
	return w
}

// appendLocator adds the members that name an object.
func appendLocator(w *jsonstr.Object, l Locator) {
	w.Str("owner", l.Owner)
	w.Str("bucket_id", l.BucketID)
	w.Str("name", l.Name)
	w.Uint("vnode", l.Vnode)
}

// one reads a reply that must hold exactly one item.
func one(method string, dst *json.RawMessage) func(json.RawMessage) error {
	return func(item json.RawMessage) error {
		if *dst != nil {
			return fmt.Errorf("%s: more than one item in the reply", method)
		}
		*dst = item
		return nil
	}
}

// replyError names the RPC in an error from decoding its reply; errors the
// transport or the server produced already do.
func (c *Client) replyError(method string, err error) error {
	var te *TransportError
	var se *ServerError
	var ue *UnsupportedError
	if errors.As(err, &te) || errors.As(err, &se) || errors.As(err, &ue) || errors.Is(err, ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("buckets-mdapi %s: %s: %w", c.name, method, err)
}

// GetObject reads an object's metadata. A missing object gives an
// *ObjectNotFoundError (matching rebalancer.ErrObjectNotFound).
func (c *Client) GetObject(ctx context.Context, loc Locator) (*Record, error) {
	if err := loc.check(); err != nil {
		return nil, fmt.Errorf("buckets-mdapi %s: getobject: %w", c.name, err)
	}
	w := newPayload(256 + len(loc.Name))
	appendLocator(&w, loc)
	w.Str("request_id", c.newReqID())
	w.Close()
	var item json.RawMessage
	if err := c.call(ctx, "getobject", w.B, one("getobject", &item)); err != nil {
		return nil, c.replyError("getobject", err)
	}
	rec, err := decodeRecord(item, loc)
	if err != nil {
		return nil, c.replyError("getobject", err)
	}
	return rec, nil
}

func decodeRecord(item json.RawMessage, want Locator) (*Record, error) {
	if item == nil {
		return nil, errors.New("no object in the reply")
	}
	rec := new(Record)
	if err := json.Unmarshal(item, rec); err != nil {
		return nil, err
	}
	if rec.Owner != want.Owner || rec.BucketID != want.BucketID || rec.Name != want.Name {
		return nil, fmt.Errorf("asked for %s, got the record of %s", want.Key(), rec.Locator(want.Vnode).Key())
	}
	return rec, nil
}

// Update is one updateobject: the object's new content type, headers,
// properties and (optionally) sharks, and the conditions on its current
// state. buckets-mdapi writes all of content type, headers and properties,
// so an update that means to change only the sharks must send the others
// back exactly as they were read (the MetadataStore does).
type Update struct {
	Locator
	// ID is the object's id. The servers that accept sharks update the row
	// only if its id is still this one.
	ID          string
	ContentType string
	// Headers is a JSON object of strings or nulls; nil sends {}.
	Headers json.RawMessage
	// Properties is any JSON value; nil sends null.
	Properties json.RawMessage
	// Sharks, when not nil, replace the object's sharks. Only a server with
	// MANTA-5484 applies them; upstream buckets-mdapi ignores them, which
	// UpdateObject detects.
	Sharks     []rebalancer.StorageNode
	Conditions Conditions
}

// appendPayload writes the update's request payload.
func (u *Update) appendPayload(b []byte, reqID string) ([]byte, error) {
	if err := u.Locator.check(); err != nil {
		return nil, err
	}
	if err := checkUUID("object id", u.ID); err != nil {
		return nil, err
	}
	if !utf8.ValidString(u.ContentType) {
		return nil, fmt.Errorf("content type %q is not valid UTF-8", u.ContentType)
	}
	if err := u.Conditions.check(); err != nil {
		return nil, err
	}
	props := u.Properties
	if len(props) == 0 {
		props = json.RawMessage("null")
	}
	w := jsonstr.Object{B: b, Form: jsonstr.Serde}
	w.Open()
	appendLocator(&w, u.Locator)
	w.Str("id", u.ID)
	w.Str("content_type", u.ContentType)
	w.Key("headers")
	var err error
	if w.B, err = appendHeaders(w.B, u.Headers); err != nil {
		return nil, fmt.Errorf("headers: %w", err)
	}
	if u.Sharks != nil {
		w.Key("sharks")
		if w.B, err = appendSharks(w.B, u.Sharks); err != nil {
			return nil, err
		}
	}
	w.Key("properties")
	if w.B, err = canonical(w.B, props); err != nil {
		return nil, fmt.Errorf("properties: %w", err)
	}
	w.Str("request_id", reqID)
	w.Key("conditions")
	w.B = u.Conditions.appendJSON(w.B)
	w.Close()
	return w.B, nil
}

// UpdateObject applies u and returns the object as the server left it.
//
// A failed condition gives a *PreconditionFailedError (matching
// rebalancer.ErrEtagConflict); a missing object, or one whose id is no
// longer u.ID, an *ObjectNotFoundError. When u.Sharks is set and the
// returned record does not list exactly those sharks, the server ignored
// them (upstream buckets-mdapi does): the error is an *UnsupportedError,
// and the update of content type, headers and properties did happen.
func (c *Client) UpdateObject(ctx context.Context, u Update) (*Record, error) {
	payload, err := u.appendPayload(make([]byte, 0, 512+len(u.Name)+len(u.Headers)+len(u.Properties)), c.newReqID())
	if err != nil {
		return nil, fmt.Errorf("buckets-mdapi %s: updateobject %s: %w", c.name, u.Key(), err)
	}
	var item json.RawMessage
	if err := c.call(ctx, "updateobject", payload, one("updateobject", &item)); err != nil {
		return nil, c.replyError("updateobject", err)
	}
	rec, err := decodeRecord(item, u.Locator)
	if err != nil {
		return nil, c.replyError("updateobject", err)
	}
	if u.Sharks != nil && !slices.Equal(rec.Sharks, u.Sharks) {
		return rec, &UnsupportedError{Addr: c.name, Method: "updateobject",
			Feature: fmt.Sprintf("sharks in updateobject (sent %v, the object kept %v)", u.Sharks, rec.Sharks)}
	}
	return rec, nil
}

// BatchUpdateObjects applies several updates in one batchupdateobjects (at
// most MaxBatch). The server groups them by vnode and runs one transaction
// per vnode: when some vnodes fail, the error is a *BatchError naming them
// and the objects of the other vnodes were updated. A server without the RPC
// (upstream buckets-mdapi) gives an *UnsupportedError: fall back to
// UpdateObject.
//
// The reply carries no records, so nothing checks that the server applied
// the sharks; only servers that accept sharks in updateobject have the RPC.
func (c *Client) BatchUpdateObjects(ctx context.Context, updates []Update) error {
	switch {
	case len(updates) == 0:
		return nil
	case len(updates) > MaxBatch:
		return fmt.Errorf("buckets-mdapi %s: batchupdateobjects: %d objects, more than the server's limit of %d", c.name, len(updates), MaxBatch)
	}
	size := 64
	for _, u := range updates {
		size += 512 + len(u.Name) + len(u.Headers) + len(u.Properties)
	}
	w := newPayload(size)
	w.Key("objects")
	w.B = append(w.B, '[')
	for i := range updates {
		if i > 0 {
			w.B = append(w.B, ',')
		}
		var err error
		if w.B, err = updates[i].appendPayload(w.B, c.newReqID()); err != nil {
			return fmt.Errorf("buckets-mdapi %s: batchupdateobjects: object %d (%s): %w", c.name, i, updates[i].Key(), err)
		}
	}
	w.B = append(w.B, ']')
	w.Str("request_id", c.newReqID())
	w.Close()

	var item json.RawMessage
	if err := c.call(ctx, "batchupdateobjects", w.B, one("batchupdateobjects", &item)); err != nil {
		return c.replyError("batchupdateobjects", err)
	}
	if err := c.batchResult(item, updates); err != nil {
		return c.replyError("batchupdateobjects", err)
	}
	return nil
}

// batchResult reads {"failed_vnodes":[{"vnode":V,"error":{...},"objects":[...]}]}.
func (c *Client) batchResult(item json.RawMessage, updates []Update) error {
	if item == nil {
		return errors.New("no result in the reply")
	}
	var r struct {
		Failed *[]struct {
			Vnode   *uint64           `json:"vnode"`
			Error   json.RawMessage   `json:"error"`
			Objects []json.RawMessage `json:"objects"`
		} `json:"failed_vnodes"`
	}
	if err := json.Unmarshal(item, &r); err != nil || r.Failed == nil {
		return fmt.Errorf("bad batch result %s", truncate(string(item), 200))
	}
	if len(*r.Failed) == 0 {
		return nil
	}
	be := &BatchError{Addr: c.name}
	for _, f := range *r.Failed {
		if f.Vnode == nil {
			return fmt.Errorf("bad batch result: a failed vnode without its number: %s", truncate(string(item), 200))
		}
		vf := VnodeFailure{Vnode: *f.Vnode}
		for i, u := range updates {
			if u.Vnode == *f.Vnode {
				vf.Objects = append(vf.Objects, i)
			}
		}
		if len(vf.Objects) == 0 {
			return fmt.Errorf("bad batch result: vnode %d failed, but no object of the request is on it", *f.Vnode)
		}
		if len(f.Objects) != len(vf.Objects) {
			return fmt.Errorf("bad batch result: vnode %d failed with %d objects, the request had %d on it", *f.Vnode, len(f.Objects), len(vf.Objects))
		}
		if e, ok := dataError(c.name, "batchupdateobjects", f.Error); ok {
			vf.Err = e
		} else {
			vf.Err = &ServerError{Addr: c.name, Method: "batchupdateobjects", Name: "UnknownError",
				Message: "vnode " + strconv.FormatUint(*f.Vnode, 10) + " failed: " + truncate(string(f.Error), 200), Raw: f.Error}
		}
		be.Failed = append(be.Failed, vf)
	}
	return be
}

// ListVnodes returns the vnodes whose schemas exist on the server, in
// ascending order. Only servers with MANTA-5504 have the RPC; others give
// an *UnsupportedError.
func (c *Client) ListVnodes(ctx context.Context) ([]uint64, error) {
	w := newPayload(64)
	w.Str("request_id", c.newReqID())
	w.Close()
	var item json.RawMessage
	if err := c.call(ctx, "listvnodes", w.B, one("listvnodes", &item)); err != nil {
		return nil, c.replyError("listvnodes", err)
	}
	var r struct {
		Vnodes *[]uint64 `json:"vnodes"`
	}
	if item == nil || json.Unmarshal(item, &r) != nil || r.Vnodes == nil {
		return nil, c.replyError("listvnodes", fmt.Errorf("bad reply %s", truncate(string(item), 200)))
	}
	// The server orders them by schema name, as text.
	vnodes := slices.Clone(*r.Vnodes)
	slices.Sort(vnodes)
	return slices.Compact(vnodes), nil
}

// ListOwners returns the accounts that have buckets in a vnode (the owners
// of its manta_bucket table, not of its objects: see the package
// documentation), sorted. A vnode the server does not have gives a
// *ServerError named PostgresError. Only servers with MANTA-5504 have the
// RPC.
func (c *Client) ListOwners(ctx context.Context, vnode uint64) ([]string, error) {
	w := newPayload(96)
	w.Uint("vnode", vnode)
	w.Str("request_id", c.newReqID())
	w.Close()
	var item json.RawMessage
	if err := c.call(ctx, "listowners", w.B, one("listowners", &item)); err != nil {
		return nil, c.replyError("listowners", err)
	}
	var r struct {
		Owners *[]string `json:"owners"`
	}
	if item == nil || json.Unmarshal(item, &r) != nil || r.Owners == nil {
		return nil, c.replyError("listowners", fmt.Errorf("bad reply %s", truncate(string(item), 200)))
	}
	for _, o := range *r.Owners {
		if err := checkUUID("owner", o); err != nil {
			return nil, c.replyError("listowners", err)
		}
	}
	owners := slices.Clone(*r.Owners)
	slices.Sort(owners)
	return slices.Compact(owners), nil
}

// ListOptions selects one page of a listing. The server orders by name
// (in its database's collation) and returns the names after Marker.
type ListOptions struct {
	// Prefix keeps names starting with it. The server matches it with SQL
	// LIKE, so '%' and '_' in it are wildcards.
	Prefix string
	// Marker, when set, starts the page after this name.
	Marker string
	// Limit is the page size, 1..MaxLimit (0: MaxLimit).
	Limit int
}

func (o *ListOptions) append(w *jsonstr.Object, method string) error {
	if o.Limit == 0 {
		o.Limit = MaxLimit
	}
	if o.Limit < 1 || o.Limit > MaxLimit {
		return fmt.Errorf("%s: limit %d is not in 1..%d", method, o.Limit, MaxLimit)
	}
	if !utf8.ValidString(o.Prefix) || !utf8.ValidString(o.Marker) {
		return fmt.Errorf("%s: prefix or marker is not valid UTF-8", method)
	}
	if o.Prefix != "" {
		w.Str("prefix", o.Prefix)
	}
	w.Uint("limit", uint64(o.Limit))
	if o.Marker != "" {
		w.Str("marker", o.Marker)
	}
	return nil
}

// ListBuckets returns one page of the buckets of owner whose records are in
// vnode.
func (c *Client) ListBuckets(ctx context.Context, owner string, vnode uint64, opts ListOptions) ([]Bucket, error) {
	if err := checkUUID("owner", owner); err != nil {
		return nil, fmt.Errorf("buckets-mdapi %s: listbuckets: %w", c.name, err)
	}
	w := newPayload(256 + len(opts.Prefix) + len(opts.Marker))
	w.Str("owner", owner)
	w.Uint("vnode", vnode)
	if err := opts.append(&w, "listbuckets"); err != nil {
		return nil, fmt.Errorf("buckets-mdapi %s: %w", c.name, err)
	}
	w.Str("request_id", c.newReqID())
	w.Close()
	var out []Bucket
	err := c.call(ctx, "listbuckets", w.B, func(item json.RawMessage) error {
		var b Bucket
		if err := json.Unmarshal(item, &b); err != nil {
			return err
		}
		if b.Owner != owner {
			return fmt.Errorf("asked for the buckets of %s, got one of %s", owner, b.Owner)
		}
		out = append(out, b)
		return nil
	})
	if err != nil {
		return nil, c.replyError("listbuckets", err)
	}
	if len(out) > opts.Limit {
		return nil, c.replyError("listbuckets", fmt.Errorf("%d buckets for a limit of %d", len(out), opts.Limit))
	}
	return out, nil
}

// ListObjects returns one page of the objects of a bucket that are in
// vnode.
func (c *Client) ListObjects(ctx context.Context, owner, bucketID string, vnode uint64, opts ListOptions) ([]*Record, error) {
	for _, f := range []struct{ name, v string }{{"owner", owner}, {"bucket_id", bucketID}} {
		if err := checkUUID(f.name, f.v); err != nil {
			return nil, fmt.Errorf("buckets-mdapi %s: listobjects: %w", c.name, err)
		}
	}
	w := newPayload(256 + len(opts.Prefix) + len(opts.Marker))
	w.Str("owner", owner)
	w.Str("bucket_id", bucketID)
	w.Uint("vnode", vnode)
	if err := opts.append(&w, "listobjects"); err != nil {
		return nil, fmt.Errorf("buckets-mdapi %s: %w", c.name, err)
	}
	w.Str("request_id", c.newReqID())
	w.Close()
	var out []*Record
	err := c.call(ctx, "listobjects", w.B, func(item json.RawMessage) error {
		rec := new(Record)
		if err := json.Unmarshal(item, rec); err != nil {
			return err
		}
		if rec.Owner != owner || rec.BucketID != bucketID {
			return fmt.Errorf("asked for the objects of %s/%s, got %s", owner, bucketID, rec.Locator(vnode).Key())
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, c.replyError("listobjects", err)
	}
	if len(out) > opts.Limit {
		return nil, c.replyError("listobjects", fmt.Errorf("%d objects for a limit of %d", len(out), opts.Limit))
	}
	return out, nil
}

// WalkBuckets calls fn for every bucket of owner in vnode, a page of
// pageSize (0: MaxLimit) at a time, until a short page. An error from fn
// stops the walk and is returned.
func (c *Client) WalkBuckets(ctx context.Context, owner string, vnode uint64, pageSize int, fn func(Bucket) error) error {
	opts := ListOptions{Limit: cmp.Or(pageSize, MaxLimit)}
	for {
		page, err := c.ListBuckets(ctx, owner, vnode, opts)
		if err != nil {
			return err
		}
		for _, b := range page {
			if err := fn(b); err != nil {
				return err
			}
		}
		if len(page) < opts.Limit {
			return nil
		}
		next := page[len(page)-1].Name
		if next == opts.Marker {
			return fmt.Errorf("buckets-mdapi %s: listbuckets: the page after %q ends with it again", c.name, next)
		}
		opts.Marker = next
	}
}

// WalkObjects calls fn for every object of a bucket in vnode, a page of
// pageSize (0: MaxLimit) at a time, until a short page. An error from fn
// stops the walk and is returned.
func (c *Client) WalkObjects(ctx context.Context, owner, bucketID string, vnode uint64, pageSize int, fn func(*Record) error) error {
	opts := ListOptions{Limit: cmp.Or(pageSize, MaxLimit)}
	for {
		page, err := c.ListObjects(ctx, owner, bucketID, vnode, opts)
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < opts.Limit {
			return nil
		}
		next := page[len(page)-1].Name
		if next == opts.Marker {
			return fmt.Errorf("buckets-mdapi %s: listobjects: the page after %q ends with it again", c.name, next)
		}
		opts.Marker = next
	}
}
