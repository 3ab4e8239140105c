package moraytest

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
	"github.com/TritonDataCenter/rebalancer/moray/filter"
)

// findObjects runs in two stages, as Moray does. The filter is first
// compiled to SQL: leaves on indexed fields and on _id, _key, _etag, _mtime
// become WHERE clauses, the rest are dropped (sqlNode below, after Moray's
// compileQuery). The rows that WHERE selects are counted (_count), sorted,
// cut by OFFSET and LIMIT, and only then is the whole filter applied to
// each row in memory, with JavaScript's comparison rules (package filter).
// So a filter on an unindexed field returns fewer than limit records and a
// _count that includes rows it dropped, exactly like the real server.

// Internal columns a filter leaf can compile to.
const (
	colID = -1 - iota
	colMtime
	colEtag
	colKey
	colTxnSnap
)

type sqlNode struct {
	op   filter.Op
	kids []*sqlNode
	col  int // index field position, or one of the col* constants
	typ  indexType
	str  string
	num  float64
	bool bool
	like string // LIKE pattern (substring leaves)
}

// leafColumn resolves the column of a comparison leaf the way Moray's
// _value does. ok is false when the leaf does not compile to SQL.
func leafColumn(b *bucket, attr string) (col int, typ indexType, ok bool) {
	if i := b.indexOf(attr); i >= 0 {
		return i, b.index[i].typ, true
	}
	switch attr {
	case "_id":
		return colID, idxNumber, true
	case "_mtime":
		return colMtime, idxNumber, true
	case "_txn_snap":
		return colTxnSnap, idxNumber, true
	case "_etag":
		return colEtag, idxString, true
	case "_key":
		return colKey, idxString, true
	}
	return 0, 0, false
}

// pgType is the column's PostgreSQL type, for error messages.
func pgType(col int, typ indexType) string {
	switch col {
	case colID, colMtime:
		return "bigint"
	case colTxnSnap:
		return "integer"
	}
	switch typ {
	case idxNumber:
		return "numeric"
	case idxBoolean:
		return "boolean"
	}
	return "text"
}

// operand converts a filter value for a column as Moray's parse() does.
// For a number the JavaScript text is returned too, for LIKE patterns.
func operand(f *filter.Filter, typ indexType, v string) (str string, num float64, boolean bool, err *fast.Error) {
	switch typ {
	case idxNumber:
		num = filter.ParseFloat(v)
		return filter.FormatNumber(num), num, false, nil
	case idxBoolean:
		switch strings.ToUpper(v) {
		case "TRUE":
			return "TRUE", 0, true, nil
		case "FALSE":
			return "FALSE", 0, false, nil
		}
		return "", 0, false, invalidQuery(f.String())
	}
	return v, 0, false, nil
}

// compile returns the part of f that Moray turns into SQL, or nil.
func compile(b *bucket, f *filter.Filter) (*sqlNode, *fast.Error) {
	switch f.Op {
	case filter.And, filter.Or:
		n := &sqlNode{op: f.Op}
		for _, c := range f.Children {
			k, err := compile(b, c)
			if err != nil {
				return nil, err
			}
			if k == nil {
				if f.Op == filter.Or {
					return nil, notIndexed(b.name, f.String())
				}
				continue
			}
			n.kids = append(n.kids, k)
		}
		if len(n.kids) == 0 {
			return nil, notIndexed(b.name, f.String())
		}
		return n, nil
	case filter.Not:
		k, err := compile(b, f.Children[0])
		if k == nil || err != nil {
			return nil, err
		}
		return &sqlNode{op: filter.Not, kids: []*sqlNode{k}}, nil
	case filter.Present:
		// Only bucket indexes compile: (_id=*) is not a clause.
		if i := b.indexOf(f.Attr); i >= 0 {
			return &sqlNode{op: filter.Present, col: i, typ: b.index[i].typ}, nil
		}
		return nil, nil
	case filter.Substring, filter.CaseIgnoreSubstring:
		col, typ, ok := leafColumn(b, f.Attr)
		if !ok {
			return nil, nil
		}
		var pat strings.Builder
		parts := []string{f.Initial}
		parts = append(parts, f.Any...)
		parts = append(parts, f.Final)
		for i, p := range parts {
			if p == "" && (i == 0 || i == len(parts)-1) {
				continue // an empty initial or final part adds nothing
			}
			s, _, _, err := operand(f, typ, p)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				pat.WriteByte('%')
			}
			pat.WriteString(s + "%")
		}
		if pg := pgType(col, typ); pg != "text" {
			op := "~~"
			if f.Op == filter.CaseIgnoreSubstring {
				op = "~~*"
			}
			return nil, pgError("operator does not exist: %s %s unknown", pg, op)
		}
		n := &sqlNode{op: f.Op, col: col, typ: typ, like: pat.String()}
		if f.Op == filter.CaseIgnoreSubstring {
			n.like = strings.ToLower(n.like)
		}
		return n, nil
	case filter.Equal, filter.GreaterOrEqual, filter.LessOrEqual, filter.CaseIgnoreEqual:
		col, typ, ok := leafColumn(b, f.Attr)
		if !ok {
			return nil, nil
		}
		s, num, boolean, err := operand(f, typ, f.Value)
		if err != nil {
			return nil, err
		}
		if num != num && (col == colID || col == colMtime || col == colTxnSnap) {
			return nil, pgError("invalid input syntax for type %s: \"NaN\"", pgType(col, typ))
		}
		if f.Op == filter.CaseIgnoreEqual && pgType(col, typ) != "text" {
			return nil, pgError("operator does not exist: unknown ~~* %s", pgType(col, typ))
		}
		return &sqlNode{op: f.Op, col: col, typ: typ, str: s, num: num, bool: boolean}, nil
	}
	return nil, nil
}

