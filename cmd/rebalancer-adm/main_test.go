package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

const shark1 = "1.stor.demo.example"

// manager is an in-process rebalancer manager: the real API handler over a
// real engine driving a testbed fleet.
type manager struct {
	fleet  *testbed.Fleet
	engine *evacuate.Engine
	url    string
	// hold, while open, keeps every download waiting, so that jobs stay
	// running until the test lets them go.
	hold chan struct{}
}

func newManager(t *testing.T, cfg testbed.Config) *manager {
	t.Helper()
	return newManagerWith(t, cfg, nil)
}

// newManagerWith is newManager with the engine's configuration changed by
// adjust first.
func newManagerWith(t *testing.T, cfg testbed.Config, adjust func(*evacuate.Config)) *manager {
	t.Helper()
	f := testbed.New(t, cfg)
	ecfg, err := f.EngineConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if adjust != nil {
		adjust(&ecfg)
	}
	e, err := evacuate.NewEngine(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	api := &jobapi.Server{Engine: e, Domain: f.Domain(), Version: "test", Logger: testutil.Discard()}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close) // before the fleet closes the engine
	return &manager{fleet: f, engine: e, url: srv.URL}
}

// holdDownloads makes every shark's file server wait before answering,
// until release.
func (m *manager) holdDownloads() {
	m.hold = make(chan struct{})
	hold := m.hold
	for _, s := range m.fleet.Sharks() {
		s.SetMakoFault(func(w http.ResponseWriter, r *http.Request) bool {
			select {
			case <-hold:
				return false
			case <-r.Context().Done():
				return true
			}
		})
	}
}

func (m *manager) release() { close(m.hold) }

type result struct {
	code           int
	stdout, stderr string
}

// cmd runs the command in-process against the manager, with output that
// is not a terminal.
func (m *manager) cmd(t *testing.T, args ...string) result {
	t.Helper()
	return runWith(t, false, append([]string{"--manager", m.url}, args...)...)
}

func runWith(t *testing.T, tty bool, args ...string) result {
	t.Helper()
	var out, errb testutil.Buffer
	a := newApp(&out, &errb)
	a.isTerminal = func(io.Writer) bool { return tty }
	a.width = func(io.Writer) int { return 100 }
	code := a.run(context.Background(), args)
	return result{code, out.String(), errb.String()}
}

