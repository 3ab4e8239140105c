package moraytest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// findServer seeds "manta" with objects _id 1..6:
//
//	1 a.log       object  contentLength 10
//	2 b.log.gz    object  contentLength 200
//	3 dir         directory
//	4 c.log       object  contentLength 300
//	5 d.txt       object  contentLength 50
//	6 e.log       object  contentLength 400, owner "other"
func findServer(t *testing.T) (*Server, *testClient) {
	t.Helper()
	s, c := mantaServer(t)
	objs := []struct {
		name, typ, owner string
		size             int
	}{
		{"a.log", "object", owner, 10}, {"b.log.gz", "object", owner, 200}, {"dir", "directory", owner, 0},
		{"c.log", "object", owner, 300}, {"d.txt", "object", owner, 50}, {"e.log", "object", "other", 400},
	}
	for _, o := range objs {
		v := map[string]any{"dirname": "/" + o.owner + "/stor", "name": o.name, "owner": o.owner, "type": o.typ,
			"objectId": "id-" + o.name, "key": "/" + o.owner + "/stor/" + o.name}
		if o.typ == "object" {
			v["contentLength"] = o.size
		}
		if _, err := s.Put("manta", "/"+o.owner+"/stor/"+o.name, v); err != nil {
			t.Fatal(err)
		}
	}
	return s, c
}

func findRecords(t *testing.T, c *testClient, filter string, o map[string]any) []record {
	t.Helper()
	var recs []record
	for _, it := range c.ok("findObjects", "manta", filter, o) {
		r := decode[record](t, it)
		r.HasCount = strings.Contains(string(it), `"_count":`)
		recs = append(recs, r)
	}
	return recs
}

func ids(recs []record) string {
	var s []string
	for _, r := range recs {
		s = append(s, fmt.Sprint(r.ID))
	}
	return strings.Join(s, ",")
}

var byID = map[string]any{"attribute": "_id", "order": "ASC"}

