// Package filter handles Moray's LDAP-like search filters, as accepted by
// findObjects: "(&(owner=x)(_id>=10))".
//
// Escape makes a value safe to put in a filter. Parse reads a filter the way
// Moray's parser (moray-filter 1.0.0) does, String writes it back, and Match
// evaluates it against a record with the comparison rules Moray applies when
// it re-checks every row in memory. Package moraytest uses all three to
// emulate findObjects; a client only needs Escape.
//
// The syntax:
//
//	(attr=value)        equality
//	(attr=*)            presence
//	(attr>=value)       greater than or equal (there is no strict > or <)
//	(attr<=value)       less than or equal
//	(attr=pre*mid*suf)  substring: any of the three parts may be empty
//	(&(f1)(f2)...)      and
//	(|(f1)(f2)...)      or
//	(!(f))              not
//	(attr:caseIgnoreMatch:=value)            case-insensitive equality
//	(attr:caseIgnoreSubstringsMatch:=*val*)  case-insensitive substring
//
// A filter without outer parentheses is wrapped in them ("owner=x" reads as
// "(owner=x)"). Attribute names are letters, digits, '-' and '_'. In values,
// a backslash escapes the next character when it is one of * ( ) \ =, and a
// backslash followed by two hex digits stands for that code point (LDAP's
// "\2a" form, which Moray also reads). Whitespace is significant.
package filter

import (
	"errors"
	"fmt"
	"strings"
)

// Op is the kind of a filter node.
type Op uint8

// Filter node kinds.
const (
	And Op = iota + 1
	Or
	Not
	Equal          // (a=v)
	Present        // (a=*)
	GreaterOrEqual // (a>=v)
	LessOrEqual    // (a<=v)
	Substring      // (a=pre*any*suf)
	// CaseIgnoreEqual is (a:caseIgnoreMatch:=v).
	CaseIgnoreEqual
	// CaseIgnoreSubstring is (a:caseIgnoreSubstringsMatch:=pre*any*suf).
	CaseIgnoreSubstring
)

var opNames = [...]string{
	And: "and", Or: "or", Not: "not", Equal: "equal", Present: "present",
	GreaterOrEqual: "ge", LessOrEqual: "le", Substring: "substring",
	CaseIgnoreEqual: "caseIgnoreMatch", CaseIgnoreSubstring: "caseIgnoreSubstringsMatch",
}

func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// IsLeaf reports whether o compares an attribute (as opposed to combining
// other filters).
func (o Op) IsLeaf() bool { return o >= Equal && o <= CaseIgnoreSubstring }

// Filter is a parsed filter: a tree of And, Or and Not nodes over leaves
// that each test one attribute. Values are held unescaped.
type Filter struct {
	Op   Op
	Attr string // leaves only

	// Value is the operand of Equal, GreaterOrEqual, LessOrEqual and
	// CaseIgnoreEqual.
	Value string

	// Initial, Any and Final are the parts of a Substring or
	// CaseIgnoreSubstring match: the value starts with Initial, then
	// contains each of Any in order, and ends with Final.
	Initial string
	Any     []string
	Final   string

	// Children are the operands of And and Or (at least one) and of Not
	// (exactly one).
	Children []*Filter
}

// maxDepth bounds nesting so that a hostile filter cannot exhaust memory; a
// real Moray would overflow node's stack well before anything this deep.
const maxDepth = 256

// SyntaxError reports a filter that does not parse.
type SyntaxError struct {
	Filter string // the input, as given
	Offset int    // byte offset in the (wrapped) input where parsing failed
	Reason string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("filter: %s at offset %d in %q", e.Reason, e.Offset, e.Filter)
}

// ErrEmpty is returned by Parse for an empty filter.
var ErrEmpty = errors.New("filter: empty filter")

// Parse parses a filter. It accepts what moray-filter accepts, except the
// approximate match (~=) and extensible matches other than caseIgnoreMatch
// and caseIgnoreSubstringsMatch, which Moray either rejects or can only run
// against PostgreSQL range types.
func Parse(s string) (*Filter, error) {
	if s == "" {
		return nil, ErrEmpty
	}
	p := parser{in: s, s: s}
	if s[0] != '(' {
		p.s = "(" + s + ")"
	}
	f, end, err := p.filter(0, 0)
	if err != nil {
		return nil, err
	}
	if end < len(p.s)-1 {
		return nil, p.errorf(end+1, "unbalanced parentheses: trailing text")
	}
	return f, nil
}

type parser struct {
	in string // the input, for error messages
	s  string // the input wrapped in parentheses
}

