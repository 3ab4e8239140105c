package moraytest

import (
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
	"github.com/TritonDataCenter/rebalancer/moray/filter"
)

// Moray stores JSON.stringify(value) of what node's JSON.parse made of the
// request, and its etag is a checksum of that text. jsValue reproduces the
// JavaScript value closely enough to print the same bytes: numbers are
// doubles printed the JavaScript way, object keys keep JavaScript's property
// order (array-index keys first, ascending; then insertion order; a repeated
// key keeps its first position and its last value), and strings may carry
// lone surrogates (held as WTF-8), which JSON.stringify escapes.

type jsKind uint8

const (
	jsNull jsKind = iota
	jsBool
	jsNumber
	jsString
	jsArray
	jsObject
)

type jsValue struct {
	kind  jsKind
	b     bool
	n     float64
	s     string
	elems []*jsValue // array
	keys  []string   // object, in property order
	vals  []*jsValue
}

var jsNullValue = &jsValue{kind: jsNull}

func jsStr(s string) *jsValue      { return &jsValue{kind: jsString, s: s} }
func jsNum(n float64) *jsValue     { return &jsValue{kind: jsNumber, n: n} }
func jsBoolean(b bool) *jsValue    { return &jsValue{kind: jsBool, b: b} }
func jsObj() *jsValue              { return &jsValue{kind: jsObject} }
func (v *jsValue) isObject() bool  { return v != nil && v.kind == jsObject }
func (v *jsValue) String() string  { return string(v.appendJSON(nil)) }
func (v *jsValue) isInteger() bool { return v.kind == jsNumber && v.n == float64(int64(v.n)) }

// get returns an object's own property.
func (v *jsValue) get(key string) (*jsValue, bool) {
	if v == nil || v.kind != jsObject {
		return nil, false
	}
	for i, k := range v.keys {
		if k == key {
			return v.vals[i], true
		}
	}
	return nil, false
}

// getFold looks a property up the way moray-filter does: by exact name,
// then by the first property whose name matches ignoring case.
func (v *jsValue) getFold(key string) (*jsValue, bool) {
	if e, ok := v.get(key); ok {
		return e, true
	}
	if v == nil || v.kind != jsObject {
		return nil, false
	}
	for i, k := range v.keys {
		if strings.EqualFold(k, key) {
			return v.vals[i], true
		}
	}
	return nil, false
}

// set assigns a property as JavaScript does: in place when it exists, else
// at the end, or among the leading array-index keys in numeric order.
func (v *jsValue) set(key string, val *jsValue) {
	for i, k := range v.keys {
		if k == key {
			v.vals[i] = val
			return
		}
	}
	pos := len(v.keys)
	if idx, ok := arrayIndex(key); ok {
		pos = 0
		for pos < len(v.keys) {
			j, isIdx := arrayIndex(v.keys[pos])
			if !isIdx || j > idx {
				break
			}
			pos++
		}
	}
	v.keys = append(v.keys, "")
	v.vals = append(v.vals, nil)
	copy(v.keys[pos+1:], v.keys[pos:])
	copy(v.vals[pos+1:], v.vals[pos:])
	v.keys[pos], v.vals[pos] = key, val
}

func (v *jsValue) del(key string) {
	for i, k := range v.keys {
		if k == key {
			v.keys = append(v.keys[:i], v.keys[i+1:]...)
			v.vals = append(v.vals[:i], v.vals[i+1:]...)
			return
		}
	}
}

// arrayIndex reports whether key is a canonical array index (0 to 2^32-2),
// which JavaScript orders before all other property names.
func arrayIndex(key string) (uint64, bool) {
	if key == "" || len(key) > 10 || key[0] == '0' && len(key) > 1 {
		return 0, false
	}
	n, err := strconv.ParseUint(key, 10, 64)
	if err != nil || n > 1<<32-2 {
		return 0, false
	}
	return n, true
}

