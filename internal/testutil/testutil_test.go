package testutil

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeT records what a helper reports instead of failing the real test.
// Fatalf ends the goroutine, as the real one does; run helpers that may
// call it with run.
type fakeT struct {
	testing.TB
	mu       sync.Mutex
	fatal    string
	errors   []string
	logs     []string
	cleanups []func()
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *fakeT) Log(args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprint(args...))
}

func (f *fakeT) Cleanup(c func()) { f.cleanups = append(f.cleanups, c) }

func (f *fakeT) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// run calls helper on its own goroutine, which a Fatalf ends.
func (f *fakeT) run(helper func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		helper()
	}()
	<-done
}

func TestPollWithin(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(calls int) error
		fatal string // "" means it must pass
	}{
		{"holds at once", func(int) error { return nil }, ""},
		{"holds later", func(n int) error {
			if n < 4 {
				return errors.New("not yet")
			}
			return nil
		}, ""},
		{"never holds: the last error is reported", func(n int) error { return fmt.Errorf("saw %d", n) },
			"waited 20ms for the thing: saw "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeT{}
			calls := 0
			f.run(func() {
				PollWithin(f, 20*time.Millisecond, "the thing", func() error { calls++; return tc.check(calls) })
			})
			switch {
			case tc.fatal == "" && f.fatal != "":
				t.Fatalf("failed: %s", f.fatal)
			case tc.fatal != "" && !strings.HasPrefix(f.fatal, tc.fatal):
				t.Fatalf("failure %q, want %q...", f.fatal, tc.fatal)
			}
			if tc.fatal != "" && !strings.HasSuffix(f.fatal, fmt.Sprint(calls)) {
				t.Errorf("failure %q does not carry the last of %d errors", f.fatal, calls)
			}
		})
	}
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, "three calls", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times", n)
	}
}

func TestReceive(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	if v := Receive(t, "a value", ch); v != 7 {
		t.Fatalf("Receive = %d", v)
	}

	f := &fakeT{}
	f.run(func() { receive(f, 10*time.Millisecond, "a value", (<-chan int)(make(chan int))) })
	if f.fatal != "waited 10ms for a value" {
		t.Errorf("nothing sent: %q", f.fatal)
	}
	done := make(chan struct{})
	close(done)
	Receive(t, "the end", done)
}

func TestCheckLeaks(t *testing.T) {
	// A goroutine that ends in time passes.
	f := &fakeT{}
	checkLeaks(f, 5*time.Second)
	done := make(chan struct{})
	go func() { <-done }()
	close(done)
	f.runCleanups()
	if len(f.errors) != 0 {
		t.Fatalf("a goroutine that ended was reported: %v", f.errors)
	}

	// One still blocked is reported with its stack.
	f = &fakeT{}
	checkLeaks(f, 50*time.Millisecond)
	block := make(chan struct{})
	go blockedForTest(block)
	f.runCleanups()
	close(block)
	if len(f.errors) != 1 || !strings.Contains(f.errors[0], "blockedForTest") {
		t.Fatalf("leak reports %q, want one naming blockedForTest", f.errors)
	}
}

func blockedForTest(c chan struct{}) { <-c }

func TestLogger(t *testing.T) {
	f := &fakeT{}
	log := Logger(f)
	log.Debug("too detailed")
	log.Info("shard scanned", "shard", 3)
	f.runCleanups()
	log.Error("after the end") // dropped: t.Log would panic
	if len(f.logs) != 1 || !strings.Contains(f.logs[0], `msg="shard scanned" shard=3`) {
		t.Fatalf("logs %q", f.logs)
	}
	if strings.HasSuffix(f.logs[0], "\n") {
		t.Errorf("log line ends with a newline: %q", f.logs[0])
	}
	Discard().Error("nothing happens")
}

// Writers and a reader at once (the race detector watches).
func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("x"))
			}
		}()
	}
	for range 10 {
		_ = b.String()
	}
	wg.Wait()
	if got := len(b.String()); got != 400 {
		t.Errorf("%d bytes, want 400", got)
	}
}
