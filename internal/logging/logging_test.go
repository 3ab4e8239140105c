package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"
	"time"
)

var when = time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.FixedZone("X", 3600))

// line logs one record at info through a handler with fixed hostname and
// pid, after prepare, and returns the line written.
func line(t *testing.T, prepare func(*slog.Logger) *slog.Logger, msg string, args ...any) string {
	t.Helper()
	var buf bytes.Buffer
	h := NewHandler(&buf, Options{Name: "test", Hostname: "host", PID: 42, Level: LevelTrace})
	l := slog.New(h)
	if prepare != nil {
		l = prepare(l)
	}
	r := slog.NewRecord(when, slog.LevelInfo, msg, 0)
	r.Add(args...)
	if err := l.Handler().Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("not one line: %q", out)
	}
	if _, err := ParseRecord([]byte(out)); err != nil {
		t.Errorf("not a bunyan record: %v\n%s", err, out)
	}
	return strings.TrimSuffix(out, "\n")
}

const head = `{"name":"test","hostname":"host","pid":42`
const tail = `"level":30,"msg":"m","time":"2026-01-02T02:04:05.678Z","v":0}`

func TestRecordFormat(t *testing.T) {
	type stringer struct{ net.IP }
	ch := make(chan int)
	tests := []struct {
		name    string
		prepare func(*slog.Logger) *slog.Logger
		args    []any
		want    string // between head and tail
	}{
		{"no attributes", nil, nil, ","},
		{"scalars", nil, []any{"s", "x\"\n\t\x01é\u2028\xff", "i", -3, "u", uint64(7), "f", 1.5, "b", true},
			`,"s":"x\"\n\t\u0001é\u2028\ufffd","i":-3,"u":7,"f":1.5,"b":true,`},
		{"backspace and form feed as JSON.stringify writes them", nil, []any{"s", "\b\f"}, `,"s":"\b\f",`},
		{"durations in milliseconds", nil, []any{"in", 5 * time.Second, "took", 1500 * time.Microsecond, "wait_ms", time.Minute, "tiny", time.Nanosecond},
			`,"in_ms":5000,"took_ms":1.5,"wait_ms":60000,"tiny_ms":0,`},
		{"errors as strings", nil, []any{"err", fmt.Errorf("job j: %w", os.ErrNotExist), "none", error(nil)},
			`,"err":"job j: file does not exist","none":null,`},
		{"times as bunyan's", nil, []any{"at", when}, `,"at":"2026-01-02T02:04:05.678Z",`},
		{"json and stringers", nil, []any{"list", []string{"a", "b"}, "ip", net.ParseIP("10.0.0.9"), "raw", json.RawMessage(`{"k":1}`), "wrapped", stringer{net.ParseIP("::1")}},
			`,"list":["a","b"],"ip":"10.0.0.9","raw":{"k":1},"wrapped":"::1",`},
		{"unencodable", nil, []any{"nan", math.NaN(), "ch", ch}, `,"nan":"NaN","ch":"` + fmt.Sprintf("%+v", ch) + `",`},
		{"later With replaces earlier", func(l *slog.Logger) *slog.Logger {
			return l.With("component", "manager", "job", "a").With("component", "api")
		}, nil, `,"job":"a","component":"api",`},
		{"call replaces With", func(l *slog.Logger) *slog.Logger { return l.With("job", "a", "shark", "s") }, []any{"job", "b"},
			`,"shark":"s","job":"b",`},
		{"two of a key in one call", nil, []any{"k", 1, "k", 2}, `,"k":2,`},
		{"core field names kept for bunyan", nil, []any{"name", "obj", "level", "x", "time", 1, "msg", "m2", "v", 9, "pid", 1, "hostname", "h"},
			`,"name_":"obj","level_":"x","time_":1,"msg_":"m2","v_":9,"pid_":1,"hostname_":"h",`},
		{"core field names inside groups are free", nil, []any{slog.Group("req", "name", "n", "time", 2)}, `,"req":{"name":"n","time":2},`},
		{"groups nest and merge", func(l *slog.Logger) *slog.Logger { return l.With(slog.Group("g", "a", 1)) }, []any{slog.Group("g", "b", 2), "c", 3},
			`,"g":{"a":1,"b":2},"c":3,`},
		{"WithGroup holds the call's attributes", func(l *slog.Logger) *slog.Logger {
			return l.With("top", 1).WithGroup("req").With("id", "r1").WithGroup("inner")
		}, []any{"k", "v"}, `,"top":1,"req":{"id":"r1","inner":{"k":"v"}},`},
		{"empty groups left out", func(l *slog.Logger) *slog.Logger { return l.WithGroup("g") }, []any{slog.Group("e")}, `,`},
		{"inline group", nil, []any{slog.Group("", "a", 1), "", "dropped"}, `,"a":1,`},
		{"a value replaces a group and back", func(l *slog.Logger) *slog.Logger { return l.With(slog.Group("x", "a", 1)) }, []any{"x", 2},
			`,"x":2,`},
		{"log valuers resolved", nil, []any{"lv", valuer{}}, `,"lv":"resolved",`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := line(t, tt.prepare, "m", tt.args...)
			if want := head + tt.want + tail; got != want {
				t.Errorf("\n got %s\nwant %s", got, want)
			}
		})
	}
}

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.StringValue("resolved") }

