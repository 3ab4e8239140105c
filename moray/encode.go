package moray

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// EtagCondition is the precondition of a write on the stored etag. The zero
// value is unconditional; IfAbsent and IfEtag build the other two states.
// It is a type rather than a string because "" would be ambiguous: Moray
// treats an absent etag option, a null one and a string three different ways.
type EtagCondition struct {
	state etagState
	etag  string
}

type etagState uint8

const (
	etagAny     etagState = iota // no etag option: create or overwrite
	etagAbsent                   // etag: null, the object must not exist
	etagMatches                  // etag: "X", the stored etag must be X
)

// IfAbsent makes a write succeed only if the object does not exist.
func IfAbsent() EtagCondition { return EtagCondition{state: etagAbsent} }

// IfEtag makes a write succeed only if the object exists with this etag.
func IfEtag(etag string) EtagCondition { return EtagCondition{state: etagMatches, etag: etag} }

// IsZero reports whether the condition is unconditional.
func (c EtagCondition) IsZero() bool { return c.state == etagAny }

func (c EtagCondition) String() string {
	switch c.state {
	case etagAbsent:
		return "if absent"
	case etagMatches:
		return fmt.Sprintf("if etag %q", c.etag)
	}
	return "unconditional"
}

func (c EtagCondition) check() error {
	if c.state == etagMatches && c.etag == "" {
		return errors.New("moray: IfEtag with an empty etag")
	}
	return nil
}

// appendEtag writes the "etag" member of an options object, if any.
func (c EtagCondition) appendTo(w *objWriter) {
	switch c.state {
	case etagAbsent:
		w.key("etag")
		w.b = append(w.b, "null"...)
	case etagMatches:
		w.str("etag", c.etag)
	}
}

// objWriter appends a JSON object member by member. Request arguments are
// built by hand rather than through encoding/json: the key order is part of
// what the golden tests pin down, and it saves a reflection pass per RPC.
type objWriter struct {
	b []byte
	n int
}

func (w *objWriter) open()  { w.b = append(w.b, '{') }
func (w *objWriter) close() { w.b = append(w.b, '}') }

func (w *objWriter) key(k string) {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = appendString(w.b, k)
	w.b = append(w.b, ':')
}

func (w *objWriter) str(k, v string) {
	w.key(k)
	w.b = appendString(w.b, v)
}

func (w *objWriter) boolean(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *objWriter) integer(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *objWriter) raw(k string, v []byte) {
	w.key(k)
	w.b = append(w.b, v...)
}

// defaults appends what node-moray's makeOptions adds to the options of
// object RPCs, except the keys the RPC already set. (node-moray also sends
// _value, the value stringified again; Moray ignores it, so it is left out
// rather than doubling the size of every put.)
func (w *objWriter) defaults(noCountSet bool) {
	w.raw("headers", []byte("{}"))
	if !noCountSet {
		w.boolean("no_count", false)
	}
	w.boolean("sql_only", false)
	w.boolean("noCache", true)
}

func timeoutMillis(d time.Duration) int64 {
	ms := d.Milliseconds()
	if ms <= 0 && d > 0 {
		ms = 1
	}
	return ms
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string exactly as fast.MarshalData
// (encoding/json without HTML escaping) writes it: invalid UTF-8 becomes
// U+FFFD, and U+2028 and U+2029 are escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// checkObject verifies that v is one JSON object, as Moray requires of a
// value. The frame encoder validates the whole request again.
func checkObject(v json.RawMessage) error {
	t := bytes.TrimSpace(v)
	if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return errors.New("value is not a JSON object")
	}
	// Moray reads the frame as text, with U+FFFD for each invalid byte,
	// so its checksum of the frame would not match: the frame is refused
	// (and the process crashes).
	if !utf8.Valid(t) {
		return errors.New("value is not valid UTF-8")
	}
	return nil
}

// splitArray returns the elements of a JSON array as subslices of data,
// which the Fast decoder has already checked to be valid JSON: splitting it
// needs only to track nesting and strings, not a second full parse.
func splitArray(data json.RawMessage) ([]json.RawMessage, error) {
	return appendItems(nil, data)
}

// badArrayError is eachItem's error for data that is not an array.
type badArrayError struct{ err error }

func (e *badArrayError) Error() string { return e.err.Error() }

func (e *badArrayError) Unwrap() error { return e.err }

// eachItem calls fn with each element of the JSON array data, in order,
// and returns the first error fn returns. The array is split whole first
// (on the stack for the few elements of a reply frame), so that for a
// malformed one fn is called for nothing: then the error is a
// *badArrayError.
func eachItem(data json.RawMessage, fn func(json.RawMessage) error) error {
	var buf [8]json.RawMessage
	items, err := appendItems(buf[:0], data)
	if err != nil {
		return &badArrayError{err: err}
	}
	for _, it := range items {
		if err := fn(it); err != nil {
			return err
		}
	}
	return nil
}

// appendItems appends the elements of the JSON array data to items.
func appendItems(items []json.RawMessage, data json.RawMessage) ([]json.RawMessage, error) {
	d := bytes.TrimSpace(data)
	if len(d) < 2 || d[0] != '[' || d[len(d)-1] != ']' {
		return nil, errors.New("reply data is not an array")
	}
	d = d[1 : len(d)-1]
	n := len(items)
	depth, start, inString := 0, 0, false
	for i := 0; i < len(d); i++ {
		c := d[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
		case ']', '}':
			depth--
		case ',':
			if depth == 0 {
				items = append(items, bytes.TrimSpace(d[start:i]))
				start = i + 1
			}
		}
	}
	if last := bytes.TrimSpace(d[start:]); len(last) > 0 || len(items) > n {
		if len(last) == 0 || depth != 0 || inString {
			return nil, errors.New("malformed reply array")
		}
		items = append(items, last)
	}
	return items, nil
}