func TestFindObjects(t *testing.T) {
	_, c := findServer(t)
	tests := []struct {
		name   string
		filter string
		opts   map[string]any
		ids    string
		count  int64 // -1: no _count
	}{
		{"window", "(&(_id>=2)(_id<=5)(type=object))", opts("sort", byID, "no_count", true), "2,4,5", -1},
		{"window with count", "(&(_id>=2)(_id<=5)(type=object))", opts("sort", byID), "2,4,5", 3},
		{"unwrapped", "type=directory", opts(), "3", 1},
		{"limit", "(type=object)", opts("sort", byID, "limit", 2), "1,2", 5},
		{"limit as digits", "(type=object)", opts("sort", byID, "limit", "2", "offset", 1), "2,4", 5},
		{"limit 0 is the default", "(type=object)", opts("sort", byID, "limit", 0), "1,2,4,5,6", 5},
		{"offset", "(type=object)", opts("sort", byID, "offset", 3), "5,6", 5},
		{"offset past the end", "(type=object)", opts("offset", 30), "", -1},
		{"desc", "(type=object)", opts("sort", map[string]any{"attribute": "_id", "order": "DESC"}, "limit", 3), "6,5,4", 5},
		{"desc no_count", "(type=object)", opts("sort", map[string]any{"attribute": "_id", "order": "desc"}, "limit", 2, "no_count", true), "6,5", -1},
		{"sort by index", "(_id>=1)", opts("sort", map[string]any{"attribute": "name", "order": "DESC"}), "6,3,5,4,2,1", 6},
		{"sort by folded column", "(_id>=1)", opts("sort", []any{map[string]any{"attribute": "objectId"}}), "1,2,4,5,3,6", 6},
		{"sort by two keys", "(_id>=1)", opts("sort", []any{map[string]any{"attribute": "owner", "order": "DESC"}, map[string]any{"attribute": "name", "order": "DESC"}}), "6,3,5,4,2,1", 6},
		{"sort by _key", "(_id>=1)", opts("sort", map[string]any{"attribute": "_key"}, "limit", 2), "1,2", 6},
		{"or", "(|(name=a.log)(name=c.log))", opts("sort", byID), "1,4", 2},
		{"not", "(&(type=object)(!(owner=other)))", opts("sort", byID), "1,2,4,5", 4},
		{"presence", "(&(objectId=*)(_id<=2))", opts("sort", byID), "1,2", 2},
		{"_key", "(_key=/" + owner + "/stor/c.log)", opts(), "4", 1},
		{"_etag", "(_etag=" + Etag([]byte(`{"dirname":"/other/stor","key":"/other/stor/e.log","name":"e.log","objectId":"id-e.log","owner":"other","type":"object","contentLength":400}`)) + ")", opts(), "", -1},
		{"_mtime", "(&(_mtime>=1)(_id<=1))", opts(), "1", 1},
		{"ge on a string index", "(name>=c)", opts("sort", byID), "3,4,5,6", 4},
		// Unindexed leaves are checked after LIMIT: the window holds 1,2
		// and only 2 passes; _count counts what the SQL matched.
		{"post-filter after limit", "(&(type=object)(contentLength>=100))", opts("sort", byID, "limit", 2), "2", 5},
		{"post-filter", "(&(type=object)(contentLength>=100))", opts("sort", byID), "2,4,6", 5},
		// Moray re-checks with case-insensitive attribute names.
		{"post-filter ignores case", "(&(type=object)(CONTENTLENGTH<=10))", opts(), "1", 5},
		// Unindexed equality is ===: the string "10" never equals 10.
		{"post-filter strict equality", "(&(type=object)(contentLength=10))", opts(), "", -1},
		// SQL's LIKE '%.log%' lets b.log.gz through; the regexp drops it.
		{"substring", "(name=*.log)", opts("sort", byID), "1,4,6", 4},
		{"substring prefix", "(name=b*)", opts(), "2", 1},
		{"case-insensitive", "(name:caseIgnoreMatch:=C.LOG)", opts(), "4", 1},
		{"case-insensitive substring", "(name:caseIgnoreSubstringsMatch:=*.LOG)", opts("sort", byID), "1,4,6", 4},
		{"no match", "(name=zzz)", opts(), "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := findRecords(t, c, tt.filter, tt.opts)
			if got := ids(recs); got != tt.ids {
				t.Fatalf("ids %q, want %q", got, tt.ids)
			}
			for _, r := range recs {
				switch {
				case tt.count < 0 && r.HasCount:
					t.Errorf("record %d has _count %v, want none", r.ID, r.Count)
				case tt.count >= 0 && (r.Count == nil || *r.Count != tt.count):
					t.Errorf("record %d has _count %v, want %d", r.ID, r.Count, tt.count)
				}
				if r.Bucket != "manta" || r.Etag == "" || r.Mtime == 0 || r.TxnSnap != nil {
					t.Errorf("record %+v", r)
				}
			}
		})
	}
}

