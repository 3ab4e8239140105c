package filter

import (
	"math"
	"testing"
)

func TestMatch(t *testing.T) {
	types := Types(func(attr string) Type {
		switch attr {
		case "_id", "_mtime", "percentUsed":
			return TypeNumber
		case "flag":
			return TypeBoolean
		}
		return TypeString
	})
	rec := MapRecord{
		"_id":           float64(42),
		"_mtime":        float64(1795855848229),
		"_etag":         "314BADAF",
		"_key":          "/acct/stor/a",
		"owner":         "61368287-aa5b-6c0f-f3a9-931a228215e4",
		"type":          "object",
		"Name":          "07e023da.log",
		"percentUsed":   float64(40),
		"contentLength": float64(10),
		"sizeText":      "10",
		"flag":          true,
		"nothing":       nil,
		"roles":         []any{"r1", "r2"},
		"headers":       map[string]any{},
		"multi":         "line1\nline2",
		"astral":        "\U0001F600",
		"private":       "\uE000",
	}
	tests := []struct {
		filter string
		want   bool
	}{
		{"(type=object)", true},
		{"(type=directory)", false},
		{"(TYPE=object)", true}, // case-insensitive attribute fallback
		{"(name=07e023da.log)", true},
		{"(missing=x)", false},
		{"(_id=42)", true},
		{"(_id=42.0)", true},
		{"(_id=42abc)", true}, // parseFloat
		{"(_id=abc)", false},  // NaN
		{"(_id>=42)", true},
		{"(_id>=43)", false},
		{"(_id<=41)", false},
		{"(&(_id>=0)(_id<=100)(type=object))", true},
		{"(_mtime>=1795855848229)", true},
		{"(_etag=314BADAF)", true},
		{"(_key=/acct/stor/a)", true},
		// Unindexed (string-typed) operand against a number: === fails,
		// relational comparison converts.
		{"(contentLength=10)", false},
		{"(contentLength>=9)", true},
		{"(contentLength>=11)", false},
		{"(contentLength<=10)", true},
		// Two strings compare as strings: "9" > "10".
		{"(sizeText>=9)", false},
		{"(sizeText<=9)", true},
		{"(percentUsed<=92)", true},
		{"(percentUsed>=92)", false},
		{"(flag=true)", true},
		{"(flag=TRUE)", true},
		{"(flag=false)", false},
		{"(flag=yes)", false},
		{"(owner=*)", true},
		{"(nothing=*)", false},
		{"(missing=*)", false},
		{"(headers=*)", true},
		{"(headers=x)", false},
		{"(roles=r2)", true},
		{"(roles=r3)", false},
		{"(roles=r*)", true},
		{"(owner=61368287*)", true},
		{"(owner=*931a228215e4)", true},
		{"(owner=*aa5b*f3a9*)", true},
		{"(owner=*f3a9*aa5b*)", false},
		{"(owner=6136*e4)", true},
		{"(owner=6136*e5)", false},
		{"(contentLength=1*)", true},   // numbers match as their text
		{"(multi=line1*line2)", false}, // wildcards do not cross line ends
		{"(multi=*line2)", true},
		{"(multi=line1*)", true},
		{"(_id=4*)", true},
		{"(name:caseIgnoreMatch:=07E023DA.LOG)", true},
		{"(name:caseIgnoreMatch:=07E023DA)", false},
		{"(type:caseIgnoreSubstringsMatch:=OB*)", true},
		{"(type:caseIgnoreSubstringsMatch:=*X*)", false},
		{"(!(type=object))", false},
		{"(!(missing=x))", true},
		{"(|(type=x)(_id=42))", true},
		{"(|(type=x)(_id=41))", false},
		{"(&(type=object)(_id=41))", false},
		// JavaScript orders strings by UTF-16 units: a character above
		// U+FFFF sorts before U+E000.
		{"(astral<=\uE000)", true},
		{"(private>=\U0001F600)", true},
	}
	for _, tt := range tests {
		f, err := Parse(tt.filter)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.filter, err)
		}
		if got := f.Match(rec, types); got != tt.want {
			t.Errorf("%s matched %v, want %v", tt.filter, got, tt.want)
		}
	}
	// Without types every operand is a string.
	f, _ := Parse("(_id=42)")
	if f.Match(rec, nil) {
		t.Error("(_id=42) with no types matched the number 42")
	}
}

func TestParseFloat(t *testing.T) {
	tests := []struct {
		in   string
		want float64
	}{
		{"10", 10}, {"  -1.5e3x", -1500}, {".5", 0.5}, {"5.", 5}, {"1e", 1}, {"1e+", 1},
		{"+Infinity", math.Inf(1)}, {"-Infinityx", math.Inf(-1)}, {"0x10", 0}, {"1e400", math.Inf(1)},
	}
	for _, tt := range tests {
		if got := ParseFloat(tt.in); got != tt.want {
			t.Errorf("ParseFloat(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for _, in := range []string{"", "abc", ".", "-", "e5", "Inf"} {
		if got := ParseFloat(in); !math.IsNaN(got) {
			t.Errorf("ParseFloat(%q) = %v, want NaN", in, got)
		}
	}
}

func TestStringToNumber(t *testing.T) {
	tests := []struct {
		in   string
		want float64
	}{
		{"", 0}, {"  ", 0}, {" 12 ", 12}, {"0x1f", 31}, {"0b101", 5}, {"0o17", 15}, {"-Infinity", math.Inf(-1)}, {"1e3", 1000}, {".5", 0.5},
	}
	for _, tt := range tests {
		if got := stringToNumber(tt.in); got != tt.want {
			t.Errorf("stringToNumber(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for _, in := range []string{"12abc", "0x", "0xg", "-0x10", "abc", "1 2"} {
		if got := stringToNumber(in); !math.IsNaN(got) {
			t.Errorf("stringToNumber(%q) = %v, want NaN", in, got)
		}
	}
}

func TestFormatNumber(t *testing.T) {
	tenth, fifth := 0.1, 0.2 // variables: constant arithmetic would be exact
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "0"}, {1, "1"}, {-1.5, "-1.5"}, {1000, "1000"},
		{1e21, "1e+21"}, {1e20, "100000000000000000000"}, {1.5e-7, "1.5e-7"}, {1e-6, "0.000001"},
		{123.456, "123.456"}, {1795855848229, "1795855848229"}, {9007199254740993, "9007199254740992"},
		{tenth + fifth, "0.30000000000000004"}, {math.NaN(), "NaN"}, {math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"},
		{2.5e-10, "2.5e-10"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
	}
	for _, tt := range tests {
		if got := FormatNumber(tt.in); got != tt.want {
			t.Errorf("FormatNumber(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
