package mdapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
)

// Locator says where an object's metadata lives on a buckets-mdapi shard:
// the owner's account, the bucket, the object's name, and the vnode whose
// schema (manta_bucket_<vnode>) holds its row. buckets-api picks the vnode
// by hashing "<owner>:<bucket_id>:<md5 hex of the name>" on its placement
// ring; the rebalancer never recomputes it, it reuses the vnode it found the
// object in.
type Locator struct {
	Owner    string // account UUID
	BucketID string // bucket UUID
	Name     string // object name
	Vnode    uint64
}

// KeyPrefix starts every Key: v1 (Moray) keys start with "/", so the two
// never collide.
const KeyPrefix = "v2/"

// Key returns the string that stands for the object wherever the rebalancer
// needs a key (rebalancer.Object.Key, the job database, MetadataStore
// calls): "v2/<vnode>/<owner>/<bucket_id>/<name>". The name comes last and
// is kept verbatim, slashes included.
func (l Locator) Key() string {
	return KeyPrefix + strconv.FormatUint(l.Vnode, 10) + "/" + l.Owner + "/" + l.BucketID + "/" + l.Name
}

func (l Locator) String() string { return l.Key() }

// IsKey reports whether key is a buckets-mdapi key (Locator.Key) rather
// than a Moray one, for routing an object to the right metadata store.
func IsKey(key string) bool { return strings.HasPrefix(key, KeyPrefix) }

// ParseKey is the inverse of Locator.Key.
func ParseKey(key string) (Locator, error) {
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok {
		return Locator{}, fmt.Errorf("key %q: not a buckets-mdapi key (%s...)", key, KeyPrefix)
	}
	parts := strings.SplitN(rest, "/", 4)
	if len(parts) != 4 {
		return Locator{}, fmt.Errorf("key %q: want %s<vnode>/<owner>/<bucket_id>/<name>", key, KeyPrefix)
	}
	vnode, err := strconv.ParseUint(parts[0], 10, 64)
	if err != nil || strconv.FormatUint(vnode, 10) != parts[0] {
		return Locator{}, fmt.Errorf("key %q: bad vnode %q", key, parts[0])
	}
	l := Locator{Vnode: vnode, Owner: parts[1], BucketID: parts[2], Name: parts[3]}
	if err := l.check(); err != nil {
		return Locator{}, fmt.Errorf("key %q: %w", key, err)
	}
	return l, nil
}

// check validates what the server would otherwise refuse or misread.
func (l Locator) check() error {
	if err := checkUUID("owner", l.Owner); err != nil {
		return err
	}
	if err := checkUUID("bucket_id", l.BucketID); err != nil {
		return err
	}
	return checkName(l.Name)
}

// checkUUID accepts the canonical 36-character form, which is what the
// server sends and what it parses without question.
func checkUUID(field, s string) error {
	if len(s) != 36 || uuid.Validate(s) != nil {
		return fmt.Errorf("%s %q is not a UUID", field, s)
	}
	return nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty object name")
	case !utf8.ValidString(name):
		return fmt.Errorf("object name %q is not valid UTF-8", name)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("object name %q contains NUL, which PostgreSQL text cannot hold", name)
	}
	return nil
}

// Record is an object's metadata as buckets-mdapi returns it (getobject,
// updateobject, listobjects): the server's ObjectResponse.
type Record struct {
	ID            string
	Owner         string
	BucketID      string
	Name          string
	Created       time.Time
	Modified      time.Time
	ContentLength int64
	ContentMD5    string // base64 of the raw digest
	ContentType   string
	// Headers is the object's headers (a PostgreSQL hstore) as a JSON
	// object whose values are strings or null, in serde_json's form.
	Headers json.RawMessage
	Sharks  []rebalancer.StorageNode
	// Properties is the object's properties (jsonb): a JSON value or null,
	// in serde_json's form. buckets-api keeps roles and S3 tags there.
	Properties json.RawMessage
}

// Locator returns where the record lives, given the vnode it was read from.
func (r *Record) Locator(vnode uint64) Locator {
	return Locator{Owner: r.Owner, BucketID: r.BucketID, Name: r.Name, Vnode: vnode}
}

// Etag returns the version the record was read at (see Etag).
func (r *Record) Etag() string { return Etag(r.ID, r.Modified) }

