// Package logging is how the module's commands log: a log/slog Handler
// writing bunyan records, the format of Triton's services, which the
// bunyan CLI and Manta's log tooling read; a checker of that format for
// tests; and a Summarizer that turns a storm of identical failures (one
// per object of a dead source shark, say) into a line per interval.
//
// # The record
//
// Each record is one line of JSON, in node-bunyan's order:
//
//	{"name":"rebalancer","hostname":"a1b2","pid":4242,"component":"api","job":"5f0e...",
//	 "in_ms":5000,"err":"dial tcp 10.0.0.9:80: connect: connection refused",
//	 "level":50,"msg":"cannot resume job","time":"2026-01-02T03:04:05.678Z","v":0}
//
// with bunyan's core fields (node-bunyan's README, "Core fields"; the CLI
// skips a line lacking one of v, level, name, hostname, pid, time or msg):
// v is 0; level is a number, trace 10, debug 20, info 30, warn 40, error 50,
// fatal 60 (slog levels between two of these take the lower: slog.LevelInfo
// is 30, LevelWarn 40, LevelError 50, and [LevelTrace] and [LevelFatal] name
// the other two); name is the service or command; time is UTC with
// milliseconds, as JavaScript's Date.toISOString writes it.
//
// Attributes follow these rules, so that a record never needs explaining:
//
//   - A key appears once per object. A later attribute replaces an earlier
//     one of the same key, and takes its place at the end: Logger.With(
//     "component", "api") on a logger that has a component replaces it, and
//     an attribute of the log call replaces one of With.
//   - Groups nest: slog.Group("req", ...) and Logger.WithGroup("req") write
//     "req":{...}; an empty group is left out.
//   - A time.Duration is written in milliseconds (a number, fractions down
//     to the microsecond) under its key with "_ms" appended, unless the key
//     already ends in "_ms": "in", 5*time.Second becomes "in_ms":5000.
//   - An error is written as its message, a string.
//   - A time.Time is written like time.
//   - Any other value is written as encoding/json writes it, or, if it
//     cannot be, as fmt's %+v.
//   - An attribute at the top level named like a core field (v, level, name,
//     hostname, pid, time, msg) gets "_" appended, so that the core fields
//     keep their meaning.
//
// # Streams
//
// The long-running services, rebalancer-manager and rebalancer-agent, log
// to standard output, as the legacy rebalancer and node-bunyan services do
// (SMF sends both standard output and standard error to the service's log,
// /var/svc/log/...). Commands whose standard output is their result
// (sharkspotter, rebalancer-demo, rebalancer-bench) log to standard error;
// rebalancer-crash keeps its fleet's log in each run's directory.
package logging

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
)

// Levels bunyan has and slog does not name.
const (
	// LevelTrace is bunyan's trace (10): below slog.LevelDebug.
	LevelTrace = slog.Level(-8)
	// LevelFatal is bunyan's fatal (60): above slog.LevelError.
	LevelFatal = slog.Level(12)
)

// BunyanLevel returns the bunyan level number of l: 10 (trace) to 60
// (fatal). A slog level between two bunyan levels takes the lower one.
func BunyanLevel(l slog.Level) int {
	switch {
	case l < slog.LevelDebug:
		return 10
	case l < slog.LevelInfo:
		return 20
	case l < slog.LevelWarn:
		return 30
	case l < slog.LevelError:
		return 40
	case l < LevelFatal:
		return 50
	}
	return 60
}

// ParseLevel reads a level name: trace, debug, info, warn (or warning),
// error, fatal (or critical, the legacy's name), in any case.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace":
		return LevelTrace, nil
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	case "fatal", "critical":
		return LevelFatal, nil
	}
	return 0, fmt.Errorf("unknown log level %q: want trace, debug, info, warn, error or fatal", s)
}

// Options configure a Handler.
type Options struct {
	// Name is the record's name: the service or command (required by
	// bunyan; "rebalancer" for the manager, as the legacy names it).
	Name string
	// Level is the lowest level written (default slog.LevelInfo). A
	// *slog.LevelVar changes it while the program runs.
	Level slog.Leveler
	// Hostname and PID default to this host's name and this process's id.
	Hostname string
	PID      int
}

// Handler is a slog.Handler writing bunyan records, one line each, with a
// single Write per record. It is safe for concurrent use; handlers derived
// from it with WithAttrs and WithGroup share its writer and its lock.
type Handler struct {
	w      io.Writer
	mu     *sync.Mutex
	level  slog.Leveler
	prefix []byte   // `"name":...,"hostname":...,"pid":N`
	fields []field  // from WithAttrs, top level; groups nest
	groups []string // open groups (WithGroup), outermost first
}

// field is an attribute ready to write: an encoded JSON value, or a group
// of fields.
type field struct {
	key   string
	value []byte  // JSON; nil for a group
	group []field // for a group
}

