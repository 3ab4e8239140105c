package moraytest

import (
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
	"github.com/TritonDataCenter/rebalancer/moray/filter"
)

// The store is the in-memory stand-in for Moray's PostgreSQL tables: one
// bucket per table, objects keyed by _key, and an _id-ordered index so that
// the scans the rebalancer makes (_id windows, sorted by _id) cost the size
// of the window, not of the bucket.

type indexType uint8

const (
	idxString indexType = iota
	idxNumber
	idxBoolean
)

var indexTypeNames = [...]string{idxString: "string", idxNumber: "number", idxBoolean: "boolean"}

func (t indexType) String() string { return indexTypeNames[t] }

func (t indexType) filterType() filter.Type {
	switch t {
	case idxNumber:
		return filter.TypeNumber
	case idxBoolean:
		return filter.TypeBoolean
	}
	return filter.TypeString
}

type indexField struct {
	name   string
	column string // PostgreSQL folds unquoted identifiers to lower case
	typ    indexType
}

// column is an index column's value for one row.
type column struct {
	s    string
	n    float64
	null bool
	b    bool
}

// any returns the column as filter.Record values are typed.
func (c column) any(t indexType) any {
	switch t {
	case idxNumber:
		return c.n
	case idxBoolean:
		return c.b
	}
	return c.s
}

// object is one row. It is immutable: an update stores a new object.
type object struct {
	key      string
	id       int64
	value    []byte // _value: JSON.stringify of the value as put (the etag's input)
	view     []byte // the value as reads return it, index columns written over it
	etag     string
	mtime    int64
	vnode    int64
	hasVnode bool
	cols     []column // in bucket index order
	// simple is true when every indexed field of the value is absent or of
	// its index's natural JSON type, so that the value's field and the
	// column agree and view is value.
	simple bool
	// internal is true when the value has a field that findObjects
	// overwrites for filtering and then deletes (_id, _key, ...).
	internal bool
}

type bucket struct {
	name        string
	index       []indexField
	indexJSON   string // the buckets_config columns, as JSON text
	preJSON     string
	postJSON    string
	optionsJSON string
	mtime       time.Time
	extFrom     int64 // > 0: the table has the _idx column; ids >= extFrom are stored in it

	seq     int64 // last _id handed out; never rolled back, like a sequence
	objects map[string]*object
	ids     []int64   // ascending
	objs    []*object // parallel to ids; nil where deleted
	dead    int
	intern  map[string]string // index column strings repeat a lot (owner, type, dirname)
}

func (b *bucket) indexOf(name string) int {
	for i, f := range b.index {
		if f.name == name {
			return i
		}
	}
	return -1
}

func (b *bucket) columnIndex(col string) int {
	for i, f := range b.index {
		if f.column == col {
			return i
		}
	}
	return -1
}

// types is the filter.Types of the bucket: how Moray converts filter
// values for each attribute.
func (b *bucket) types(attr string) filter.Type {
	if i := b.indexOf(attr); i >= 0 {
		return b.index[i].typ.filterType()
	}
	switch attr {
	case "_id", "_mtime", "_txn_snap":
		return filter.TypeNumber
	}
	return filter.TypeString
}

func (b *bucket) nextID() int64 {
	b.seq++
	return b.seq
}

func (b *bucket) position(id int64) int {
	i := sort.Search(len(b.ids), func(i int) bool { return b.ids[i] >= id })
	if i < len(b.ids) && b.ids[i] == id {
		return i
	}
	return -1
}

func (b *bucket) insert(o *object) {
	// Ids come from the sequence, so a new row always sorts last.
	b.ids = append(b.ids, o.id)
	b.objs = append(b.objs, o)
	b.objects[o.key] = o
}

func (b *bucket) replace(o *object) {
	b.objs[b.position(o.id)] = o
	b.objects[o.key] = o
}

func (b *bucket) remove(o *object) {
	b.objs[b.position(o.id)] = nil
	delete(b.objects, o.key)
	b.dead++
	if b.dead > 1024 && b.dead > len(b.ids)/2 {
		ids, objs := b.ids[:0], b.objs[:0]
		for i, x := range b.objs {
			if x != nil {
				ids, objs = append(ids, b.ids[i]), append(objs, x)
			}
		}
		clear(b.objs[len(objs):])
		b.ids, b.objs, b.dead = ids, objs, 0
	}
}

