package mdapi

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
)

// buckets-mdapi's Fast server (rust-fast) finds where one request frame ends
// and the next begins not from the frame's length field but from the length
// of the payload once serde_json has parsed and re-serialized it. A payload
// whose re-serialization is longer or shorter than what was sent makes the
// server lose the frame boundary, drop the connection and every request in
// flight on it. So every payload this package sends is already in
// serde_json's own form: no whitespace, strings escaped exactly as serde_json
// escapes them (only '"', '\\' and control characters; everything else as
// raw UTF-8, U+2028 and U+2029 included), integers in plain decimal, no
// duplicate keys. JSON that comes from elsewhere (an object's headers and
// properties, as read from the server or from PostgreSQL) goes through
// canonical, which rewrites it into that form or refuses it.

// maxDepth bounds the nesting of a value passed through canonical. serde_json
// refuses documents nested deeper than 128, and the server parses the whole
// frame payload (three levels around an object's properties) in one go.
const maxDepth = 100

// errInexactNumber is returned by canonical for a number that is not an
// integer serde_json reads exactly (a fraction, an exponent, or out of the
// 64-bit range): how serde_json would print it back is not something to
// guess about, and a wrong guess costs the connection.
var errInexactNumber = errors.New("number is not an integer in the 64-bit range")

// appendString appends s, which must be valid UTF-8, as serde_json writes a
// string.
func appendString(b []byte, s string) []byte { return jsonstr.AppendSerde(b, s) }

// appendBytes is appendString for a []byte.
func appendBytes(b, s []byte) []byte { return jsonstr.AppendSerde(b, s) }

// canonical appends src, a JSON value, to dst in serde_json's form. It fails
// on anything that is not exactly one well-formed JSON value, on invalid
// UTF-8 and unpaired surrogates, on duplicate object keys, on numbers that
// are not 64-bit integers (errInexactNumber) and on nesting deeper than
// maxDepth.
func canonical(dst, src []byte) ([]byte, error) {
	return canonicalValue(dst, src, false)
}

// canonicalValue is canonical; with hstore set, src must also be an object
// whose values are strings or null.
func canonicalValue(dst, src []byte, hstore bool) ([]byte, error) {
	p := canonParser{src: src, out: dst, hstore: hstore}
	p.ws()
	if hstore && (p.i >= len(p.src) || p.src[p.i] != '{') {
		return dst, errors.New("not an object of strings")
	}
	if err := p.value(0); err != nil {
		return dst, err
	}
	p.ws()
	if p.i != len(p.src) {
		return dst, p.errorf("trailing data")
	}
	return p.out, nil
}

type canonParser struct {
	src    []byte
	i      int
	out    []byte
	hstore bool     // the top-level object's values must be strings or null
	kbuf   []byte   // decoded object keys, for duplicate detection
	keys   [][2]int // their spans in kbuf
}

func (p *canonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *canonParser) ws() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *canonParser) value(depth int) error {
	if p.i >= len(p.src) {
		return p.errorf("unexpected end")
	}
	switch c := p.src[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.copyString()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(p.src)-p.i >= len(lit) && string(p.src[p.i:p.i+len(lit)]) == lit {
			p.i += len(lit)
			p.out = append(p.out, lit...)
			return nil
		}
	}
	return p.errorf("unexpected %q", p.src[p.i])
}

func (p *canonParser) object(depth int) error {
	if depth > maxDepth {
		return p.errorf("nested deeper than %d", maxDepth)
	}
	p.i++ // {
	p.out = append(p.out, '{')
	p.ws()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
		p.out = append(p.out, '}')
		return nil
	}
	// The keys seen, for duplicates: decoded into one buffer shared by
	// every object (each uses the part past its start), compared in turn,
	// since objects are small.
	first, firstKey := len(p.keys), len(p.kbuf)
	defer func() { p.keys, p.kbuf = p.keys[:first], p.kbuf[:firstKey] }()
	for n := 0; ; n++ {
		p.ws()
		if p.i >= len(p.src) || p.src[p.i] != '"' {
			return p.errorf("object key expected")
		}
		from := len(p.kbuf)
		var err error
		if p.kbuf, err = p.decode(p.kbuf); err != nil {
			return err
		}
		k := p.kbuf[from:]
		for _, span := range p.keys[first:] {
			if bytes.Equal(p.kbuf[span[0]:span[1]], k) {
				return p.errorf("duplicate key %q", k)
			}
		}
		p.keys = append(p.keys, [2]int{from, len(p.kbuf)})
		if n > 0 {
			p.out = append(p.out, ',')
		}
		p.out = appendBytes(p.out, k)
		p.ws()
		if p.i >= len(p.src) || p.src[p.i] != ':' {
			return p.errorf("':' expected")
		}
		p.i++
		p.out = append(p.out, ':')
		p.ws()
		if p.hstore && depth == 1 && p.i < len(p.src) && p.src[p.i] != '"' && p.src[p.i] != 'n' {
			return p.errorf("value of %q is not a string or null", k)
		}
		if err := p.value(depth); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.src) {
			return p.errorf("unexpected end")
		}
		switch p.src[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			p.out = append(p.out, '}')
			return nil
		default:
			return p.errorf("',' or '}' expected")
		}
	}
}

