package moraytest

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Moray formats some error messages with extsprintf's %j, which is node's
// util.inspect(value, false, 10) with the default options: a break length
// of 80 columns, "compact" mode 3, at most 100 array items and 10,000
// characters of a string. NotIndexedError lists field names that way, e.g.
// "Unindexed fields: [ 'contentLength' ]". inspectStrings reproduces
// util.inspect (as in node 20, which served the messages this was checked
// against) for an array of strings.
//
// One simplification: node measures a column by display width, in which
// East Asian wide characters count two and combining marks none; here
// every character but a control character counts one. Field names are
// ASCII in practice.

const (
	inspectBreakLength    = 80
	inspectCompact        = 3
	inspectMaxArrayLength = 100
	inspectMaxString      = 10000
)

// inspectStrings returns util.inspect(list) for an array of strings, which
// may hold lone surrogates (WTF-8, as parseJS makes them).
func inspectStrings(list []string) string {
	if len(list) == 0 {
		return "[]"
	}
	shown := list[:min(len(list), inspectMaxArrayLength)]
	out := make([]string, 0, len(shown)+1)
	for _, s := range shown {
		out = append(out, inspectString(s))
	}
	if more := len(list) - len(shown); more > 0 {
		out = append(out, "... "+strconv.Itoa(more)+" more item"+plural(more))
	}
	entries := len(out)
	if entries > 6 {
		out = groupColumns(out, len(shown))
	}
	if entries == len(out) {
		// One line, if it fits: node's estimate counts each entry's
		// length plus a separator, and ten characters of slack.
		total := len(out) + (len(out) + len("[") + 10)
		fits := total+len(out) <= inspectBreakLength
		for _, e := range out {
			if total += len16(e); total > inspectBreakLength {
				fits = false
			}
		}
		if joined := strings.Join(out, ", "); fits && !strings.Contains(joined, "\n") {
			return "[ " + joined + " ]"
		}
	}
	return "[\n  " + strings.Join(out, ",\n  ") + "\n]"
}

// groupColumns lays more than six short entries out in columns, as node
// does for arrays: as many columns as make the block roughly square
// (counting a character 2.5 times as high as wide), at most 15, 4 per
// compact level, and as fit in the break length. The first n entries are
// the items; an entry after them ("... 3 more items") goes on its own line.
func groupColumns(out []string, n int) []string {
	const separator = 2 // ", "
	widths := make([]int, n)
	total, widest := 0, 0
	for i := range n {
		widths[i] = width(out[i])
		total += widths[i] + separator
		widest = max(widest, widths[i])
	}
	maxWidth := widest + separator
	if maxWidth*3 >= inspectBreakLength || (float64(total)/float64(maxWidth) <= 5 && widest > 6) {
		return out // too wide for three columns, or too uneven to line up
	}
	bias := math.Sqrt(float64(maxWidth) - float64(total)/float64(len(out)))
	biased := math.Max(float64(maxWidth)-3-bias, 1)
	columns := min(
		int(math.Floor(math.Sqrt(2.5*biased*float64(n))/biased+0.5)), // Math.round
		inspectBreakLength/maxWidth,
		inspectCompact*4,
		15,
	)
	if columns <= 1 {
		return out
	}
	colWidth := make([]int, columns)
	for c := range columns {
		for i := c; i < n; i += columns {
			colWidth[c] = max(colWidth[c], widths[i])
		}
		colWidth[c] += separator
	}
	var rows []string
	for start := 0; start < n; start += columns {
		end := min(start+columns, n)
		var row strings.Builder
		for i := start; i < end-1; i++ {
			// padEnd to the column's width, in UTF-16 units.
			cell := out[i] + ", "
			row.WriteString(cell)
			row.WriteString(strings.Repeat(" ", max(0, colWidth[i-start]+len16(out[i])-widths[i]-len16(cell))))
		}
		row.WriteString(out[end-1])
		rows = append(rows, row.String())
	}
	return append(rows, out[n:]...)
}

// inspectString quotes one string as util.inspect does: in single quotes,
// or double quotes if it holds a single quote but no double quote, or
// backquotes if it holds both but no backquote and no "${"; with control
// characters, the quote, backslashes and lone surrogates escaped. A string
// longer than 10,000 characters is cut there; one that is long for a line
// and holds newlines is split after each into quoted pieces joined by " +".
func inspectString(s string) string {
	units := toUTF16(s)
	trailer := ""
	if len(units) > inspectMaxString {
		more := len(units) - inspectMaxString
		units = units[:inspectMaxString]
		trailer = "... " + strconv.Itoa(more) + " more character" + plural(more)
	}
	// An array item is formatted two columns in, so the split threshold
	// is the break length less 2, less 4.
	if len(units) > 16 && len(units) > inspectBreakLength-2-4 {
		var pieces []string
		for start := 0; start < len(units); {
			end := start
			for end < len(units) && units[end] != '\n' {
				end++
			}
			if end < len(units) {
				end++ // the newline stays with its line
			}
			pieces = append(pieces, quoteJS(units[start:end]))
			start = end
		}
		return strings.Join(pieces, " +\n    ") + trailer
	}
	return quoteJS(units) + trailer
}

func quoteJS(units []uint16) string {
	has := func(c uint16) bool {
		for _, u := range units {
			if u == c {
				return true
			}
		}
		return false
	}
	quote := uint16('\'')
	if has('\'') {
		switch {
		case !has('"'):
			quote = '"'
		case !has('`') && !strings.Contains(string(utf16.Decode(units)), "${"):
			quote = '`'
		}
	}
	var b strings.Builder
	b.WriteRune(rune(quote))
	for i := 0; i < len(units); i++ {
		u := units[i]
		switch {
		case u == '\'' && quote == '\'':
			b.WriteString(`\'`)
		case u == '\\':
			b.WriteString(`\\`)
		case u == '\b':
			b.WriteString(`\b`)
		case u == '\t':
			b.WriteString(`\t`)
		case u == '\n':
			b.WriteString(`\n`)
		case u == '\f':
			b.WriteString(`\f`)
		case u == '\r':
			b.WriteString(`\r`)
		case u < 0x20 || u >= 0x7F && u <= 0x9F:
			b.WriteString(`\x`)
			b.WriteString(strings.ToUpper(hex2(u)))
		case utf16.IsSurrogate(rune(u)):
			if u < 0xDC00 && i+1 < len(units) && units[i+1] >= 0xDC00 && units[i+1] <= 0xDFFF {
				b.WriteRune(utf16.DecodeRune(rune(u), rune(units[i+1])))
				i++
				continue
			}
			b.WriteString(`\u`)
			b.WriteString(strconv.FormatUint(uint64(u), 16))
		default:
			b.WriteRune(rune(u))
		}
	}
	b.WriteRune(rune(quote))
	return b.String()
}

func hex2(u uint16) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[u>>4], digits[u&0xF]})
}

// toUTF16 returns the UTF-16 code units of a WTF-8 string.
func toUTF16(s string) []uint16 {
	units := make([]uint16, 0, len(s))
	for i := 0; i < len(s); {
		if r, ok := surrogateAt(s, i); ok {
			units = append(units, uint16(r))
			i += 3
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		units = utf16.AppendRune(units, r)
		i += n
	}
	return units
}

// len16 is a string's JavaScript length: its number of UTF-16 code units.
func len16(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// width is the columns s takes: one per character but control characters
// (see the simplification above).
func width(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x20 && (r < 0x7F || r > 0x9F) {
			n++
		}
	}
	return n
}

func plural(n int) string {
	if n > 1 {
		return "s"
	}
	return ""
}
