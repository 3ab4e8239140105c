package mdapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
)

// serde_json's string escapes: '"', '\\', the short forms of \b \t \n \f
// \r, \u00XX (lower-case hex) for the other control characters, and
// nothing else: DEL, U+2028, U+2029, HTML characters and all non-ASCII go
// out raw.
func TestAppendString(t *testing.T) {
	for in, want := range map[string]string{
		"":                    `""`,
		`a"b\c/d`:             `"a\"b\\c/d"`,
		"\b\t\n\f\r":          `"\b\t\n\f\r"`,
		"\x00\x01\x1a\x1f":    `"\u0000\u0001\u001a\u001f"`,
		"\x7f":                "\"\x7f\"",
		"\u2028\u2029":        "\"\u2028\u2029\"",
		"</script>&amp;":      `"</script>&amp;"`,
		"é😀":                  `"é😀"`,
		"tab\tin the middle.": `"tab\tin the middle."`,
	} {
		got := appendString(nil, in)
		if string(got) != want {
			t.Errorf("appendString(%q) = %s, want %s", in, got, want)
		}
		if n, err := mdapitest.SerdeLen(got); err != nil || n != len(got) {
			t.Errorf("SerdeLen(%s) = %d, %v", got, n, err)
		}
	}
}

func TestCanonical(t *testing.T) {
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	for _, tc := range []struct {
		in, want string
		err      string
	}{
		{` { "b" : [ 1 , -2 , 0 ] , "a" : "x\/y" } `, `{"b":[1,-2,0],"a":"x/y"}`, ""},
		{`"\u00e9\u00E9"`, `"éé"`, ""},
		{`"\ud83d\ude00"`, `"😀"`, ""},
		{`"\u2028"`, "\"\u2028\"", ""},
		{`"\u001F\u007f\""`, "\"\\u001f\x7f\\\"\"", ""},
		{`[true,false,null,{},[]]`, `[true,false,null,{},[]]`, ""},
		{`-0`, `0`, ""},
		{`18446744073709551615`, `18446744073709551615`, ""},
		{`-9223372036854775808`, `-9223372036854775808`, ""},
		{strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), ""},
		{`18446744073709551616`, "", "64-bit"},
		{`-9223372036854775809`, "", "64-bit"},
		{`1.0`, "", "64-bit"},
		{`1e3`, "", "64-bit"},
		{`[0.5]`, "", "64-bit"},
		{`01`, "", "leading zero"},
		{`-`, "", "digit expected"},
		{`[1,]`, "", "unexpected"},
		{`{"a":1,"a":2}`, "", "duplicate key"},
		{`{"a" 1}`, "", "':' expected"},
		{`{1:2}`, "", "object key expected"},
		{`"\ud800"`, "", "unpaired surrogate"},
		{`"\udc00\ud800"`, "", "unpaired surrogate"},
		{`"\ud800\u0041"`, "", "unpaired surrogate"},
		{"\"\xff\"", "", "invalid UTF-8"},
		{"\"a\nb\"", "", "control character"},
		{`"\x"`, "", "bad escape"},
		{`"\u12"`, "", "bad \\u escape"},
		{`"abc`, "", "unterminated"},
		{`tru`, "", "unexpected"},
		{``, "", "unexpected end"},
		{`1 2`, "", "trailing data"},
		{deep, "", "nested deeper"},
	} {
		got, err := canonical(nil, []byte(tc.in))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("canonical(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || string(got) != tc.want):
			t.Errorf("canonical(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		case tc.err == "":
			if n, err := mdapitest.SerdeLen(got); err != nil || n != len(got) {
				t.Errorf("SerdeLen(%q) = %d, %v", got, n, err)
			}
		}
	}
}