func TestFindObjectsDefaultLimit(t *testing.T) {
	s, c := mantaServer(t)
	for i := range 1003 {
		if _, err := s.Put("manta", fmt.Sprintf("/k%04d", i), map[string]any{"type": "object"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.ok("findObjects", "manta", "(type=object)", opts("no_count", true))); n != 1000 {
		t.Errorf("default limit returned %d records", n)
	}
	if n := len(c.ok("findObjects", "manta", "(type=object)", opts("noLimit", true))); n != 1003 {
		t.Errorf("noLimit returned %d records", n)
	}
}

func TestFindObjectsErrors(t *testing.T) {
	_, c := findServer(t)
	tests := []struct {
		filter string
		opts   map[string]any
		name   string
		msg    string
	}{
		{"(contentLength>=1)", opts(), "InvalidQueryError", "(contentLength>=1) is an invalid filter"},
		{"(_id=*)", opts(), "InvalidQueryError", "(_id=*) is an invalid filter"},
		{"(&(a=1)(b=2))", opts(), "NotIndexedError", "manta does not have indexes that support (&(a=1)(b=2))"},
		{"(|(type=object)(b=2))", opts(), "NotIndexedError", "manta does not have indexes that support (|(type=object)(b=2))"},
		{"(&(type=object)(|(b=2)(name=x)))", opts(), "NotIndexedError", "manta does not have indexes that support (|(b=2)(name=x))"},
		{"(type=object", opts(), "InvalidQueryError", "(type=object is an invalid filter"},
		{"", opts(), "InvocationError", `findObjects expects "filter" (args[1]) to be a nonempty string: filter should NOT be shorter than 1 characters`},
		{"(_idx>=1)", opts(), "Error", `filtering on "_idx" is not allowed`},
		{"(_id>=1)", opts("sort", map[string]any{"attribute": "_idx"}), "Error", `sorting on "_idx" is not allowed`},
		{"(_id>=1)", opts("sort", map[string]any{"attribute": "contentLength"}), "error", `column "contentlength" does not exist`},
		{"(_id>=abc)", opts(), "error", `invalid input syntax for type bigint: "NaN"`},
		{"(_id=1*)", opts(), "error", "operator does not exist: bigint ~~ unknown"},
		{"(&(type=object)(contentLength>=1))", opts("requireIndexes", true), "NotIndexedError",
			`manta does not have indexes that support (&(type=object)(contentLength>=1)). Reindexing fields: []. Unindexed fields: [ 'contentLength' ]`},
		// Moray gathers the names as an object's keys: array indexes first.
		{"(&(b=1)(2=1)(type=object)(1=1)(b=2))", opts("requireOnlineReindexing", true), "NotIndexedError",
			`manta does not have indexes that support (&(b=1)(2=1)(type=object)(1=1)(b=2)). Reindexing fields: []. Unindexed fields: [ '1', '2', 'b' ]`},
		{"(type=object)", opts("sql_only", true), "InternalError", "moraytest: findObjects with sql_only is not implemented"},
	}
	for _, tt := range tests {
		wantError(t, c.fails("findObjects", "manta", tt.filter, tt.opts), tt.name, tt.msg)
	}
	c.ok("findObjects", "manta", "(&(type=object)(_id>=1))", opts("requireIndexes", true))
}

func TestFindObjectsHandledOptions(t *testing.T) {
	_, c := findServer(t)
	items := c.ok("findObjects", "manta", "(name=a.log)", opts("internalOpts", map[string]any{"sendHandledOptions": true}))
	if len(items) != 2 || !strings.HasPrefix(string(items[0]), `{"_handledOptions":["req_id","limit",`) {
		t.Errorf("items %s", items)
	}
}

// Values are read back the way Moray rebuilds them from a row.
func TestReadViews(t *testing.T) {
	s, c := mantaServer(t)
	// A string index holds the number's text, and reads return that text.
	c.ok("putObject", "manta", "/n", json.RawMessage(`{"name":5,"type":"object","roles":["a","b"],"_id":"mine","_key":1}`), opts())
	stored, _ := s.Get("manta", "/n")
	if want := `{"name":"5","type":"object","roles":["a","b"],"_id":"mine","_key":1}`; string(stored.Value) != want {
		t.Errorf("getObject value %s, want %s", stored.Value, want)
	}
	// The etag is over what was put, not what is read.
	if stored.Etag != Etag([]byte(`{"name":5,"type":"object","roles":["a","b"],"_id":"mine","_key":1}`)) {
		t.Errorf("etag %s", stored.Etag)
	}
	// findObjects deletes the fields it set for filtering.
	recs := findRecords(t, c, "(name=5)", opts())
	if len(recs) != 1 || string(recs[0].Value) != `{"name":"5","type":"object","roles":["a","b"]}` {
		t.Errorf("findObjects: %+v", recs)
	}
	// The sql RPC sees the raw row.
	row := decode[map[string]any](t, c.ok("sql", "select * from manta where _id >= 1 and _id <= 1", []any{}, opts())[0])
	if row["name"] != "5" || row["_value"] != `{"name":5,"type":"object","roles":["a","b"],"_id":"mine","_key":1}` {
		t.Errorf("sql row %v", row)
	}
}

func TestTypedIndexes(t *testing.T) {
	s := Start(t)
	c := dial(t, s.Addr())
	if err := s.CreateBucket("things", BucketConfig{Index: []Index{{"size", "number"}, {"flag", "boolean"}, {"label", "string"}}}); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{
		`{"size":9,"flag":true,"label":"9"}`,
		`{"size":10,"flag":false,"label":"10"}`,
		`{"size":"100","flag":"TRUE","label":"100"}`, // converted for the columns
		`{"label":"none"}`,
	} {
		if _, err := s.Put("things", fmt.Sprint("k", i), json.RawMessage(v)); err != nil {
			t.Fatal(err)
		}
	}
	find := func(filter string) string {
		var recs []record
		for _, it := range c.ok("findObjects", "things", filter, opts("sort", byID)) {
			recs = append(recs, decode[record](t, it))
		}
		return ids(recs)
	}
	tests := []struct{ filter, ids string }{
		{"(size>=10)", "2,3"},     // SQL: 100 >= 10; JavaScript: 10 <= "100" converts the string
		{"(size<=9.5)", "1"},      // numbers compare as numbers
		{"(label>=2)", "1,4"},     // strings compare as strings: "9" and "none" sort after "2"
		{"(flag=true)", "1,3"},    // the boolean column of "TRUE" is true
		{"(flag=FALSE)", "2"},     //
		{"(size=10)", "2"},        // === on numbers
		{"(size=100)", ""},        // SQL matches the column 100; JavaScript: 100 === "100" is false
		{"(!(size=10))", "1,3,4"}, //
	}
	for _, tt := range tests {
		if got := find(tt.filter); got != tt.ids {
			t.Errorf("%s: ids %q, want %q", tt.filter, got, tt.ids)
		}
	}
	wantError(t, c.fails("findObjects", "things", "(flag=maybe)", opts()), "InvalidQueryError", "(flag=maybe) is an invalid filter")
	wantError(t, c.fails("findObjects", "things", "(size=1*)", opts()), "error", "operator does not exist: numeric ~~ unknown")
	wantError(t, c.fails("putObject", "things", "bad", map[string]any{"flag": "maybe"}, opts()), "InvalidIndexTypeError", "index(flag) is of type boolean")
	if o, _ := s.Get("things", "k2"); string(o.Value) != `{"size":"100","flag":true,"label":"100"}` {
		t.Errorf("read view %s", o.Value)
	}
}

func TestStorageBucket(t *testing.T) {
	s := Start(t)
	c := dial(t, s.Addr())
	if err := s.CreateStorageBucket(); err != nil {
		t.Fatal(err)
	}
	for i, pct := range []int{40, 95, 70} {
		sh := Shark{StorageNode: rebalancer.StorageNode{Datacenter: "dc0", MantaStorageID: fmt.Sprintf("%d.stor.example.com", i+1)},
			AvailableMB: 1000, PercentUsed: pct}
		if err := s.AddShark(sh); err != nil {
			t.Fatal(err)
		}
	}
	// sharkspotter's validation and the manager's lookup.
	recs := c.ok("findObjects", "manta_storage", "manta_storage_id=1.stor.example.com", opts())
	if len(recs) != 1 {
		t.Fatalf("lookup: %s", recs)
	}
	v := decode[struct {
		Value struct {
			ID          string `json:"manta_storage_id"`
			DC          string `json:"datacenter"`
			AvailableMB int64  `json:"availableMB"`
			PercentUsed int    `json:"percentUsed"`
			Timestamp   int64  `json:"timestamp"`
			Filesystem  string `json:"filesystem"`
		} `json:"value"`
	}](t, recs[0]).Value
	if v.ID != "1.stor.example.com" || v.DC != "dc0" || v.AvailableMB != 1000 || v.PercentUsed != 40 || v.Timestamp == 0 || v.Filesystem != "/manta" {
		t.Errorf("minnow record %+v", v)
	}
	// storinfo's query.
	got := c.ok("findObjects", "manta_storage", "(&(percentUsed<=92)(timestamp>=1))", opts("sort", byID))
	if len(got) != 2 {
		t.Errorf("storinfo query returned %d records, want 2", len(got))
	}
	row := decode[map[string]string](t, c.ok("getBucket", opts(), "manta_storage")[0])
	if !strings.Contains(row["index"], `"availableMB":{"type":"number"}`) {
		t.Errorf("manta_storage index %s", row["index"])
	}
}
