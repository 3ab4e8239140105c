package mdapitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Request payloads are decoded as serde decodes buckets-mdapi's payload
// structs: required fields must be there with the right JSON type (UUIDs as
// UUID strings, vnode and limit as unsigned integers), Option fields may be
// absent or null, unknown fields are ignored. A payload that does not decode
// fails the request with a FastError ERROR frame whose message is serde's
// kind of complaint.

type fields struct {
	m   map[string]json.RawMessage
	err error
}

func decodeFields(raw json.RawMessage, what string) *fields {
	f := &fields{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&f.m); err != nil || f.m == nil {
		f.err = fmt.Errorf("invalid type: %s, expected struct %s", jsonKind(raw), what)
	}
	return f
}

func jsonKind(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "map"
	case '[':
		return "sequence"
	case '"':
		return "string " + string(t)
	case 't', 'f':
		return "boolean `" + string(t) + "`"
	case 'n':
		return "null"
	}
	if bytes.ContainsAny(t, ".eE") {
		return "floating point `" + string(t) + "`"
	}
	return "integer `" + string(t) + "`"
}

func (f *fields) fail(format string, args ...any) {
	if f.err == nil {
		f.err = fmt.Errorf(format, args...)
	}
}

// lookup returns a field's value; absent and null are "not present".
func (f *fields) lookup(names ...string) (json.RawMessage, bool) {
	if f.err != nil {
		return nil, false
	}
	for _, n := range names {
		if v, ok := f.m[n]; ok && string(bytes.TrimSpace(v)) != "null" {
			return v, true
		}
	}
	return nil, false
}

func (f *fields) required(name string) (json.RawMessage, bool) {
	if f.err != nil {
		return nil, false
	}
	v, ok := f.m[name]
	if !ok {
		f.fail("missing field `%s`", name)
		return nil, false
	}
	return v, true
}

func (f *fields) str(name string) string {
	v, ok := f.required(name)
	if !ok {
		return ""
	}
	var s string
	if v[0] != '"' || json.Unmarshal(v, &s) != nil {
		f.fail("invalid type: %s, expected a string", jsonKind(v))
	}
	return s
}

func (f *fields) optStr(name string) (string, bool) {
	v, ok := f.lookup(name)
	if !ok {
		return "", false
	}
	var s string
	if v[0] != '"' || json.Unmarshal(v, &s) != nil {
		f.fail("invalid type: %s, expected a string", jsonKind(v))
		return "", false
	}
	return s, true
}

func (f *fields) uuid(name string) string {
	s := f.str(name)
	if f.err != nil {
		return ""
	}
	u, err := uuid.Parse(s)
	if err != nil {
		f.fail("UUID parsing failed: %v", err)
		return ""
	}
	return u.String()
}

func (f *fields) u64(name string) uint64 {
	v, ok := f.required(name)
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		f.fail("invalid type: %s, expected u64", jsonKind(v))
	}
	return n
}

// hstore decodes a map of string to optional string.
func (f *fields) hstore(name string) map[string]*string {
	v, ok := f.required(name)
	if !ok {
		return nil
	}
	var m map[string]*string
	if err := json.Unmarshal(v, &m); err != nil || m == nil {
		f.fail("invalid type: %s, expected a map", jsonKind(v))
	}
	return m
}

// optValue returns an Option<serde_json::Value>: nil when absent or null.
func (f *fields) optValue(name string) json.RawMessage {
	v, _ := f.lookup(name)
	return v
}

type shark struct{ DC, ID string }

func (f *fields) optSharks(name string) ([]shark, bool) {
	v, ok := f.lookup(name)
	if !ok {
		return nil, false
	}
	var ws []struct {
		DC *string `json:"datacenter"`
		ID *string `json:"manta_storage_id"`
	}
	if err := json.Unmarshal(v, &ws); err != nil || ws == nil {
		f.fail("invalid type: %s, expected a sequence", jsonKind(v))
		return nil, false
	}
	out := make([]shark, len(ws))
	for i, w := range ws {
		if w.DC == nil || w.ID == nil {
			f.fail("missing field `datacenter` or `manta_storage_id`")
			return nil, false
		}
		out[i] = shark{*w.DC, *w.ID}
	}
	return out, true
}

