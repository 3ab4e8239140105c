package rebalancer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Object is one object found on the shark being evacuated.
//
// Metadata is the object's Moray value exactly as it was read: the rebalancer
// never round-trips it through a struct, because that would drop unknown
// fields, reorder keys and lose integer precision. The other fields are
// derived from it by ParseObject, or describe where it was found.
type Object struct {
	ID    string // Manta objectId: the file is /manta/{Owner}/{ID} on each shark
	Key   string // Moray key (the object's path)
	Owner string // account UUID

	Shard  int    // metadata shard number the object lives on
	Etag   string // Moray _etag when the object was read; metadata updates are conditional on it
	ScanID int64  // the row's _id within its shard, for resumable discovery (0 if unknown)

	ContentLength int64
	ContentMD5    string        // base64 of the raw MD5 digest
	Sharks        []StorageNode // the sharks holding a copy, in metadata order
	// BucketID is set for v2 (buckets) objects, whose metadata lives in
	// buckets-mdapi rather than in the Moray "manta" bucket. IsBucket is true
	// whenever the value has a bucket_id key, as in the legacy.
	BucketID string
	IsBucket bool
	Name     string // object name (v2: used for ObjectNameHash)

	Metadata json.RawMessage
}

// HasShark reports whether the object lists a copy on the shark with this
// storage id.
func (o *Object) HasShark(storageID string) bool {
	for _, s := range o.Sharks {
		if s.MantaStorageID == storageID {
			return true
		}
	}
	return false
}

// Source returns the first listed copy that is not on the shark being
// evacuated, which is where an agent should download from. ok is false when
// the evacuated shark holds the only copy.
func (o *Object) Source(evacuating string) (src StorageNode, ok bool) {
	for _, s := range o.Sharks {
		if s.MantaStorageID != evacuating {
			return s, true
		}
	}
	return StorageNode{}, false
}

// Task returns the agent task that copies o from src.
func (o *Object) Task(src StorageNode) Task {
	t := Task{ObjectID: o.ID, Owner: o.Owner, MD5Sum: o.ContentMD5, Source: src}
	if o.IsBucket {
		t.BucketID = o.BucketID
		name := o.Name
		if name == "" {
			name = o.Key
		}
		t.ObjectNameHash = ObjectNameHash(name)
	}
	return t
}

// BadObjectError reports metadata the rebalancer cannot work with. Kind is
// the job-database error it is recorded as.
type BadObjectError struct {
	Kind ObjectErrorKind
	Key  string
	Msg  string
}

func (e *BadObjectError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.Kind, e.Msg)
	}
	return fmt.Sprintf("object %s: %s: %s", e.Key, e.Kind, e.Msg)
}

// ParseObject derives an Object from a Moray value, keeping the value itself
// verbatim in Metadata. key, owner and objectId are required; contentLength,
// contentMD5 and sharks default to empty, and the legacy snake_case aliases
// (object_id, content_length, content_md5) are accepted.
func ParseObject(value json.RawMessage) (Object, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return Object{}, &BadObjectError{Kind: ErrorBadMantaObject, Msg: "metadata is not a JSON object"}
	}
	o := Object{Metadata: value}
	bad := func(kind ObjectErrorKind, format string, args ...any) (Object, error) {
		return Object{}, &BadObjectError{Kind: kind, Key: o.Key, Msg: fmt.Sprintf(format, args...)}
	}
	str := func(dst *string, names ...string) (present bool, err error) {
		for _, n := range names {
			raw, ok := fields[n]
			if !ok || string(raw) == "null" {
				continue
			}
			if err := json.Unmarshal(raw, dst); err != nil {
				return true, fmt.Errorf("%s is not a string", n)
			}
			return true, nil
		}
		return false, nil
	}
	for _, f := range []struct {
		dst      *string
		required bool
		names    []string
	}{
		{&o.Key, true, []string{"key"}},
		{&o.Owner, true, []string{"owner"}},
		{&o.ID, true, []string{"objectId", "object_id"}},
		{&o.ContentMD5, false, []string{"contentMD5", "content_md5"}},
		{&o.Name, false, []string{"name"}},
	} {
		present, err := str(f.dst, f.names...)
		if err != nil {
			return bad(ErrorBadMantaObject, "%v", err)
		}
		if f.required && (!present || *f.dst == "") {
			return bad(ErrorBadMantaObject, "missing %s", f.names[0])
		}
	}
	for _, n := range []string{"contentLength", "content_length"} {
		raw, ok := fields[n]
		if !ok || string(raw) == "null" {
			continue
		}
		var num json.Number
		if raw[0] == '"' || json.Unmarshal(raw, &num) != nil {
			return bad(ErrorBadContentLength, "%s is not a number", n)
		}
		v, err := strconv.ParseInt(num.String(), 10, 64)
		if err != nil || v < 0 {
			return bad(ErrorBadContentLength, "%s %s is not a byte count", n, num)
		}
		o.ContentLength = v
		break
	}
	if raw, ok := fields["sharks"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &o.Sharks); err != nil {
			return bad(ErrorMissingSharks, "sharks is not an array of storage nodes")
		}
	}
	if raw, ok := fields["bucket_id"]; ok {
		o.IsBucket = true
		var id string
		if json.Unmarshal(raw, &id) == nil {
			o.BucketID = id
		}
	}
	return o, nil
}

