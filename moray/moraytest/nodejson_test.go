package moraytest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEtag(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":1}`, "561BACAF"},
		{"héllo", "919FAF05"}, // old crc: low bytes of UTF-16 units; zlib would give 9E3B8236
		{string(sampleValue), "314BADAF"},
		{string(movedValue), "77406E25"},
		{"", "00000000"},
		{"😀", Etag([]byte{0x3D, 0x00})}, // one astral character is two UTF-16 units: D83D DE00
	}
	for _, tt := range tests {
		if got := Etag([]byte(tt.in)); got != tt.want {
			t.Errorf("Etag(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// Moray stores JSON.stringify(JSON.parse(request)): the text a Go client
// sends is normalized the way node would.
func TestNodeJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":1}`, `{"a":1}`},
		{` { "a" : [ 1 , 2 ] , "b" : { } } `, `{"a":[1,2],"b":{}}`},
		{`{"n":1.0,"m":1e3,"x":-0,"y":1E+21,"z":0.0000001,"w":123.4560}`, `{"n":1,"m":1000,"x":0,"y":1e+21,"z":1e-7,"w":123.456}`},
		{`{"big":9007199254740993,"inf":1e400}`, `{"big":9007199254740992,"inf":null}`},
		// Array-index keys first, ascending; a repeated key keeps its first
		// place and its last value.
		{`{"b":1,"2":2,"a":3,"1":4,"01":5,"b":6}`, `{"1":4,"2":2,"b":6,"a":3,"01":5}`},
		{`{"4294967294":1,"4294967295":2,"x":3}`, `{"4294967294":1,"4294967295":2,"x":3}`},
		{`{"s":"\u00e9\/\"\\\b\f\n\r\t\u0001\u007f\u2028"}`, "{\"s\":\"é/\\\"\\\\\\b\\f\\n\\r\\t\\u0001\u007f\u2028\"}"},
		{`{"s":"\ud83d\ude00"}`, `{"s":"😀"}`},
		{`{"s":"\ud800x\udc00"}`, `{"s":"\ud800x\udc00"}`}, // lone surrogates stay escaped
		{"{\"s\":\"a\xffb\"}", "{\"s\":\"a\uFFFDb\"}"},
		// Raw surrogate bytes are invalid UTF-8, unlike escaped ones.
		{"{\"s\":\"\xed\xa0\x80\\ud800\xff\"}", "{\"s\":\"\uFFFD\uFFFD\uFFFD\\ud800\uFFFD\"}"},
		{`{"t":true,"f":false,"z":null}`, `{"t":true,"f":false,"z":null}`},
	}
	for _, tt := range tests {
		got, _, err := normalizeValue([]byte(tt.in))
		if err != nil {
			t.Errorf("normalizeValue(%s): %v", tt.in, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("normalizeValue(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
	for _, in := range []string{`[1]`, `"x"`, `{`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":"\x"}`, `{"a":1} x`, `{'a':1}`, "{\"a\":\"\x01\"}", `{"a":tru}`} {
		if _, _, err := normalizeValue([]byte(in)); err == nil {
			t.Errorf("normalizeValue(%s) succeeded", in)
		}
	}
}

func TestJSValueSetDelete(t *testing.T) {
	v, err := parseJS([]byte(`{"b":1,"3":2}`))
	if err != nil {
		t.Fatal(err)
	}
	v.set("1", jsNum(0))
	v.set("a", jsStr("x"))
	v.set("b", jsBoolean(true))
	v.del("3")
	v.del("nope")
	if got := v.String(); got != `{"1":0,"b":true,"a":"x"}` {
		t.Errorf("got %s", got)
	}
	if _, ok := v.getFold("A"); !ok {
		t.Error("getFold(A) did not find a")
	}
	arr, _ := parseJS([]byte(`[1,"a",null,[2,3],{}]`))
	if got := arr.jsString(); got != "1,a,,2,3,[object Object]" {
		t.Errorf("String(array) = %q", got)
	}
}

// parseJS nests as deep as encoding/json (and so the Fast decoder) lets a
// value nest, and no deeper: 10,000 arrays or objects, with a scalar inside.
func TestParseJSDepth(t *testing.T) {
	nest := func(n int, open, inner, close string) []byte {
		return []byte(strings.Repeat(open, n) + inner + strings.Repeat(close, n))
	}
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"10,000 arrays", nest(maxJSONDepth, "[", "", "]"), true},
		{"10,001 arrays", nest(maxJSONDepth+1, "[", "", "]"), false},
		{"10,000 arrays around a number", nest(maxJSONDepth, "[", "1", "]"), true},
		{"10,000 objects", nest(maxJSONDepth-1, `{"a":`, "{}", "}"), true},
		{"10,001 objects", nest(maxJSONDepth, `{"a":`, "{}", "}"), false},
	}
	for _, tt := range tests {
		if json.Valid(tt.in) != tt.ok {
			t.Fatalf("%s: json.Valid = %v, the test is wrong", tt.name, !tt.ok)
		}
		if _, err := parseJS(tt.in); (err == nil) != tt.ok {
			t.Errorf("%s: parseJS error %v, want accepted: %v", tt.name, err, tt.ok)
		}
	}
}

// FuzzParseJS checks that every JSON text encoding/json accepts (and so the
// Fast decoder lets through) parses, and that node's serialization is a
// fixed point: what Moray stores reads back as itself.
func FuzzParseJS(f *testing.F) {
	for _, s := range []string{string(sampleValue), `{"1":1,"a":[true,null,-0.0,1e-7]}`, `"\ud800"`, "[\"\xff\"]", `{"a":{"a":{}}}`, `1E+400`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseJS(data)
		if !json.Valid(data) {
			if err == nil {
				t.Fatalf("parseJS accepted invalid JSON %q", data)
			}
			return
		}
		if err != nil {
			t.Fatalf("parseJS(%q): %v", data, err)
		}
		out := v.appendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("stringify of %q is not JSON: %q", data, out)
		}
		again, err := parseJS(out)
		if err != nil {
			t.Fatalf("reparse of %q: %v", out, err)
		}
		if out2 := again.appendJSON(nil); string(out2) != string(out) {
			t.Fatalf("not a fixed point: %q then %q", out, out2)
		}
	})
}
