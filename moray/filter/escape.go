// Package filter handles Moray's LDAP-like search filters, as accepted by
// findObjects: "(&(owner=x)(_id>=10))". Escape makes a value safe to put in
// a filter.
package filter

import "strings"

// Escape returns v with a backslash before each character that is special in
// a filter value: * ( ) \ and =. Moray (moray-filter) escapes the character
// itself, not LDAP's \2a hex form.
func Escape(v string) string {
	if !strings.ContainsAny(v, `*()\=`) {
		return v
	}
	var b strings.Builder
	b.Grow(len(v) + 4)
	// The special characters are ASCII, so a byte loop is exact for UTF-8
	// and leaves any other byte as it was.
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '*', '(', ')', '\\', '=':
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
