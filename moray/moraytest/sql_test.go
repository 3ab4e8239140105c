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
		{"SELECT MAX(_id) FROM manta", []any{1}, `bind message supplies 1 parameters, but prepared statement "" requires 0`},
		{"SELECT MAX(_id) FROM manta WHERE _id > $1", []any{1}, "moraytest: unsupported SQL"},
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

// Parameters are bound as a real Moray binds them (node-pg sends each value
// as text, PostgreSQL reads it as the parameter's type), with PostgreSQL's
// errors; the error texts are those PostgreSQL 15 gave for the same
// statements and values.
func TestSQLParameters(t *testing.T) {
	s, c := mantaServer(t)
	for i, v := range []string{
		`{"type":"object","name":"n1"}`, `{"type":"directory","name":"n2"}`, `{"type":"object","name":"n3"}`, `{"type":"object","name":"n4"}`,
		// Text that array and object values turn into.
		`{"type":"{\"object\",NULL,{\"a\\\"b\\\\\"}}","name":"{\"a\":1}"}`,
	} {
		if _, err := s.Put("manta", fmt.Sprint("/k", i+1), json.RawMessage(v)); err != nil {
			t.Fatal(err)
		}
	}
	const window = "SELECT * FROM manta WHERE _id >= $1 AND _id <= $2"
	tests := []struct {
		stmt   string
		values []any
		rows   string // the _id of each row
		err    string // or the error's message
	}{
		// sharkspotter's window, with its numbers as parameters.
		{stmt: window + " AND type = 'object' LIMIT $3;", values: []any{1, 3, 10}, rows: "1,3"},
		{stmt: window + " AND type = $3 LIMIT $4", values: []any{2, 4, "object", 1}, rows: "3"},
		{stmt: window, values: []any{"2", " +3 "}, rows: "2,3"}, // text, read as bigint
		{stmt: "SELECT * FROM manta WHERE _id >= $1 AND _id <= $1", values: []any{4}, rows: "4"},
		{stmt: window + " AND name = $3", values: []any{1, 9, "n2"}, rows: "2"},
		{stmt: window + " AND _key = $3", values: []any{1, 9, "/k3"}, rows: "3"},
		{stmt: window + " LIMIT $3", values: []any{1, 9, nil}, rows: "1,2,3,4,5"}, // LIMIT NULL: no limit
		{stmt: window + " LIMIT $3", values: []any{1, 9, 0}, rows: ""},
		{stmt: window, values: []any{nil, 9}, rows: ""}, // _id >= NULL is never true
		{stmt: window + " AND type = $3", values: []any{1, 9, nil}, rows: ""},
		{stmt: window + " AND type = $3", values: []any{1, 9, []any{"object", nil, []any{`a"b\`}}}, rows: "5"},
		{stmt: window + " AND name = $3", values: []any{1, 9, map[string]any{"a": 1}}, rows: "5"},

		// What PostgreSQL refuses.
		{stmt: window, values: []any{1}, err: `bind message supplies 1 parameters, but prepared statement "" requires 2`},
		{stmt: window, values: []any{1, 2, 3}, err: `bind message supplies 3 parameters, but prepared statement "" requires 2`},
		{stmt: window, values: []any{}, err: `there is no parameter $1`}, // no values: a simple query
		{stmt: "SELECT * FROM manta WHERE _id >= 1 AND _id <= $0", values: []any{1}, err: `there is no parameter $0`},
		{stmt: "SELECT * FROM manta WHERE _id >= $2 AND _id <= $2", values: []any{1, 2}, err: `could not determine data type of parameter $1`},
		{stmt: "SELECT * FROM manta WHERE _id >= $1 AND _id <= $3", values: []any{1, 2, 3}, err: `could not determine data type of parameter $2`},
		{stmt: window, values: []any{"x", "y"}, err: `invalid input syntax for type bigint: "x"`},
		{stmt: window, values: []any{1.5, 2}, err: `invalid input syntax for type bigint: "1.5"`},
		{stmt: window, values: []any{1, 1e21}, err: `invalid input syntax for type bigint: "1e+21"`},
		{stmt: window, values: []any{1, "99999999999999999999"}, err: `value "99999999999999999999" is out of range for type bigint`},
		{stmt: window, values: []any{true, 2}, err: `invalid input syntax for type bigint: "true"`},
		{stmt: window + " LIMIT $3", values: []any{1, 4, -1}, err: "LIMIT must not be negative"},
		{stmt: window + " AND type = $1", values: []any{1, 4}, err: "operator does not exist: text = bigint"},
		{stmt: window + " AND _etag = $1", values: []any{1, 4}, err: "operator does not exist: character = bigint"},
		{stmt: "SELECT * FROM manta WHERE _id >= 1 AND _id <= 4 AND type = $1 LIMIT $1", values: []any{"1"},
			err: "argument of LIMIT must be type bigint, not type text"},
		{stmt: window + " AND type = $3", values: []any{1, 4, "a\u0000b"}, err: `invalid byte sequence for encoding "UTF8": 0x00`},
		{stmt: "SELECT * FROM nosuch WHERE _id >= $1 AND _id <= $2", values: []any{1}, err: `relation "nosuch" does not exist`},
		{stmt: window + " AND color = $3", values: []any{1}, err: `column "color" does not exist`},
	}
	for _, tt := range tests {
		if tt.err != "" {
			err := c.fails("sql", tt.stmt, tt.values, map[string]any{})
			if err.Name != "error" || err.Message != tt.err {
				t.Errorf("%s %v: %s: %s, want error: %s", tt.stmt, tt.values, err.Name, err.Message, tt.err)
			}
			continue
		}
		var ids []string
		for _, it := range c.ok("sql", tt.stmt, tt.values, map[string]any{}) {
			ids = append(ids, decode[map[string]any](t, it)["_id"].(string))
		}
		if got := strings.Join(ids, ","); got != tt.rows {
			t.Errorf("%s %v: rows %s, want %s", tt.stmt, tt.values, got, tt.rows)
		}
	}
}

// Number and boolean index columns read a parameter as PostgreSQL reads
// text for NUMERIC and BOOLEAN.
func TestSQLParameterTypes(t *testing.T) {
	s := Start(t)
	c := dial(t, s.Addr())
	if err := s.CreateBucket("b", BucketConfig{Index: []Index{{"n", "number"}, {"ok", "boolean"}}}); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{`{"n":5,"ok":true}`, `{"n":6,"ok":false}`} {
		if _, err := s.Put("b", fmt.Sprint("/k", i), json.RawMessage(v)); err != nil {
			t.Fatal(err)
		}
	}
	const window = "SELECT * FROM b WHERE _id >= 1 AND _id <= 9"
	for _, tt := range []struct {
		stmt   string
		values []any
		rows   int
		err    string
	}{
		{stmt: window + " AND n = $1", values: []any{"5.0"}, rows: 1},
		{stmt: window + " AND n = $1", values: []any{6}, rows: 1},
		{stmt: window + " AND ok = $1", values: []any{"yes"}, rows: 1},
		{stmt: window + " AND ok = $1", values: []any{false}, rows: 1},
		{stmt: window + " AND n = $1 LIMIT $1", values: []any{5}, rows: 1}, // a numeric parameter as LIMIT
		{stmt: window + " AND n = $1", values: []any{"x"}, err: `invalid input syntax for type numeric: "x"`},
		{stmt: window + " AND ok = $1", values: []any{"maybe"}, err: `invalid input syntax for type boolean: "maybe"`},
		{stmt: "SELECT * FROM b WHERE _id >= $1 AND _id <= 9 AND ok = $1", values: []any{1}, err: "operator does not exist: boolean = bigint"},
	} {
		if tt.err != "" {
			if err := c.fails("sql", tt.stmt, tt.values, map[string]any{}); err.Message != tt.err {
				t.Errorf("%s %v: %s, want %s", tt.stmt, tt.values, err.Message, tt.err)
			}
			continue
		}
		if n := len(c.ok("sql", tt.stmt, tt.values, map[string]any{})); n != tt.rows {
			t.Errorf("%s %v: %d rows, want %d", tt.stmt, tt.values, n, tt.rows)
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

// information_schema.columns answers whether a table has a column: one row
// when it has, none when it has not or when there is no such table (never
// an error, which is why sharkspotter asks it about _idx).
func TestSQLColumns(t *testing.T) {
	s := Start(t)
	c := dial(t, s.Addr())
	for name, from := range map[string]int64{"manta": 0, "manta_ext": 3} {
		if err := s.CreateBucket(name, BucketConfig{Index: []Index{{"type", "string"}}, ExtendedIDFrom: from}); err != nil {
			t.Fatal(err)
		}
	}
	q := func(table, col string) string {
		return fmt.Sprintf("SELECT column_name FROM information_schema.columns WHERE table_name = '%s' AND column_name = '%s';", table, col)
	}
	for _, tt := range []struct {
		stmt, rows string
	}{
		{q("manta", "_idx"), ""},
		{q("manta_ext", "_idx"), `{"column_name":"_idx"}`},
		{q("manta", "_id"), `{"column_name":"_id"}`},
		{q("manta", "type"), `{"column_name":"type"}`},
		{q("manta", "color"), ""},
		{q("nosuch", "_id"), ""},
		{q("MANTA", "_id"), ""}, // information_schema has the folded name
		{"select column_name from INFORMATION_SCHEMA.COLUMNS where table_name='manta' and column_name='_vnode'", `{"column_name":"_vnode"}`},
	} {
		var got []string
		for _, r := range c.ok("sql", tt.stmt, []any{}, map[string]any{}) {
			got = append(got, string(r))
		}
		if strings.Join(got, ",") != tt.rows {
			t.Errorf("%s: rows %s, want %s", tt.stmt, got, tt.rows)
		}
	}
	if err := c.fails("sql", q("manta", "_idx"), []any{1}, map[string]any{}); !strings.HasPrefix(err.Message, "bind message supplies 1 parameters") {
		t.Errorf("a value for a statement without parameters: %s", err.Message)
	}
}