// Derived handlers do not change each other's fields.
func TestDerivedHandlersShareNothing(t *testing.T) {
	var base *slog.Logger
	prep := func(l *slog.Logger) *slog.Logger {
		base = l.With("a", 1, slog.Group("g", "x", 1))
		return base
	}
	line(t, prep, "m")
	var buf bytes.Buffer
	h := base.Handler().(*Handler)
	h.w = &buf
	l1 := slog.New(h).With("a", 2, slog.Group("g", "y", 2))
	l2 := slog.New(h).WithGroup("g").With("z", 3)
	for _, l := range []*slog.Logger{l1, l2, slog.New(h)} {
		l.Info("m")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{`"a":2,"g":{"x":1,"y":2}`, `"a":1,"g":{"x":1,"z":3}`, `"a":1,"g":{"x":1}`}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s\nlacks %s", i, lines[i], w)
		}
	}
}

func TestLevels(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  int
	}{
		{LevelTrace, 10}, {LevelTrace - 10, 10}, {slog.LevelDebug, 20}, {slog.LevelDebug + 1, 20}, {slog.LevelInfo, 30},
		{slog.LevelWarn, 40}, {slog.LevelError - 1, 40}, {slog.LevelError, 50}, {LevelFatal, 60}, {LevelFatal + 8, 60},
	}
	for _, tt := range tests {
		if got := BunyanLevel(tt.level); got != tt.want {
			t.Errorf("BunyanLevel(%v) = %d, want %d", tt.level, got, tt.want)
		}
	}
	for name, want := range map[string]slog.Level{"trace": LevelTrace, "DEBUG": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn,
		"warning": slog.LevelWarn, "error": slog.LevelError, "fatal": LevelFatal, "critical": LevelFatal} {
		if got, err := ParseLevel(name); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := ParseLevel("loud"); err == nil || !strings.Contains(err.Error(), "trace, debug, info") {
		t.Errorf("ParseLevel(loud): %v", err)
	}

	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelWarn)
	l := New(&buf, "x", lv)
	l.Info("hidden")
	l.Warn("shown")
	lv.Set(slog.LevelDebug)
	l.Debug("shown too")
	recs, err := Check(&buf)
	if err != nil || len(recs) != 2 || recs[0].Level != 40 || recs[1].Level != 20 || recs[1].Msg != "shown too" {
		t.Errorf("records %+v, %v", recs, err)
	}
}