// Etag forms the rebalancer's etag of a v2 object: "<id>@<modified>", the
// object id and its modification time (RFC 3339, UTC, to the microsecond
// PostgreSQL keeps). buckets-mdapi compares if-match with the object id,
// which changes only when the object is overwritten; updateobject rewrites
// the object's content type, headers and properties as well as its sharks,
// so an update must also fail if they changed since they were read, which
// if-unmodified-since <modified> checks.
func Etag(id string, modified time.Time) string {
	return id + "@" + formatTime(modified)
}

// ParseEtag splits an etag made by Etag.
func ParseEtag(etag string) (id string, modified time.Time, err error) {
	id, ts, ok := strings.Cut(etag, "@")
	if !ok || checkUUID("object id", id) != nil {
		return "", time.Time{}, fmt.Errorf("etag %q is not <object id>@<modified>", etag)
	}
	modified, err = time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("etag %q: modification time: %w", etag, err)
	}
	return id, modified, nil
}

// formatTime writes a time as the server does (chrono's RFC 3339: UTC, "Z",
// and a fraction of 0, 3, 6 or 9 digits), which also parses back exactly.
func formatTime(t time.Time) string {
	t = t.UTC()
	ns := t.Nanosecond()
	switch {
	case ns == 0:
		return t.Format("2006-01-02T15:04:05Z")
	case ns%1e6 == 0:
		return t.Format("2006-01-02T15:04:05.000Z")
	case ns%1e3 == 0:
		return t.Format("2006-01-02T15:04:05.000000Z")
	}
	return t.Format("2006-01-02T15:04:05.000000000Z")
}

// recordWire is the JSON of a record; pointers tell absent from zero.
type recordWire struct {
	ID            *string         `json:"id"`
	Owner         *string         `json:"owner"`
	BucketID      *string         `json:"bucket_id"`
	Name          *string         `json:"name"`
	Created       *string         `json:"created"`
	Modified      *string         `json:"modified"`
	ContentLength json.RawMessage `json:"content_length"`
	ContentMD5    *string         `json:"content_md5"`
	ContentType   *string         `json:"content_type"`
	Headers       json.RawMessage `json:"headers"`
	Sharks        json.RawMessage `json:"sharks"`
	Properties    json.RawMessage `json:"properties"`
}

// UnmarshalJSON decodes a record strictly: every field the server always
// sends must be there with the right type, UUIDs must be UUIDs, headers an
// object of strings or nulls, sharks an array of storage nodes. Headers and
// properties are kept in serde_json's form, ready to be sent back.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w recordWire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("bad object record: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("bad object record: "+format, args...)
	}
	for _, f := range []struct {
		name string
		v    *string
	}{
		{"id", w.ID}, {"owner", w.Owner}, {"bucket_id", w.BucketID}, {"name", w.Name},
		{"created", w.Created}, {"modified", w.Modified}, {"content_md5", w.ContentMD5}, {"content_type", w.ContentType},
	} {
		if f.v == nil {
			return bad("no %s", f.name)
		}
	}
	rec := Record{ID: *w.ID, Owner: *w.Owner, BucketID: *w.BucketID, Name: *w.Name,
		ContentMD5: *w.ContentMD5, ContentType: *w.ContentType}
	for _, f := range []struct{ name, v string }{{"id", rec.ID}, {"owner", rec.Owner}, {"bucket_id", rec.BucketID}} {
		if err := checkUUID(f.name, f.v); err != nil {
			return bad("%v", err)
		}
	}
	var err error
	if rec.Created, err = time.Parse(time.RFC3339Nano, *w.Created); err != nil {
		return bad("created: %v", err)
	}
	if rec.Modified, err = time.Parse(time.RFC3339Nano, *w.Modified); err != nil {
		return bad("modified: %v", err)
	}
	// A number, not a string holding one (which json.Number would take).
	if rec.ContentLength, err = strconv.ParseInt(string(w.ContentLength), 10, 64); err != nil || rec.ContentLength < 0 {
		return bad("content_length %s is not a byte count", w.ContentLength)
	}
	if _, err := base64.StdEncoding.DecodeString(rec.ContentMD5); err != nil {
		return bad("content_md5 %q is not base64", rec.ContentMD5)
	}
	if rec.Headers, err = canonicalHeaders(w.Headers); err != nil {
		return bad("headers: %v", err)
	}
	if rec.Sharks, err = parseSharks(w.Sharks); err != nil {
		return bad("%v", err)
	}
	if len(w.Properties) == 0 {
		return bad("no properties")
	}
	if rec.Properties, err = readProperties(w.Properties); err != nil {
		return bad("properties: %v", err)
	}
	*r = rec
	return nil
}