// rangeIDs returns the positions [i, j) of the ids within [lo, hi].
func (b *bucket) rangeIDs(lo, hi int64) (int, int) {
	i := sort.Search(len(b.ids), func(k int) bool { return b.ids[k] >= lo })
	j := sort.Search(len(b.ids), func(k int) bool { return b.ids[k] > hi })
	return i, max(i, j)
}

func (b *bucket) internStr(s string) string {
	if v, ok := b.intern[s]; ok {
		return v
	}
	if len(b.intern) < 1<<16 {
		b.intern[s] = s
	}
	return s
}

type store struct {
	mu      sync.RWMutex
	buckets map[string]*bucket
	order   []string // creation order
	now     func() time.Time
}

func newStore(now func() time.Time) *store {
	return &store{buckets: map[string]*bucket{}, now: now}
}

var (
	bucketNameRE    = regexp.MustCompile(`^[a-zA-Z]\w{0,62}$`)
	reservedBuckets = map[string]bool{"buckets_config": true, "moray": true, "search": true}
	// Types Moray knows but moraytest does not emulate.
	otherMorayTypes = map[string]bool{"date": true, "daterange": true, "ip": true, "mac": true, "numrange": true, "subnet": true, "uuid": true}
)

// bucketSpec is a validated createBucket configuration.
type bucketSpec struct {
	index   []indexField
	config  *jsValue // config.index etc. as sent, for the JSON columns
	extFrom int64
}

// parseBucketConfig validates a createBucket config as Moray's bucket
// schema does, for the index types moraytest supports.
func parseBucketConfig(cfg *jsValue) (*bucketSpec, *fast.Error) {
	spec := &bucketSpec{config: cfg}
	bad := func(format string, args ...any) (*bucketSpec, *fast.Error) {
		return nil, newError("InvalidBucketConfigError", format, args...)
	}
	if !cfg.isObject() {
		return bad("bucket should be object")
	}
	if idx, ok := cfg.get("index"); ok {
		if !idx.isObject() {
			return bad("bucket.index should be object")
		}
		for i, name := range idx.keys {
			def := idx.vals[i]
			path := "bucket.index['" + name + "']"
			if !def.isObject() {
				return bad("%s should be object", path)
			}
			t, ok := def.get("type")
			if !ok {
				return bad("%s should have required property 'type'", path)
			}
			for _, k := range def.keys {
				if k != "type" && k != "unique" {
					return bad("%s should NOT have additional properties", path)
				}
			}
			if u, ok := def.get("unique"); ok && (u.kind != jsBool || u.b) {
				if u.kind != jsBool {
					return bad("%s.unique should be boolean", path)
				}
				return nil, newError("InternalError", "moraytest: unique indexes are not supported (%s)", name)
			}
			var typ indexType
			switch {
			case t.kind != jsString:
				return bad("%s.type should be string", path)
			case t.s == "string":
				typ = idxString
			case t.s == "number":
				typ = idxNumber
			case t.s == "boolean":
				typ = idxBoolean
			case otherMorayTypes[strings.Trim(t.s, "[]")] || strings.HasPrefix(t.s, "["):
				return nil, newError("InternalError", "moraytest: index type %q is not supported (%s)", t.s, name)
			default:
				return bad("%s.type should be equal to one of the allowed values", path)
			}
			spec.index = append(spec.index, indexField{name: name, column: strings.ToLower(name), typ: typ})
		}
	}
	for _, k := range [...]string{"pre", "post"} {
		if v, ok := cfg.get(k); ok && v.kind != jsArray {
			return bad("bucket.%s should be array", k)
		}
	}
	if o, ok := cfg.get("options"); ok {
		if !o.isObject() {
			return bad("bucket.options should be object")
		}
		if v, ok := o.get("version"); ok && (!v.isInteger() || v.n < 0) {
			return bad("bucket.options.version should be integer >= 0")
		}
	}
	return spec, nil
}