func (p *parser) errorf(off int, format string, args ...any) error {
	return &SyntaxError{Filter: p.in, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// filter parses the filter starting at s[i] ('(' or, inside an and, or or
// not, a bare '!') and returns it with the index of its closing parenthesis.
func (p *parser) filter(i, depth int) (*Filter, int, error) {
	s := p.s
	if depth > maxDepth {
		return nil, 0, p.errorf(i, "filter nested more than %d deep", maxDepth)
	}
	if i >= len(s) {
		return nil, 0, p.errorf(i, "unexpected end of filter")
	}
	bareNot := false
	switch s[i] {
	case '(':
		i++
	case '!':
		bareNot = true
	default:
		return nil, 0, p.errorf(i, "expected '(' but found %q", s[i])
	}
	if i >= len(s) {
		return nil, 0, p.errorf(i, "unexpected end of filter")
	}

	var f *Filter
	switch s[i] {
	case '&', '|':
		f = &Filter{Op: And}
		if s[i] == '|' {
			f.Op = Or
		}
		i++
		for {
			child, end, err := p.filter(i, depth+1)
			if err != nil {
				return nil, 0, err
			}
			f.Children = append(f.Children, child)
			i = end + 1
			if i >= len(s) || s[i] == ')' {
				break
			}
		}
	case '!':
		child, end, err := p.filter(i+1, depth+1)
		if err != nil {
			return nil, 0, err
		}
		f = &Filter{Op: Not, Children: []*Filter{child}}
		if bareNot {
			i = end
		} else {
			i = end + 1
			if i >= len(s) || s[i] != ')' {
				return nil, 0, p.errorf(i, "unbalanced parentheses after '!'")
			}
		}
	default:
		end := indexUnescaped(s, i, ')')
		if end < 0 {
			return nil, 0, p.errorf(i, "unbalanced parentheses: no closing ')'")
		}
		leaf, err := p.leaf(s[i:end], i)
		if err != nil {
			return nil, 0, err
		}
		f, i = leaf, end
	}
	if i >= len(s) {
		return nil, 0, p.errorf(i, "unbalanced parentheses: missing ')'")
	}
	return f, i, nil
}

// indexUnescaped returns the index of the first c at or after start that is
// not preceded by a backslash escape, or -1.
func indexUnescaped(s string, start int, c byte) int {
	for i := start; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case c:
			return i
		}
	}
	return -1
}

