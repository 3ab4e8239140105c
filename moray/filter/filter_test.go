package filter

import (
	"errors"
	"strings"
	"testing"
)

func eq(a, v string) *Filter   { return &Filter{Op: Equal, Attr: a, Value: v} }
func ge(a, v string) *Filter   { return &Filter{Op: GreaterOrEqual, Attr: a, Value: v} }
func le(a, v string) *Filter   { return &Filter{Op: LessOrEqual, Attr: a, Value: v} }
func pres(a string) *Filter    { return &Filter{Op: Present, Attr: a} }
func and(c ...*Filter) *Filter { return &Filter{Op: And, Children: c} }
func or(c ...*Filter) *Filter  { return &Filter{Op: Or, Children: c} }
func not(c *Filter) *Filter    { return &Filter{Op: Not, Children: []*Filter{c}} }
func sub(a, i string, any []string, f string) *Filter {
	return &Filter{Op: Substring, Attr: a, Initial: i, Any: any, Final: f}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want *Filter
		str  string // canonical String(); "" means the input
	}{
		{"(a=b)", eq("a", "b"), ""},
		{"a=b", eq("a", "b"), "(a=b)"},
		{"manta_storage_id=1.stor.x", eq("manta_storage_id", "1.stor.x"), "(manta_storage_id=1.stor.x)"},
		{"(a=)", eq("a", ""), ""},
		{"(a=*)", pres("a"), ""},
		{"(_id>=10)", ge("_id", "10"), ""},
		{"(_id<=10)", le("_id", "10"), ""},
		{"(a>=)", ge("a", ""), ""},
		{"(a=b=c)", eq("a", "b=c"), `(a=b\=c)`},
		{"(a=pre*)", sub("a", "pre", nil, ""), ""},
		{"(a=*suf)", sub("a", "", nil, "suf"), ""},
		{"(a=*mid*)", sub("a", "", []string{"mid"}, ""), ""},
		{"(a=pre*m1*m2*suf)", sub("a", "pre", []string{"m1", "m2"}, "suf"), ""},
		{"(a=**)", sub("a", "", []string{""}, ""), ""},
		{`(a=\*)`, eq("a", "*"), ""},
		{`(a=\(x\)\=\\)`, eq("a", `(x)=\`), ""},
		{`(a=\2a)`, eq("a", "*"), `(a=\*)`},
		{`(a=\41\42)`, eq("a", "AB"), "(a=AB)"},
		{`(a=\c3\a9)`, eq("a", "\u00c3\u00a9"), "(a=\u00c3\u00a9)"}, // code points, not UTF-8 bytes
		{`(a=\\29)`, eq("a", `\29`), `(a=\\29)`},
		{`(a=x\**)`, sub("a", "x*", nil, ""), ""},
		{"(a=é)", eq("a", "é"), ""},
		{"(a=b c)", eq("a", "b c"), ""},
		{"(a-b_c9=1)", eq("a-b_c9", "1"), ""},
		{"(&(a=1)(b=2))", and(eq("a", "1"), eq("b", "2")), ""},
		{"(&(a=1))", and(eq("a", "1")), ""},
		{"(|(a=1)(b=2)(c=*))", or(eq("a", "1"), eq("b", "2"), pres("c")), ""},
		{"(!(a=1))", not(eq("a", "1")), ""},
		{"!(a=1)", not(eq("a", "1")), "(!(a=1))"},
		{"(!!(a=1))", not(not(eq("a", "1"))), "(!(!(a=1)))"},
		{"(&!(a=1)(b=2))", and(not(eq("a", "1")), eq("b", "2")), "(&(!(a=1))(b=2))"},
		{"&(a=1)(b=2)", and(eq("a", "1"), eq("b", "2")), "(&(a=1)(b=2))"},
		{"(&(_id>=0)(_id<=100)(type=object))", and(ge("_id", "0"), le("_id", "100"), eq("type", "object")), ""},
		{"(&(percentUsed<=92)(timestamp>=1700000000000)(|(_id>=5)(!(x=*))))",
			and(le("percentUsed", "92"), ge("timestamp", "1700000000000"), or(ge("_id", "5"), not(pres("x")))), ""},
		{"(a:caseIgnoreMatch:=FoO)", &Filter{Op: CaseIgnoreEqual, Attr: "a", Value: "FoO"}, ""},
		{"(a:2.5.13.2:=x*y)", &Filter{Op: CaseIgnoreEqual, Attr: "a", Value: "x*y"}, `(a:caseIgnoreMatch:=x\*y)`},
		{"(a:caseIgnoreMatch:=x:y)", &Filter{Op: CaseIgnoreEqual, Attr: "a", Value: "x:y"}, ""},
		{"(a:caseIgnoreSubstringsMatch:=*B*)", &Filter{Op: CaseIgnoreSubstring, Attr: "a", Any: []string{"B"}}, ""},
		{"(a:2.5.13.4:=x*)", &Filter{Op: CaseIgnoreSubstring, Attr: "a", Initial: "x"}, "(a:caseIgnoreSubstringsMatch:=x*)"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
			}
			want := tt.str
			if want == "" {
				want = tt.in
			}
			if s := got.String(); s != want {
				t.Errorf("String() = %q, want %q", s, want)
			}
			again, err := Parse(got.String())
			if err != nil || !again.Equal(got) {
				t.Errorf("Parse(String()) = %v, %v; want %s", again, err, got)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"(", ")", "()", "(a=b", "a=b)", "(a=b)(c=d)", "(a=b))", "((a=b))",
		"(&)", "(|)", "(!)", "(!(a=b)", "(!(a=b)(c=d))", "(& (a=b))", "(&(a=b)c)",
		"(=b)", "(a b=c)", "(a)", "(a~=b)", "(a>b)", "(a<b)", "(a=b(c)",
		`(a=\)`, `(a=\x)`, `(a=b\)`, `(a=\4)`, `(a=\4g)`,
		"(a:=b)", "(:caseIgnoreMatch:=b)", "(a:dn:caseIgnoreMatch:=b)", "(a:overlaps:=[1,2])",
		"(a:caseIgnoreSubstringsMatch:=b)", "(a:caseIgnoreMatch=b)",
		strings.Repeat("(!", 300) + "(a=b)" + strings.Repeat(")", 300),
	} {
		f, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) = %s, want an error", in, f)
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) || se.Filter != in {
			t.Errorf("Parse(%q) error %v is not a *SyntaxError for the input", in, err)
		}
	}
	if _, err := Parse(""); !errors.Is(err, ErrEmpty) {
		t.Errorf("Parse(\"\") = %v, want ErrEmpty", err)
	}
}

// Escape and Parse agree: a filter built from an escaped value matches
// exactly that value.
func TestEscapeRoundTrip(t *testing.T) {
	for _, v := range []string{"", "*", "a*b", `(x)=\`, `\2a`, "1.stor.example.com", "é€😀", "a=b", `\\`, "**"} {
		f, err := Parse("(a=" + Escape(v) + ")")
		if err != nil {
			t.Fatalf("Parse of Escape(%q): %v", v, err)
		}
		if !f.Equal(eq("a", v)) {
			t.Errorf("Parse of Escape(%q) = %s, want equality with the value", v, f)
		}
		if !f.Match(MapRecord{"a": v}, nil) || f.Match(MapRecord{"a": v + "x"}, nil) {
			t.Errorf("filter for %q does not match exactly that value", v)
		}
	}
}

func TestAttributesAndWalk(t *testing.T) {
	f, err := Parse("(&(a=1)(|(b=2)(a>=3))(!(c=*)))")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(f.Attributes(), ",")
	if got != "a,b,c" {
		t.Errorf("Attributes() = %s, want a,b,c", got)
	}
	var ops []string
	f.Walk(func(n *Filter) { ops = append(ops, n.Op.String()) })
	if s := strings.Join(ops, " "); s != "and equal or equal ge not present" {
		t.Errorf("Walk order = %s", s)
	}
	if !Equal.IsLeaf() || And.IsLeaf() || Not.IsLeaf() || !CaseIgnoreSubstring.IsLeaf() {
		t.Error("IsLeaf wrong")
	}
	if Op(99).String() != "Op(99)" {
		t.Error("unknown Op String")
	}
}

func TestEqualNil(t *testing.T) {
	var nilF *Filter
	if !nilF.Equal(nil) || nilF.Equal(eq("a", "b")) || eq("a", "b").Equal(nil) {
		t.Error("Equal with nil")
	}
	if eq("a", "b").Equal(eq("a", "c")) || sub("a", "", []string{"x"}, "").Equal(sub("a", "", []string{"y"}, "")) {
		t.Error("different filters compare equal")
	}
}