// rowColumn returns a row's column: ok is false for NULL.
func rowColumn(o *object, col int) (c column, ok bool) {
	switch col {
	case colID:
		return column{n: float64(o.id)}, true
	case colMtime:
		return column{n: float64(o.mtime)}, true
	case colEtag:
		return column{s: o.etag}, true
	case colKey:
		return column{s: o.key}, true
	case colTxnSnap:
		return column{}, false
	case colValue:
		return column{s: string(o.value)}, true
	case colVnode:
		return column{n: float64(o.vnode)}, o.hasVnode
	}
	c = o.cols[col]
	return c, !c.null
}

// compareColumn orders two non-NULL values of one column as PostgreSQL
// does (text by bytes, as under the C collation; NaN above all numbers).
func compareColumn(typ indexType, a, b column) int {
	switch typ {
	case idxNumber:
		switch {
		case a.n != a.n && b.n != b.n:
			return 0
		case a.n != a.n:
			return 1
		case b.n != b.n:
			return -1
		}
		return cmp.Compare(a.n, b.n)
	case idxBoolean:
		switch {
		case a.b == b.b:
			return 0
		case b.b:
			return -1
		}
		return 1
	}
	return strings.Compare(a.s, b.s)
}

// match evaluates the compiled WHERE clause on a row. Every leaf carries
// "AND column IS NOT NULL", so a NULL column fails it.
func (n *sqlNode) match(o *object) bool {
	switch n.op {
	case filter.And:
		for _, k := range n.kids {
			if !k.match(o) {
				return false
			}
		}
		return true
	case filter.Or:
		for _, k := range n.kids {
			if k.match(o) {
				return true
			}
		}
		return false
	case filter.Not:
		return !n.kids[0].match(o)
	}
	c, ok := rowColumn(o, n.col)
	if !ok {
		return false
	}
	param := column{s: n.str, n: n.num, b: n.bool}
	switch n.op {
	case filter.Present:
		return true
	case filter.Equal:
		return compareColumn(n.typ, param, c) == 0 && !(n.typ == idxNumber && param.n != param.n)
	case filter.GreaterOrEqual: // $1 <= column
		return compareColumn(n.typ, param, c) <= 0
	case filter.LessOrEqual: // $1 >= column
		return compareColumn(n.typ, param, c) >= 0
	case filter.Substring:
		return like(c.s, n.like)
	case filter.CaseIgnoreSubstring:
		return like(strings.ToLower(c.s), n.like)
	case filter.CaseIgnoreEqual: // $1 ILIKE column: the column is the pattern
		return like(strings.ToLower(n.str), strings.ToLower(c.s))
	}
	return false
}