func isAttrByte(b byte) bool {
	return b == '-' || b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// leaf parses one comparison, the text between a leaf's parentheses. off is
// its offset in p.s, for error messages.
func (p *parser) leaf(expr string, off int) (*Filter, error) {
	n := 0
	for n < len(expr) && isAttrByte(expr[n]) {
		n++
	}
	if n == 0 {
		if strings.HasPrefix(expr, ":") {
			return nil, p.errorf(off, "extensible match without an attribute is not supported")
		}
		return nil, p.errorf(off, "invalid attribute name")
	}
	attr, rest := expr[:n], expr[n:]
	at := off + n
	switch {
	case rest == "=*":
		return &Filter{Op: Present, Attr: attr}, nil
	case strings.HasPrefix(rest, "="):
		return p.equalOrSubstring(attr, rest[1:], at+1)
	case strings.HasPrefix(rest, ">="):
		v, err := p.unescape(rest[2:], at+2)
		return &Filter{Op: GreaterOrEqual, Attr: attr, Value: v}, err
	case strings.HasPrefix(rest, "<="):
		v, err := p.unescape(rest[2:], at+2)
		return &Filter{Op: LessOrEqual, Attr: attr, Value: v}, err
	case strings.HasPrefix(rest, "~="):
		return nil, p.errorf(at, "approximate match (~=) is not supported by Moray")
	case strings.HasPrefix(rest, ":"):
		return p.extensible(attr, rest, at)
	}
	return nil, p.errorf(at, "invalid comparison %q", rest)
}

func (p *parser) equalOrSubstring(attr, v string, off int) (*Filter, error) {
	initial, any, final, ok, err := p.substring(v, off)
	if err != nil {
		return nil, err
	}
	if ok {
		return &Filter{Op: Substring, Attr: attr, Initial: initial, Any: any, Final: final}, nil
	}
	u, err := p.unescape(v, off)
	if err != nil {
		return nil, err
	}
	return &Filter{Op: Equal, Attr: attr, Value: u}, nil
}

// substring splits v at its unescaped '*' characters and unescapes the
// parts. ok is false when v has no wildcard.
func (p *parser) substring(v string, off int) (initial string, any []string, final string, ok bool, err error) {
	var parts []string
	pos := off
	for {
		j := indexUnescaped(v, 0, '*')
		if j < 0 {
			break
		}
		u, err := p.unescape(v[:j], pos)
		if err != nil {
			return "", nil, "", false, err
		}
		parts = append(parts, u)
		v, pos = v[j+1:], pos+j+1
	}
	if len(parts) == 0 {
		return "", nil, "", false, nil
	}
	final, err = p.unescape(v, pos)
	if err != nil {
		return "", nil, "", false, err
	}
	if len(parts) > 1 {
		any = parts[1:]
	}
	return parts[0], any, final, true, nil
}

// extensible parses "(attr:rule:=value)". Only the two rules that Moray
// evaluates in memory are accepted.
func (p *parser) extensible(attr, rest string, off int) (*Filter, error) {
	// rest is ":rule:=value"; the value may itself contain ':'.
	fields := strings.SplitN(rest[1:], ":", 2)
	if len(fields) < 2 || !strings.HasPrefix(fields[1], "=") {
		return nil, p.errorf(off, "extensible match needs the form attr:rule:=value")
	}
	rule, v := fields[0], fields[1][1:]
	voff := off + 1 + len(rule) + 2
	switch rule {
	case "caseIgnoreMatch", "2.5.13.2":
		// moray-filter keeps an unescaped '*' literally in this rule's value.
		u, err := p.unescape(v, voff)
		if err != nil {
			return nil, err
		}
		return &Filter{Op: CaseIgnoreEqual, Attr: attr, Value: u}, nil
	case "caseIgnoreSubstringsMatch", "2.5.13.4":
		initial, any, final, ok, err := p.substring(v, voff)
		if err != nil {
			return nil, err
		}
		if !ok {
			// Without a wildcard moray compiles this to "col ILIKE ''",
			// which matches nothing useful.
			return nil, p.errorf(voff, "caseIgnoreSubstringsMatch needs a '*' wildcard")
		}
		return &Filter{Op: CaseIgnoreSubstring, Attr: attr, Initial: initial, Any: any, Final: final}, nil
	case "":
		return nil, p.errorf(off, "extensible match without a matching rule is not supported")
	case "dn", "DN":
		return nil, p.errorf(off, "extensible match with dn is not supported")
	}
	return nil, p.errorf(off, "unsupported extensible matching rule %q", rule)
}

// unescape decodes a value: "\" before one of * ( ) \ = stands for that
// character, "\" before two hex digits for that code point. An unescaped '('
// is an error, as it is for moray-filter.
func (p *parser) unescape(v string, off int) (string, error) {
	if !strings.ContainsAny(v, `\(`) {
		return v, nil
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case '(':
			return "", p.errorf(off+i, "unescaped '(' in value")
		case '\\':
			if i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
				b.WriteRune(rune(unhex(v[i+1])<<4 | unhex(v[i+2])))
				i += 2
				continue
			}
			if i+1 < len(v) && strings.IndexByte(`*()\=`, v[i+1]) >= 0 {
				b.WriteByte(v[i+1])
				i++
				continue
			}
			return "", p.errorf(off+i, "invalid escape sequence %q", v[i:min(i+3, len(v))])
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func isHex(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F'
}

func unhex(b byte) byte {
	switch {
	case b >= 'a':
		return b - 'a' + 10
	case b >= 'A':
		return b - 'A' + 10
	}
	return b - '0'
}

// String returns the filter in the syntax Parse reads, with every value
// escaped, so that Parse(f.String()) equals f. It is also the text Moray
// puts in an InvalidQueryError or NotIndexedError about f.
func (f *Filter) String() string {
	var b strings.Builder
	f.write(&b)
	return b.String()
}

func (f *Filter) write(b *strings.Builder) {
	b.WriteByte('(')
	switch f.Op {
	case And, Or, Not:
		b.WriteByte("&|!"[f.Op-And])
		for _, c := range f.Children {
			c.write(b)
		}
	case Equal:
		b.WriteString(f.Attr + "=" + Escape(f.Value))
	case Present:
		b.WriteString(f.Attr + "=*")
	case GreaterOrEqual:
		b.WriteString(f.Attr + ">=" + Escape(f.Value))
	case LessOrEqual:
		b.WriteString(f.Attr + "<=" + Escape(f.Value))
	case CaseIgnoreEqual:
		b.WriteString(f.Attr + ":caseIgnoreMatch:=" + Escape(f.Value))
	case Substring, CaseIgnoreSubstring:
		b.WriteString(f.Attr)
		if f.Op == CaseIgnoreSubstring {
			b.WriteString(":caseIgnoreSubstringsMatch:")
		}
		b.WriteString("=" + Escape(f.Initial) + "*")
		for _, a := range f.Any {
			b.WriteString(Escape(a) + "*")
		}
		b.WriteString(Escape(f.Final))
	default:
		fmt.Fprintf(b, "?%s", f.Op)
	}
	b.WriteByte(')')
}

// Equal reports whether f and g are the same filter.
func (f *Filter) Equal(g *Filter) bool {
	if f == nil || g == nil {
		return f == g
	}
	if f.Op != g.Op || f.Attr != g.Attr || f.Value != g.Value || f.Initial != g.Initial ||
		f.Final != g.Final || len(f.Any) != len(g.Any) || len(f.Children) != len(g.Children) {
		return false
	}
	for i := range f.Any {
		if f.Any[i] != g.Any[i] {
			return false
		}
	}
	for i := range f.Children {
		if !f.Children[i].Equal(g.Children[i]) {
			return false
		}
	}
	return true
}

// Attributes returns the distinct attributes f tests, in the order they
// first appear.
func (f *Filter) Attributes() []string {
	var attrs []string
	seen := map[string]bool{}
	f.Walk(func(n *Filter) {
		if n.Op.IsLeaf() && !seen[n.Attr] {
			seen[n.Attr] = true
			attrs = append(attrs, n.Attr)
		}
	})
	return attrs
}

// Walk calls fn for f and every node below it, parents first.
func (f *Filter) Walk(fn func(*Filter)) {
	fn(f)
	for _, c := range f.Children {
		c.Walk(fn)
	}
}
