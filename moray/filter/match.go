package filter

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Type is how Moray converts a filter value before comparing it, which
// depends on the attribute: the bucket's index type for indexed fields,
// numbers for _id, _mtime and _txn_snap, strings for everything else.
type Type uint8

// Attribute types.
const (
	TypeString  Type = iota // the value as written; also unindexed attributes
	TypeNumber              // parseFloat of the value (NaN matches nothing)
	TypeBoolean             // "true" or "false", any case
)

// Types returns the Type of an attribute. A nil Types treats every
// attribute as TypeString.
type Types func(attr string) Type

// Record is what a filter is matched against: an object's value plus, for
// Moray, its internal fields _id, _key, _etag, _mtime and _txn_snap.
type Record interface {
	// Attr returns an attribute's value as decoded JSON: nil for null, bool,
	// float64, string, []any, or any other Go value for a JSON object. ok is
	// false when the record has no such attribute.
	Attr(name string) (v any, ok bool)
}

// MapRecord is a Record over a decoded JSON object. Like moray-filter, it
// looks an attribute up by its exact name first and then ignoring case.
type MapRecord map[string]any

// Attr implements Record.
func (m MapRecord) Attr(name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// Match reports whether r satisfies f. See Compile for the rules.
func (f *Filter) Match(r Record, types Types) bool {
	return f.Compile(types).Match(r)
}

// Matcher is a filter prepared for matching many records.
type Matcher struct {
	op       Op
	attr     string
	str      string  // string operand
	num      float64 // TypeNumber operand
	boolean  bool    // TypeBoolean operand
	typ      Type
	valid    bool // the operand converted (a bad boolean matches nothing)
	re       *regexp.Regexp
	children []*Matcher
}

// Compile prepares f for matching with the comparison rules of Moray's
// in-memory re-check (moray-filter, after Moray converted each operand by
// its attribute's type):
//
//   - equality is JavaScript's ===: a TypeNumber operand equals only
//     numbers, a TypeString operand only strings, so (size=10) on an
//     unindexed field never matches the number 10;
//   - >= and <= are JavaScript's relational operators: two strings compare
//     by UTF-16 code units, anything else as numbers;
//   - presence needs a value other than null;
//   - substrings match strings (and numbers and booleans as their text),
//     with wildcards that do not span line terminators;
//   - when the record's value is an array, a leaf matches if any element
//     matches.
func (f *Filter) Compile(types Types) *Matcher {
	m := &Matcher{op: f.Op, attr: f.Attr, valid: true}
	for _, c := range f.Children {
		m.children = append(m.children, c.Compile(types))
	}
	if types != nil && f.Op.IsLeaf() {
		m.typ = types(f.Attr)
	}
	switch f.Op {
	case Equal, GreaterOrEqual, LessOrEqual:
		m.str = f.Value
		switch m.typ {
		case TypeNumber:
			m.num = ParseFloat(f.Value)
		case TypeBoolean:
			switch strings.ToUpper(f.Value) {
			case "TRUE":
				m.boolean = true
			case "FALSE":
			default:
				m.valid = false
			}
		}
	case CaseIgnoreEqual:
		m.str = strings.ToLower(f.Value)
	case Substring, CaseIgnoreSubstring:
		m.re = substringRegexp(f)
	}
	return m
}

// lineTerminators are what JavaScript's '.' does not match.
const notTerminator = `[^\n\r\x{2028}\x{2029}]*`

// substringRegexp builds the regular expression moray-filter builds:
// "^initial.*any1.*any2.*final$", where an empty initial or final part
// leaves that end unanchored.
func substringRegexp(f *Filter) *regexp.Regexp {
	fold := func(s string) string {
		// Invalid UTF-8 cannot reach a real Moray (node decodes the frame
		// with replacement characters), and regexp rejects it.
		s = strings.ToValidUTF8(s, "\uFFFD")
		if f.Op == CaseIgnoreSubstring {
			return strings.ToLower(s)
		}
		return s
	}
	var b strings.Builder
	if f.Initial != "" {
		b.WriteString(`\A` + regexp.QuoteMeta(fold(f.Initial)) + notTerminator)
	}
	for _, a := range f.Any {
		b.WriteString(regexp.QuoteMeta(fold(a)) + notTerminator)
	}
	if f.Final != "" {
		b.WriteString(regexp.QuoteMeta(fold(f.Final)) + `\z`)
	}
	return regexp.MustCompile(b.String())
}

// Match reports whether r satisfies the filter.
func (m *Matcher) Match(r Record) bool {
	switch m.op {
	case And:
		for _, c := range m.children {
			if !c.Match(r) {
				return false
			}
		}
		return true
	case Or:
		for _, c := range m.children {
			if c.Match(r) {
				return true
			}
		}
		return false
	case Not:
		return !m.children[0].Match(r)
	}
	v, ok := r.Attr(m.attr)
	if !ok {
		return false
	}
	if m.op == Present {
		return v != nil
	}
	if !m.valid {
		return false
	}
	if vs, isArray := v.([]any); isArray {
		for _, e := range vs {
			if m.leaf(e) {
				return true
			}
		}
		return false
	}
	return m.leaf(v)
}

func (m *Matcher) leaf(v any) bool {
	switch m.op {
	case Equal:
		return m.strictEqual(v)
	case GreaterOrEqual:
		return lessOrEqual(m.operand(), v)
	case LessOrEqual:
		return lessOrEqual(v, m.operand())
	case CaseIgnoreEqual:
		s, ok := v.(string)
		return ok && strings.ToLower(s) == m.str
	case Substring, CaseIgnoreSubstring:
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case float64:
			s = FormatNumber(v)
		case bool:
			s = strconv.FormatBool(v)
		default:
			return false
		}
		if m.op == CaseIgnoreSubstring {
			if _, ok := v.(string); !ok {
				return false
			}
			s = strings.ToLower(s)
		}
		return m.re.MatchString(s)
	}
	return false
}

