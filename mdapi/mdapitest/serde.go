package mdapitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
)

// buckets-mdapi's Fast server (rust-fast) parses each request frame's
// payload with serde_json, then advances its input by the length of that
// payload re-serialized, not by the frame's length field. A client whose
// payload re-serializes to another length desynchronizes the stream. The
// functions here compute that length, so that the fake can call such a
// frame what it is: a violation.

// errUnpredictable marks input whose serde_json re-serialization this
// package does not model (fractions and exponents, integers outside 64
// bits, -0, duplicate keys): a careful client never sends it.
var errUnpredictable = errors.New("unpredictable re-serialization")

// SerdeLen returns the length of the JSON value doc once serde_json has
// parsed it into a serde_json::Value and written it back: no whitespace,
// object keys once each, strings escaped as serde_json escapes them (only
// '"', '\\' and control characters). It fails on invalid JSON and on what it
// does not model (see errUnpredictable).
func SerdeLen(doc []byte) (int, error) {
	m := serdeMeter{src: doc}
	m.ws()
	n, err := m.value(0)
	if err != nil {
		return 0, err
	}
	m.ws()
	if m.i != len(m.src) {
		return 0, fmt.Errorf("trailing data at byte %d", m.i)
	}
	return n, nil
}

// payloadLen returns the length of a request payload
// {"m":{"uts":N,"name":S},"d":D} as rust-fast re-serializes it (a struct:
// m and d only, in that order; m with uts and name only).
func payloadLen(payload []byte) (int, error) {
	var p struct {
		M *struct {
			UTS  json.Number `json:"uts"`
			Name *string     `json:"name"`
		} `json:"m"`
		D json.RawMessage `json:"d"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return 0, err
	}
	if p.M == nil || p.M.Name == nil || p.D == nil {
		return 0, errors.New("payload lacks m.name or d")
	}
	uts, err := strconv.ParseUint(p.M.UTS.String(), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("m.uts %q is not a u64", p.M.UTS)
	}
	d, err := SerdeLen(p.D)
	if err != nil {
		return 0, err
	}
	name, err := SerdeLen(jsonstr.AppendSerde(nil, *p.M.Name))
	if err != nil {
		return 0, err
	}
	return len(`{"m":{"uts":`) + len(strconv.FormatUint(uts, 10)) + len(`,"name":`) + name + len(`},"d":`) + d + len(`}`), nil
}

type serdeMeter struct {
	src []byte
	i   int
}

func (m *serdeMeter) ws() {
	for m.i < len(m.src) && (m.src[m.i] == ' ' || m.src[m.i] == '\t' || m.src[m.i] == '\n' || m.src[m.i] == '\r') {
		m.i++
	}
}

func (m *serdeMeter) fail(what string) (int, error) {
	return 0, fmt.Errorf("invalid JSON at byte %d: %s", m.i, what)
}

func (m *serdeMeter) value(depth int) (int, error) {
	if depth > 127 {
		return m.fail("nested too deep for serde_json")
	}
	if m.i >= len(m.src) {
		return m.fail("unexpected end")
	}
	switch c := m.src[m.i]; {
	case c == '{':
		return m.object(depth + 1)
	case c == '[':
		return m.array(depth + 1)
	case c == '"':
		s, err := m.str()
		if err != nil {
			return 0, err
		}
		return strLen(s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return m.number()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(m.src[m.i:], []byte(lit)) {
			m.i += len(lit)
			return len(lit), nil
		}
	}
	return m.fail("unexpected character")
}

func (m *serdeMeter) object(depth int) (int, error) {
	m.i++
	m.ws()
	if m.i < len(m.src) && m.src[m.i] == '}' {
		m.i++
		return 2, nil
	}
	n := 2
	keys := map[string]bool{}
	for {
		m.ws()
		if m.i >= len(m.src) || m.src[m.i] != '"' {
			return m.fail("key expected")
		}
		k, err := m.str()
		if err != nil {
			return 0, err
		}
		if keys[k] {
			return 0, fmt.Errorf("%w: duplicate key %q", errUnpredictable, k)
		}
		if len(keys) > 0 {
			n++ // ,
		}
		keys[k] = true
		n += strLen(k) + 1 // "k":
		m.ws()
		if m.i >= len(m.src) || m.src[m.i] != ':' {
			return m.fail("':' expected")
		}
		m.i++
		m.ws()
		v, err := m.value(depth)
		if err != nil {
			return 0, err
		}
		n += v
		m.ws()
		if m.i >= len(m.src) {
			return m.fail("unexpected end")
		}
		if m.src[m.i] == '}' {
			m.i++
			return n, nil
		}
		if m.src[m.i] != ',' {
			return m.fail("',' expected")
		}
		m.i++
	}
}

func (m *serdeMeter) array(depth int) (int, error) {
	m.i++
	m.ws()
	if m.i < len(m.src) && m.src[m.i] == ']' {
		m.i++
		return 2, nil
	}
	n := 2
	for first := true; ; first = false {
		if !first {
			n++
		}
		m.ws()
		v, err := m.value(depth)
		if err != nil {
			return 0, err
		}
		n += v
		m.ws()
		if m.i >= len(m.src) {
			return m.fail("unexpected end")
		}
		if m.src[m.i] == ']' {
			m.i++
			return n, nil
		}
		if m.src[m.i] != ',' {
			return m.fail("',' expected")
		}
		m.i++
	}
}

func (m *serdeMeter) number() (int, error) {
	start := m.i
	if m.src[m.i] == '-' {
		m.i++
	}
	for m.i < len(m.src) && m.src[m.i] >= '0' && m.src[m.i] <= '9' {
		m.i++
	}
	if m.i < len(m.src) && (m.src[m.i] == '.' || m.src[m.i] == 'e' || m.src[m.i] == 'E') {
		return 0, fmt.Errorf("%w: a number with a fraction or exponent", errUnpredictable)
	}
	lit := string(m.src[start:m.i])
	if lit[0] == '-' {
		v, err := strconv.ParseInt(lit, 10, 64)
		if err != nil || v == 0 {
			return 0, fmt.Errorf("%w: the number %s", errUnpredictable, lit)
		}
		return len(strconv.FormatInt(v, 10)), nil
	}
	v, err := strconv.ParseUint(lit, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: the number %s", errUnpredictable, lit)
	}
	return len(strconv.FormatUint(v, 10)), nil
}

// str decodes a string token.
func (m *serdeMeter) str() (string, error) {
	m.i++
	var b []byte
	for {
		if m.i >= len(m.src) {
			return "", errors.New("unterminated string")
		}
		c := m.src[m.i]
		switch {
		case c == '"':
			m.i++
			return string(b), nil
		case c < 0x20:
			return "", errors.New("control character in a string")
		case c == '\\':
			if m.i+1 >= len(m.src) {
				return "", errors.New("unterminated escape")
			}
			e := m.src[m.i+1]
			m.i += 2
			if c, ok := jsonstr.Unescape(e); ok {
				b = append(b, c)
				continue
			}
			switch e {
			case 'u':
				r, err := m.hex()
				if err != nil {
					return "", err
				}
				if utf16.IsSurrogate(r) {
					if r >= 0xDC00 || !bytes.HasPrefix(m.src[m.i:], []byte(`\u`)) {
						return "", errors.New("unpaired surrogate")
					}
					m.i += 2
					r2, err := m.hex()
					if err != nil {
						return "", err
					}
					if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
						return "", errors.New("unpaired surrogate")
					}
				}
				b = utf8.AppendRune(b, r)
			default:
				return "", fmt.Errorf("bad escape \\%c", e)
			}
		default:
			r, size := utf8.DecodeRune(m.src[m.i:])
			if r == utf8.RuneError && size == 1 {
				return "", errors.New("invalid UTF-8")
			}
			b = append(b, m.src[m.i:m.i+size]...)
			m.i += size
		}
	}
}

func (m *serdeMeter) hex() (rune, error) {
	if m.i+4 > len(m.src) {
		return 0, errors.New("short \\u escape")
	}
	v, err := strconv.ParseUint(string(m.src[m.i:m.i+4]), 16, 32)
	if err != nil {
		return 0, errors.New("bad \\u escape")
	}
	m.i += 4
	return rune(v), nil
}

// strLen is the length of s as serde_json writes it, quotes included.
func strLen(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\b' || c == '\t' || c == '\n' || c == '\f' || c == '\r':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}