// createBucket creates a bucket; name and spec come from createBucket or
// the direct API.
func (s *store) createBucket(name string, spec *bucketSpec) *fast.Error {
	if !bucketNameRE.MatchString(name) || reservedBuckets[name] {
		return newError("InvalidBucketNameError", "%s is not a valid bucket name", name)
	}
	cfg := spec.config
	jsonOf := func(key, def string) string {
		if v, ok := cfg.get(key); ok {
			return v.String()
		}
		return def
	}
	// Like Moray, store options with a version (0 when not given).
	opts := jsObj()
	if o, ok := cfg.get("options"); ok {
		opts = o.clone()
	}
	if v, ok := opts.get("version"); !ok || v.kind == jsNull || v.kind == jsNumber && v.n == 0 {
		opts.set("version", jsNum(0))
	}
	b := &bucket{
		name:        name,
		index:       spec.index,
		indexJSON:   jsonOf("index", "{}"),
		preJSON:     jsonOf("pre", "[]"),
		postJSON:    jsonOf("post", "[]"),
		optionsJSON: opts.String(),
		mtime:       s.now(),
		extFrom:     spec.extFrom,
		objects:     map[string]*object{},
		intern:      map[string]string{},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.buckets[name]; ok {
		return newError("BucketConflictError", "%s already exists", name)
	}
	s.buckets[name] = b
	s.order = append(s.order, name)
	return nil
}

func (s *store) deleteBucket(name string) *fast.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.buckets[name]; !ok {
		return bucketNotFound(name)
	}
	delete(s.buckets, name)
	s.order = slices.DeleteFunc(s.order, func(n string) bool { return n == name })
	return nil
}

// bucketLocked returns a bucket; the caller holds s.mu.
func (s *store) bucketLocked(name string) (*bucket, *fast.Error) {
	if b, ok := s.buckets[name]; ok {
		return b, nil
	}
	return nil, bucketNotFound(name)
}

var internalFields = [...]string{"_id", "_txn_snap", "_etag", "_key", "_mtime", "_count"}

// buildObject makes the row Moray writes for a putObject of v.
func (b *bucket) buildObject(key string, v *jsValue, now time.Time) (*object, *fast.Error) {
	o := &object{key: key, mtime: now.UnixMilli(), simple: true, cols: make([]column, len(b.index))}
	o.value = v.appendJSON(nil)
	if cap(o.value) > len(o.value)+len(o.value)/8 {
		// Objects live long: do not keep append's spare capacity.
		o.value = append([]byte(nil), o.value...)
	}
	o.etag = Etag(o.value)
	for i, f := range b.index {
		fv, ok := v.get(f.name)
		c, natural, err := mapColumn(f, fv, ok)
		if err != nil {
			return nil, err
		}
		if f.typ == idxString && !c.null {
			c.s = b.internStr(c.s)
		}
		o.cols[i] = c
		o.simple = o.simple && natural
	}
	if vn, ok := v.get("vnode"); ok && vn.kind != jsNull {
		// _vnode is a BIGINT bound from value.vnode.
		switch {
		case vn.isInteger():
			o.vnode, o.hasVnode = int64(vn.n), true
		case vn.kind == jsString:
			n, err := strconv.ParseInt(strings.TrimSpace(vn.s), 10, 64)
			if err != nil {
				return nil, pgError("invalid input syntax for type bigint: \"%s\"", vn.s)
			}
			o.vnode, o.hasVnode = n, true
		default:
			return nil, pgError("invalid input syntax for type bigint: \"%s\"", vn.jsString())
		}
	}
	for _, k := range internalFields {
		if _, ok := v.get(k); ok {
			o.internal = true
		}
	}
	o.view = o.value
	if !o.simple {
		o.view = b.readView(v, o.cols).appendJSON(nil)
	}
	return o, nil
}

// mapColumn converts a value's field into its index column as Moray does
// (String(v) for strings, parseFloat for numbers, "true"/"false" for
// booleans). natural reports whether the field is absent, null, or of the
// index's own JSON type.
func mapColumn(f indexField, v *jsValue, present bool) (c column, natural bool, err *fast.Error) {
	if !present || v.kind == jsNull {
		return column{null: true}, true, nil
	}
	switch f.typ {
	case idxString:
		return column{s: v.jsString()}, v.kind == jsString, nil
	case idxNumber:
		n := v.n
		if v.kind != jsNumber {
			n = filter.ParseFloat(v.jsString())
		}
		if n != n { // NaN: stored as NULL here (PostgreSQL would store 'NaN')
			return column{null: true}, false, nil
		}
		return column{n: n}, v.kind == jsNumber, nil
	case idxBoolean:
		switch strings.ToUpper(v.jsString()) {
		case "TRUE":
			return column{b: true}, v.kind == jsBool, nil
		case "FALSE":
			return column{}, v.kind == jsBool, nil
		}
		return column{}, false, newError("InvalidIndexTypeError", "index(%s) is of type %s", f.name, f.typ)
	}
	return column{null: true}, false, nil
}