// idBounds returns the _id window the clause implies at its top level, so
// the scan can use the _id index.
func (n *sqlNode) idBounds() (lo, hi int64) {
	lo, hi = math.MinInt64, math.MaxInt64
	leaves := []*sqlNode{n}
	if n.op == filter.And {
		leaves = n.kids
	}
	for _, l := range leaves {
		if l.col != colID || l.num != l.num {
			continue
		}
		switch l.op {
		case filter.Equal:
			lo = max(lo, int64(math.Ceil(l.num)))
			hi = min(hi, int64(math.Floor(l.num)))
		case filter.GreaterOrEqual:
			if l.num > math.MinInt64 {
				lo = max(lo, int64(min(math.Ceil(l.num), math.MaxInt64)))
			}
		case filter.LessOrEqual:
			if l.num < math.MaxInt64 {
				hi = min(hi, int64(max(math.Floor(l.num), math.MinInt64)))
			}
		}
	}
	return lo, hi
}

// like is PostgreSQL's LIKE: '%' matches any run of characters, '_' one
// character, and a backslash makes the next character literal.
func like(s, pattern string) bool {
	type tok struct {
		r       rune
		literal bool
	}
	var p []tok
	for i := 0; i < len(pattern); {
		r, n := utf8.DecodeRuneInString(pattern[i:])
		i += n
		if r == '\\' && i < len(pattern) {
			r, n = utf8.DecodeRuneInString(pattern[i:])
			i += n
			p = append(p, tok{r, true})
			continue
		}
		p = append(p, tok{r, false})
	}
	str := []rune(s)
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && !p[pi].literal && p[pi].r == '%':
			star, mark = pi, si
			pi++
		case pi < len(p) && (!p[pi].literal && p[pi].r == '_' || p[pi].r == str[si]):
			si, pi = si+1, pi+1
		case star >= 0:
			pi, mark = star+1, mark+1
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && !p[pi].literal && p[pi].r == '%' {
		pi++
	}
	return pi == len(p)
}

// sortKey is one ORDER BY term.
type sortKey struct {
	idx  int // index field, or a col* constant
	typ  indexType
	desc bool
}

const (
	colValue = -100 - iota
	colVnode
)

func sortColumn(b *bucket, attr string) (idx int, typ indexType, err *fast.Error) {
	name := strings.ToLower(attr)
	switch name {
	case "_id":
		return colID, idxNumber, nil
	case "_mtime":
		return colMtime, idxNumber, nil
	case "_txn_snap":
		return colTxnSnap, idxNumber, nil
	case "_etag":
		return colEtag, idxString, nil
	case "_key":
		return colKey, idxString, nil
	case "_value":
		return colValue, idxString, nil
	case "_vnode":
		return colVnode, idxNumber, nil
	}
	if i := b.columnIndex(name); i >= 0 {
		return i, b.index[i].typ, nil
	}
	return 0, 0, pgError("column \"%s\" does not exist", name)
}

