// Command testsummary runs a test command that writes `go test -json`
// events and shows what a person needs while it runs, instead of the
// silence of a buffered `go test ./...`:
//
//   - a line per package as it finishes, as go test's own (ok, FAIL, or ?
//     for no test files), with its counts;
//   - the output of every failed test as soon as it fails, and a
//     package's own output when it fails outside its tests (a build
//     error, a panic, a timeout);
//   - the skipped tests, each with the first line of its reason;
//   - every 30 seconds without a line, the packages still running;
//   - a closing line, "N passed, N failed, N skipped" (tests and subtests,
//     examples and fuzz seeds), then the packages and the time.
//
// It exits with the command's status, or 1 if a failure was seen while the
// command said 0; 2 if the command cannot start. The project's test
// command uses it:
//
//	go run ./internal/testsummary -- go run ./internal/pgtest/withpg -- go test -json -race ./...
//
// Lines of the command's standard output that are not JSON events are
// passed through; its standard error is its own.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// heartbeat is how long the summary stays quiet before naming the
// packages still running.
const heartbeat = 30 * time.Second

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: testsummary -- go test -json [args...]")
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stderr = os.Stdin, stderr
	events, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testsummary:", err)
		return 2
	}
	// Ctrl-C reaches the command through the terminal's process group; a
	// signal sent to this process alone is passed on. Either way the
	// summary of what ran is printed once the command is gone.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testsummary:", err)
		return 2
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()

	s := newSummary(stdout)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(heartbeat / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				s.beat(now)
			}
		}
	})
	sc := bufio.NewScanner(events)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		s.line(sc.Bytes())
	}
	waitErr := cmd.Wait()
	close(stop)
	wg.Wait()

	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(waitErr, &exit):
		code = exit.ExitCode()
		if code < 0 { // killed by a signal
			code = 1
		}
	case waitErr != nil:
		fmt.Fprintln(stderr, "testsummary:", waitErr)
		code = 1
	}
	if !s.finish(time.Now()) && code == 0 {
		code = 1
	}
	return code
}

// event is one line of `go test -json` (cmd/test2json's TestEvent, plus
// the build events of the go command).
type event struct {
	Time        time.Time
	Action      string
	Package     string
	ImportPath  string // build-output, build-fail
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
}

// summary is the state of a run.
type summary struct {
	out   io.Writer
	start time.Time

	mu       sync.Mutex
	last     time.Time // of the last line printed
	packages map[string]*pkgState
	builds   map[string][]string // build output by import path

	passed, failed, skipped int
	pkgs                    int
	failedPkgs              []string // failed outside any test
}

type pkgState struct {
	start    time.Time
	output   []string            // the package's own lines
	tests    map[string][]string // output of the tests still running
	passed   int
	failed   int
	skipped  []string // "name: reason"
	finished bool
}

func newSummary(out io.Writer) *summary {
	now := time.Now()
	return &summary{out: out, start: now, last: now, packages: map[string]*pkgState{}, builds: map[string][]string{}}
}

func (s *summary) printf(format string, args ...any) {
	fmt.Fprintf(s.out, format, args...)
	s.last = time.Now()
}

// line takes one line of the command's output.
func (s *summary) line(b []byte) {
	var e event
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &e) != nil || e.Action == "" {
		s.mu.Lock()
		s.printf("%s\n", b)
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Action {
	case "build-output":
		s.builds[e.ImportPath] = append(s.builds[e.ImportPath], e.Output)
		return
	case "build-fail":
		return
	}
	p := s.packages[e.Package]
	if p == nil {
		p = &pkgState{start: time.Now(), tests: map[string][]string{}}
		s.packages[e.Package] = p
	}
	if e.Test == "" {
		s.packageEvent(e, p)
		return
	}
	switch e.Action {
	case "run":
		p.tests[e.Test] = nil
	case "output":
		p.tests[e.Test] = append(p.tests[e.Test], e.Output)
	case "pass":
		s.passed++
		p.passed++
		delete(p.tests, e.Test)
	case "skip":
		s.skipped++
		p.skipped = append(p.skipped, e.Test+skipReason(p.tests[e.Test]))
		delete(p.tests, e.Test)
	case "fail":
		s.failed++
		p.failed++
		s.printTest(p.tests[e.Test])
		delete(p.tests, e.Test)
	}
}

