// Package jsonstr writes JSON strings, and objects member by member
// (Object), by hand, byte for byte as one of the module's peers writes
// them, for the places where the bytes matter and not just the value: a
// Moray etag is a checksum of the text, buckets-mdapi finds the end of a
// frame by re-serializing its payload, and golden tests pin requests down
// to the byte. Unescape is the other way round for the short escapes, which
// every reader of JSON strings in the module shares.
//
// Every form escapes '"', '\\' and the control characters U+0000 to
// U+001F: \b, \t, \n, \f and \r in their short forms, the others as \u00XX
// in lower-case hex. They differ in what they do with the rest:
//
//   - AppendGo is encoding/json's form with HTML escaping off (what
//     fast.MarshalData writes, and what node's JSON.parse reads back
//     exactly): invalid UTF-8 becomes \ufffd, and U+2028 and U+2029 are
//     escaped. moray's requests and internal/logging's bunyan records use
//     it.
//   - AppendSerde is serde_json's form: everything else goes out raw, DEL,
//     U+2028 and U+2029 included. The input must be valid UTF-8 (serde_json
//     strings are). Package mdapi's requests and mdapitest's replies use
//     it.
//
// Node's JSON.stringify writes what AppendSerde writes, except that it
// escapes the lone surrogates a JavaScript string may hold. Package
// moraytest, which models JavaScript strings as WTF-8 to reproduce Moray's
// stored text, keeps its own writer for that reason.
package jsonstr

import (
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendGo appends s as a JSON string exactly as encoding/json writes it
// with HTML escaping off: invalid UTF-8 becomes \ufffd, and U+2028 and
// U+2029 are escaped.
func AppendGo(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = appendEscape(append(b, s[start:i]...), c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendSerde appends s, which must be valid UTF-8, as a JSON string
// exactly as serde_json writes it: only '"', '\\' and control characters
// are escaped.
func AppendSerde[S ~string | ~[]byte](b []byte, s S) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			b = appendEscape(append(b, s[start:i]...), c)
			start = i + 1
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendEscape appends the escape of an ASCII character that every form
// escapes.
func appendEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\b':
		return append(b, '\\', 'b')
	case '\t':
		return append(b, '\\', 't')
	case '\n':
		return append(b, '\\', 'n')
	case '\f':
		return append(b, '\\', 'f')
	case '\r':
		return append(b, '\\', 'r')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}

// Unescape returns the character that the two-character escape \e stands
// for in a JSON string (\n for a newline, \/ for a slash...). It returns
// false for 'u', which begins a six-character \uXXXX escape whose
// surrogates each reader treats its own way, and for a character that
// begins no escape.
func Unescape(e byte) (c byte, ok bool) {
	switch e {
	case '"', '\\', '/':
		return e, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}

// Form is a way of writing JSON strings: Go (AppendGo, the zero value) or
// Serde (AppendSerde).
type Form uint8

// The forms of Form.
const (
	Go Form = iota
	Serde
)

// Append appends s as a JSON string in form f.
func (f Form) Append(b []byte, s string) []byte {
	if f == Serde {
		return AppendSerde(b, s)
	}
	return AppendGo(b, s)
}

// Object appends JSON objects to B member by member, keys and strings in
// Form. The module's requests are built this way rather than through
// encoding/json: the key order is part of what golden tests pin down, and
// it saves a reflection pass per request.
//
// For an object inside an object, write its Key, then Open, its members and
// Close: Open starts counting members afresh, and after Close the outer
// object has (at least) the member just closed.
type Object struct {
	B    []byte
	Form Form
	n    int // members of the innermost open object so far
}

// Open starts an object.
func (o *Object) Open() {
	o.B = append(o.B, '{')
	o.n = 0
}

// Close ends the innermost open object.
func (o *Object) Close() {
	o.B = append(o.B, '}')
	o.n = 1
}

// Key starts a member: the comma before it if it is not the first, then
// the key and the colon. Its value is for the caller to append to B.
func (o *Object) Key(k string) {
	if o.n > 0 {
		o.B = append(o.B, ',')
	}
	o.n++
	o.B = o.Form.Append(o.B, k)
	o.B = append(o.B, ':')
}

// Str adds a member with a string value.
func (o *Object) Str(k, v string) {
	o.Key(k)
	o.B = o.Form.Append(o.B, v)
}

// Strs adds a member whose value is an array of strings.
func (o *Object) Strs(k string, vs []string) {
	o.Key(k)
	o.B = append(o.B, '[')
	for i, v := range vs {
		if i > 0 {
			o.B = append(o.B, ',')
		}
		o.B = o.Form.Append(o.B, v)
	}
	o.B = append(o.B, ']')
}

// Bool adds a member with a boolean value.
func (o *Object) Bool(k string, v bool) {
	o.Key(k)
	o.B = strconv.AppendBool(o.B, v)
}

// Int adds a member with an integer value.
func (o *Object) Int(k string, v int64) {
	o.Key(k)
	o.B = strconv.AppendInt(o.B, v, 10)
}

// Uint adds a member with an unsigned integer value.
func (o *Object) Uint(k string, v uint64) {
	o.Key(k)
	o.B = strconv.AppendUint(o.B, v, 10)
}

// Raw adds a member whose value v is JSON already in the form wanted.
func (o *Object) Raw(k string, v []byte) {
	o.Key(k)
	o.B = append(o.B, v...)
}