// MarshalJSON encodes the record as the server does: its fields in the
// server's order, times as the server writes them, in serde_json's form.
// Direct-database discovery uses it to give an object read from PostgreSQL
// the same metadata as one read through buckets-mdapi. Call it directly:
// json.Marshal re-escapes its output (U+2028, U+2029, and HTML characters)
// the way Go, not serde_json, escapes strings.
func (r *Record) MarshalJSON() ([]byte, error) {
	return r.appendJSON(nil, nil)
}

// appendJSON appends the record as a JSON object, after the members extra
// writes first (if any).
func (r *Record) appendJSON(b []byte, extra func(w *jsonstr.Object)) ([]byte, error) {
	headers, err := canonicalHeaders(r.Headers)
	if err != nil {
		return nil, fmt.Errorf("record %s: headers: %w", r.ID, err)
	}
	props := r.Properties
	if len(props) == 0 {
		props = json.RawMessage("null")
	}
	if props, err = readProperties(props); err != nil {
		return nil, fmt.Errorf("record %s: properties: %w", r.ID, err)
	}
	for _, s := range []string{r.ID, r.Owner, r.BucketID, r.Name, r.ContentMD5, r.ContentType} {
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("record %s: invalid UTF-8 in %q", r.ID, s)
		}
	}
	w := jsonstr.Object{B: b, Form: jsonstr.Serde}
	w.Open()
	if extra != nil {
		extra(&w)
	}
	w.Str("id", r.ID)
	w.Str("owner", r.Owner)
	w.Str("bucket_id", r.BucketID)
	w.Str("name", r.Name)
	w.Str("created", formatTime(r.Created))
	w.Str("modified", formatTime(r.Modified))
	w.Int("content_length", r.ContentLength)
	w.Str("content_md5", r.ContentMD5)
	w.Str("content_type", r.ContentType)
	w.Raw("headers", headers)
	sharks, err := appendSharks(nil, r.Sharks)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", r.ID, err)
	}
	w.Raw("sharks", sharks)
	w.Raw("properties", props)
	w.Close()
	return w.B, nil
}

// readProperties returns properties in serde_json's form when they have
// one this package can write (see canonical), and otherwise compacted as
// they are: an object whose properties hold a fraction can still be read and
// listed; only an update, which would have to send them back, refuses it.
func readProperties(raw json.RawMessage) (json.RawMessage, error) {
	out, err := canonical(nil, raw)
	if errors.Is(err, errInexactNumber) {
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	return out, err
}

// canonicalHeaders checks that raw is a JSON object of strings or nulls (an
// hstore) and returns it in serde_json's form. Absent or null is {}: the
// server cannot send a NULL hstore (it fails to read one), and an update
// must send an object.
func canonicalHeaders(raw json.RawMessage) (json.RawMessage, error) {
	return appendHeaders(nil, raw)
}

func appendHeaders(b []byte, raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return append(b, "{}"...), nil
	}
	return canonicalValue(b, raw, true)
}

// parseSharks reads a record's sharks: an array of
// {"datacenter","manta_storage_id"}.
func parseSharks(raw json.RawMessage) ([]rebalancer.StorageNode, error) {
	if len(raw) == 0 {
		return nil, errors.New("no sharks")
	}
	var ws []struct {
		DC *string `json:"datacenter"`
		ID *string `json:"manta_storage_id"`
	}
	if err := json.Unmarshal(raw, &ws); err != nil || ws == nil {
		return nil, errors.New("sharks is not an array of storage nodes")
	}
	out := make([]rebalancer.StorageNode, len(ws))
	for i, s := range ws {
		if s.DC == nil || s.ID == nil {
			return nil, fmt.Errorf("sharks[%d] lacks datacenter or manta_storage_id", i)
		}
		out[i] = rebalancer.StorageNode{Datacenter: *s.DC, MantaStorageID: *s.ID}
	}
	return out, nil
}

