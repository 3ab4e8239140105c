package mdapitest

import (
	"errors"
	"strings"
	"testing"
)

// What serde_json writes back, byte for byte, for documents written in
// other forms. The lengths are those of serde_json's output.
func TestSerdeLen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // serde_json's output; "" for an error
		err  error
	}{
		{`{"a":1}`, `{"a":1}`, nil},
		{` { "a" : [ 1 , 2 ] } `, `{"a":[1,2]}`, nil},
		{`"\u00e9"`, `"é"`, nil},
		{`"\ud83d\ude00"`, `"😀"`, nil},
		{`"\/"`, `"/"`, nil},
		{`"\u2028"`, "\"\u2028\"", nil},
		{"\"\u2028\"", "\"\u2028\"", nil},
		{`"\u0001\u001F"`, `"\u0001\u001f"`, nil},
		{`"\b\f\n\r\t\"\\"`, `"\b\f\n\r\t\"\\"`, nil},
		{"\"\x7f\"", "\"\x7f\"", nil},
		{`[true,false,null]`, `[true,false,null]`, nil},
		{`18446744073709551615`, `18446744073709551615`, nil},
		{`-9223372036854775808`, `-9223372036854775808`, nil},
		{`-0`, "", errUnpredictable},
		{`1.5`, "", errUnpredictable},
		{`1e2`, "", errUnpredictable},
		{`18446744073709551616`, "", errUnpredictable},
		{`{"a":1,"a":2}`, "", errUnpredictable},
		{`"\ud800"`, "", nil},
		{"\"\xff\"", "", nil},
		{`[1,]`, "", nil},
		{`{} x`, "", nil},
		{strings.Repeat("[", 129) + strings.Repeat("]", 129), "", nil},
	} {
		n, err := SerdeLen([]byte(tc.in))
		switch {
		case tc.want != "" && (err != nil || n != len(tc.want)):
			t.Errorf("SerdeLen(%q) = %d, %v; want %d (%s)", tc.in, n, err, len(tc.want), tc.want)
		case tc.want == "" && err == nil:
			t.Errorf("SerdeLen(%q) = %d, want an error", tc.in, n)
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("SerdeLen(%q): %v, want %v", tc.in, err, tc.err)
		}
	}
	// The whole request payload: m and d only, as rust-fast's struct has.
	for in, want := range map[string]int{
		`{"m":{"uts":1,"name":"x"},"d":[]}`:             len(`{"m":{"uts":1,"name":"x"},"d":[]}`),
		`{"d":[], "m":{"name":"x","uts":1}}`:            len(`{"m":{"uts":1,"name":"x"},"d":[]}`),
		`{"m":{"uts":1,"name":"x","z":2},"d":[],"e":3}`: len(`{"m":{"uts":1,"name":"x"},"d":[]}`),
		`{"m":{"uts":12,"name":"get\u006f"},"d":[ 1 ]}`: len(`{"m":{"uts":12,"name":"geto"},"d":[1]}`),
	} {
		if n, err := payloadLen([]byte(in)); err != nil || n != want {
			t.Errorf("payloadLen(%s) = %d, %v; want %d", in, n, err, want)
		}
	}
	for _, bad := range []string{`{"m":{"uts":-1,"name":"x"},"d":[]}`, `{"m":{"uts":1},"d":[]}`, `{"m":{"uts":1,"name":"x"}}`, `[]`} {
		if _, err := payloadLen([]byte(bad)); err == nil {
			t.Errorf("payloadLen(%s) succeeded", bad)
		}
	}
}
