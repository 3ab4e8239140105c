package filter

import "testing"

// FuzzParse checks that Parse never panics and that String is its exact
// inverse: whatever parses prints to a filter that parses back to the same
// tree and prints the same way again. The seed corpus is in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"(a=b)", "a=b", "(&(a>=1)(!(b=*)))", `(a=\2a\(x*y)`, "(a:caseIgnoreMatch:=x)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := Parse(s)
		if err != nil {
			if flt != nil {
				t.Fatalf("Parse(%q) returned a filter with error %v", s, err)
			}
			return
		}
		text := flt.String()
		again, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(%q) = %s, but its String does not parse: %v", s, text, err)
		}
		if !again.Equal(flt) {
			t.Fatalf("Parse(%q) = %s, reparsed as %s", s, text, again)
		}
		if again.String() != text {
			t.Fatalf("String not canonical: %q then %q", text, again.String())
		}
		// Matching a filter must not panic either, whatever the types.
		rec := MapRecord{"a": "x", "b": float64(1), "c": []any{"y", nil, true}}
		flt.Match(rec, func(attr string) Type { return Type(len(attr) % 3) })
	})
}