// ErrSharkNotListed is returned by ReplaceShark when the metadata does not
// list the shark being replaced.
var ErrSharkNotListed = errors.New("metadata does not list the shark")

// ReplaceShark returns a copy of the metadata value in which the sharks
// element naming the shark from is replaced by to. Every other byte of the
// value is kept as it was: other keys, their order and formatting, numbers,
// and the other sharks elements. The replaced element is written as
// {"datacenter":..,"manta_storage_id":..}, as the legacy writes it.
//
// It fails with ErrSharkNotListed if no element names from, and with a
// *BadObjectError of kind ErrorDuplicateShark if several do, since then the
// object already had two copies on one shark and replacing one of them would
// silently change its redundancy.
func ReplaceShark(value json.RawMessage, from string, to StorageNode) (json.RawMessage, error) {
	start, end, err := topLevelSpan(value, "sharks")
	if err != nil {
		return nil, err
	}
	if start < 0 {
		return nil, &BadObjectError{Kind: ErrorMissingSharks, Msg: "metadata has no sharks array"}
	}
	sharks := value[start:end]
	dec := json.NewDecoder(bytes.NewReader(sharks))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, &BadObjectError{Kind: ErrorMissingSharks, Msg: "sharks is not an array"}
	}
	matchStart, matchEnd := -1, -1
	for dec.More() {
		var elem json.RawMessage
		if err := dec.Decode(&elem); err != nil {
			return nil, &BadObjectError{Kind: ErrorMissingSharks, Msg: "bad sharks element: " + err.Error()}
		}
		var node StorageNode
		if err := json.Unmarshal(elem, &node); err != nil {
			return nil, &BadObjectError{Kind: ErrorMissingSharks, Msg: "sharks element is not a storage node"}
		}
		if node.MantaStorageID != from {
			continue
		}
		if matchStart >= 0 {
			return nil, &BadObjectError{Kind: ErrorDuplicateShark, Msg: "shark " + from + " is listed twice"}
		}
		matchEnd = int(dec.InputOffset())
		matchStart = matchEnd - len(elem)
	}
	if matchStart < 0 {
		return nil, fmt.Errorf("shark %s: %w", from, ErrSharkNotListed)
	}
	repl, err := json.Marshal(to)
	if err != nil {
		return nil, err
	}
	matchStart += start
	matchEnd += start
	out := make([]byte, 0, len(value)+len(repl))
	out = append(out, value[:matchStart]...)
	out = append(out, repl...)
	out = append(out, value[matchEnd:]...)
	return out, nil
}

// topLevelSpan finds the byte span of the value of key in a JSON object.
// start is -1 when the key is absent. A key present twice is an error: which
// one a reader honours is not something to guess about.
func topLevelSpan(value []byte, key string) (start, end int, err error) {
	dec := json.NewDecoder(bytes.NewReader(value))
	bad := func(msg string) (int, int, error) {
		return 0, 0, &BadObjectError{Kind: ErrorBadMantaObject, Msg: msg}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return bad("metadata is not a JSON object")
	}
	start, end = -1, -1
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("malformed metadata: " + err.Error())
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return bad("malformed metadata: " + err.Error())
		}
		if name != key {
			continue
		}
		if start >= 0 {
			return bad("metadata has two " + key + " keys")
		}
		end = int(dec.InputOffset())
		start = end - len(raw)
	}
	if _, err := dec.Token(); err != nil {
		return bad("malformed metadata: " + err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("trailing data after metadata object")
	}
	return start, end, nil
}