// The standard library's handler conformance suite. Bunyan requires a time
// on every record, so a record without one gets the current time where
// slog would leave it out.
func TestSlogConformance(t *testing.T) {
	var buf bytes.Buffer
	slogtest.Run(t, func(*testing.T) slog.Handler {
		buf.Reset()
		return NewHandler(&buf, Options{Name: "t"})
	}, func(t *testing.T) map[string]any {
		rec, err := ParseRecord(buf.Bytes())
		if err != nil {
			t.Fatalf("%v: %s", err, buf.String())
		}
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(t.Name(), "/zero-time") {
			if time.Since(rec.Time) > time.Hour {
				t.Errorf("zero time written as %v, not now", rec.Time)
			}
			delete(m, "time")
		}
		return m
	})
}

func TestParseRecordRejects(t *testing.T) {
	good := `{"name":"n","hostname":"h","pid":1,"level":30,"msg":"m","time":"2026-01-02T03:04:05.678Z","v":0}`
	if _, err := ParseRecord([]byte(good)); err != nil {
		t.Fatalf("good record refused: %v", err)
	}
	tests := []struct {
		line, want string
	}{
		{`{"level":"INFO","msg":"m"}`, "level is INFO"},
		{strings.Replace(good, `"v":0`, `"v":1`, 1), "v is 1"},
		{strings.Replace(good, `"level":30`, `"level":35`, 1), "level 35"},
		{strings.Replace(good, `"pid":1`, `"pid":"1"`, 1), "pid is 1, not a number"},
		{strings.Replace(good, `"hostname":"h"`, `"hostname":""`, 1), "hostname"},
		{strings.Replace(good, `"name":"n",`, ``, 1), "name"},
		{strings.Replace(good, `"msg":"m",`, ``, 1), "no msg"},
		{strings.Replace(good, `.678Z`, `Z`, 1), "milliseconds"},
		{strings.Replace(good, `.678Z`, `.678+01:00`, 1), "milliseconds"},
		{strings.Replace(good, `"v":0`, `"v":0,"component":"a","component":"b"`, 1), `key "component" twice in the record`},
		{strings.Replace(good, `"v":0`, `"v":0,"req":{"a":1,"a":2}`, 1), `key "a" twice in the record.req`},
		{strings.Replace(good, `"v":0`, `"v":0,"in_ms":"5s"`, 1), "in_ms is"},
		{strings.Replace(good, `"v":0`, `"v":0,"g":{"took_ms":"1s"}`, 1), "g.took_ms is"},
		{good + ` {}`, "more than one"},
		{`not json`, "not a JSON object"},
	}
	for _, tt := range tests {
		_, err := ParseRecord([]byte(tt.line))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s:\n error %v, want %q", tt.line, err, tt.want)
		}
	}
	if _, err := Check(strings.NewReader(good + "\n\n" + good + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("Check of an empty line: %v", err)
	}
}

// Lines from concurrent goroutines never interleave.
func TestConcurrentWrites(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "c", nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			gl := l.With("g", g)
			for i := range 200 {
				gl.Info(strings.Repeat("x", i), "i", i, "err", errors.New("e"))
			}
		})
	}
	wg.Wait()
	recs, err := Check(&buf)
	if err != nil || len(recs) != 1600 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
}

// The agent's per-task line, through this handler and, as the baseline,
// through slog's JSON handler.
func BenchmarkHandler(b *testing.B) {
	for _, h := range []struct {
		name string
		h    slog.Handler
	}{
		{"bunyan", NewHandler(discard{}, Options{Name: "bench"})},
		{"slog-json", slog.NewJSONHandler(discard{}, nil)},
	} {
		b.Run(h.name, func(b *testing.B) {
			l := slog.New(h.h).With("component", "agent", "assignment", "4f1c2b3a-0000-4000-8000-000000000000")
			err := errors.New("dial tcp 10.0.0.9:80: connect: connection refused")
			b.ReportAllocs()
			for b.Loop() {
				l.Warn("task failed", "object", "0c1d2e3f-0000-4000-8000-000000000000", "owner", "a3f0", "source", "2.stor.demo.example",
					"status", "source_other_error", "err", err, "took", 3*time.Millisecond)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