// NewHandler returns a Handler writing to w.
func NewHandler(w io.Writer, o Options) *Handler {
	if o.Level == nil {
		o.Level = slog.LevelInfo
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
		if o.Hostname == "" {
			o.Hostname = "localhost"
		}
	}
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	if o.Name == "" {
		o.Name = "unknown"
	}
	var p []byte
	p = append(p, `"name":`...)
	p = jsonstr.AppendGo(p, o.Name)
	p = append(p, `,"hostname":`...)
	p = jsonstr.AppendGo(p, o.Hostname)
	p = append(p, `,"pid":`...)
	p = strconv.AppendInt(p, int64(o.PID), 10)
	return &Handler{w: w, mu: new(sync.Mutex), level: o.Level, prefix: p}
}

// New returns a logger writing bunyan records named name to w, from level
// on (nil: info).
func New(w io.Writer, name string, level slog.Leveler) *slog.Logger {
	return slog.New(NewHandler(w, Options{Name: name, Level: level}))
}

// Enabled reports whether records at level l are written.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// WithAttrs returns a handler whose records carry attrs too, replacing
// earlier attributes of the same keys.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.fields = addAt(h.fields, h.groups, attrs)
	return &h2
}

// WithGroup returns a handler that puts the attributes that follow in a
// group.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.groups = append(slices.Clip(h.groups), name)
	return &h2
}

// Handle writes r as one line.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	bp := bufPool.Get().(*[]byte)
	buf := append((*bp)[:0], '{')
	buf = append(buf, h.prefix...)
	if !h.writeFlat(&buf, r) {
		// Groups: build the tree of the record's fields.
		fields := h.fields
		if r.NumAttrs() > 0 {
			attrs := make([]slog.Attr, 0, r.NumAttrs())
			r.Attrs(func(a slog.Attr) bool {
				attrs = append(attrs, a)
				return true
			})
			fields = addAt(fields, h.groups, attrs)
		}
		buf = appendFields(buf, fields, true)
	}
	t := r.Time
	if t.IsZero() {
		t = time.Now() // bunyan requires a time
	}
	buf = append(buf, `,"level":`...)
	buf = strconv.AppendInt(buf, int64(BunyanLevel(r.Level)), 10)
	buf = append(buf, `,"msg":`...)
	buf = jsonstr.AppendGo(buf, r.Message)
	buf = append(buf, `,"time":`...)
	buf = appendTime(buf, t)
	buf = append(buf, `,"v":0}`...)
	buf = append(buf, '\n')
	h.mu.Lock()
	_, err := h.w.Write(buf)
	h.mu.Unlock()
	if cap(buf) <= 64<<10 {
		*bp = buf
		bufPool.Put(bp)
	}
	return err
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeFlat writes the handler's fields and r's attributes when no group
// is involved (the common case), without building a tree, and reports
// whether it could.
func (h *Handler) writeFlat(buf *[]byte, r slog.Record) bool {
	if len(h.groups) > 0 || r.NumAttrs() > 16 {
		return false
	}
	var (
		stack [16]slog.Attr
		keys  [16]string
		n     int
		flat  = true
	)
	r.Attrs(func(a slog.Attr) bool {
		a.Value = a.Value.Resolve()
		if a.Value.Kind() == slog.KindGroup {
			flat = false
			return false
		}
		stack[n] = a
		keys[n] = flatKey(a)
		n++
		return true
	})
	if !flat {
		return false
	}
	attrs, names := stack[:n], keys[:n]
	b := *buf
	for _, f := range h.fields {
		if !slices.Contains(names, f.key) {
			b = appendField(b, f)
		}
	}
	for i, a := range attrs {
		if names[i] == "" || slices.Contains(names[i+1:], names[i]) {
			continue // empty, or replaced by a later one
		}
		b = append(b, ',')
		b = jsonstr.AppendGo(b, names[i])
		b = append(b, ':')
		b = appendValue(b, a.Value)
	}
	*buf = b
	return true
}

// appendField writes one field of the tree with its leading comma.
func appendField(b []byte, f field) []byte {
	return appendFields(b, []field{f}, true)
}

// coreFields are bunyan's own keys, which attributes at the top level may
// not take.
var coreFields = map[string]bool{"v": true, "level": true, "name": true, "hostname": true, "pid": true, "time": true, "msg": true}

