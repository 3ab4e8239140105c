package filter

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"1.stor.example.com": "1.stor.example.com",
		"a*b":                `a\*b`,
		`(x)=\`:              `\(x\)\=\\`,
		"":                   "",
		"é":                  "é",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