// toAny converts v for filter matching: nil, bool, float64, string, []any,
// or a non-nil placeholder for an object.
func (v *jsValue) toAny() any {
	switch v.kind {
	case jsBool:
		return v.b
	case jsNumber:
		return v.n
	case jsString:
		return v.s
	case jsArray:
		out := make([]any, len(v.elems))
		for i, e := range v.elems {
			out[i] = e.toAny()
		}
		return out
	case jsObject:
		return jsObjectMarker{}
	}
	return nil
}

type jsObjectMarker struct{}

// jsString is JavaScript's String(v) (what "v + ”" gives): arrays join
// their elements with commas, objects are "[object Object]".
func (v *jsValue) jsString() string {
	switch v.kind {
	case jsNull:
		return "null"
	case jsBool:
		return strconv.FormatBool(v.b)
	case jsNumber:
		return filter.FormatNumber(v.n)
	case jsString:
		return v.s
	case jsArray:
		parts := make([]string, len(v.elems))
		for i, e := range v.elems {
			if e.kind != jsNull {
				parts[i] = e.jsString()
			}
		}
		return strings.Join(parts, ",")
	}
	return "[object Object]"
}

// clone returns a deep copy.
func (v *jsValue) clone() *jsValue {
	c := *v
	if v.elems != nil {
		c.elems = make([]*jsValue, len(v.elems))
		for i, e := range v.elems {
			c.elems[i] = e.clone()
		}
	}
	if v.keys != nil {
		c.keys = append([]string(nil), v.keys...)
		c.vals = make([]*jsValue, len(v.vals))
		for i, e := range v.vals {
			c.vals[i] = e.clone()
		}
	}
	return &c
}

// parseJS parses JSON text as node's JSON.parse would.
func parseJS(data []byte) (*jsValue, error) {
	p := jsParser{data: data}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.errorf("trailing data")
	}
	return v, nil
}

type jsParser struct {
	data []byte
	pos  int
}

// maxJSONDepth is how many arrays and objects may nest: encoding/json's
// limit, which the Fast decoder has already enforced on the whole frame.
const maxJSONDepth = 10000

func (p *jsParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *jsParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value parses the value at p.pos, inside depth arrays and objects.
func (p *jsParser) value(depth int) (*jsValue, error) {
	if p.pos >= len(p.data) {
		return nil, p.errorf("unexpected end")
	}
	if c := p.data[p.pos]; (c == '{' || c == '[') && depth >= maxJSONDepth {
		return nil, p.errorf("nested too deeply")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		p.pos++
		obj := jsObj()
		p.skipSpace()
		if p.pos < len(p.data) && p.data[p.pos] == '}' {
			p.pos++
			return obj, nil
		}
		for {
			p.skipSpace()
			if p.pos >= len(p.data) || p.data[p.pos] != '"' {
				return nil, p.errorf("expected a property name")
			}
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if p.pos >= len(p.data) || p.data[p.pos] != ':' {
				return nil, p.errorf("expected ':'")
			}
			p.pos++
			p.skipSpace()
			e, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			obj.set(k, e)
			p.skipSpace()
			if p.pos >= len(p.data) {
				return nil, p.errorf("unexpected end of object")
			}
			if p.data[p.pos] == '}' {
				p.pos++
				return obj, nil
			}
			if p.data[p.pos] != ',' {
				return nil, p.errorf("expected ',' or '}'")
			}
			p.pos++
		}
	case c == '[':
		p.pos++
		arr := &jsValue{kind: jsArray, elems: []*jsValue{}}
		p.skipSpace()
		if p.pos < len(p.data) && p.data[p.pos] == ']' {
			p.pos++
			return arr, nil
		}
		for {
			p.skipSpace()
			e, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			arr.elems = append(arr.elems, e)
			p.skipSpace()
			if p.pos >= len(p.data) {
				return nil, p.errorf("unexpected end of array")
			}
			if p.data[p.pos] == ']' {
				p.pos++
				return arr, nil
			}
			if p.data[p.pos] != ',' {
				return nil, p.errorf("expected ',' or ']'")
			}
			p.pos++
		}
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return jsStr(s), nil
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if strings.HasPrefix(string(p.data[p.pos:min(p.pos+5, len(p.data))]), lit) {
				p.pos += len(lit)
				switch lit {
				case "true":
					return jsBoolean(true), nil
				case "false":
					return jsBoolean(false), nil
				}
				return jsNullValue, nil
			}
		}
		return nil, p.errorf("invalid literal")
	case c == '-' || c >= '0' && c <= '9':
		start := p.pos
		if c == '-' {
			p.pos++
		}
		digits := func() int {
			n := 0
			for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
				p.pos, n = p.pos+1, n+1
			}
			return n
		}
		if p.pos < len(p.data) && p.data[p.pos] == '0' {
			p.pos++
		} else if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
		if p.pos < len(p.data) && p.data[p.pos] == '.' {
			p.pos++
			if digits() == 0 {
				return nil, p.errorf("invalid number")
			}
		}
		if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
			p.pos++
			if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
				p.pos++
			}
			if digits() == 0 {
				return nil, p.errorf("invalid number")
			}
		}
		// Out-of-range numbers become ±Infinity, as in JavaScript.
		n, _ := strconv.ParseFloat(string(p.data[start:p.pos]), 64)
		return jsNum(n), nil
	}
	return nil, p.errorf("unexpected character %q", p.data[p.pos])
}