// addAt returns fields with attrs set inside the group path, copying what
// it changes: the handler's fields are shared by the handlers derived from
// it and by concurrent Handle calls.
func addAt(fields []field, path []string, attrs []slog.Attr) []field {
	out := slices.Clone(fields)
	if len(path) > 0 {
		i := slices.IndexFunc(out, func(f field) bool { return f.key == path[0] })
		var inner []field
		if i >= 0 && out[i].value == nil {
			inner = out[i].group
		}
		g := field{key: path[0], group: addAt(inner, path[1:], attrs)}
		if len(g.group) == 0 {
			return out
		}
		if i >= 0 {
			out[i] = g
		} else {
			out = append(out, g)
		}
		return out
	}
	for _, a := range attrs {
		out = set(out, a, len(path) == 0)
	}
	return out
}

// set adds one attribute to fields (which it owns), replacing a field of
// the same key; groups of the same key merge.
func set(fields []field, a slog.Attr, top bool) []field {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		attrs := v.Group()
		if a.Key == "" { // an inline group: its attributes join this level
			for _, inner := range attrs {
				fields = set(fields, inner, top)
			}
			return fields
		}
		key := fieldKey(a.Key, top)
		i := slices.IndexFunc(fields, func(f field) bool { return f.key == key })
		var inner []field
		if i >= 0 && fields[i].value == nil {
			inner = slices.Clone(fields[i].group)
		}
		for _, ga := range attrs {
			inner = set(inner, ga, false)
		}
		if len(inner) == 0 {
			return fields
		}
		return put(fields, i, field{key: key, group: inner})
	}
	if a.Key == "" {
		return fields
	}
	key := a.Key
	if v.Kind() == slog.KindDuration && !strings.HasSuffix(key, "_ms") {
		key += "_ms"
	}
	key = fieldKey(key, top)
	i := slices.IndexFunc(fields, func(f field) bool { return f.key == key })
	return put(fields, i, field{key: key, value: appendValue(nil, v)})
}

// put sets f at the end of fields, removing field i (the one it replaces,
// or -1): a replaced attribute moves to where its replacement was added.
func put(fields []field, i int, f field) []field {
	if i >= 0 {
		fields = slices.Delete(fields, i, i+1)
	}
	return append(fields, f)
}

// flatKey is the key a resolved, non-group attribute at the top level is
// written under ("" for none).
func flatKey(a slog.Attr) string {
	if a.Key == "" {
		return ""
	}
	key := a.Key
	if a.Value.Kind() == slog.KindDuration && !strings.HasSuffix(key, "_ms") {
		key += "_ms"
	}
	return fieldKey(key, true)
}

func fieldKey(key string, top bool) string {
	if top && coreFields[key] {
		return key + "_"
	}
	return key
}

// appendFields writes fields as `,"k":v` pairs, groups as objects.
func appendFields(buf []byte, fields []field, leadingComma bool) []byte {
	for i, f := range fields {
		if leadingComma || i > 0 {
			buf = append(buf, ',')
		}
		buf = jsonstr.AppendGo(buf, f.key)
		buf = append(buf, ':')
		if f.value != nil {
			buf = append(buf, f.value...)
			continue
		}
		buf = append(buf, '{')
		buf = appendFields(buf, f.group, false)
		buf = append(buf, '}')
	}
	return buf
}

// appendValue writes a resolved, non-group value as JSON.
func appendValue(buf []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return jsonstr.AppendGo(buf, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(buf, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(buf, v.Uint64(), 10)
	case slog.KindFloat64:
		return appendFloat(buf, v.Float64())
	case slog.KindBool:
		return strconv.AppendBool(buf, v.Bool())
	case slog.KindDuration:
		ms := float64(v.Duration().Round(time.Microsecond)) / float64(time.Millisecond)
		return appendFloat(buf, ms)
	case slog.KindTime:
		return appendTime(buf, v.Time())
	}
	switch x := v.Any().(type) {
	case nil:
		return append(buf, "null"...)
	case error:
		return jsonstr.AppendGo(buf, x.Error())
	case json.Marshaler, fmt.Stringer:
		// Marshalers say how they want to look; Stringers that are not
		// (net.IP, say) read better as text than as their fields.
		if _, ok := x.(json.Marshaler); !ok {
			return jsonstr.AppendGo(buf, x.(fmt.Stringer).String())
		}
	}
	b, err := json.Marshal(v.Any())
	if err != nil {
		return jsonstr.AppendGo(buf, fmt.Sprintf("%+v", v.Any()))
	}
	return append(buf, b...)
}

// appendFloat writes f as a JSON number; JSON has none for NaN and the
// infinities, which become strings.
func appendFloat(buf []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return jsonstr.AppendGo(buf, strconv.FormatFloat(f, 'g', -1, 64))
	}
	return strconv.AppendFloat(buf, f, 'f', -1, 64)
}

// appendTime writes t as Date.toISOString does: UTC, milliseconds, Z.
func appendTime(buf []byte, t time.Time) []byte {
	buf = append(buf, '"')
	buf = t.UTC().AppendFormat(buf, "2006-01-02T15:04:05.000Z")
	return append(buf, '"')
}
