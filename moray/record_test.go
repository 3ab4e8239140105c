package moray

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// Records are read as JSON.parse reads them: exact member names, the last
// of a repeated one, null as absent, integers as numbers or digit strings;
// anything else is an error naming what is wrong.
func TestRecordDecode(t *testing.T) {
	tests := []struct {
		in      string
		want    Record
		wantErr string
	}{
		{in: `{"bucket":"manta","key":"/a","value":{"x":[1,{"y":"}"}]},"_id":12,"_etag":"E","_mtime":5}`,
			want: Record{Bucket: "manta", Key: "/a", Value: json.RawMessage(`{"x":[1,{"y":"}"}]}`), ID: 12, Etag: "E", MTime: 5}},
		{in: ` { "key" : "/\u00e9\"q" , "value" : { } , "_id" : "9007199254740993" , "_txn_snap" : 7 , "_count" : "3" } `,
			want: Record{Key: "/é\"q", Value: json.RawMessage(`{ }`), ID: 9007199254740993, TxnSnap: ptr[int64](7), Count: ptr[int64](3)}},
		{in: `{"key":"/a","key":"/b","value":{},"bucket":null,"_etag":null,"_id":null,"_txn_snap":null,"_mtime":""}`,
			want: Record{Key: "/b", Value: json.RawMessage(`{}`)}},
		{in: `{"Key":"/a","value":{}}`, wantErr: "no key"},
		{in: `{"key":null,"value":{}}`, wantErr: "no key"},
		{in: `{"key":"/a","value":[]}`, wantErr: "value is not a JSON object"},
		{in: `{"key":"/a"}`, wantErr: "value is not a JSON object"},
		{in: `{"key":"/a","value":{},"_id":1.5}`, wantErr: "_id 1.5 is not an integer"},
		{in: `{"key":"/a","value":{},"_mtime":"12x"}`, wantErr: `_mtime "12x" is not an integer`},
		{in: `{"key":"/a","value":{},"_count":true}`, wantErr: "_count true is not an integer"},
		{in: `{"key":"/a","value":{},"_id":99999999999999999999}`, wantErr: "is not an integer"},
		{in: `{"key":1,"value":{}}`, wantErr: "key is not a string"},
		{in: `{"key":"/a","bucket":{},"value":{}}`, wantErr: "bucket is not a string"},
		{in: `["key"]`, wantErr: "not a JSON object"},
		{in: `{"key":"/a","value":{}`, wantErr: "invalid JSON"},
	}
	for _, tt := range tests {
		var got Record
		err := got.UnmarshalJSON([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %#v, %v\nwant %#v", tt.in, got, err, tt.want)
		}
	}
	// Value shares the reply's bytes, without room to grow into them.
	in := []byte(`{"key":"/a","value":{"a":1},"_etag":"E"}`)
	var r Record
	if err := r.UnmarshalJSON(in); err != nil {
		t.Fatal(err)
	}
	_ = append(r.Value, 'X')
	if string(in) != `{"key":"/a","value":{"a":1},"_etag":"E"}` {
		t.Fatalf("appending to Value changed the reply: %s", in)
	}
}

// A req_id is a version 4 UUID, different each time.
func TestReqID(t *testing.T) {
	re := regexp.MustCompile(`^"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"$`)
	seen := map[string]bool{}
	for range 1000 {
		id := string(appendReqID(nil))
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("req_id %s: malformed or repeated", id)
		}
		seen[id] = true
	}
}
