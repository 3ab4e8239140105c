package moraytest

import (
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
	"github.com/TritonDataCenter/rebalancer/moray/filter"
)

// The sql RPC runs raw SQL on the shard's PostgreSQL. moraytest answers
// exactly the statements sharkspotter sends (docs/protocols.md), with rows
// typed as node-pg returns them, and fails anything else with a clear
// error:
//
//	SELECT MAX(<id>) FROM <bucket>
//	SELECT * FROM <bucket> WHERE <id> >= <n> AND <id> <= <m> [AND <column> = '<text>'] [LIMIT <k>]
//	SELECT column_name FROM information_schema.columns WHERE table_name = '<table>' AND column_name = '<column>'
//
// where <id> is _id or _idx (the same in both places), keywords are in any
// case, and a trailing semicolon is optional. A bucket has the _idx column
// only when it was created with BucketConfig.ExtendedIDFrom. The last
// statement answers one row, {"column_name": "<column>"}, when the table
// has the column, and none otherwise (no table included), as PostgreSQL
// does.
//
// <n>, <m>, '<text>' and <k> may each be a parameter, $1 to $N, bound to the
// sql RPC's values as Moray binds them: node-pg sends each value as text
// (null as NULL, a number as JavaScript prints it, an array as a
// PostgreSQL array literal, an object as its JSON) and PostgreSQL reads the
// text as the type the parameter's first use gives it. A comparison with
// NULL selects nothing; LIMIT NULL limits nothing. Without values, node-pg
// sends the statement as a simple query, in which a parameter is an error.

var (
	sqlMaxRE    = regexp.MustCompile(`(?is)^\s*select\s+max\s*\(\s*(\w+)\s*\)\s+from\s+(\w+)\s*;?\s*$`)
	pgNumericRE = regexp.MustCompile(`^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$`)
	pgBigintRE  = regexp.MustCompile(`^\s*[+-]?\d+\s*$`)
	sqlRangeRE  = regexp.MustCompile(`(?is)^\s*select\s+\*\s+from\s+(\w+)\s+where\s+(\w+)\s*>=\s*(\d+|\$\d+)\s+and\s+(\w+)\s*<=\s*(\d+|\$\d+)` +
		`(?:\s+and\s+(\w+)\s*=\s*(?:'((?:[^']|'')*)'|(\$\d+)))?(?:\s+limit\s+(\d+|\$\d+))?\s*;?\s*$`)
	sqlColumnRE = regexp.MustCompile(`(?is)^\s*select\s+column_name\s+from\s+information_schema\.columns\s+where\s+` +
		`table_name\s*=\s*'([^']*)'\s+and\s+column_name\s*=\s*'([^']*)'\s*;?\s*$`)
)

const sqlSupported = "moraytest: unsupported SQL; supported are \"SELECT MAX(_id|_idx) FROM <bucket>\", " +
	"\"SELECT * FROM <bucket> WHERE <id> >= N AND <id> <= M [AND <column> = '<text>'] [LIMIT K]\", " +
	"where N, M, '<text>' and K may be parameters ($1, $2, ...), and " +
	"\"SELECT column_name FROM information_schema.columns WHERE table_name = '<table>' AND column_name = '<column>'\": "

// sqlTable finds the bucket behind a table name, which PostgreSQL folds to
// lower case.
func (s *store) sqlTable(name string) (*bucket, *fast.Error) {
	name = strings.ToLower(name)
	for _, b := range s.buckets {
		if strings.ToLower(b.name) == name {
			return b, nil
		}
	}
	return nil, pgError("relation \"%s\" does not exist", name)
}

// sqlIDColumn checks an id column name: _id always exists, _idx only on
// buckets with the extended id.
func sqlIDColumn(b *bucket, col string) (string, *fast.Error) {
	col = strings.ToLower(col)
	switch {
	case col == "_id", col == "_idx" && b.extFrom > 0:
		return col, nil
	case col == "_idx":
		return "", pgError("column \"%s\" does not exist", col)
	}
	return "", nil
}

// hasColumn reports whether the table (named exactly, as information_schema
// names it: lower case) has the column.
func (s *store) hasColumn(table, col string) bool {
	for _, b := range s.buckets {
		if strings.ToLower(b.name) != table {
			continue
		}
		switch col {
		case "_id", "_txn_snap", "_key", "_value", "_etag", "_mtime", "_vnode":
			return true
		case "_idx":
			return b.extFrom > 0
		}
		return b.columnIndex(col) >= 0
	}
	return false
}