// appendSharks writes sharks as the server does, refusing what it would
// store wrongly: it keeps each as the text "<datacenter>:<storage id>" and
// reads it back by splitting at colons, so a colon in either part would
// silently become another shark.
func appendSharks(b []byte, sharks []rebalancer.StorageNode) ([]byte, error) {
	b = append(b, '[')
	for i, s := range sharks {
		if err := checkShark(s); err != nil {
			return nil, err
		}
		if i > 0 {
			b = append(b, ',')
		}
		w := jsonstr.Object{B: b, Form: jsonstr.Serde}
		w.Open()
		w.Str("datacenter", s.Datacenter)
		w.Str("manta_storage_id", s.MantaStorageID)
		w.Close()
		b = w.B
	}
	return append(b, ']'), nil
}

func checkShark(s rebalancer.StorageNode) error {
	switch {
	case s.Datacenter == "" || s.MantaStorageID == "":
		return fmt.Errorf("shark %+v: empty datacenter or storage id", s)
	case strings.Contains(s.Datacenter, ":") || strings.Contains(s.MantaStorageID, ":"):
		return fmt.Errorf("shark %s in %s: buckets-mdapi cannot store a ':' in a datacenter or storage id", s.MantaStorageID, s.Datacenter)
	case !utf8.ValidString(s.Datacenter) || !utf8.ValidString(s.MantaStorageID):
		return fmt.Errorf("shark %q: invalid UTF-8", s.MantaStorageID)
	}
	return nil
}

// Bucket is a bucket as listbuckets returns it.
type Bucket struct {
	ID      string
	Owner   string
	Name    string
	Created time.Time
}

// UnmarshalJSON decodes a bucket strictly.
func (bk *Bucket) UnmarshalJSON(b []byte) error {
	var w struct {
		ID      *string `json:"id"`
		Owner   *string `json:"owner"`
		Name    *string `json:"name"`
		Created *string `json:"created"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("bad bucket: %w", err)
	}
	if w.ID == nil || w.Owner == nil || w.Name == nil || w.Created == nil {
		return errors.New("bad bucket: id, owner, name and created are required")
	}
	if err := checkUUID("bucket id", *w.ID); err != nil {
		return fmt.Errorf("bad bucket: %w", err)
	}
	if err := checkUUID("owner", *w.Owner); err != nil {
		return fmt.Errorf("bad bucket: %w", err)
	}
	created, err := time.Parse(time.RFC3339Nano, *w.Created)
	if err != nil {
		return fmt.Errorf("bad bucket %s: created: %w", *w.ID, err)
	}
	*bk = Bucket{ID: *w.ID, Owner: *w.Owner, Name: *w.Name, Created: created}
	return nil
}

// Conditions are the preconditions of an update, as buckets-mdapi checks
// them against the stored object: the "etag" they compare is the object id.
// The zero value is unconditional.
type Conditions struct {
	IfMatch           []string  // the object id must be one of these ("*": it must exist)
	IfNoneMatch       []string  // the object id must be none of these ("*": it must not exist)
	IfModifiedSince   time.Time // zero: absent
	IfUnmodifiedSince time.Time // zero: absent; the object must not be modified after this
}

// IsZero reports whether there is no condition.
func (c Conditions) IsZero() bool {
	return c.IfMatch == nil && c.IfNoneMatch == nil && c.IfModifiedSince.IsZero() && c.IfUnmodifiedSince.IsZero()
}

func (c Conditions) check() error {
	for _, list := range [][]string{c.IfMatch, c.IfNoneMatch} {
		for _, s := range list {
			if !utf8.ValidString(s) {
				return fmt.Errorf("condition %q is not valid UTF-8", s)
			}
		}
	}
	return nil
}

func (c Conditions) appendJSON(b []byte) []byte {
	w := jsonstr.Object{B: b, Form: jsonstr.Serde}
	w.Open()
	if c.IfMatch != nil {
		w.Strs("if-match", c.IfMatch)
	}
	if c.IfNoneMatch != nil {
		w.Strs("if-none-match", c.IfNoneMatch)
	}
	if !c.IfModifiedSince.IsZero() {
		w.Str("if-modified-since", formatTime(c.IfModifiedSince))
	}
	if !c.IfUnmodifiedSince.IsZero() {
		w.Str("if-unmodified-since", formatTime(c.IfUnmodifiedSince))
	}
	w.Close()
	return w.B
}
