package moraytest

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// The sql RPC runs raw SQL on the shard's PostgreSQL. moraytest answers
// exactly the statements sharkspotter sends (spec section 4.3), with rows
// typed as node-pg returns them, and fails anything else with a clear
// error:
//
//	SELECT MAX(<id>) FROM <bucket>
//	SELECT * FROM <bucket> WHERE <id> >= <n> AND <id> <= <m> [AND <column> = '<text>'] [LIMIT <k>]
//
// where <id> is _id or _idx (the same in both places), keywords are in any
// case, and a trailing semicolon is optional. A bucket has the _idx column
// only when it was created with BucketConfig.ExtendedIDFrom.

var (
	sqlMaxRE    = regexp.MustCompile(`(?is)^\s*select\s+max\s*\(\s*(\w+)\s*\)\s+from\s+(\w+)\s*;?\s*$`)
	pgNumericRE = regexp.MustCompile(`^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$`)
	sqlRangeRE  = regexp.MustCompile(`(?is)^\s*select\s+\*\s+from\s+(\w+)\s+where\s+(\w+)\s*>=\s*(\d+)\s+and\s+(\w+)\s*<=\s*(\d+)` +
		`(?:\s+and\s+(\w+)\s*=\s*'((?:[^']|'')*)')?(?:\s+limit\s+(\d+))?\s*;?\s*$`)
)

const sqlSupported = "moraytest: unsupported SQL; supported are \"SELECT MAX(_id|_idx) FROM <bucket>\" and " +
	"\"SELECT * FROM <bucket> WHERE <id> >= N AND <id> <= M [AND <column> = '<text>'] [LIMIT K]\": "

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

// inIDColumn reports whether a row's id lives in the given column.
func inIDColumn(b *bucket, o *object, col string) bool {
	extended := b.extFrom > 0 && o.id >= b.extFrom
	return extended == (col == "_idx")
}

// sql runs a statement and returns its rows as JSON objects.
func (s *store) sql(stmt string, values int) ([][]byte, *fast.Error) {
	if values > 0 {
		return nil, pgError("bind message supplies %d parameters, but prepared statement \"\" requires 0", values)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
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
	lo, err1 := strconv.ParseInt(m[3], 10, 64)
	hi, err2 := strconv.ParseInt(m[5], 10, 64)
	if err1 != nil || err2 != nil {
		return nil, pgError("value out of range for type bigint")
	}
	limit := int64(-1)
	if m[8] != "" {
		if limit, err1 = strconv.ParseInt(m[8], 10, 64); err1 != nil {
			return nil, pgError("value out of range for type bigint")
		}
	}
	var cond func(*object) bool
	if m[6] != "" {
		if cond, err = sqlEquals(b, strings.ToLower(m[6]), strings.ReplaceAll(m[7], "''", "'")); err != nil {
			return nil, err
		}
	}
	var rows [][]byte
	i, j := b.rangeIDs(lo, hi)
	for ; i < j && int64(len(rows)) != limit; i++ {
		o := b.objs[i]
		if o == nil || !inIDColumn(b, o, col) || cond != nil && !cond(o) {
			continue
		}
		rows = append(rows, b.appendPGRow(nil, o))
	}
	return rows, nil
}

// sqlEquals compiles "<column> = '<text>'".
func sqlEquals(b *bucket, col, text string) (func(*object) bool, *fast.Error) {
	switch col {
	case "_key":
		return func(o *object) bool { return o.key == text }, nil
	case "_etag":
		return func(o *object) bool { return o.etag == text }, nil
	}
	i := b.columnIndex(col)
	if i < 0 {
		return nil, pgError("column \"%s\" does not exist", col)
	}
	switch b.index[i].typ {
	case idxNumber:
		if !pgNumericRE.MatchString(text) {
			return nil, pgError("invalid input syntax for type numeric: \"%s\"", text)
		}
		n, _ := strconv.ParseFloat(strings.TrimSpace(text), 64)
		return func(o *object) bool { c := o.cols[i]; return !c.null && c.n == n }, nil
	case idxBoolean:
		var v bool
		switch strings.ToLower(strings.TrimSpace(text)) {
		case "t", "true", "y", "yes", "on", "1":
			v = true
		case "f", "false", "n", "no", "off", "0":
		default:
			return nil, pgError("invalid input syntax for type boolean: \"%s\"", text)
		}
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