// inIDColumn reports whether a row's id lives in the given column.
func inIDColumn(b *bucket, o *object, col string) bool {
	extended := b.extFrom > 0 && o.id >= b.extFrom
	return extended == (col == "_idx")
}

// sql runs a statement with its parameters' values and returns its rows as
// JSON objects.
func (s *store) sql(stmt string, values []*jsValue) ([][]byte, *fast.Error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m := sqlColumnRE.FindStringSubmatch(stmt); m != nil {
		if err := bindParams(nil, values); err != nil {
			return nil, err
		}
		if !s.hasColumn(m[1], m[2]) {
			return nil, nil
		}
		row := appendJSString([]byte(`{"column_name":`), m[2])
		return [][]byte{append(row, '}')}, nil
	}
	if m := sqlMaxRE.FindStringSubmatch(stmt); m != nil {
		b, err := s.sqlTable(m[2])
		if err != nil {
			return nil, err
		}
		col, err := sqlIDColumn(b, m[1])
		if err != nil {
			return nil, err
		}
		if col == "" {
			return nil, pgError("%s%s", sqlSupported, stmt)
		}
		if err := bindParams(nil, values); err != nil {
			return nil, err
		}
		row := []byte(`{"max":null}`)
		for i := len(b.objs) - 1; i >= 0; i-- {
			if o := b.objs[i]; o != nil && inIDColumn(b, o, col) {
				// BIGINT aggregates come back from node-pg as strings.
				row = strconv.AppendInt([]byte(`{"max":"`), o.id, 10)
				row = append(row, `"}`...)
				break
			}
		}
		return [][]byte{row}, nil
	}
	m := sqlRangeRE.FindStringSubmatch(stmt)
	if m == nil {
		return nil, pgError("%s%s", sqlSupported, stmt)
	}
	b, err := s.sqlTable(m[1])
	if err != nil {
		return nil, err
	}
	col, err := sqlIDColumn(b, m[2])
	if err != nil {
		return nil, err
	}
	col2, err := sqlIDColumn(b, m[4])
	if err != nil {
		return nil, err
	}
	if col == "" || col != col2 {
		return nil, pgError("%s%s", sqlSupported, stmt)
	}
	lo, hi := newSlot(m[3], pgBigint), newSlot(m[5], pgBigint)
	slots := []*sqlSlot{lo, hi}
	var eq *sqlSlot
	eqCol := strings.ToLower(m[6])
	if eqCol != "" {
		typ, err := sqlColumnType(b, eqCol)
		if err != nil {
			return nil, err
		}
		if m[8] != "" {
			eq = newSlot(m[8], typ)
		} else {
			eq = &sqlSlot{text: strings.ReplaceAll(m[7], "''", "'"), typ: typ}
		}
		slots = append(slots, eq)
	}
	var limitSlot *sqlSlot
	if m[9] != "" {
		limitSlot = newSlot(m[9], pgBigint)
		limitSlot.limit = true
		slots = append(slots, limitSlot)
	}
	if err := bindParams(slots, values); err != nil {
		return nil, err
	}

	if lo.null || hi.null || eq != nil && eq.null {
		return nil, nil // a comparison with NULL is never true
	}
	var loID, hiID int64
	var err1, err2 error
	if loID, err1 = strconv.ParseInt(strings.TrimSpace(lo.text), 10, 64); err1 == nil {
		hiID, err2 = strconv.ParseInt(strings.TrimSpace(hi.text), 10, 64)
	}
	if err1 != nil || err2 != nil {
		return nil, pgError("value out of range for type bigint")
	}
	limit := int64(-1)
	if limitSlot != nil && !limitSlot.null {
		if limit, err1 = limitSlot.int64(); err1 != nil {
			return nil, pgError("value out of range for type bigint")
		}
		if limit < 0 {
			return nil, pgError("LIMIT must not be negative")
		}
	}
	var cond func(*object) bool
	if eq != nil {
		if cond, err = sqlEquals(b, eqCol, eq.text); err != nil {
			return nil, err
		}
	}
	var rows [][]byte
	i, j := b.rangeIDs(loID, hiID)
	for ; i < j && int64(len(rows)) != limit; i++ {
		o := b.objs[i]
		if o == nil || !inIDColumn(b, o, col) || cond != nil && !cond(o) {
			continue
		}
		rows = append(rows, b.appendPGRow(nil, o))
	}
	return rows, nil
}

// PostgreSQL's names of the types a slot can want.
const (
	pgBigint  = "bigint"
	pgText    = "text"
	pgChar    = "character" // _etag is CHAR(8)
	pgNumeric = "numeric"
	pgBoolean = "boolean"
)

