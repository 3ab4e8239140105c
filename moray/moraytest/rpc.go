package moraytest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/TritonDataCenter/rebalancer/internal/retry"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
	"github.com/TritonDataCenter/rebalancer/moray/filter"
)

// call is one request being handled.
type call struct {
	s      *Server
	c      *conn
	method string
	args   []*jsValue
	rep    *reply
}

// method returns the handler of an RPC.
func method(name string) (func(*call), bool) {
	switch name {
	case "ping":
		return (*call).ping, true
	case "version":
		return (*call).version, true
	case "createBucket":
		return (*call).createBucket, true
	case "getBucket":
		return (*call).getBucket, true
	case "listBuckets":
		return (*call).listBuckets, true
	case "delBucket":
		return (*call).delBucket, true
	case "putObject":
		return (*call).putObject, true
	case "getObject":
		return (*call).getObject, true
	case "delObject":
		return (*call).delObject, true
	case "findObjects":
		return (*call).findObjects, true
	case "batch":
		return (*call).batch, true
	case "sql":
		return (*call).sql, true
	case "getTokens":
		return (*call).getTokens, true
	case "updateBucket", "updateObjects", "deleteMany", "reindexObjects", "listen", "unlisten":
		// Registered by the real server but not emulated.
		return func(c *call) { c.rep.fail(notImplemented(c.method)) }, true
	}
	return nil, false
}

// handle runs one request on its own goroutine.
func (s *Server) handle(c *conn, m *fast.Message) {
	s.srv.CountCall(m.Method)
	rep := &reply{Reply: c.NewReply(m), c: c}
	d, err := parseJS(m.Data)
	if err != nil || d.kind != jsArray {
		// The Fast decoder accepted the frame, so this cannot happen.
		rep.fail(newError("FastError", "moraytest: cannot parse arguments: %v", err))
		return
	}
	cl := &call{s: s, c: c, method: m.Method, args: d.elems, rep: rep}

	act := s.action(c, m, d.elems)
	if act.Delay > 0 && !retry.Sleep(c.Context(), act.Delay) {
		return
	}
	switch {
	case act.Drop:
		c.Drop()
		return
	case act.Error != nil:
		rep.fail(act.Error)
		return
	}

	h, ok := method(m.Method)
	if !ok {
		info, _ := fast.MarshalData(struct {
			FastReason string `json:"fastReason"`
			RPCMethod  string `json:"rpcMethod"`
			RPCMsgid   uint32 `json:"rpcMsgid"`
		}{"bad_method", m.Method, m.ID})
		e := newError("FastError", "unsupported RPC method: %s", appendJSString(nil, m.Method))
		e.Info = info
		rep.fail(e)
		return
	}
	h(cl)
}

// Argument checking, as Moray's invalidArgs and its JSON schemas do it.

type argKind uint8

const (
	argString argKind = iota
	argObject
	argArray
	argOptions
	argRequests
)

var argDescriptions = [...]string{
	argString:   "a nonempty string",
	argObject:   "an object",
	argArray:    "an array",
	argOptions:  "a valid options object",
	argRequests: "an array of valid request objects",
}

type argSpec struct {
	name string
	kind argKind
}

// check validates the arguments and fails the call when they are wrong.
func (c *call) check(specs ...argSpec) bool {
	if len(c.args) != len(specs) {
		plural := "s"
		if len(specs) == 1 {
			plural = ""
		}
		c.rep.fail(invocationError("%s expects %d argument%s", c.method, len(specs), plural))
		return false
	}
	for i, sp := range specs {
		var msg string
		v := c.args[i]
		switch sp.kind {
		case argString:
			msg = checkString(sp.name, v, 1)
		case argObject:
			if !v.isObject() {
				msg = sp.name + " should be object"
			}
		case argArray:
			if v.kind != jsArray {
				msg = sp.name + " should be array"
			}
		case argOptions:
			msg = checkOptions(sp.name, v)
		case argRequests:
			msg = checkRequests(sp.name, v)
		}
		if msg != "" {
			c.rep.fail(invocationError("%s expects %q (args[%d]) to be %s: %s", c.method, sp.name, i, argDescriptions[sp.kind], msg))
			return false
		}
	}
	return true
}

func checkString(name string, v *jsValue, minLen int) string {
	switch {
	case v.kind != jsString:
		return name + " should be string"
	case utf8.RuneCountInString(v.s) < minLen:
		return fmt.Sprintf("%s should NOT be shorter than %d characters", name, minLen)
	}
	return ""
}