func (m *manager) create(t *testing.T, args ...string) string {
	t.Helper()
	r := m.cmd(t, append([]string{"job", "create", "evacuate"}, args...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("create printed %q", r.stdout)
	}
	return id
}

// waitState polls the job through the CLI until it is in state.
func (m *manager) waitState(t *testing.T, id, state string) map[string]any {
	t.Helper()
	var doc map[string]any
	testutil.Poll(t, "job "+id+" "+state, func() error {
		r := m.cmd(t, "job", "get", id, "--json")
		if r.code != 0 {
			t.Fatalf("get: exit %d: %s", r.code, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("get --json printed %q: %v", r.stdout, err)
		}
		if doc["state"] != state {
			return fmt.Errorf("the job is %v", doc["state"])
		}
		return nil
	})
	return doc
}

// The legacy client's tests, which assert usage errors, as a table.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // in stderr, or stdout for code 0
	}{
		{"no params", nil, 2, []string{`expected one of "job", "shark", "install-completions"`, "Usage: rebalancer-adm <command>", "job list", "Rebalancer client utility (devel)"}},
		{"job list extra params", []string{"job", "list", "extra"}, 2, []string{"unexpected argument extra", "Usage: rebalancer-adm job list"}},
		{"job get no params", []string{"job", "get"}, 2, []string{`expected "<uuid>"`, "Usage: rebalancer-adm job get <uuid>"}},
		{"job get extra params", []string{"job", "get", "a", "b"}, 2, []string{"unexpected argument b"}},
		{"job create no params", []string{"job", "create"}, 2, []string{`expected "evacuate"`, "job create evacuate"}},
		{"job evacuate no params", []string{"job", "create", "evacuate"}, 2, []string{"missing flags: --shark=SHARK", "Usage: rebalancer-adm job create evacuate --shark=SHARK"}},
		{"max_objects not a number", []string{"job", "create", "evacuate", "-s", "1.stor", "--max_objects", "ten"}, 2, []string{"--max-objects", `"ten"`}},
		{"job update without threads", []string{"job", "update", "9d5e4b18-cdec-440c-88fa-64f6c49ea814"}, 2, []string{"missing flags: --metadata-threads=N"}},
		{"job objects bad status", []string{"job", "objects", "x", "--status", "lost"}, 2, []string{"--status must be one of"}},
		{"unknown command", []string{"job", "delete", "x"}, 2, []string{"unexpected argument delete"}},
		{"bad manager URL", []string{"--manager", "ftp://x", "job", "list"}, 2, []string{`--manager "ftp://x" is not an http(s) URL`}},
		{"watch zero interval", []string{"job", "watch", "x", "--interval", "0s"}, 2, []string{"--interval must be positive"}},
		{"help", []string{"job", "create", "evacuate", "--help"}, 0, []string{"--max-objects", "--dry-run", "--exclude-key-prefix"}},
		{"version", []string{"--version"}, 0, []string{"rebalancer-adm (devel)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runWith(t, false, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			out := r.stderr
			if tc.code == 0 {
				out = r.stdout
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// What the manager refuses is shown as it said it, with a non-zero exit.
func TestAPIErrorsShownPlainly(t *testing.T) {
	m := newManager(t, testbed.Config{Sharks: 2})
	unknown := "9d5e4b18-cdec-440c-88fa-64f6c49ea814"
	done := m.create(t, "--shark", shark1)
	m.waitState(t, done, "Complete")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "get", unknown}, "404 Not Found: Could not find job UUID: " + unknown},
		{[]string{"job", "retry", unknown}, "404 Not Found: Could not find job with UUID " + unknown},
		{[]string{"job", "pause", unknown}, "404 Not Found: Could not find job " + unknown},
		{[]string{"job", "update", done, "--metadata-threads", "5"}, "400 Bad Request: Attempt to update job that is not running"},
		{[]string{"job", "stop", done}, "409 Conflict: Cannot stop job " + done + ": it is not running"},
		{[]string{"job", "watch", unknown}, "404 Not Found: Could not find job UUID"},
		{[]string{"job", "create", "evacuate", "-s", shark1, "--metadata-threads", "999"}, "422 Unprocessable Entity: Could not parse job request: invalid job options: params.options.metadata_threads 999 is out of range 1..250"},
		{[]string{"--manager", "http://127.0.0.1:1", "job", "list"}, "GET /jobs: dial tcp 127.0.0.1:1: connect: connection refused"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := m.cmd(t, tc.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and %q", r.code, r.stdout, r.stderr, tc.want)
			}
		})
	}
}

// A job from creation to completion through the CLI alone, then a retry.
func TestJobLifecycle(t *testing.T) {
	m := newManager(t, testbed.Config{Objects: testbed.Objects{Count: 200, Seed: 1, Pin: shark1}})
	if r := m.cmd(t, "job", "list"); r.code != 0 || r.stdout != "No jobs.\n" {
		t.Fatalf("empty list: %+v", r)
	}
	m.holdDownloads()
	// The short form gets the manager's domain, as in the legacy.
	id := m.create(t, "-s", "1.stor", "--metadata-threads", "4", "--exclude-key-prefix", "/stor/logs/")
	m.waitState(t, id, "Running")

	r := m.cmd(t, "job", "list")
	if r.code != 0 || !regexp.MustCompile(id+`\s+Evacuate\s+Running\s+`+regexp.QuoteMeta(shark1)).MatchString(r.stdout) {
		t.Fatalf("list: %+v", r)
	}
	r = m.cmd(t, "job", "list", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0]["id"] != id {
		t.Fatalf("list --json: %q %v", r.stdout, err)
	}

	if r := m.cmd(t, "job", "pause", id); r.code != 0 || r.stdout != "Job "+id+": paused.\n" {
		t.Fatalf("pause: %+v", r)
	}
	doc := m.waitState(t, id, "Paused")
	if opts := doc["options"].(map[string]any); opts["metadata_threads"] != 4.0 || opts["exclude_key_prefixes"].([]any)[0] != "/stor/logs/" {
		t.Fatalf("job options %v", opts)
	}
	if r := m.cmd(t, "job", "update", id, "--metadata-threads", "251"); r.code != 1 || !strings.Contains(r.stderr, "Cannot set metadata update threads above 250") {
		t.Fatalf("update 251: %+v", r)
	}
	if r := m.cmd(t, "job", "update", id, "--metadata-threads", "20"); r.code != 0 || !strings.Contains(r.stdout, "metadata threads set to 20") {
		t.Fatalf("update: %+v", r)
	}
	if r := m.cmd(t, "job", "resume", id); r.code != 0 || r.stdout != "Job "+id+": resumed.\n" {
		t.Fatalf("resume: %+v", r)
	}
	m.release()

	r = m.cmd(t, "job", "watch", id, "--interval", "20ms")
	if r.code != 0 {
		t.Fatalf("watch: exit %d: %s", r.code, r.stderr)
	}
	if strings.ContainsAny(r.stdout, "\r\x1b") {
		t.Fatalf("watch drew in place on a non-terminal: %q", r.stdout)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	final := lines[len(lines)-1]
	if !regexp.MustCompile(`^Job ` + id + ` Complete after \d+s: 200 objects, 200 complete, 0 skipped, 0 errors, [\d.]+ [KM]iB moved\. ` +
		`No object the job found names ` + regexp.QuoteMeta(shark1) + ` any more; objects under the excluded key prefixes \(/stor/logs/\) were not looked for\.$`).MatchString(final) {
		t.Fatalf("final line %q", final)
	}
	for _, l := range lines[:len(lines)-1] {
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  (Running|Paused|Complete)  \d+/[\d,]+\+? objects  `).MatchString(l) {
			t.Fatalf("progress line %q", l)
		}
	}

	r = m.cmd(t, "job", "get", id)
	for _, want := range []string{"Job:           " + id, "Evacuating:    " + shark1 + " (dc1)", "State:         Complete",
		"Objects done:  200 of 200 (100.0%)", "Bytes moved:   ", "Rate:          ",
		"Counts:        unprocessed 0, assigned 0, post processing 0, complete 200, skipped 0, error 0"} {
		if !strings.Contains(r.stdout, "\n"+want) && !strings.HasPrefix(r.stdout, want) {
			t.Errorf("get lacks %q:\n%s", want, r.stdout)
		}
	}
	rep, err := m.fleet.Verify(context.Background(), shark1)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %v", err, rep.Err())
	}

	r = m.cmd(t, "job", "objects", id, "--status", "complete", "--limit", "5", "--json")
	var objs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &objs); err != nil || len(objs) != 5 || objs[0]["status"] != "complete" {
		t.Fatalf("objects --json: %q %v", r.stdout, err)
	}
	r = m.cmd(t, "job", "objects", id, "--status", "complete", "--limit", "5")
	if r.code != 0 || len(strings.Split(strings.TrimSpace(r.stdout), "\n")) != 6 || !strings.Contains(r.stderr, "More may follow: --after ") {
		t.Fatalf("objects: %+v", r)
	}
	if r := m.cmd(t, "job", "objects", id); r.code != 0 || r.stdout != "No skipped objects.\n" {
		t.Fatalf("objects skipped: %+v", r)
	}

	retry := strings.TrimSpace(m.cmd(t, "job", "retry", id).stdout)
	if _, err := uuid.Parse(retry); err != nil || retry == id {
		t.Fatalf("retry printed %q", retry)
	}
	if r := m.cmd(t, "job", "watch", retry, "--interval", "20ms"); r.code != 0 || !strings.Contains(r.stdout, "Job "+retry+" Complete") {
		t.Fatalf("watch retry: %+v", r)
	}
	if r := m.cmd(t, "job", "get", retry); !strings.Contains(r.stdout, "Retry of:      "+id) {
		t.Fatalf("get retry: %s", r.stdout)
	}
}

// A stopped job: watch reports it and exits 1; what was left shows in the
// counts.
func TestStopAndWatchJSON(t *testing.T) {
	m := newManager(t, testbed.Config{Objects: testbed.Objects{Count: 100, Seed: 2, Pin: shark1}})
	m.holdDownloads()
	id := m.create(t, "--shark", shark1)
	m.waitState(t, id, "Running")
	if r := m.cmd(t, "job", "stop", id); r.code != 0 || !strings.Contains(r.stdout, "stopping") {
		t.Fatalf("stop: %+v", r)
	}
	m.release()
	r := m.cmd(t, "job", "watch", id, "--interval", "20ms", "--json")
	if r.code != 1 {
		t.Fatalf("watch of a stopped job: exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var last map[string]any
	for _, l := range lines {
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("watch --json line %q: %v", l, err)
		}
	}
	if last["state"] != "Stopped" || last["id"] != id {
		t.Fatalf("last document %v", last)
	}
}

// watch on a terminal redraws its two lines in place, each within the
// terminal's width, then prints the final state below them.
func TestWatchOnTerminal(t *testing.T) {
	m := newManager(t, testbed.Config{Objects: testbed.Objects{Count: 150, Seed: 3, Pin: shark1}})
	m.holdDownloads()
	id := m.create(t, "--shark", shark1, "--dry-run=false")

	var out, errb testutil.Buffer
	a := newApp(&out, &errb)
	a.isTerminal = func(io.Writer) bool { return true }
	a.width = func(io.Writer) int { return 100 }
	code := make(chan int, 1)
	go func() {
		code <- a.run(context.Background(), []string{"--manager", m.url, "job", "watch", id, "--interval", "10ms"})
	}()
	// Let a few frames be drawn while nothing can finish.
	testutil.Eventually(t, "three redraws", func() bool { return strings.Count(out.String(), "\x1b[1A") >= 3 })
	m.release()
	if c := testutil.Receive(t, "watch to end", code); c != 0 {
		t.Fatalf("watch: exit %d: %s", c, errb.String())
	}
	screen := out.String()
	if !strings.Contains(screen, "\r\x1b[1A\x1b[2KRunning  [") {
		t.Fatalf("no in-place redraw of the progress line: %q", screen)
	}
	ansi := regexp.MustCompile(`\x1b\[[0-9]*[A-Z]|\r`)
	lines := strings.Split(ansi.ReplaceAllString(screen, "\n"), "\n")
	for _, l := range lines[:len(lines)-2] { // the final line is below the frame and may wrap
		if len(l) >= 100 {
			t.Fatalf("line wider than the terminal: %q", l)
		}
	}
	final := lines[len(lines)-2] // the output ends with a newline
	if !strings.HasPrefix(final, "Job "+id+" Complete after ") || !strings.Contains(final, "150 objects, 150 complete") {
		t.Fatalf("final line %q in %q", final, screen)
	}
	if !regexp.MustCompile(`Complete \[#{20}\] 100\.0%  150/150 objects`).MatchString(screen) {
		t.Fatalf("no full bar before the final line: %q", screen)
	}
}

func TestDryRunShownByGet(t *testing.T) {
	m := newManager(t, testbed.Config{Objects: testbed.Objects{Count: 30, Seed: 4, Pin: shark1}})
	id := m.create(t, "--shark", shark1, "--dry-run", "--max-objects", "20")
	m.waitState(t, id, "Complete")
	r := m.cmd(t, "job", "get", id)
	if r.code != 0 || !strings.Contains(r.stdout, "State:         Complete (dry run)\n") ||
		!strings.Contains(r.stdout, "Would move:    20 objects, ") || !regexp.MustCompile(`  to           \d\.stor\.demo\.example: \d+ objects`).MatchString(r.stdout) {
		t.Fatalf("get of a dry run: %+v", r)
	}
	if r := m.cmd(t, "job", "watch", id); r.code != 0 || !strings.Contains(r.stdout, "Complete (dry run) after ") || !strings.Contains(r.stdout, ": 20 objects, ") {
		t.Fatalf("watch of a dry run: %+v", r)
	}
	rep, err := m.fleet.Verify(context.Background(), shark1)
	if err != nil || rep.Counts[testbed.ProblemStillOnEvacuated] != 30 {
		t.Fatalf("a dry run moved something: %v %v", err, rep)
	}
}

// A manager that requires an API token gets it from --token or
// REBALANCER_TOKEN; without it the manager's 401 says what to do.
func TestToken(t *testing.T) {
	m := newManager(t, testbed.Config{Sharks: 3})
	api := &jobapi.Server{Engine: m.engine, Domain: m.fleet.Domain(), Token: "s3cret", Logger: testutil.Discard()}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)

	r := runWith(t, false, "--manager", srv.URL, "job", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "401 Unauthorized") || !strings.Contains(r.stderr, "--token or REBALANCER_TOKEN") {
		t.Errorf("without a token: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runWith(t, false, "--manager", srv.URL, "--token", "wrong", "job", "list"); r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Errorf("wrong token: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runWith(t, false, "--manager", srv.URL, "--token", "s3cret", "job", "list"); r.code != 0 {
		t.Errorf("--token: exit %d, stderr %q", r.code, r.stderr)
	}
	t.Setenv("REBALANCER_TOKEN", "s3cret")
	if r := runWith(t, false, "--manager", srv.URL, "job", "list"); r.code != 0 {
		t.Errorf("REBALANCER_TOKEN: exit %d, stderr %q", r.code, r.stderr)
	}
}