func (p *canonParser) array(depth int) error {
	if depth > maxDepth {
		return p.errorf("nested deeper than %d", maxDepth)
	}
	p.i++ // [
	p.out = append(p.out, '[')
	p.ws()
	if p.i < len(p.src) && p.src[p.i] == ']' {
		p.i++
		p.out = append(p.out, ']')
		return nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			p.out = append(p.out, ',')
		}
		p.ws()
		if err := p.value(depth); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.src) {
			return p.errorf("unexpected end")
		}
		switch p.src[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			p.out = append(p.out, ']')
			return nil
		default:
			return p.errorf("',' or ']' expected")
		}
	}
}

// copyString writes the string starting at p.i (a '"'). One without
// escapes is already as serde_json writes it (a JSON string holds no raw
// '"', '\\' or control character), so only its UTF-8 needs checking.
func (p *canonParser) copyString() error {
	for j := p.i + 1; j < len(p.src); {
		c := p.src[j]
		switch {
		case c == '"':
			p.out = append(p.out, p.src[p.i:j+1]...)
			p.i = j + 1
			return nil
		case c == '\\' || c < 0x20:
			s, err := p.decode(nil) // the slow way, escapes and errors included
			if err != nil {
				return err
			}
			p.out = appendString(p.out, string(s))
			return nil
		case c < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(p.src[j:])
			if r == utf8.RuneError && size <= 1 {
				p.i = j
				return p.errorf("invalid UTF-8")
			}
			j += size
		}
	}
	p.i = len(p.src)
	return p.errorf("unterminated string")
}

// decode appends the decoded contents of the string starting at p.i (a
// '"') to dst.
func (p *canonParser) decode(dst []byte) ([]byte, error) {
	p.i++ // "
	start := p.i
	for {
		if p.i >= len(p.src) {
			return dst, p.errorf("unterminated string")
		}
		c := p.src[p.i]
		switch {
		case c == '"':
			dst = append(dst, p.src[start:p.i]...)
			p.i++
			return dst, nil
		case c < 0x20:
			return dst, p.errorf("control character in string")
		case c == '\\':
			dst = append(dst, p.src[start:p.i]...)
			r, err := p.escape()
			if err != nil {
				return dst, err
			}
			dst = utf8.AppendRune(dst, r)
			start = p.i
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, size := utf8.DecodeRune(p.src[p.i:])
			if r == utf8.RuneError && size <= 1 {
				return dst, p.errorf("invalid UTF-8")
			}
			p.i += size
		}
	}
}

// escape decodes the escape sequence at p.i (a '\\'), pairing surrogates.
func (p *canonParser) escape() (rune, error) {
	if p.i+1 >= len(p.src) {
		return 0, p.errorf("unterminated escape")
	}
	c := p.src[p.i+1]
	p.i += 2
	if e, ok := jsonstr.Unescape(c); ok {
		return rune(e), nil
	}
	switch c {
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return 0, p.errorf("bad \\u escape")
		}
		if !utf16.IsSurrogate(r) {
			return r, nil
		}
		if r >= 0xDC00 || p.i+1 >= len(p.src) || p.src[p.i] != '\\' || p.src[p.i+1] != 'u' {
			return 0, p.errorf("unpaired surrogate")
		}
		p.i += 2
		r2, ok := p.hex4()
		if !ok {
			return 0, p.errorf("bad \\u escape")
		}
		if r2 < 0xDC00 || r2 > 0xDFFF {
			return 0, p.errorf("unpaired surrogate")
		}
		return utf16.DecodeRune(r, r2), nil
	}
	return 0, p.errorf("bad escape \\%c", c)
}

func (p *canonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.src) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.src[p.i:p.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

// number copies an integer in the 64-bit range and refuses anything else.
func (p *canonParser) number() error {
	start := p.i
	if p.src[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '9' {
		p.i++
	}
	n := p.src[start:p.i]
	switch {
	case p.i == digits:
		return p.errorf("digit expected")
	case p.src[digits] == '0' && p.i-digits > 1:
		return p.errorf("leading zero")
	case p.i < len(p.src) && (p.src[p.i] == '.' || p.src[p.i] == 'e' || p.src[p.i] == 'E'):
		return errInexactNumber
	}
	if n[0] == '-' {
		if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
			return errInexactNumber
		}
		if string(n) == "-0" {
			// The same number, in a form serde_json reads back as written
			// (it reads -0 itself as a float, which it prints longer).
			n = n[1:]
		}
	} else if _, err := strconv.ParseUint(string(n), 10, 64); err != nil {
		return errInexactNumber
	}
	p.out = append(p.out, n...)
	return nil
}