var uuidRE = regexp.MustCompile(`(?i)^(?:urn:uuid:)?[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$`)

// checkOptions validates an options object against Moray's "options"
// schema, reporting the first failure as Ajv words it.
func checkOptions(name string, o *jsValue) string {
	if !o.isObject() {
		return name + " should be object"
	}
	isBool := func(v *jsValue) bool { return v.kind == jsBool }
	typed := []struct {
		key  string
		ok   func(*jsValue) bool
		want string
	}{
		{"timeout", nil, ""},
		{"req_id", nil, ""},
		{"etag", func(v *jsValue) bool { return v.kind == jsNull || v.kind == jsString }, "null,string"},
		{"_value", func(v *jsValue) bool { return v.kind == jsString }, "string"},
		{"noBucketCache", isBool, "boolean"},
		{"noCache", isBool, "boolean"},
		{"headers", (*jsValue).isObject, "object"},
		{"noLimit", isBool, "boolean"},
		{"limit", nil, ""},
		{"offset", nil, ""},
		{"sort", nil, ""},
		{"no_count", isBool, "boolean"},
		{"sql_only", isBool, "boolean"},
		{"no_reindex", isBool, "boolean"},
		{"deep", isBool, "boolean"},
	}
	for _, t := range typed {
		v, ok := o.get(t.key)
		if !ok {
			continue
		}
		path := name + "." + t.key
		switch t.key {
		case "timeout":
			switch {
			case !v.isInteger():
				return path + " should be integer"
			case v.n < 0:
				return path + " should be >= 0"
			}
		case "req_id":
			switch {
			case v.kind != jsString:
				return path + " should be string"
			case utf8.RuneCountInString(v.s) > 36:
				return path + " should NOT be longer than 36 characters"
			case !uuidRE.MatchString(v.s):
				return path + ` should match format "uuid"`
			}
		case "limit":
			switch {
			case v.kind == jsString && !digitsRE.MatchString(v.s):
				return path + ` should match pattern "^[0-9]+$"`
			case v.kind == jsString:
			case !v.isInteger():
				return path + " should be integer,string"
			case v.n < 0:
				return path + " should be >= 0"
			}
		case "offset":
			switch {
			case v.kind != jsNumber:
				return path + " should be number"
			case v.n < 0:
				return path + " should be >= 0"
			}
		case "sort":
			if msg := checkSort(path, v); msg != "" {
				return msg
			}
		default:
			if !t.ok(v) {
				return path + " should be " + t.want
			}
		}
	}
	return ""
}

var digitsRE = regexp.MustCompile(`^[0-9]+$`)

func checkSortObject(path string, v *jsValue) string {
	if !v.isObject() {
		return path + " should be object"
	}
	if a, ok := v.get("attribute"); ok && a.kind != jsString {
		return path + ".attribute should be string"
	}
	if o, ok := v.get("order"); ok {
		switch {
		case o.kind != jsString:
			return path + ".order should be string"
		case o.s != "ASC" && o.s != "asc" && o.s != "DESC" && o.s != "desc":
			return path + `.order should be equal to one of the allowed values ("ASC", "DESC")`
		}
	}
	return ""
}

// checkSort applies anyOf [array of sort objects, sort object].
func checkSort(path string, v *jsValue) string {
	var first string
	if v.kind == jsArray {
		for i, e := range v.elems {
			if msg := checkSortObject(fmt.Sprintf("%s[%d]", path, i), e); msg != "" {
				first = msg
				break
			}
		}
		if first == "" {
			return ""
		}
	} else {
		first = path + " should be array"
	}
	second := checkSortObject(path, v)
	if second == "" {
		return ""
	}
	return first + ", " + second + ", " + path + " should match some schema in anyOf"
}

var batchOps = map[string]bool{"put": true, "delete": true, "update": true, "deleteMany": true}