// printTest prints a test's output without go test's progress markers
// (=== RUN, PAUSE, CONT, NAME).
func (s *summary) printTest(output []string) {
	for _, l := range output {
		if !strings.HasPrefix(l, "=== ") {
			s.printf("%s", l)
		}
	}
}

func (s *summary) packageEvent(e event, p *pkgState) {
	switch e.Action {
	case "start":
		p.start = time.Now()
	case "output":
		p.output = append(p.output, e.Output)
	case "pass", "fail", "skip":
		p.finished = true
		s.pkgs++
		if e.Action == "skip" { // no test files
			s.printf("?    %s\t[no test files]\n", e.Package)
			return
		}
		if e.Action == "fail" && p.failed == 0 {
			// A failure outside the tests: say what the package said.
			s.failedPkgs = append(s.failedPkgs, e.Package)
			for _, l := range s.builds[cmp.Or(e.FailedBuild, e.Package)] {
				s.printf("%s", l)
			}
			for _, l := range p.output {
				s.printf("%s", l)
			}
			// Output of tests that never ended (a panic or a timeout
			// took them down).
			for _, name := range slices.Sorted(maps.Keys(p.tests)) {
				s.printTest(p.tests[name])
			}
		}
		status := "ok  "
		if e.Action == "fail" {
			status = "FAIL"
		}
		counts := fmt.Sprintf("%d passed", p.passed)
		if p.failed > 0 {
			counts += fmt.Sprintf(", %d failed", p.failed)
		}
		if len(p.skipped) > 0 {
			counts += fmt.Sprintf(", %d skipped", len(p.skipped))
		}
		if e.FailedBuild != "" {
			counts = "build failed"
		}
		s.printf("%s %s\t%.1fs\t%s\n", status, e.Package, e.Elapsed, counts)
		for _, sk := range p.skipped {
			s.printf("     skipped %s\n", sk)
		}
		p.output, p.tests = nil, nil
	}
}

// skipReason is ": " and the first line a skipped test logged, if any.
func skipReason(output []string) string {
	for _, l := range output {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		// "file_test.go:12: reason"
		if _, after, ok := strings.Cut(l, ": "); ok && strings.Contains(l[:len(l)-len(after)], ".go:") {
			l = after
		}
		return ": " + l
	}
	return ""
}

// beat names the packages still running when nothing was printed for a
// while.
func (s *summary) beat(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.last) < heartbeat {
		return
	}
	var running []string
	for _, name := range slices.Sorted(maps.Keys(s.packages)) {
		if p := s.packages[name]; !p.finished {
			running = append(running, fmt.Sprintf("%s (%s)", name, now.Sub(p.start).Round(time.Second)))
		}
	}
	if len(running) == 0 {
		return
	}
	s.printf("     ... still running: %s\n", strings.Join(running, ", "))
}

// finish prints the closing line and reports whether everything passed.
func (s *summary) finish(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var unfinished []string
	for _, name := range slices.Sorted(maps.Keys(s.packages)) {
		if !s.packages[name].finished {
			unfinished = append(unfinished, name)
		}
	}
	extra := ""
	if n := len(s.failedPkgs); n > 0 {
		extra += fmt.Sprintf("; %d package(s) failed outside their tests: %s", n, strings.Join(s.failedPkgs, ", "))
	}
	if len(unfinished) > 0 {
		extra += fmt.Sprintf("; %d package(s) never finished: %s", len(unfinished), strings.Join(unfinished, ", "))
	}
	s.printf("%d passed, %d failed, %d skipped (%d packages, %s)%s\n",
		s.passed, s.failed, s.skipped, s.pkgs, now.Sub(s.start).Round(time.Second), extra)
	return s.failed == 0 && len(s.failedPkgs) == 0 && len(unfinished) == 0
}