func TestKeysAndEtags(t *testing.T) {
	l := Locator{Owner: "6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01", BucketID: "b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05", Name: "a/b/../c d", Vnode: 1023}
	got, err := ParseKey(l.Key())
	if err != nil || got != l {
		t.Errorf("ParseKey(%s) = %+v, %v", l.Key(), got, err)
	}
	for _, bad := range []string{"", "/a/b", "v2/", "v2/1/x/y/z", "v2/1/" + l.Owner + "/" + l.BucketID, "v2/-1/" + l.Owner + "/" + l.BucketID + "/n",
		"v2/+1/" + l.Owner + "/" + l.BucketID + "/n", "v2/18446744073709551616/" + l.Owner + "/" + l.BucketID + "/n",
		"v2/1/" + strings.ToUpper(l.Owner[:8]) + "x" + l.Owner[9:] + "/" + l.BucketID + "/n"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) succeeded", bad)
		}
	}

	for _, ts := range []string{"2024-05-01T10:00:00Z", "2024-05-01T10:00:00.123Z", "2024-05-01T10:00:00.123456Z", "2024-05-01T10:00:00.123456789Z"} {
		m, _ := time.Parse(time.RFC3339Nano, ts)
		e := Etag(l.Owner, m)
		if e != l.Owner+"@"+ts {
			t.Errorf("Etag = %s, want ...@%s", e, ts)
		}
		id, m2, err := ParseEtag(e)
		if err != nil || id != l.Owner || !m2.Equal(m) {
			t.Errorf("ParseEtag(%s) = %s, %v, %v", e, id, m2, err)
		}
	}
	// A time with an offset is the same instant, written in UTC.
	m, _ := time.Parse(time.RFC3339, "2024-05-01T12:00:00+02:00")
	if e := Etag(l.Owner, m); !strings.HasSuffix(e, "@2024-05-01T10:00:00Z") {
		t.Errorf("Etag with an offset: %s", e)
	}
	for _, bad := range []string{"", "314BADAF", l.Owner, l.Owner + "@", "x@2024-05-01T10:00:00Z", l.Owner + "@yesterday"} {
		if _, _, err := ParseEtag(bad); err == nil {
			t.Errorf("ParseEtag(%q) succeeded", bad)
		}
	}
}

// A record survives MarshalJSON and UnmarshalJSON, and what MarshalJSON
// writes is in serde_json's form.
func TestRecordJSON(t *testing.T) {
	in := `{"id":"4a9e7b1c-2d3f-4e5a-8b6c-7d8e9f0a1b2c","owner":"6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01",` +
		`"bucket_id":"b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05","name":"a\u2028b","created":"2024-05-01T10:00:00.123456Z",` +
		`"modified":"2024-05-02T11:00:00Z","content_length":11,"content_md5":"XrY7u+Ae7tCTyyK7j1rNww==",` +
		`"content_type":"text/plain","headers":{"a":"1","b":null},` +
		`"sharks":[{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"},{"datacenter":"dc2","manta_storage_id":"2.stor.example.com"}],` +
		`"properties":{"roles":["x"]},"future_field":[1,2]}`
	var r Record
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if r.Name != "a\u2028b" || r.ContentLength != 11 || len(r.Sharks) != 2 || r.Sharks[1] != (rebalancer.StorageNode{Datacenter: "dc2", MantaStorageID: "2.stor.example.com"}) ||
		string(r.Headers) != `{"a":"1","b":null}` || string(r.Properties) != `{"roles":["x"]}` || r.Created.Nanosecond() != 123456000 {
		t.Errorf("decoded %+v", r)
	}
	out, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(strings.Replace(in, `,"future_field":[1,2]`, "", 1), `\u2028`, "\u2028", 1)
	if string(out) != want {
		t.Errorf("MarshalJSON\n got %s\nwant %s", out, want)
	}
	if n, err := mdapitest.SerdeLen(out); err != nil || n != len(out) {
		t.Errorf("SerdeLen = %d, %v for %d bytes", n, err, len(out))
	}
	var r2 Record
	if err := json.Unmarshal(out, &r2); err != nil || !reflect.DeepEqual(r, r2) {
		t.Errorf("round trip: %+v, %v", r2, err)
	}
	for _, bad := range []string{
		strings.Replace(in, `"content_length":11`, `"content_length":-1`, 1),
		strings.Replace(in, `"content_length":11`, `"content_length":"11"`, 1),
		strings.Replace(in, `"content_md5":"XrY7u+Ae7tCTyyK7j1rNww=="`, `"content_md5":"%%"`, 1),
		strings.Replace(in, `"headers":{"a":"1","b":null}`, `"headers":{"a":1}`, 1),
		strings.Replace(in, `"headers":{"a":"1","b":null}`, `"headers":[]`, 1),
		strings.Replace(in, `"modified":"2024-05-02T11:00:00Z"`, `"modified":"yesterday"`, 1),
		strings.Replace(in, `"properties":{"roles":["x"]},`, ``, 1),
		strings.Replace(in, `{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}`, `{"datacenter":"dc1"}`, 1),
		strings.Replace(in, `"owner":"6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01",`, ``, 1),
		`[]`, `null`,
	} {
		var r Record
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("decoded %s", bad)
		}
	}
}