// checkRequests validates batch's requests against Moray's schema.
func checkRequests(name string, v *jsValue) string {
	if v.kind != jsArray {
		return name + " should be array"
	}
	for i, r := range v.elems {
		path := fmt.Sprintf("%s[%d]", name, i)
		if !r.isObject() {
			return path + " should be object"
		}
		if _, ok := r.get("bucket"); !ok {
			return path + " should have required property 'bucket'"
		}
		if op, ok := r.get("operation"); ok {
			if op.kind != jsString {
				return path + ".operation should be string"
			}
			if !batchOps[op.s] {
				return path + `.operation should be equal to one of the allowed values ("put", "delete", "update", "deleteMany")`
			}
		}
		for _, k := range [...]string{"bucket", "key", "filter"} {
			if f, ok := r.get(k); ok && f.kind != jsString {
				return path + "." + k + " should be string"
			}
		}
		for _, k := range [...]string{"fields", "value"} {
			if f, ok := r.get(k); ok && !f.isObject() {
				return path + "." + k + " should be object"
			}
		}
		if o, ok := r.get("options"); ok {
			if msg := checkOptions(path+".options", o); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// The RPCs.

func (c *call) ping() {
	if c.check(argSpec{"options", argOptions}) {
		c.rep.end()
	}
}

func (c *call) version() {
	if c.check(argSpec{"options", argOptions}) {
		c.rep.data([]byte(`{"version":2}`))
		c.rep.end()
	}
}

func (c *call) getTokens() {
	if c.check(argSpec{"options", argOptions}) {
		c.rep.fail(newError("Error", "Operation not supported"))
	}
}

func (c *call) createBucket() {
	if !c.check(argSpec{"bucket", argString}, argSpec{"config", argObject}, argSpec{"options", argOptions}) {
		return
	}
	spec, err := parseBucketConfig(c.args[1])
	if err == nil {
		err = c.s.store.createBucket(c.args[0].s, spec)
	}
	if err != nil {
		c.rep.fail(err)
		return
	}
	c.rep.end()
}

// bucketRow is a buckets_config row as getBucket and listBuckets send it:
// index, pre, post and options are JSON text, mtime an ISO date.
func bucketRow(b *bucket) []byte {
	row := jsObj()
	row.set("name", jsStr(b.name))
	row.set("index", jsStr(b.indexJSON))
	row.set("pre", jsStr(b.preJSON))
	row.set("post", jsStr(b.postJSON))
	row.set("options", jsStr(b.optionsJSON))
	row.set("mtime", jsStr(b.mtime.UTC().Format("2006-01-02T15:04:05.000Z")))
	return row.appendJSON(nil)
}

func (c *call) getBucket() {
	// Options first: getBucket is the one RPC whose options lead.
	if !c.check(argSpec{"options", argOptions}, argSpec{"bucket", argString}) {
		return
	}
	c.s.store.mu.RLock()
	b, err := c.s.store.bucketLocked(c.args[1].s)
	var row []byte
	if err == nil {
		row = bucketRow(b)
	}
	c.s.store.mu.RUnlock()
	if err != nil {
		c.rep.fail(err)
		return
	}
	c.rep.data(row)
	c.rep.end()
}

func (c *call) listBuckets() {
	if !c.check(argSpec{"options", argOptions}) {
		return
	}
	c.s.store.mu.RLock()
	var rows [][]byte
	for _, name := range c.s.store.order {
		rows = append(rows, bucketRow(c.s.store.buckets[name]))
	}
	c.s.store.mu.RUnlock()
	for _, r := range rows {
		c.rep.data(r)
	}
	c.rep.end()
}

func (c *call) delBucket() {
	if !c.check(argSpec{"bucket", argString}, argSpec{"options", argOptions}) {
		return
	}
	if err := c.s.store.deleteBucket(c.args[0].s); err != nil {
		c.rep.fail(err)
		return
	}
	c.rep.end()
}

func (c *call) putObject() {
	if !c.check(argSpec{"bucket", argString}, argSpec{"key", argString}, argSpec{"value", argObject}, argSpec{"options", argOptions}) {
		return
	}
	etag, err := c.s.put(c.args[0].s, c.args[1].s, c.args[2], etagCondOf(c.args[3]))
	if err != nil {
		c.rep.fail(err)
		return
	}
	out := jsObj()
	out.set("etag", jsStr(etag))
	c.rep.data(out.appendJSON(nil))
	c.rep.end()
}

// put is one putObject, for the wire and the direct API.
func (s *Server) put(bucketName, key string, v *jsValue, cond etagCond) (string, *fast.Error) {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	b, err := s.store.bucketLocked(bucketName)
	if err != nil {
		return "", err
	}
	t := s.store.begin()
	t.conflict = s.forcedConflict
	o, err := t.put(b, key, v, cond)
	if err != nil {
		return "", err
	}
	t.commit()
	return o.etag, nil
}

func (c *call) getObject() {
	if !c.check(argSpec{"bucket", argString}, argSpec{"key", argString}, argSpec{"options", argOptions}) {
		return
	}
	if nc, _ := c.args[2].get("noCache"); nc == nil || nc.kind != jsBool || !nc.b {
		// Moray answers from a 30-second object cache unless told not to,
		// and that path crashed the real server.
		c.c.Violation(fmt.Sprintf("getObject(%q, %q) without options.noCache=true (msgid %d)", c.args[0].s, c.args[1].s, c.rep.Request().ID))
		return
	}
	rec, err := c.s.getRecord(c.args[0].s, c.args[1].s)
	if err != nil {
		c.rep.fail(err)
		return
	}
	c.rep.data(rec)
	c.rep.end()
}

func (s *Server) lookup(bucketName, key string) (*bucket, *object, *fast.Error) {
	s.store.mu.RLock()
	defer s.store.mu.RUnlock()
	b, err := s.store.bucketLocked(bucketName)
	if err != nil {
		return nil, nil, err
	}
	o := b.objects[key]
	if o == nil {
		return nil, nil, objectNotFound(bucketName, key)
	}
	return b, o, nil
}

func (s *Server) getRecord(bucketName, key string) ([]byte, *fast.Error) {
	b, o, err := s.lookup(bucketName, key)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, len(o.view)+len(o.key)+len(b.name)+160)
	return appendRecord(buf, b.name, o, o.view, countNull, 0), nil
}

func (c *call) delObject() {
	if !c.check(argSpec{"bucket", argString}, argSpec{"key", argString}, argSpec{"options", argOptions}) {
		return
	}
	// Moray checks a truthy options.etag (or _etag) against the row.
	var etag string
	for _, k := range [...]string{"etag", "_etag"} {
		if e, ok := c.args[2].get(k); ok && e.kind == jsString && e.s != "" {
			etag = e.s
			break
		}
	}
	if err := c.s.del(c.args[0].s, c.args[1].s, etag); err != nil {
		c.rep.fail(err)
		return
	}
	c.rep.data([]byte("{}"))
	c.rep.end()
}

func (s *Server) del(bucketName, key, etag string) *fast.Error {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	b, err := s.store.bucketLocked(bucketName)
	if err != nil {
		return err
	}
	t := s.store.begin()
	if err := t.del(b, key, etag); err != nil {
		return err
	}
	t.commit()
	return nil
}

var handledFindOptions = []byte(`{"_handledOptions":["req_id","limit","offset","sort","noLimit","no_count","sql_only","noBucketCache","timeout","requireOnlineReindexing","requireIndexes"]}`)

func (c *call) findObjects() {
	if !c.check(argSpec{"bucket", argString}, argSpec{"filter", argString}, argSpec{"options", argOptions}) {
		return
	}
	opts := c.args[2]
	q := &findQuery{bucket: c.args[0].s, raw: c.args[1].s, limit: 1000}
	f, perr := filter.Parse(q.raw)
	if perr != nil {
		c.rep.fail(invalidQuery(q.raw))
		return
	}
	q.filter = f
	has := func(k string) bool { v, ok := opts.get(k); return ok && truthy(v) }
	if v, ok := opts.get("limit"); ok && truthy(v) {
		q.limit = limitValue(v)
	} else if has("noLimit") {
		q.limit = -1
	}
	if v, ok := opts.get("offset"); ok && truthy(v) {
		q.offset = int64(v.n)
	}
	q.noCount = has("no_count")
	if v, ok := opts.get("sort"); ok {
		items := []*jsValue{v}
		if v.kind == jsArray {
			items = v.elems
		}
		for _, it := range items {
			a, ok := it.get("attribute")
			if !ok || a.s == "" {
				continue
			}
			o, _ := it.get("order")
			q.sort = append(q.sort, sortKeySpec{attr: a.s, desc: o != nil && strings.EqualFold(o.s, "desc")})
		}
	}
	if has("sql_only") {
		c.rep.fail(notImplemented("findObjects with sql_only"))
		return
	}
	if has("requireIndexes") || has("requireOnlineReindexing") {
		if err := c.s.checkIndexes(q); err != nil {
			c.rep.fail(err)
			return
		}
	}
	res, err := c.s.store.find(q)
	if err != nil {
		c.rep.fail(err)
		return
	}
	if internal, ok := opts.get("internalOpts"); ok {
		if sh, ok := internal.get("sendHandledOptions"); ok && sh.kind == jsBool && sh.b {
			c.rep.data(handledFindOptions)
		}
	}
	mode := countValue
	if res.count < 0 {
		mode = countOmit
	}
	var buf []byte
	for _, o := range res.rows {
		if !res.match.Match(&rowRecord{b: res.b, o: o, count: res.count}) {
			continue
		}
		buf = appendRecord(buf[:0], res.b.name, o, findView(o), mode, res.count)
		c.rep.data(buf)
	}
	c.rep.end()
}

// checkIndexes is requireIndexes: every attribute must be indexed or
// internal.
func (s *Server) checkIndexes(q *findQuery) *fast.Error {
	s.store.mu.RLock()
	defer s.store.mu.RUnlock()
	b, err := s.store.bucketLocked(q.bucket)
	if err != nil {
		return err
	}
	// Moray collects the filter's attributes as the keys of an object, so
	// they come out in JavaScript property order: array indexes first.
	attrs := jsObj()
	for _, a := range q.filter.Attributes() {
		attrs.set(a, jsNullValue)
	}
	var unindexed []string
	for _, a := range attrs.keys {
		switch a {
		case "_etag", "_key", "_id", "_mtime", "_txn_snap":
			continue
		}
		if b.indexOf(a) < 0 {
			unindexed = append(unindexed, a)
		}
	}
	if len(unindexed) == 0 {
		return nil
	}
	// The lists are printed with %j, node's util.inspect; moraytest has no
	// reindexing.
	return newError("NotIndexedError", "%s does not have indexes that support %s. Reindexing fields: []. Unindexed fields: %s",
		b.name, q.raw, inspectStrings(unindexed))
}

// truthy is JavaScript truthiness for option values.
func truthy(v *jsValue) bool {
	switch v.kind {
	case jsNull:
		return false
	case jsBool:
		return v.b
	case jsNumber:
		return v.n != 0 && v.n == v.n
	case jsString:
		return v.s != ""
	}
	return true
}

func limitValue(v *jsValue) int64 {
	if v.kind == jsString {
		n, err := strconv.ParseInt(v.s, 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	return int64(v.n)
}

func (c *call) sql() {
	if !c.check(argSpec{"statement", argString}, argSpec{"values", argArray}, argSpec{"options", argOptions}) {
		return
	}
	rows, err := c.s.store.sql(c.args[0].s, c.args[1].elems)
	if err != nil {
		c.rep.fail(err)
		return
	}
	for _, r := range rows {
		c.rep.data(r)
	}
	c.rep.end()
}

func (c *call) batch() {
	if !c.check(argSpec{"requests", argRequests}, argSpec{"options", argOptions}) {
		return
	}
	out, err := c.s.batch(c.args[0].elems, c.args[1])
	if err != nil {
		c.rep.fail(err)
		return
	}
	c.rep.data(out)
	c.rep.end()
}

// batch runs the requests in one transaction: all are applied or none.
func (s *Server) batch(reqs []*jsValue, opts *jsValue) ([]byte, *fast.Error) {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	t := s.store.begin()
	t.conflict = s.forcedConflict
	etags := &jsValue{kind: jsArray, elems: []*jsValue{}}
	for _, r := range reqs {
		bucketName, _ := r.get("bucket")
		b, err := s.store.bucketLocked(bucketName.s)
		if err != nil {
			return nil, err
		}
		op := "put"
		if o, ok := r.get("operation"); ok {
			op = o.s
		}
		own, _ := r.get("options")
		if own == nil {
			own = jsObj()
		}
		// Moray's pitfall: the batch's options are laid over each
		// request's, so a top-level etag replaces every per-request etag.
		merged := own.clone()
		for i, k := range opts.keys {
			merged.set(k, opts.vals[i])
		}
		key, hasKey := r.get("key")
		if !hasKey && (op == "put" || op == "delete") {
			return nil, invocationError("batch: %s request on %s needs a key", op, b.name)
		}
		entry := jsObj()
		entry.set("bucket", jsStr(b.name))
		switch op {
		case "put":
			value, ok := r.get("value")
			if !ok {
				return nil, invocationError("batch: put request for %s::%s needs a value", b.name, key.s)
			}
			o, err := t.put(b, key.s, value, etagCondOf(merged))
			if err != nil {
				return nil, err
			}
			entry.set("etag", jsStr(o.etag))
		case "delete":
			// Deletes check the request's own etag, not the merged one.
			var etag string
			if e, ok := own.get("etag"); ok && e.kind == jsString {
				etag = e.s
			}
			if err := t.del(b, key.s, etag); err != nil {
				return nil, err
			}
		default:
			return nil, notImplemented("batch operation " + strconv.Quote(op))
		}
		entry.set("key", key)
		etags.elems = append(etags.elems, entry)
	}
	t.commit()
	out := jsObj()
	out.set("etags", etags)
	return out.appendJSON(nil), nil
}