// compareRows orders rows by the sort keys, NULLs last when ascending and
// first when descending (PostgreSQL's default), then by _id.
func compareRows(keys []sortKey, a, b *object) int {
	for _, k := range keys {
		va, aok := rowColumn(a, k.idx)
		vb, bok := rowColumn(b, k.idx)
		var c int
		switch {
		case !aok && !bok:
		case !aok:
			c = 1
		case !bok:
			c = -1
		default:
			c = compareColumn(k.typ, va, vb)
		}
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(a.id, b.id)
}

// findQuery is a validated findObjects request.
type findQuery struct {
	bucket  string
	raw     string
	filter  *filter.Filter
	sort    []sortKeySpec
	limit   int64 // < 0: no limit
	offset  int64
	noCount bool
}

type sortKeySpec struct {
	attr string
	desc bool
}

// findResult is what findObjects sends: rows that passed the WHERE clause
// and the window, to be re-checked with the full filter.
type findResult struct {
	b     *bucket
	rows  []*object
	count int64 // rows matching WHERE before LIMIT; -1 with no_count
	match *filter.Matcher
}

// find runs the SQL stage of a findObjects under the read lock.
func (s *store) find(q *findQuery) (*findResult, *fast.Error) {
	if q.filter == nil {
		return nil, invalidQuery(q.raw)
	}
	var idxErr bool
	q.filter.Walk(func(f *filter.Filter) { idxErr = idxErr || f.Op.IsLeaf() && f.Attr == "_idx" })
	if idxErr {
		return nil, newError("Error", "filtering on \"_idx\" is not allowed")
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	b, err := s.bucketLocked(q.bucket)
	if err != nil {
		return nil, err
	}
	where, err := compile(b, q.filter)
	if err != nil {
		return nil, err
	}
	if where == nil {
		return nil, invalidQuery(q.filter.String())
	}
	var keys []sortKey
	for _, sk := range q.sort {
		if strings.EqualFold(sk.attr, "_idx") {
			return nil, newError("Error", "sorting on \"_idx\" is not allowed")
		}
		idx, typ, err := sortColumn(b, sk.attr)
		if err != nil {
			return nil, err
		}
		keys = append(keys, sortKey{idx: idx, typ: typ, desc: sk.desc})
	}

	res := &findResult{b: b, count: -1, match: q.filter.Compile(b.types)}
	lo, hi := b.rangeIDs(where.idBounds())
	// When rows come out in _id order anyway and nobody wants the count,
	// the scan can stop at the end of the window.
	byID := len(keys) == 0 || keys[0].idx == colID
	desc := len(keys) > 0 && keys[0].desc
	stopAt := int64(-1)
	if q.noCount && byID && q.limit >= 0 {
		stopAt = q.offset + q.limit
	}
	var rows []*object
	var n int64
	for i := lo; i < hi && n != stopAt; i++ {
		j := i
		if desc {
			j = lo + hi - 1 - i
		}
		if o := b.objs[j]; o != nil && where.match(o) {
			rows = append(rows, o)
			n++
		}
	}
	if !q.noCount {
		res.count = n
	}
	if !byID {
		slices.SortStableFunc(rows, func(x, y *object) int { return compareRows(keys, x, y) })
	}
	if q.offset > 0 {
		rows = rows[min(q.offset, int64(len(rows))):]
	}
	if q.limit >= 0 && int64(len(rows)) > q.limit {
		rows = rows[:q.limit]
	}
	res.rows = rows
	return res, nil
}

// rowRecord is a row as findObjects's in-memory check sees it: the value,
// with _id, _txn_snap, _etag, _key, _mtime and _count set on it.
type rowRecord struct {
	b     *bucket
	o     *object
	count int64
	view  *jsValue
}

func (r *rowRecord) Attr(name string) (any, bool) {
	switch name {
	case "_id":
		return float64(r.o.id), true
	case "_txn_snap":
		return nil, true
	case "_etag":
		return r.o.etag, true
	case "_key":
		return r.o.key, true
	case "_mtime":
		return float64(r.o.mtime), true
	case "_count":
		if r.count < 0 {
			return nil, false // set to undefined
		}
		return float64(r.count), true
	}
	// The value's indexed fields are its columns; reading them from the
	// row saves parsing the value.
	if r.o.simple {
		if i := r.b.indexOf(name); i >= 0 && !r.o.cols[i].null {
			return r.o.cols[i].any(r.b.index[i].typ), true
		}
	}
	if r.view == nil {
		v, err := parseJS(r.o.view)
		if err != nil {
			return nil, false // cannot happen: we wrote it
		}
		r.view = v
	}
	e, ok := r.view.getFold(name)
	if !ok {
		return nil, false
	}
	return e.toAny(), true
}

// findView is the value findObjects sends: Moray deletes the fields it set
// for filtering, so a value's own _id, _key, ... fields are lost.
func findView(o *object) []byte {
	if !o.internal {
		return o.view
	}
	v, err := parseJS(o.view)
	if err != nil {
		return o.view
	}
	for _, k := range internalFields {
		v.del(k)
	}
	return v.appendJSON(nil)
}

// countMode says how a record carries _count.
type countMode uint8

const (
	countNull countMode = iota // getObject: "_count":null
	countOmit                  // findObjects with no_count
	countValue
)

// appendRecord appends the JSON of one getObject or findObjects record.
func appendRecord(buf []byte, bucket string, o *object, value []byte, mode countMode, count int64) []byte {
	buf = append(buf, `{"bucket":`...)
	buf = appendJSString(buf, bucket)
	buf = append(buf, `,"key":`...)
	buf = appendJSString(buf, o.key)
	buf = append(buf, `,"value":`...)
	buf = append(buf, value...)
	buf = append(buf, `,"_id":`...)
	buf = strconv.AppendInt(buf, o.id, 10)
	buf = append(buf, `,"_etag":`...)
	buf = appendJSString(buf, o.etag)
	buf = append(buf, `,"_mtime":`...)
	buf = strconv.AppendInt(buf, o.mtime, 10)
	buf = append(buf, `,"_txn_snap":null`...)
	switch mode {
	case countNull:
		buf = append(buf, `,"_count":null`...)
	case countValue:
		buf = append(buf, `,"_count":`...)
		buf = strconv.AppendInt(buf, count, 10)
	}
	return append(buf, '}')
}