func (m *Matcher) operand() any {
	switch m.typ {
	case TypeNumber:
		return m.num
	case TypeBoolean:
		return m.boolean
	}
	return m.str
}

func (m *Matcher) strictEqual(v any) bool {
	switch m.typ {
	case TypeNumber:
		n, ok := v.(float64)
		return ok && n == m.num // NaN equals nothing
	case TypeBoolean:
		b, ok := v.(bool)
		return ok && b == m.boolean
	}
	s, ok := v.(string)
	return ok && s == m.str
}

// lessOrEqual is JavaScript's a <= b for JSON-shaped values.
func lessOrEqual(a, b any) bool {
	as, aok := a.(string)
	bs, bok := b.(string)
	if aok && bok {
		return compareUTF16(as, bs) <= 0
	}
	x, y := toNumber(a), toNumber(b)
	return x <= y // false when either is NaN
}

// toNumber is JavaScript's ToNumber for the primitive values a JSON record
// holds; objects and arrays become NaN.
func toNumber(v any) float64 {
	switch v := v.(type) {
	case nil:
		return 0
	case bool:
		if v {
			return 1
		}
		return 0
	case float64:
		return v
	case string:
		return stringToNumber(v)
	}
	return math.NaN()
}

// compareUTF16 compares two strings by UTF-16 code units, as JavaScript
// does. It differs from Go's byte order only between characters above
// U+FFFF and those in U+E000..U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, ub := firstUnit(ra), firstUnit(rb)
			if ua != ub {
				if ua < ub {
					return -1
				}
				return 1
			}
			// Same high surrogate: the low surrogates decide.
			if ra < rb {
				return -1
			}
			return 1
		}
		a, b = a[na:], b[nb:]
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	}
	return 1
}

func firstUnit(r rune) rune {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return hi
	}
	return r
}

func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// ParseFloat is JavaScript's parseFloat: the longest decimal number at the
// start of s (after white space), or NaN. Moray converts filter values for
// number-typed attributes with it, so "10abc" is 10.
func ParseFloat(s string) float64 {
	s = strings.TrimLeftFunc(s, isJSSpace)
	sign := ""
	rest := s
	if rest != "" && (rest[0] == '+' || rest[0] == '-') {
		sign, rest = rest[:1], rest[1:]
	}
	if strings.HasPrefix(rest, "Infinity") {
		if sign == "-" {
			return math.Inf(-1)
		}
		return math.Inf(1)
	}
	n := decimalPrefix(rest)
	if n == 0 {
		return math.NaN()
	}
	f, _ := strconv.ParseFloat(sign+rest[:n], 64) // ±Inf on overflow, as in JS
	return f
}

// decimalPrefix returns the length of the longest prefix of s that is a
// JavaScript StrUnsignedDecimalLiteral (without Infinity), or 0.
func decimalPrefix(s string) int {
	i, digits := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		j := i + 1
		frac := 0
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j, frac = j+1, frac+1
		}
		if digits+frac > 0 {
			i, digits = j, digits+frac
		}
	}
	if digits == 0 {
		return 0
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k > j {
			i = k
		}
	}
	return i
}

// stringToNumber is JavaScript's Number(s): white space around a decimal,
// hex (0x), octal (0o) or binary (0b) literal, or Infinity; "" is 0;
// anything else is NaN.
func stringToNumber(s string) float64 {
	s = strings.TrimFunc(s, isJSSpace)
	if s == "" {
		return 0
	}
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			var f float64
			for _, c := range s[2:] {
				d := digitValue(c)
				if d < 0 || d >= base {
					return math.NaN()
				}
				f = f*float64(base) + float64(d)
			}
			return f
		}
	}
	rest := s
	if rest[0] == '+' || rest[0] == '-' {
		rest = rest[1:]
	}
	if rest == "Infinity" {
		if s[0] == '-' {
			return math.Inf(-1)
		}
		return math.Inf(1)
	}
	if n := decimalPrefix(rest); n == 0 || n != len(rest) {
		return math.NaN()
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func digitValue(c rune) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return -1
}

// FormatNumber formats f as JavaScript's String(f) and JSON.stringify do:
// the shortest digits that read back as f, in plain notation from 1e-7 to
// 1e21 and in exponent notation ("1e+21", "1.5e-7") outside it. NaN and
// the infinities format as JavaScript's String does ("NaN", "Infinity").
func FormatNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0" // also -0
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// Shortest round-tripping digits and the decimal exponent.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±xx
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1 // value = 0.digits × 10^n
	var b strings.Builder
	b.WriteString(sign)
	switch {
	case k <= n && n <= 21:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", n-k))
	case 0 < n && n <= 21:
		b.WriteString(digits[:n] + "." + digits[n:])
	case -6 < n && n <= 0:
		b.WriteString("0." + strings.Repeat("0", -n) + digits)
	default:
		b.WriteString(digits[:1])
		if k > 1 {
			b.WriteString("." + digits[1:])
		}
		b.WriteString("e")
		if n-1 >= 0 {
			b.WriteString("+")
		}
		b.WriteString(strconv.Itoa(n - 1))
	}
	return b.String()
}