// str parses a JSON string at p.pos. Invalid UTF-8 becomes U+FFFD, as it
// does when node decodes the frame; a lone surrogate escape is kept as
// WTF-8 so that stringify can write it back.
func (p *jsParser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			s := p.data[start:p.pos]
			p.pos++
			return string(appendValidUTF8(nil, s)), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		p.pos++
	}
	// Raw text is made valid UTF-8 run by run; escapes may add lone
	// surrogates, kept as WTF-8.
	b := appendValidUTF8(nil, p.data[start:p.pos])
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(b), nil
		case c < 0x20:
			return "", p.errorf("control character in string")
		case c != '\\':
			run := p.pos
			for p.pos < len(p.data) && p.data[p.pos] >= 0x20 && p.data[p.pos] != '"' && p.data[p.pos] != '\\' {
				p.pos++
			}
			b = appendValidUTF8(b, p.data[run:p.pos])
			continue
		}
		if p.pos+1 >= len(p.data) {
			return "", p.errorf("unexpected end of string")
		}
		e := p.data[p.pos+1]
		p.pos += 2
		if c, ok := jsonstr.Unescape(e); ok {
			b = append(b, c)
			continue
		}
		switch e {
		case 'u':
			u, ok := p.hex4()
			if !ok {
				return "", p.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(rune(u)) && u < 0xDC00 && p.pos+1 < len(p.data) &&
				p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
				save := p.pos
				p.pos += 2
				if lo, ok := p.hex4(); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					b = utf8.AppendRune(b, utf16.DecodeRune(rune(u), rune(lo)))
					continue
				}
				p.pos = save
			}
			b = appendWTF8(b, rune(u))
		default:
			return "", p.errorf("invalid escape \\%c", e)
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *jsParser) hex4() (uint16, bool) {
	if p.pos+4 > len(p.data) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.data[p.pos:p.pos+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	p.pos += 4
	return uint16(n), true
}

// appendWTF8 encodes r even when it is a surrogate, which UTF-8 forbids.
func appendWTF8(b []byte, r rune) []byte {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(b, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
	return utf8.AppendRune(b, r)
}

// appendValidUTF8 appends text with each invalid byte replaced by U+FFFD,
// as decoding the frame's bytes into a JavaScript string does.
func appendValidUTF8(b, text []byte) []byte {
	if utf8.Valid(text) {
		return append(b, text...)
	}
	for len(text) > 0 {
		r, n := utf8.DecodeRune(text)
		b = utf8.AppendRune(b, r)
		text = text[n:]
	}
	return b
}

// surrogateAt reports whether s[i:] starts with a WTF-8 encoded surrogate.
func surrogateAt(s string, i int) (rune, bool) {
	if i+3 <= len(s) && s[i] == 0xED && s[i+1] >= 0xA0 && s[i+1] <= 0xBF && s[i+2]&0xC0 == 0x80 {
		return rune(s[i]&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), true
	}
	return 0, false
}

// appendJSON appends JSON.stringify(v).
func (v *jsValue) appendJSON(buf []byte) []byte {
	switch v.kind {
	case jsNull:
		return append(buf, "null"...)
	case jsBool:
		return strconv.AppendBool(buf, v.b)
	case jsNumber:
		if v.n != v.n || v.n > 1.7976931348623157e308 || v.n < -1.7976931348623157e308 {
			return append(buf, "null"...) // JSON.stringify(NaN or Infinity)
		}
		return append(buf, filter.FormatNumber(v.n)...)
	case jsString:
		return appendJSString(buf, v.s)
	case jsArray:
		buf = append(buf, '[')
		for i, e := range v.elems {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = e.appendJSON(buf)
		}
		return append(buf, ']')
	}
	buf = append(buf, '{')
	for i, k := range v.keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSString(buf, k)
		buf = append(buf, ':')
		buf = v.vals[i].appendJSON(buf)
	}
	return append(buf, '}')
}

// appendJSString appends s quoted as JSON.stringify quotes it: only '"',
// '\\', control characters and lone surrogates are escaped.
func appendJSString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0xED {
			i++
			continue
		}
		if c >= 0xED {
			if r, ok := surrogateAt(s, i); ok {
				buf = append(buf, s[start:i]...)
				buf = append(buf, `\u`...)
				buf = append(buf, strconv.FormatInt(int64(r), 16)...)
				i += 3
				start = i
				continue
			}
			i++
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"':
			buf = append(buf, `\"`...)
		case '\\':
			buf = append(buf, `\\`...)
		case '\b':
			buf = append(buf, `\b`...)
		case '\f':
			buf = append(buf, `\f`...)
		case '\n':
			buf = append(buf, `\n`...)
		case '\r':
			buf = append(buf, `\r`...)
		case '\t':
			buf = append(buf, `\t`...)
		default:
			buf = append(buf, `\u00`...)
			buf = append(buf, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xF])
		}
		i++
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// Etag returns the etag Moray computes for a stored value: CRC-32/IEEE,
// as 8 uppercase hex digits, of the JSON.stringify text of the value, fed
// the way the old node "crc" module does, with the low byte of each UTF-16
// code unit. For ASCII text that is the plain CRC-32 of the bytes.
//
// Moray's stored text is node's serialization of what it parsed, which is
// what Put and putObject store; pass Etag the bytes of such a text (for a
// compact JSON value with ASCII-only escapes, Go's json.Compact output).
func Etag(stored []byte) string {
	crc := crc32.NewIEEE()
	ascii := true
	for _, c := range stored {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		crc.Write(stored)
	} else {
		low := make([]byte, 0, len(stored))
		for s := stored; len(s) > 0; {
			r, n := utf8.DecodeRune(s)
			s = s[n:]
			if r >= 0x10000 {
				hi, lo := utf16.EncodeRune(r)
				low = append(low, byte(hi), byte(lo))
				continue
			}
			low = append(low, byte(r))
		}
		crc.Write(low)
	}
	return fmt.Sprintf("%08X", crc.Sum32())
}

var errNotObject = errors.New("not a JSON object")

// normalizeValue returns node's JSON.stringify of the JSON object in raw,
// with the parsed value.
func normalizeValue(raw []byte) ([]byte, *jsValue, error) {
	v, err := parseJS(raw)
	if err != nil {
		return nil, nil, err
	}
	if v.kind != jsObject {
		return nil, nil, errNotObject
	}
	return v.appendJSON(nil), v, nil
}