// cond is a request's conditions.
type cond struct {
	ifMatch, ifNoneMatch                []string // nil: absent
	ifModifiedSince, ifUnmodifiedSince  *time.Time
	hasIfMatch, hasIfNoneMatch, present bool
}

func (f *fields) conditions() cond {
	v, ok := f.m["conditions"]
	if !ok || f.err != nil {
		return cond{}
	}
	c := decodeFields(v, "Conditions")
	if c.err != nil {
		f.fail("%v", c.err)
		return cond{}
	}
	var out cond
	list := func(names ...string) ([]string, bool) {
		raw, ok := c.lookup(names...)
		if !ok {
			return nil, false
		}
		var l []string
		if err := json.Unmarshal(raw, &l); err != nil || l == nil {
			f.fail("invalid type: %s, expected a sequence", jsonKind(raw))
			return nil, false
		}
		return l, true
	}
	when := func(names ...string) *time.Time {
		raw, ok := c.lookup(names...)
		if !ok {
			return nil
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			f.fail("invalid type: %s, expected an RFC 3339 formatted date and time string", jsonKind(raw))
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			f.fail("input contains invalid characters")
			return nil
		}
		return &t
	}
	out.ifMatch, out.hasIfMatch = list("if_match", "if-match")
	out.ifNoneMatch, out.hasIfNoneMatch = list("if_none_match", "if-none-match")
	out.ifModifiedSince = when("if_modified_since", "if-modified-since")
	out.ifUnmodifiedSince = when("if_unmodified_since", "if-unmodified-since")
	out.present = out.hasIfMatch || out.hasIfNoneMatch || out.ifModifiedSince != nil || out.ifUnmodifiedSince != nil
	return out
}

// check evaluates the conditions against the stored object (nil: none), as
// buckets-mdapi does; the etag it compares is the object id. It returns the
// failure's error name and message, or "" when the conditions hold.
func (c cond) check(obj *Object) (name, message string) {
	if obj == nil {
		if c.hasIfMatch && slices.Contains(c.ifMatch, "*") {
			return "PreconditionFailedError", fmt.Sprintf("if-match '%s' matched a non-existent object", printEtags(c.ifMatch))
		}
		if c.hasIfNoneMatch && slices.Contains(c.ifNoneMatch, "*") {
			return "", ""
		}
		return "ObjectNotFound", "requested object not found"
	}
	etag := obj.ID
	matches := func(list []string) bool { return slices.Contains(list, "*") || slices.Contains(list, etag) }
	if c.hasIfMatch && !matches(c.ifMatch) {
		return "PreconditionFailedError", fmt.Sprintf("if-match '%s' didn't match etag '%s'", printEtags(c.ifMatch), etag)
	}
	if t := c.ifUnmodifiedSince; t != nil && obj.Modified.After(*t) {
		return "PreconditionFailedError", fmt.Sprintf("object was modified at '%s'; if-unmodified-since '%s'", rfc3339(obj.Modified), rfc3339(*t))
	}
	if c.hasIfNoneMatch && matches(c.ifNoneMatch) {
		return "PreconditionFailedError", fmt.Sprintf("if-none-match '%s' matched etag '%s'", printEtags(c.ifNoneMatch), etag)
	}
	if t := c.ifModifiedSince; t != nil && !obj.Modified.After(*t) {
		return "PreconditionFailedError", fmt.Sprintf("object was modified at '%s'; if-modified-since '%s'", rfc3339(obj.Modified), rfc3339(*t))
	}
	return "", ""
}

func printEtags(etags []string) string {
	q := make([]string, len(etags))
	for i, e := range etags {
		q[i] = `"` + e + `"`
	}
	return strings.Join(q, ", ")
}

// rfc3339 is chrono's to_rfc3339: an explicit +00:00 offset.
func rfc3339(t time.Time) string {
	s := serdeTime(t)
	return s[:len(s)-1] + "+00:00"
}

// serdeTime is how the server's JSON writes a timestamp: UTC, "Z", and a
// fraction of 0, 3, 6 or 9 digits.
func serdeTime(t time.Time) string {
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