// sqlSlot is a place in a statement that holds a value: a literal, or a
// parameter that bindParams fills in.
type sqlSlot struct {
	isParam bool
	param   int    // the parameter's number
	text    string // the literal, or the parameter's value as text
	null    bool   // the parameter's value is NULL
	typ     string // the type the slot wants
	limit   bool   // the slot is LIMIT's argument
}

func newSlot(token, typ string) *sqlSlot {
	if rest, ok := strings.CutPrefix(token, "$"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil {
			n = math.MaxInt32 // more than any statement can have
		}
		return &sqlSlot{isParam: true, param: n, typ: typ}
	}
	return &sqlSlot{text: token, typ: typ}
}

// int64 reads a bigint slot (a LIMIT may hold a numeric parameter, which
// PostgreSQL rounds).
func (s *sqlSlot) int64() (int64, error) {
	if n, err := strconv.ParseInt(strings.TrimSpace(s.text), 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s.text), 64)
	if err != nil || math.Abs(f) >= 1<<63 {
		return 0, errors.New("out of range")
	}
	return int64(math.Round(f)), nil
}

// bindParams does what PostgreSQL does with the statement's parameters and
// node-pg's values: parse analysis gives each parameter the type of its
// first use and checks the others against it; every parameter up to the
// highest must be used; the bind message must supply exactly that many
// values; each value is then read as its parameter's type.
func bindParams(slots []*sqlSlot, values []*jsValue) *fast.Error {
	types := map[int]string{}
	required := 0
	for _, s := range slots {
		if !s.isParam {
			continue
		}
		// Without values, node-pg sends a simple query, which has no
		// parameters at all.
		if s.param == 0 || len(values) == 0 {
			return pgError("there is no parameter $%d", s.param)
		}
		first, seen := types[s.param]
		switch {
		case !seen:
			types[s.param] = s.typ
		case first == s.typ || numericPair(first, s.typ):
		case s.limit:
			return pgError("argument of LIMIT must be type bigint, not type %s", first)
		default:
			return pgError("operator does not exist: %s = %s", s.typ, first)
		}
		required = max(required, s.param)
	}
	for n := 1; n <= required; n++ {
		if _, ok := types[n]; !ok {
			return pgError("could not determine data type of parameter $%d", n)
		}
	}
	if len(values) != required {
		return pgError("bind message supplies %d parameters, but prepared statement \"\" requires %d", len(values), required)
	}
	for n := 1; n <= required; n++ {
		text, null := pgParamText(values[n-1])
		if !null {
			if err := pgInput(types[n], text); err != nil {
				return err
			}
		}
		for _, s := range slots {
			if s.param == n {
				s.text, s.null = text, null
			}
		}
	}
	return nil
}

// numericPair reports whether a parameter used as both types is read as
// the first without error: bigint and numeric compare with each other.
func numericPair(a, b string) bool {
	return (a == pgBigint || a == pgNumeric) && (b == pgBigint || b == pgNumeric)
}

// sqlColumnType returns the type of the column in "<column> = ...".
func sqlColumnType(b *bucket, col string) (string, *fast.Error) {
	switch col {
	case "_key":
		return pgText, nil
	case "_etag":
		return pgChar, nil
	}
	i := b.columnIndex(col)
	if i < 0 {
		return "", pgError("column \"%s\" does not exist", col)
	}
	switch b.index[i].typ {
	case idxNumber:
		return pgNumeric, nil
	case idxBoolean:
		return pgBoolean, nil
	}
	return pgText, nil
}

// pgParamText is what node-pg (6.x, Moray's) sends for a value: null as
// NULL, a string as it is, a number as JavaScript prints it, an array as a
// PostgreSQL array literal and an object as its JSON, all as UTF-8, in
// which a lone surrogate becomes U+FFFD.
func pgParamText(v *jsValue) (text string, null bool) {
	switch v.kind {
	case jsNull:
		return "", true
	case jsBool:
		return strconv.FormatBool(v.b), false
	case jsNumber:
		return filter.FormatNumber(v.n), false
	case jsString:
		return string(utf16.Decode(toUTF16(v.s))), false
	case jsArray:
		var b strings.Builder
		b.WriteByte('{')
		for i, e := range v.elems {
			if i > 0 {
				b.WriteByte(',')
			}
			switch t, null := pgParamText(e); {
			case null:
				b.WriteString("NULL")
			case e.kind == jsArray:
				b.WriteString(t)
			default:
				b.WriteString(`"` + pgArrayEscaper.Replace(t) + `"`)
			}
		}
		b.WriteByte('}')
		return b.String(), false
	}
	return string(utf16.Decode(toUTF16(string(v.appendJSON(nil))))), false
}

var pgArrayEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// pgInput checks a parameter's text as the input function of its type
// does, with PostgreSQL's errors.
func pgInput(typ, text string) *fast.Error {
	if strings.IndexByte(text, 0) >= 0 {
		return pgError("invalid byte sequence for encoding \"UTF8\": 0x00")
	}
	switch typ {
	case pgBigint:
		if !pgBigintRE.MatchString(text) {
			return pgError("invalid input syntax for type bigint: \"%s\"", text)
		}
		if _, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64); err != nil {
			return pgError("value \"%s\" is out of range for type bigint", text)
		}
	case pgNumeric:
		if !pgNumericRE.MatchString(text) {
			return pgError("invalid input syntax for type numeric: \"%s\"", text)
		}
	case pgBoolean:
		if _, ok := pgBool(text); !ok {
			return pgError("invalid input syntax for type boolean: \"%s\"", text)
		}
	}
	return nil
}

func pgBool(text string) (v, ok bool) {
	switch strings.ToLower(strings.TrimSpace(text)) {
	case "t", "true", "y", "yes", "on", "1":
		return true, true
	case "f", "false", "n", "no", "off", "0":
		return false, true
	}
	return false, false
}

// sqlEquals compiles "<column> = '<text>'" for a column sqlColumnType
// accepted.
func sqlEquals(b *bucket, col, text string) (func(*object) bool, *fast.Error) {
	typ, err := sqlColumnType(b, col)
	if err != nil {
		return nil, err
	}
	if err := pgInput(typ, text); err != nil {
		return nil, err
	}
	switch col {
	case "_key":
		return func(o *object) bool { return o.key == text }, nil
	case "_etag":
		// CHAR(n) compares without trailing spaces.
		text = strings.TrimRight(text, " ")
		return func(o *object) bool { return o.etag == text }, nil
	}
	i := b.columnIndex(col)
	switch typ {
	case pgNumeric:
		n, _ := strconv.ParseFloat(strings.TrimSpace(text), 64)
		return func(o *object) bool { c := o.cols[i]; return !c.null && c.n == n }, nil
	case pgBoolean:
		v, _ := pgBool(text)
		return func(o *object) bool { c := o.cols[i]; return !c.null && c.b == v }, nil
	}
	return func(o *object) bool { c := o.cols[i]; return !c.null && c.s == text }, nil
}

// appendPGRow appends a table row as node-pg returns it: BIGINT columns
// (_id, _mtime, _vnode, _idx) and NUMERIC ones as strings, INTEGER _txn_snap
// as null, _value as the stored JSON text, index columns under their
// lower-cased names, in table order.
func (b *bucket) appendPGRow(buf []byte, o *object) []byte {
	bigint := func(buf []byte, n int64, ok bool) []byte {
		if !ok {
			return append(buf, "null"...)
		}
		buf = append(buf, '"')
		buf = strconv.AppendInt(buf, n, 10)
		return append(buf, '"')
	}
	extended := b.extFrom > 0 && o.id >= b.extFrom
	buf = append(buf, `{"_id":`...)
	buf = bigint(buf, o.id, !extended)
	buf = append(buf, `,"_txn_snap":null,"_key":`...)
	buf = appendJSString(buf, o.key)
	buf = append(buf, `,"_value":`...)
	buf = appendJSString(buf, string(o.value))
	buf = append(buf, `,"_etag":`...)
	buf = appendJSString(buf, o.etag)
	buf = append(buf, `,"_mtime":`...)
	buf = bigint(buf, o.mtime, true)
	buf = append(buf, `,"_vnode":`...)
	buf = bigint(buf, o.vnode, o.hasVnode)
	for i, f := range b.index {
		buf = append(buf, ',')
		buf = appendJSString(buf, f.column)
		buf = append(buf, ':')
		c := o.cols[i]
		switch {
		case c.null:
			buf = append(buf, "null"...)
		case f.typ == idxNumber:
			buf = appendJSString(buf, strconv.FormatFloat(c.n, 'f', -1, 64))
		case f.typ == idxBoolean:
			buf = strconv.AppendBool(buf, c.b)
		default:
			buf = appendJSString(buf, c.s)
		}
	}
	if b.extFrom > 0 {
		buf = append(buf, `,"_idx":`...)
		buf = bigint(buf, o.id, extended)
	}
	return append(buf, '}')
}
