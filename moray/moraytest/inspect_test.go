package moraytest

import (
	"strconv"
	"strings"
	"testing"
)

// The expected texts are node 20's util.inspect(list, false, 10), which
// Moray's %j is. (inspectStrings also matched node on 20,000 random lists
// of ASCII, quotes, control characters, é and lone surrogates, of up to 109
// items and 10,010 characters, when it was written.)
func TestInspectStrings(t *testing.T) {
	seq := func(n int, f func(i int) string) []string {
		l := make([]string, n)
		for i := range l {
			l[i] = f(i)
		}
		return l
	}
	tests := []struct {
		name string
		list []string
		want string
	}{
		{"empty", nil, "[]"},
		{"one", []string{"contentLength"}, "[ 'contentLength' ]"},
		{"two", []string{"contentLength", "mtime"}, "[ 'contentLength', 'mtime' ]"},
		{"an apostrophe", []string{"it's"}, `[ "it's" ]`},
		{"both quotes", []string{`a"b'c`}, "[ `a\"b'c` ]"},
		{"every quote and ${", []string{"it's \"x\" ${y}"}, `[ 'it\'s "x" ${y}' ]`},
		{"escapes", []string{"x\ny\t", "\x00\x1b\x7f\u009f\\"}, `[ 'x\ny\t', '\x00\x1B\x7F\x9F\\' ]`},
		{"lone surrogate", []string{"a\xed\xa0\x80b"}, `[ 'a\ud800b' ]`},
		{"astral and accented", []string{"😀é"}, "[ '😀é' ]"},
		{"too long for one line", []string{"attributeNumberOne", "attributeNumberTwo", "attributeNumberThree", "attributeNumberFour"},
			"[\n  'attributeNumberOne',\n  'attributeNumberTwo',\n  'attributeNumberThree',\n  'attributeNumberFour'\n]"},
		{"eight, in two columns", seq(8, func(i int) string { return "field" + string(rune('0'+i)) }),
			"[\n  'field0', 'field1',\n  'field2', 'field3',\n  'field4', 'field5',\n  'field6', 'field7'\n]"},
		{"alphabet, in six columns", seq(26, func(i int) string { return string(rune('a' + i)) }),
			"[\n  'a', 'b', 'c', 'd', 'e', 'f',\n  'g', 'h', 'i', 'j', 'k', 'l',\n  'm', 'n', 'o', 'p', 'q', 'r',\n  's', 't', 'u', 'v', 'w', 'x',\n  'y', 'z'\n]"},
		{"seven long, one a line", seq(7, func(i int) string { return "aVeryLongAttributeName" + string(rune('0'+i)) }),
			"[\n  'aVeryLongAttributeName0',\n  'aVeryLongAttributeName1',\n  'aVeryLongAttributeName2',\n  'aVeryLongAttributeName3',\n" +
				"  'aVeryLongAttributeName4',\n  'aVeryLongAttributeName5',\n  'aVeryLongAttributeName6'\n]"},
		{"over a hundred", seq(103, func(i int) string { return "f" + strconv.Itoa(i) }), `[
  'f0',  'f1',  'f2',  'f3',  'f4',  'f5',  'f6',  'f7',
  'f8',  'f9',  'f10', 'f11', 'f12', 'f13', 'f14', 'f15',
  'f16', 'f17', 'f18', 'f19', 'f20', 'f21', 'f22', 'f23',
  'f24', 'f25', 'f26', 'f27', 'f28', 'f29', 'f30', 'f31',
  'f32', 'f33', 'f34', 'f35', 'f36', 'f37', 'f38', 'f39',
  'f40', 'f41', 'f42', 'f43', 'f44', 'f45', 'f46', 'f47',
  'f48', 'f49', 'f50', 'f51', 'f52', 'f53', 'f54', 'f55',
  'f56', 'f57', 'f58', 'f59', 'f60', 'f61', 'f62', 'f63',
  'f64', 'f65', 'f66', 'f67', 'f68', 'f69', 'f70', 'f71',
  'f72', 'f73', 'f74', 'f75', 'f76', 'f77', 'f78', 'f79',
  'f80', 'f81', 'f82', 'f83', 'f84', 'f85', 'f86', 'f87',
  'f88', 'f89', 'f90', 'f91', 'f92', 'f93', 'f94', 'f95',
  'f96', 'f97', 'f98', 'f99',
  ... 3 more items
]`},
		{"over 10,000 characters", []string{strings.Repeat("x", 10002)}, "[\n  '" + strings.Repeat("x", 10000) + "'... 2 more characters\n]"},
		{"long with newlines", []string{"first line of a long attribute name,\nthen the second line of a long attribute name\n!"},
			"[\n  'first line of a long attribute name,\\n' +\n    'then the second line of a long attribute name\\n' +\n    '!'\n]"},
	}
	for _, tt := range tests {
		if got := inspectStrings(tt.list); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}
