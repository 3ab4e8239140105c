// Package testutil holds the module's test helpers, so that every package
// waits, checks for leaked goroutines and quiets its logs the same way:
//
//   - Eventually, Poll and Receive wait for something another goroutine
//     does, and fail the test when it has not happened by a generous
//     deadline. They wait for events; they measure nothing.
//   - CheckLeaks (per test) and CheckMain (per package) fail when
//     goroutines started by the tests are still running once they end,
//     listing the stacks of just those goroutines (go.uber.org/goleak).
//   - Logger sends a component's logs to the test's log, shown for failed
//     tests and with -v; Discard drops them.
//   - Buffer collects what goroutines write (a command's output, a log)
//     for the test to read while they go on.
package testutil

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Timeout is how long the helpers wait before they fail the test. It is
// generous because the suites run under -race on small, loaded machines
// (an in-process evacuation that takes 20 s alone took over a minute with
// two other packages' tests beside it); a condition that holds ends the
// wait at once, so only failures take long.
const Timeout = 2 * time.Minute

// maxInterval caps the pause between two polls.
const maxInterval = 50 * time.Millisecond

// Eventually calls cond until it returns true, and fails the test
// (t.Fatalf, naming what it waited for) if it still has not after Timeout.
// Call it from the test's goroutine.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Poll(t, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("condition not met")

// Poll calls check until it returns nil, and fails the test if it still
// has not after Timeout, with check's last error: what it saw instead.
// Call it from the test's goroutine.
func Poll(t testing.TB, what string, check func() error) {
	t.Helper()
	PollWithin(t, Timeout, what, check)
}

// PollWithin is Poll with a deadline of its own, for a wait that has a
// bound of its own to check (it is still no way to measure time).
func PollWithin(t testing.TB, within time.Duration, what string, check func() error) {
	t.Helper()
	if err := poll(context.Background(), within, check); err != nil {
		t.Fatalf("waited %v for %s: %v", within, what, err)
	}
}

// poll runs check with growing pauses until it returns nil or within ends.
func poll(ctx context.Context, within time.Duration, check func() error) error {
	deadline := time.Now().Add(within)
	pause := time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, maxInterval)
	}
}

// Receive waits for a value from ch, or for ch to be closed (then it
// returns the zero value: a closed done channel is the event), and fails
// the test if neither happens within Timeout.
func Receive[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	return receive(t, Timeout, what, ch)
}

func receive[T any](t testing.TB, within time.Duration, what string, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("waited %v for %s", within, what)
	}
	var zero T
	return zero // after Fatalf, only when t is not a real *testing.T
}

// CheckLeaks makes the test fail if goroutines it started are still
// running after every cleanup registered later has run (cleanups run last
// registered first, so call CheckLeaks at the start of the test). It waits
// up to Timeout for them to end. Tests calling it must not run in parallel
// with others: their goroutines would count.
func CheckLeaks(t testing.TB) {
	t.Helper()
	checkLeaks(t, Timeout)
}

func checkLeaks(t testing.TB, within time.Duration) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if err := findLeaks(within, ignore); err != nil {
			t.Errorf("goroutines leaked by the test: %v", err)
		}
	})
}

// CheckMain runs the package's tests and returns their exit code, or 1
// when they passed but left goroutines running. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testutil.CheckMain(m)) }
func CheckMain(m *testing.M) int {
	ignore := goleak.IgnoreCurrent()
	code := m.Run()
	if code != 0 {
		return code
	}
	if err := findLeaks(Timeout, ignore); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: goroutines leaked by the tests: %v\n", err)
		return 1
	}
	return 0
}

// findLeaks asks goleak until it finds no leak or within passes. A single
// goleak.Find gives up after half a second, too soon for goroutines that
// are still winding down on a loaded machine.
func findLeaks(within time.Duration, opts ...goleak.Option) error {
	return poll(context.Background(), within, func() error { return goleak.Find(opts...) })
}

// Discard returns a logger that drops every record.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Logger returns a logger that writes Info and higher records to t.Log,
// which shows them for failed tests and with -v. Records logged after the
// test ended (by a goroutine still winding down) are dropped, since
// t.Log would panic.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testWriter passes each line written to t.Log until the test ends.
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// Buffer is an io.Writer that a test may read (String) while other
// goroutines write to it: the output of a command run in-process, a
// server's log.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Take returns everything written since the last Take and empties the
// buffer: a test reading a log in steps.
func (b *Buffer) Take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.b.String()
	b.b.Reset()
	return s
}

// Capture returns the two directions of an exchange recorded on the wire
// (moray/fast/testdata/*-capture.txt: each direction's bytes in hex on a
// "full hex: " line), request first.
func Capture(t testing.TB, path string) (request, reply []byte) {
	t.Helper()
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for line := range strings.Lines(string(f)) {
		if rest, ok := strings.CutPrefix(line, "full hex: "); ok {
			b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(rest), " ", ""))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			frames = append(frames, b)
		}
	}
	if len(frames) != 2 {
		t.Fatalf("%s: found %d directions, want 2", path, len(frames))
	}
	return frames[0], frames[1]
}

// Errors is a testing.TB whose Errorf records the message instead of
// failing the test: for checking what code reports through a testing.TB it
// is given (a fake server's strict mode). Everything else goes to the TB
// it wraps. It is safe for concurrent use.
type Errors struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

// Errorf records the message.
func (e *Errors) Errorf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.msgs = append(e.msgs, fmt.Sprintf(format, args...))
}

// Messages returns the messages recorded, in order.
func (e *Errors) Messages() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.msgs)
}
