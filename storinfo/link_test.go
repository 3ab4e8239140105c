package storinfo

import "testing"

func TestNextLink(t *testing.T) {
	tests := []struct {
		in   []string
		want string
		ok   bool
	}{
		{[]string{`</storagenodes?after_id=9.stor&limit=100>; rel="next"`}, "/storagenodes?after_id=9.stor&limit=100", true},
		{[]string{`<a>; rel=next`}, "a", true},
		{[]string{`<a>; rel="prev", <b>; title="x"; REL="Next"`}, "b", true},
		{[]string{`<a>; rel="prev"`, `<c>; rel="start next"`}, "c", true},
		{[]string{`<a>; rel="prev"`}, "", false},
		{[]string{`garbage`}, "", false},
		{[]string{`<unterminated; rel="next"`}, "", false},
		{nil, "", false},
	}
	for _, tt := range tests {
		got, ok := nextLink(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("nextLink(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
