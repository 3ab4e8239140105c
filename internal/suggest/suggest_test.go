package suggest

import (
	"slices"
	"testing"
)

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "abc", 0},
		{"storinfo_ulr", "storinfo_url", 1}, // a transposition is one edit
		{"max_fill_percentag", "max_fill_percentage", 1},
		{"2.stor.demo.exmaple", "2.stor.demo.example", 1},
		{"kitten", "sitting", 3},
		{"", "abc", 3},
	} {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Distance(tt.b, tt.a); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestClosest(t *testing.T) {
	sharks := []string{"1.stor.demo.example", "2.stor.demo.example", "3.stor.demo.example", "12.stor.demo.example",
		"2.stor.other.example", "2.stor.demo.example"}
	for _, tt := range []struct {
		name string
		n    int
		want []string
	}{
		{"2.stor.demo.exmaple", 3, []string{"2.stor.demo.example"}},
		{"2.stor.demo.example", 3, []string{"1.stor.demo.example", "12.stor.demo.example", "3.stor.demo.example"}},
		{"2.stor.demo.example", 2, []string{"1.stor.demo.example", "12.stor.demo.example"}},
		{"no.such.shark", 3, []string{}},
		{"x", 3, []string{}},
	} {
		if got := Closest(tt.name, sharks, tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("Closest(%q, %d) = %q, want %q", tt.name, tt.n, got, tt.want)
		}
	}
}
