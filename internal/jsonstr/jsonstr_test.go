package jsonstr_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
)

// marshal is encoding/json's form with HTML escaping off, the definition
// AppendGo follows.
func marshal(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestAppend(t *testing.T) {
	tests := []struct {
		in, goForm, serde string
	}{
		{"", `""`, `""`},
		{`a"b\c/d`, `"a\"b\\c/d"`, `"a\"b\\c/d"`},
		{"\b\t\n\f\r", `"\b\t\n\f\r"`, `"\b\t\n\f\r"`},
		{"\x00\x01\x1a\x1f", `"\u0000\u0001\u001a\u001f"`, `"\u0000\u0001\u001a\u001f"`},
		{"\x7f", "\"\x7f\"", "\"\x7f\""},
		{"\u2028\u2029", `"\u2028\u2029"`, "\"\u2028\u2029\""},
		{"</script>&amp;", `"</script>&amp;"`, `"</script>&amp;"`},
		{"é😀", `"é😀"`, `"é😀"`},
		{"bad \xff utf8 \xc3", `"bad \ufffd utf8 \ufffd"`, ""},
	}
	for _, tt := range tests {
		if got := jsonstr.AppendGo([]byte("x"), tt.in); string(got) != "x"+tt.goForm {
			t.Errorf("AppendGo(%q) = %s, want x%s", tt.in, got, tt.goForm)
		}
		if got := marshal(t, tt.in); string(got) != tt.goForm {
			t.Errorf("encoding/json writes %q as %s, the table says %s", tt.in, got, tt.goForm)
		}
		if tt.serde == "" {
			continue // serde_json strings are valid UTF-8
		}
		if got := jsonstr.AppendSerde([]byte("x"), tt.in); string(got) != "x"+tt.serde {
			t.Errorf("AppendSerde(%q) = %s, want x%s", tt.in, got, tt.serde)
		}
		if got := jsonstr.AppendSerde(nil, []byte(tt.in)); string(got) != tt.serde {
			t.Errorf("AppendSerde([]byte(%q)) = %s, want %s", tt.in, got, tt.serde)
		}
	}
}

// FuzzAppend checks AppendGo against encoding/json, and AppendSerde against
// AppendGo: for valid UTF-8 the two forms differ only in U+2028 and U+2029.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff", "\u2028", "<>&", "\x00\x1f\x7f", "é😀\n", `\u2028`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		goForm := jsonstr.AppendGo(nil, s)
		if want := marshal(t, s); !bytes.Equal(goForm, want) {
			t.Fatalf("AppendGo(%q) = %s, want %s", s, goForm, want)
		}
		if !utf8.ValidString(s) {
			return
		}
		serde := jsonstr.AppendSerde(nil, s)
		// (An escaped backslash is passed over whole, so that "\\u2028"
		// stays as it is.)
		want := strings.NewReplacer(`\\`, `\\`, `\u2028`, "\u2028", `\u2029`, "\u2029").Replace(string(goForm))
		if string(serde) != want {
			t.Fatalf("AppendSerde(%q) = %s, want %s", s, serde, want)
		}
		var back string
		if err := json.Unmarshal(serde, &back); err != nil || back != s {
			t.Fatalf("AppendSerde(%q) = %s reads back as %q, %v", s, serde, back, err)
		}
	})
}

func TestObject(t *testing.T) {
	build := func(f jsonstr.Form) string {
		o := jsonstr.Object{B: []byte("["), Form: f}
		o.Open()
		o.Str("s", "a\u2028")
		o.Key("in")
		o.Open()
		o.Close()
		o.Key("nested")
		o.Open()
		o.Bool("t", true)
		o.Int("i", -1)
		o.Close()
		o.Uint("u", 18446744073709551615)
		o.Strs("none", nil)
		o.Strs("l", []string{"x", "\u2029"})
		o.Raw("r", []byte(`{"k":null}`))
		o.Close()
		o.B = append(o.B, ',')
		o.Open() // a second object starts afresh
		o.Str("k", "v")
		o.Close()
		return string(append(o.B, ']'))
	}
	const want = `[{"s":"aS","in":{},"nested":{"t":true,"i":-1},"u":18446744073709551615,"none":[],"l":["x","T"],"r":{"k":null}},{"k":"v"}]`
	for _, tt := range []struct {
		form         jsonstr.Form
		u2028, u2029 string
	}{
		{jsonstr.Go, `\u2028`, `\u2029`},
		{jsonstr.Serde, "\u2028", "\u2029"},
	} {
		w := strings.NewReplacer("S", tt.u2028, "T", tt.u2029).Replace(want)
		got := build(tt.form)
		if got != w {
			t.Errorf("form %d:\n got %s\nwant %s", tt.form, got, w)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("form %d: not JSON: %s", tt.form, got)
		}
	}
}

// Unescape reads back what the writers write, and the solidus, which they
// do not escape; for every other byte json.Unmarshal agrees there is no
// such escape, or (for u) that it is longer.
func TestUnescape(t *testing.T) {
	for i := range 256 {
		e := byte(i)
		c, ok := jsonstr.Unescape(e)
		var s string
		err := json.Unmarshal([]byte{'"', '\\', e, '"'}, &s)
		switch {
		case ok && (err != nil || s != string(rune(c))):
			t.Errorf("Unescape(%q) = %q; encoding/json reads %q, %v", e, c, s, err)
		case ok && e != '/' && string(jsonstr.AppendGo(nil, string(rune(c)))) != `"\`+string(rune(e))+`"`:
			t.Errorf("Unescape(%q) = %q, which AppendGo writes %s", e, c, jsonstr.AppendGo(nil, string(rune(c))))
		case !ok && err == nil:
			t.Errorf("Unescape(%q) refused an escape encoding/json reads as %q", e, s)
		}
	}
}