// FuzzCanonical checks canonical against an independent model of
// serde_json (mdapitest.SerdeLen): whatever it accepts must come out as
// one JSON value with the same meaning, in a form serde_json writes back
// byte for byte.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2,"x"],"b":{"c":null}}`, ` [ "\u00e9" , "\ud83d\ude00" ] `, `-0`, `"\u2028\/"`,
		`{"a":1,"a":2}`, `1.5`, `"\ud800"`, "\"\x7f\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		out, err := canonical(nil, src)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("canonical(%q) = %q: not JSON", src, out)
		}
		if again, err := canonical(nil, out); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("canonical(%q) = %q, not a fixed point: %q, %v", src, out, again, err)
		}
		if n, err := mdapitest.SerdeLen(out); err != nil || n != len(out) {
			t.Fatalf("canonical(%q) = %q (%d bytes); serde_json would write %d bytes (%v)", src, out, len(out), n, err)
		}
		if !reflect.DeepEqual(decodeAny(t, src), decodeAny(t, out)) {
			t.Fatalf("canonical(%q) = %q changes the value", src, out)
		}
	})
}

func decodeAny(t *testing.T, b []byte) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return normalizeZero(v)
}

// normalizeZero makes -0 and 0 compare equal, as they are the same number.
func normalizeZero(v any) any {
	switch v := v.(type) {
	case json.Number:
		if v == "-0" {
			return json.Number("0")
		}
	case []any:
		for i := range v {
			v[i] = normalizeZero(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = normalizeZero(v[k])
		}
	}
	return v
}

// FuzzReply feeds arbitrary bytes to every decoder of reply items. None may
// panic; a record that decodes must encode back, in serde_json's form, to
// one that decodes the same; keys and etags that parse must print back the
// same.
func FuzzReply(f *testing.F) {
	rec := `{"id":"4a9e7b1c-2d3f-4e5a-8b6c-7d8e9f0a1b2c","owner":"6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01",` +
		`"bucket_id":"b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05","name":"o","created":"2024-05-01T10:00:00.123456Z",` +
		`"modified":"2024-05-02T11:00:00Z","content_length":11,"content_md5":"XrY7u+Ae7tCTyyK7j1rNww==",` +
		`"content_type":"text/plain","headers":{"a":"1","b":null},"sharks":[{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}],"properties":null}`
	for _, s := range []string{
		rec,
		`{"error":{"name":"ObjectNotFound","message":"requested object not found"}}`,
		`{"name":"PostgresError","message":"x"}`,
		`{"failed_vnodes":[{"vnode":1,"error":{"error":{"name":"PreconditionFailedError","message":"m"}},"objects":[{}]}]}`,
		`{"failed_vnodes":[]}`,
		`{"id":"4a9e7b1c-2d3f-4e5a-8b6c-7d8e9f0a1b2c","owner":"6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01","name":"b","created":"2024-05-01T10:00:00Z"}`,
		"v2/1/6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01/b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05/n",
		"4a9e7b1c-2d3f-4e5a-8b6c-7d8e9f0a1b2c@2024-05-01T10:00:00.5Z",
	} {
		f.Add([]byte(s))
	}
	updates := []Update{{Locator: Locator{Vnode: 1}}, {Locator: Locator{Vnode: 2}}}
	c := &Client{name: "fuzz"}
	f.Fuzz(func(t *testing.T, item []byte) {
		dataError("fuzz", "m", item)
		c.batchResult(item, updates)
		var b Bucket
		_ = b.UnmarshalJSON(item)

		var r Record
		if r.UnmarshalJSON(item) == nil {
			out, err := r.MarshalJSON()
			if err != nil {
				t.Fatalf("decoded %q, cannot encode %+v: %v", item, r, err)
			}
			var r2 Record
			if err := r2.UnmarshalJSON(out); err != nil || !reflect.DeepEqual(normalizeRecord(r), normalizeRecord(r2)) {
				t.Fatalf("round trip of %q: %+v -> %s -> %+v, %v", item, r, out, r2, err)
			}
			if _, err := canonical(nil, r.Properties); err == nil {
				if n, err := mdapitest.SerdeLen(out); err != nil || n != len(out) {
					t.Fatalf("record %s: serde_json would write %d bytes (%v)", out, n, err)
				}
			}
		}
		if l, err := ParseKey(string(item)); err == nil && l.Key() != string(item) {
			t.Fatalf("ParseKey(%q).Key() = %q", item, l.Key())
		}
		if id, m, err := ParseEtag(string(item)); err == nil {
			if id2, m2, err := ParseEtag(Etag(id, m)); err != nil || id2 != id || !m2.Equal(m) {
				t.Fatalf("etag %q: %s %v -> %s %v, %v", item, id, m, id2, m2, err)
			}
		}
	})
}

// normalizeRecord drops what a round trip may legitimately change: the
// location of the times.
func normalizeRecord(r Record) Record {
	r.Created, r.Modified = r.Created.UTC(), r.Modified.UTC()
	return r
}

func TestUnsupportedMessages(t *testing.T) {
	for msg, want := range map[string]bool{
		"Unsupported functon: listvnodes":            true,
		"Unsupported function: listvnodes":           true,
		`unsupported RPC method: "listvnodes"`:       true,
		"missing field `vnode`":                      false,
		"mdapitest: createobject is not implemented": false,
	} {
		err := typedError(&ServerError{Name: "FastError", Message: msg, InFrame: true})
		if got := errors.Is(err, ErrUnsupported); got != want {
			t.Errorf("%q: unsupported %v", msg, got)
		}
	}
}

// The hand-built update payload against encoding/json building the same
// document from a struct (which would not even be serde-exact: Go escapes
// U+2028 and HTML characters).
func BenchmarkUpdatePayload(b *testing.B) {
	u := Update{
		Locator: Locator{Owner: "6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01", BucketID: "b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05",
			Name: "photos/2024/05/img_0001.jpg", Vnode: 517},
		ID: "4a9e7b1c-2d3f-4e5a-8b6c-7d8e9f0a1b2c", ContentType: "image/jpeg",
		Headers:    json.RawMessage(`{"m-camera":"x100","content-disposition":"inline"}`),
		Properties: json.RawMessage(`{"roles":["r1"],"tags":{"env":"prod"}}`),
		Sharks: []rebalancer.StorageNode{{Datacenter: "dc1", MantaStorageID: "1.stor.example.com"},
			{Datacenter: "dc2", MantaStorageID: "7.stor.example.com"}},
		Conditions: Conditions{IfMatch: []string{"4a9e7b1c-2d3f-4e5a-8b6c-7d8e9f0a1b2c"}, IfUnmodifiedSince: time.Unix(1714557600, 123456000)},
	}
	b.Run("mdapi", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			if _, err := u.appendPayload(buf[:0], "8b5a6a3e-0d53-4c1e-9a5e-2d8f7f3b6c11"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		type shark struct {
			DC string `json:"datacenter"`
			ID string `json:"manta_storage_id"`
		}
		type cond struct {
			IfMatch           []string `json:"if-match"`
			IfUnmodifiedSince string   `json:"if-unmodified-since"`
		}
		for b.Loop() {
			_, err := json.Marshal(struct {
				Owner       string          `json:"owner"`
				BucketID    string          `json:"bucket_id"`
				Name        string          `json:"name"`
				Vnode       uint64          `json:"vnode"`
				ID          string          `json:"id"`
				ContentType string          `json:"content_type"`
				Headers     json.RawMessage `json:"headers"`
				Sharks      []shark         `json:"sharks"`
				Properties  json.RawMessage `json:"properties"`
				RequestID   string          `json:"request_id"`
				Conditions  cond            `json:"conditions"`
			}{u.Owner, u.BucketID, u.Name, u.Vnode, u.ID, u.ContentType, u.Headers,
				[]shark{{u.Sharks[0].Datacenter, u.Sharks[0].MantaStorageID}, {u.Sharks[1].Datacenter, u.Sharks[1].MantaStorageID}},
				u.Properties, "8b5a6a3e-0d53-4c1e-9a5e-2d8f7f3b6c11", cond{u.Conditions.IfMatch, formatTime(u.Conditions.IfUnmodifiedSince)}})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
