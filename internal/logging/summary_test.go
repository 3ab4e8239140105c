package logging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// fakeTimers hands the Summarizer timers that fire when the test says.
type fakeTimers struct {
	mu      sync.Mutex
	pending []*fakeTimer
}

type fakeTimer struct {
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool { s := !t.stopped; t.stopped = true; return s }

func (ft *fakeTimers) after(_ time.Duration, f func()) stopper {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	t := &fakeTimer{f: f}
	ft.pending = append(ft.pending, t)
	return t
}

// fire runs every timer pending now (not those they start).
func (ft *fakeTimers) fire() {
	ft.mu.Lock()
	ts := ft.pending
	ft.pending = nil
	ft.mu.Unlock()
	for _, t := range ts {
		if !t.stopped {
			t.stopped = true
			t.f()
		}
	}
}

// takeRecords parses and empties buf, which timers' goroutines write.
func takeRecords(t *testing.T, buf *testutil.Buffer) []Record {
	t.Helper()
	recs, err := Check(strings.NewReader(buf.Take()))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func newTestSummarizer(level slog.Level) (*Summarizer, *testutil.Buffer, *fakeTimers) {
	buf := &testutil.Buffer{}
	s := NewSummarizer(New(buf, "t", level), time.Minute)
	ft := &fakeTimers{}
	s.after = ft.after
	return s, buf, ft
}

func refused(shark string) error {
	return fmt.Errorf("download %s/obj: %w", shark, &net.OpError{Op: "dial", Net: "tcp",
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}})
}

func TestSummarizer(t *testing.T) {
	ctx := context.Background()
	s, buf, timers := newTestSummarizer(slog.LevelInfo)
	warn := func(obj string, err error) { s.Log(ctx, slog.LevelWarn, "task failed", err, "object", obj) }

	// The first of a kind is logged as given, the rest are counted.
	for i := range 5 {
		warn(fmt.Sprint("o", i), refused("2.stor"))
	}
	warn("x", errors.New("source answered 404 for 3f0c1d2e-0000-4000-8000-000000000001"))
	s.Log(ctx, slog.LevelError, "task failed", refused("2.stor"), "object", "e") // another level, another kind
	s.Log(ctx, slog.LevelDebug, "task failed", refused("2.stor"), "object", "d") // below the level: nothing
	recs := takeRecords(t, buf)
	if len(recs) != 3 {
		t.Fatalf("%d lines before the interval ends, want 3: %+v", len(recs), recs)
	}
	if r := recs[0]; r.Level != 40 || r.Fields["object"] != "o0" || !strings.Contains(r.Fields["err"].(string), "connection refused") {
		t.Errorf("first line %+v", r)
	}

	// The interval ends: one summary for the group with repeats.
	timers.fire()
	recs = takeRecords(t, buf)
	if len(recs) != 1 {
		t.Fatalf("%d summaries, want 1: %+v", len(recs), recs)
	}
	sum := recs[0]
	first, _ := sum.Fields["first"].(map[string]any)
	last, _ := sum.Fields["last"].(map[string]any)
	if sum.Msg != "task failed" || sum.Level != 40 || fmt.Sprint(sum.Fields["count"]) != "4" || sum.Fields["cause"] != "connection refused" ||
		first["object"] != "o1" || last["object"] != "o4" || !strings.Contains(fmt.Sprint(last["err"]), "connection refused") ||
		fmt.Sprint(sum.Fields["summary_ms"]) != "60000" {
		t.Errorf("summary %+v", sum)
	}

	// A storm goes on: a line per interval.
	warn("o5", refused("2.stor"))
	warn("o6", refused("2.stor"))
	timers.fire()
	if recs = takeRecords(t, buf); len(recs) != 1 || fmt.Sprint(recs[0].Fields["count"]) != "2" {
		t.Errorf("second interval: %+v", recs)
	}
	// A quiet interval ends the group; the next occurrence is logged as given.
	timers.fire()
	timers.fire()
	if recs = takeRecords(t, buf); len(recs) != 0 {
		t.Errorf("quiet intervals logged %+v", recs)
	}
	warn("o7", refused("2.stor"))
	if recs = takeRecords(t, buf); len(recs) != 1 || recs[0].Fields["object"] != "o7" || recs[0].Fields["count"] != nil {
		t.Errorf("after a quiet interval: %+v", recs)
	}

	// Flush writes what is pending; Close makes every occurrence a line.
	warn("o8", refused("2.stor"))
	s.Flush(ctx)
	if recs = takeRecords(t, buf); len(recs) != 1 || fmt.Sprint(recs[0].Fields["count"]) != "1" {
		t.Errorf("flush: %+v", recs)
	}
	timers.fire() // stopped timers do nothing
	s.Close()
	warn("o9", refused("2.stor"))
	warn("o10", refused("2.stor"))
	if recs = takeRecords(t, buf); len(recs) != 2 {
		t.Errorf("after Close: %+v", recs)
	}
}

// Groups are bounded: causes beyond MaxGroups share one.
func TestSummarizerBounded(t *testing.T) {
	ctx := context.Background()
	s, buf, timers := newTestSummarizer(slog.LevelInfo)
	for i := range MaxGroups + 10 {
		s.Log(ctx, slog.LevelWarn, "failed", errors.New(strings.Repeat("x", i+1)))
	}
	if len(s.groups) != MaxGroups+1 {
		t.Errorf("%d groups", len(s.groups))
	}
	timers.fire()
	recs := takeRecords(t, buf)
	// Each group's first line, the shared group's first line, its summary.
	if n := len(recs); n != MaxGroups+2 {
		t.Fatalf("%d lines, want %d", n, MaxGroups+2)
	}
	if sum := recs[len(recs)-1]; sum.Fields["cause"] != "other" || fmt.Sprint(sum.Fields["count"]) != "9" {
		t.Errorf("overflow summary %+v", sum)
	}
}

// With real timers a summary comes by itself once the interval is over.
func TestSummarizerTimer(t *testing.T) {
	buf := &testutil.Buffer{}
	written := make(chan struct{}, 10)
	s := NewSummarizer(slog.New(notify{NewHandler(buf, Options{Name: "t"}), written}), 20*time.Millisecond)
	defer s.Close()
	for i := range 3 {
		s.Log(context.Background(), slog.LevelWarn, "failed", refused("2.stor"), "i", i)
	}
	for range 2 {
		select {
		case <-written:
		case <-time.After(10 * time.Second):
			t.Fatal("no summary 10s after a 20ms interval")
		}
	}
	recs := takeRecords(t, buf)
	if len(recs) != 2 || fmt.Sprint(recs[1].Fields["count"]) != "2" {
		t.Errorf("%+v", recs)
	}
}

// notify signals each record handled.
type notify struct {
	*Handler
	c chan struct{}
}

func (n notify) Handle(ctx context.Context, r slog.Record) error {
	defer func() { n.c <- struct{}{} }()
	return n.Handler.Handle(ctx, r)
}

func TestCause(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{refused("1.stor"), "connection refused"},
		{fmt.Errorf("a: %w", errors.Join(os.ErrNotExist, os.ErrPermission)), "file does not exist"},
		{errors.New("GET http://2.stor.demo.example/0c1d2e3f-0000-4000-8000-000000000000: status 503"),
			"GET http://#.stor.demo.example/<uuid>: status #"},
		{errors.New("md5 d41d8cd98f00b204e9800998ecf8427e, want 900150983cd24fb0d6963f7d28e17f72"), "md5 <hex>, want <hex>"},
	}
	for _, tt := range tests {
		if got := Cause(tt.err); got != tt.want {
			t.Errorf("Cause(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
