// Package suggest finds the known names closest to a name someone typed
// wrong: a configuration key, a shark's storage id.
package suggest

import (
	"cmp"
	"slices"
)

// Distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// bytes ("storinfo_ulr" is one edit from "storinfo_url").
func Distance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// Closest returns up to n of the names closest to name, in alphabetical
// order: those the fewest edits away, if that is a few (a fifth of its
// length, and at least 2). Name itself is never among them.
func Closest(name string, names []string, n int) []string {
	type cand struct {
		name string
		dist int
	}
	limit := max(len(name)/5, 2)
	var cands []cand
	seen := map[string]bool{name: true}
	for _, c := range names {
		if seen[c] {
			continue
		}
		seen[c] = true
		if d := Distance(name, c); d <= limit {
			cands = append(cands, cand{c, d})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.dist, b.dist), cmp.Compare(a.name, b.name))
	})
	out := make([]string, 0, min(n, len(cands)))
	for _, c := range cands {
		if len(out) == n || c.dist > cands[0].dist {
			break
		}
		out = append(out, c.name)
	}
	return out
}
