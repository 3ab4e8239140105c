package moraytest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestSQL(t *testing.T) {
	s, c := mantaServer(t)
	sqlOpts := map[string]any{"limit": 1, "no_count": true}

	// An empty table has no maximum: PostgreSQL's MAX is null.
	if items := c.ok("sql", "SELECT MAX(_id) FROM manta;", []any{}, sqlOpts); len(items) != 1 || string(items[0]) != `{"max":null}` {
		t.Errorf("MAX of empty table: %s", items)
	}

	if _, err := s.Put("manta", mantaKey, sampleValue); err != nil {
		t.Fatal(err)
	}
	dir := `{"key":"/` + owner + `/stor/logs","dirname":"/` + owner + `/stor","name":"logs","owner":"` + owner + `","type":"directory","vnode":5}`
	if _, err := s.Put("manta", "/"+owner+"/stor/logs", json.RawMessage(dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("manta", "/"+owner+"/stor/novnode", json.RawMessage(`{"type":"object"}`)); err != nil {
		t.Fatal(err)
	}
	stored, _ := s.Get("manta", mantaKey)

	items := c.ok("sql", "SELECT * FROM manta WHERE _id >= 1 AND _id <= 1000 AND type = 'object' limit 1000;", []any{}, map[string]any{"timeout": 10000})
	if len(items) != 2 {
		t.Fatalf("range query returned %d rows: %s", len(items), items)
	}
	want := fmt.Sprintf(`{"_id":"1","_txn_snap":null,"_key":%q,"_value":%s,"_etag":"314BADAF","_mtime":"%d","_vnode":"23352",`+
		`"dirname":"/%s/stor/logs","name":"07e023da.log","owner":"%s","objectid":"%s","type":"object"}`,
		mantaKey, mustJSON(t, string(sampleValue)), stored.Mtime, owner, owner, objectID)
	if string(items[0]) != want {
		t.Errorf("row\n %s\nwant\n %s", items[0], want)
	}
	if !strings.Contains(string(items[1]), `"_id":"3"`) || !strings.Contains(string(items[1]), `"_vnode":null`) || !strings.Contains(string(items[1]), `"dirname":null`) {
		t.Errorf("row without vnode or dirname: %s", items[1])
	}

	tests := []struct {
		stmt string
		rows string // the _id of each row
	}{
		{"SELECT MAX(_id) FROM manta;", "max 3"},
		{"select max(_id) from MANTA", "max 3"},
		{"SELECT * FROM manta WHERE _id >= 1 AND _id <= 3", "1,2,3"},
		{"select * from manta where _id >= 2 and _id <= 3 limit 1;", "2"},
		{"SELECT * FROM manta WHERE _id >= 1 AND _id <= 3 AND type = 'directory' LIMIT 10", "2"},
		{"SELECT * FROM manta WHERE _id >= 4 AND _id <= 9 AND type = 'object' LIMIT 10;", ""},
		{"SELECT * FROM manta WHERE _id >= 1 AND _id <= 3 AND name = 'it''s' LIMIT 10;", ""},
	}
	for _, tt := range tests {
		items := c.ok("sql", tt.stmt, []any{}, map[string]any{})
		var got []string
		for _, it := range items {
			row := decode[map[string]any](t, it)
			if m, ok := row["max"]; ok {
				got = append(got, fmt.Sprint("max ", m))
				continue
			}
			got = append(got, row["_id"].(string))
		}
		if strings.Join(got, ",") != tt.rows {
			t.Errorf("%s: rows %v, want %s", tt.stmt, got, tt.rows)
		}
	}

	errs := []struct {
		stmt   string
		values []any
		msg    string
	}{
		{"SELECT MAX(_idx) FROM manta;", nil, `column "_idx" does not exist`},
		{"SELECT * FROM manta WHERE _idx >= 1 AND _idx <= 3", nil, `column "_idx" does not exist`},
		{"SELECT MAX(_id) FROM nosuch;", nil, `relation "nosuch" does not exist`},
		{"SELECT * FROM manta WHERE _id >= 1 AND _id <= 3 AND color = 'red'", nil, `column "color" does not exist`},
		{"SELECT MAX(_id) FROM manta WHERE _id > $1", []any{1}, `bind message supplies 1 parameters, but prepared statement "" requires 0`},
		{"DELETE FROM manta", nil, "moraytest: unsupported SQL"},
		{"SELECT * FROM manta WHERE _id >= 1 AND _idx <= 3", nil, `column "_idx" does not exist`},
		{"SELECT count(*) FROM manta", nil, "moraytest: unsupported SQL"},
	}
	for _, e := range errs {
		if e.values == nil {
			e.values = []any{}
		}
		err := c.fails("sql", e.stmt, e.values, map[string]any{})
		if err.Name != "error" || !strings.HasPrefix(err.Message, e.msg) {
			t.Errorf("%s: %s: %s, want error: %s", e.stmt, err.Name, err.Message, e.msg)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A bucket with the extended id keeps new ids in _idx: sharkspotter's two
// passes see each row once, and findObjects sees one _id.
func TestSQLExtendedID(t *testing.T) {
	s := Start(t)
	c := dial(t, s.Addr())
	err := s.CreateBucket("manta", BucketConfig{
		Index:          []Index{{"type", "string"}},
		Options:        json.RawMessage(`{"version":2}`),
		ExtendedIDFrom: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.Put("manta", fmt.Sprint("/k", i), map[string]any{"type": "object"}); err != nil {
			t.Fatal(err)
		}
	}
	max := func(col string) string {
		return string(c.ok("sql", "SELECT MAX("+col+") FROM manta;", []any{}, map[string]any{})[0])
	}
	if max("_id") != `{"max":"2"}` || max("_idx") != `{"max":"5"}` {
		t.Errorf("MAX(_id) %s, MAX(_idx) %s", max("_id"), max("_idx"))
	}
	rows := c.ok("sql", "SELECT * FROM manta WHERE _idx >= 0 AND _idx <= 100 AND type = 'object' limit 100;", []any{}, map[string]any{})
	if len(rows) != 3 || !strings.HasPrefix(string(rows[0]), `{"_id":null,`) || !strings.HasSuffix(string(rows[0]), `"type":"object","_idx":"3"}`) {
		t.Errorf("_idx rows: %s", rows)
	}
	rows = c.ok("sql", "SELECT * FROM manta WHERE _id >= 0 AND _id <= 100;", []any{}, map[string]any{})
	if len(rows) != 2 || !strings.HasSuffix(string(rows[1]), `"_idx":null}`) {
		t.Errorf("_id rows: %s", rows)
	}
	recs := c.ok("findObjects", "manta", "(&(_id>=2)(_id<=4))", opts("sort", byID))
	if len(recs) != 3 {
		t.Errorf("findObjects across _id and _idx: %s", recs)
	}
}