// readView is the value as Moray's rowToObject rebuilds it from a row:
// each index column written over the field of the same name, except that a
// scalar index never replaces an array, and a NULL column deletes the field
// (unless it is null). Number columns are left as the value had them: what
// node-pg returns for NUMERIC was not observed.
func (b *bucket) readView(v *jsValue, cols []column) *jsValue {
	v = v.clone()
	for i, f := range b.index {
		fv, ok := v.get(f.name)
		switch {
		case cols[i].null:
			if ok && fv.kind != jsNull {
				v.del(f.name)
			}
		case ok && fv.kind == jsArray:
		case f.typ == idxString:
			v.set(f.name, jsStr(cols[i].s))
		case f.typ == idxBoolean:
			v.set(f.name, jsBoolean(cols[i].b))
		}
	}
	return v
}

// etagCond is putObject's options.etag: absent, null, or a string.
type etagCond struct {
	set   bool
	null  bool
	value string
}

func etagCondOf(opts *jsValue) etagCond {
	e, ok := opts.get("etag")
	switch {
	case !ok:
		return etagCond{}
	case e.kind == jsNull:
		return etagCond{set: true, null: true}
	}
	return etagCond{set: true, value: e.s}
}

func (c etagCond) expected() string {
	if c.null {
		return "null"
	}
	return c.value
}

// txn is a transaction over the store: operations see each other's
// effects and are applied together by commit, or not at all. The caller
// holds s.mu for writing throughout.
type txn struct {
	s      *store
	now    time.Time
	staged map[*bucket]map[string]*object // nil value: deleted
	ops    []stagedOp
	// conflict, when set, is asked about each conditional put that passed
	// its etag check; true fails it as if the object had changed.
	conflict func(bucket, key string) bool
}

type stagedOp struct {
	b      *bucket
	key    string
	prev   *object
	o      *object // nil for a delete
	insert bool
}

func (s *store) begin() *txn {
	return &txn{s: s, now: s.now(), staged: map[*bucket]map[string]*object{}}
}

func (t *txn) lookup(b *bucket, key string) *object {
	if m, ok := t.staged[b]; ok {
		if o, ok := m[key]; ok {
			return o
		}
	}
	return b.objects[key]
}

func (t *txn) stage(op stagedOp) {
	m := t.staged[op.b]
	if m == nil {
		m = map[string]*object{}
		t.staged[op.b] = m
	}
	m[op.key] = op.o
	t.ops = append(t.ops, op)
}

// put is putObject: check the etag condition, then write the row.
func (t *txn) put(b *bucket, key string, v *jsValue, cond etagCond) (*object, *fast.Error) {
	prev := t.lookup(b, key)
	if cond.set {
		actual := "null"
		if prev != nil {
			actual = prev.etag
		}
		switch {
		case cond.null && prev != nil,
			!cond.null && (prev == nil || prev.etag != cond.value),
			t.conflict != nil && t.conflict(b.name, key):
			return nil, etagConflict(b.name, key, cond.expected(), actual)
		}
	}
	o, err := b.buildObject(key, v, t.now)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		o.id = prev.id
	} else {
		o.id = b.nextID() // consumed even if the transaction rolls back
	}
	t.stage(stagedOp{b: b, key: key, prev: prev, o: o, insert: prev == nil})
	return o, nil
}

// del is delObject: a truthy etag must match.
func (t *txn) del(b *bucket, key, etag string) *fast.Error {
	prev := t.lookup(b, key)
	if prev == nil {
		return objectNotFound(b.name, key)
	}
	if etag != "" && etag != prev.etag {
		return etagConflict(b.name, key, etag, prev.etag)
	}
	t.stage(stagedOp{b: b, key: key, prev: prev})
	return nil
}

func (t *txn) commit() {
	for _, op := range t.ops {
		switch {
		case op.o == nil:
			op.b.remove(op.b.objects[op.key])
		case op.insert:
			op.b.insert(op.o)
		default:
			op.b.replace(op.o)
		}
	}
}
