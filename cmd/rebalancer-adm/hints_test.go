package main

import (
	"context"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// Misuse of the command, and what it answers: each message says what was
// wrong and what to do next.
func TestMisuseSaysWhatToDo(t *testing.T) {
	m := newManager(t, testbed.Config{Objects: testbed.Objects{Count: 60, Seed: 7, Pin: shark1}})
	done := m.create(t, "--shark", shark1)
	m.waitState(t, done, "Complete")
	m.holdDownloads()
	const busyShark = "2.stor.demo.example"
	running := m.create(t, "--shark", busyShark)
	m.waitState(t, running, "Running")
	if r := m.cmd(t, "job", "pause", running); r.code != 0 {
		t.Fatalf("pause: %+v", r)
	}
	defer m.release()
	// A metrics port, as the manager's answers any path.
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "request_count", Help: "Manager API requests."}))
	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer metrics.Close()

	for _, tt := range []struct {
		name string
		env  string // REBALANCER_MANAGER
		args []string
		code int
		want []string // in stderr
	}{
		{"no manager listening, the default", "", []string{"--manager", "http://127.0.0.1:1", "job", "list"}, 1,
			[]string{"GET /jobs: dial tcp 127.0.0.1:1: connect: connection refused",
				"is the manager running, its job API listening at http://127.0.0.1:1? That URL is from --manager; set --manager or $REBALANCER_MANAGER"}},
		{"no manager listening, from the environment", "http://127.0.0.1:1", []string{"job", "list"}, 1,
			[]string{"connection refused", "That URL is from $REBALANCER_MANAGER"}},
		{"the metrics port", "", []string{"--manager", metrics.URL, "job", "list"}, 1,
			[]string{"the reply is Prometheus metrics, not the job API's: this is a metrics port (metrics_port, 8878), not the manager's job API (listen_port, 80 by default)",
				"point --manager (now " + metrics.URL + ", from --manager) at the manager's job API"}},
		{"an unknown job", "", []string{"job", "get", "9d5e4b18-cdec-440c-88fa-64f6c49ea814"}, 1,
			[]string{"404 Not Found: Could not find job UUID", "rebalancer-adm job list shows the jobs this manager has"}},
		{"not an id", "", []string{"job", "get", "not-a-uuid"}, 2,
			[]string{`"not-a-uuid" is not a job id: give the whole id or its first 4 or more characters (rebalancer-adm job list shows them)`}},
		{"a prefix of no job", "", []string{"job", "get", "ffffffff"}, 1, []string{`no job id starts with "ffffffff" (rebalancer-adm job list shows the jobs)`}},
		{"a bad state", "", []string{"job", "list", "--state", "runing"}, 2,
			[]string{`--state "runing" is not a job state: one of Init, Setup, Running, Paused, Stopping, Stopped, Complete, Failed`}},
		{"a shark another job evacuates", "", []string{"job", "create", "evacuate", "-s", busyShark}, 1,
			[]string{"409 Conflict: Could not create job: shark " + busyShark + " is being evacuated by job " + running,
				`follow it with "rebalancer-adm job watch ` + running + `", or stop it with "rebalancer-adm job stop ` + running + `" first`}},
		{"retry of a paused job", "", []string{"job", "retry", running}, 1,
			[]string{"409 Conflict: Could not retry job: job " + running + " is paused, not ended: resume it, or stop it, and retry it once it has ended"}},
		{"pause twice", "", []string{"job", "pause", running}, 1, []string{"409 Conflict: Cannot pause job " + running + ": it is already paused"}},
		{"resume of a job that ended", "", []string{"job", "resume", done}, 1, []string{"409 Conflict: Cannot resume job " + done + ": it is not running"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("REBALANCER_MANAGER", tt.env)
			args := tt.args
			if tt.env == "" && args[0] != "--manager" {
				args = append([]string{"--manager", m.url}, args...)
			}
			r := runWith(t, false, args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

// Conveniences: unique id prefixes, job list --state, the options in job
// get.
func TestPrefixesStatesAndOptions(t *testing.T) {
	m := newManager(t, testbed.Config{Objects: testbed.Objects{Count: 40, Seed: 8, Pin: shark1}})
	done := m.create(t, "--shark", shark1, "--metadata-threads", "7")
	m.waitState(t, done, "Complete")
	m.holdDownloads()
	defer m.release()
	running := m.create(t, "--shark", "2.stor.demo.example")
	m.waitState(t, running, "Running")

	if r := m.cmd(t, "job", "get", done[:8]); r.code != 0 || !strings.Contains(r.stdout, "Job:           "+done) {
		t.Errorf("get by prefix: %+v", r)
	}
	if r := m.cmd(t, "job", "get", strings.ToUpper(done[:6])); r.code != 0 || !strings.Contains(r.stdout, "Job:           "+done) {
		t.Errorf("get by an upper-case prefix: %+v", r)
	}
	r := m.cmd(t, "job", "get", done)
	if !regexp.MustCompile(`\nOptions:       [a-z_]+ `).MatchString(r.stdout) || !strings.Contains(r.stdout, "metadata_threads 7") {
		t.Errorf("get shows no options:\n%s", r.stdout)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if label, _, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, " ") && len(label) < 15 && !strings.HasPrefix(l[len(label)+1:], " ") {
			t.Errorf("label run into its value: %q", l)
		}
	}
	r = m.cmd(t, "job", "list", "--state", "running,Paused")
	if r.code != 0 || !strings.Contains(r.stdout, running) || strings.Contains(r.stdout, done) {
		t.Errorf("list --state running: %+v", r)
	}
	r = m.cmd(t, "job", "list", "--state", "complete", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, done) || strings.Contains(r.stdout, running) {
		t.Errorf("list --state complete --json: %+v", r)
	}
	if r := m.cmd(t, "job", "list", "--state", "failed"); r.code != 0 || r.stdout != "No jobs in state failed (2 in others).\n" {
		t.Errorf("list --state failed: %+v", r)
	}
	if r := m.cmd(t, "job", "stop", running[:5]); r.code != 0 || r.stdout != "Job "+running+": stopping once the copies in flight are done.\n" {
		t.Errorf("stop by prefix: %+v", r)
	}
	if r := m.cmd(t, "job", "list", "--state", "stopping"); r.code != 0 || !strings.Contains(r.stdout, running) || !strings.Contains(r.stdout, "Stopping") {
		t.Errorf("list --state stopping: %+v", r)
	}
	if r := m.cmd(t, "job", "get", running); !strings.Contains(r.stdout, "State:         Stopping (waiting for the copies in flight)") ||
		!strings.Contains(r.stdout, "ETA none while stopping") {
		t.Errorf("get of a stopping job:\n%s", r.stdout)
	}
}

// A dry run's text shows where the objects would go and how full each
// destination would be, as its JSON does.
func TestDryRunProjectedFill(t *testing.T) {
	m := newManager(t, testbed.Config{Objects: testbed.Objects{Count: 30, Seed: 4, Pin: shark1}})
	id := m.create(t, "--shark", shark1, "--dry-run")
	m.waitState(t, id, "Complete")
	r := m.cmd(t, "job", "get", id)
	if !regexp.MustCompile(`\n  to           \d\.stor\.demo\.example: \d+ objects, [\d.]+ KiB \(10\.0% used now, 10\.0% after\)\n`).MatchString(r.stdout) {
		t.Errorf("dry run without projected fill:\n%s", r.stdout)
	}
}

// The watch of a paused job shows no rate or ETA; one of a stopping job
// says so; at 80 columns the skipped and error counts are always there.
func TestWatchPausedStoppingNarrow(t *testing.T) {
	// The copies are held until the end, and must stay in flight, so that
	// the stopping job waits for them: the fast timers (an agent
	// unreachable after 2 s, an assignment given up after a minute) must
	// not give them up on a loaded machine.
	m := newManagerWith(t, testbed.Config{Objects: testbed.Objects{Count: 80, Seed: 9, Pin: shark1}}, func(c *evacuate.Config) {
		c.Defaults.AgentUnreachableTimeout = evacuate.Duration(10 * time.Minute)
		c.Defaults.AssignmentTimeout = evacuate.Duration(10 * time.Minute)
	})
	m.holdDownloads()
	id := m.create(t, "--shark", shark1)
	m.waitState(t, id, "Running")
	// Paused before its first assignment went out, the job would have
	// nothing in flight, and a stop would end it at once.
	testutil.Eventually(t, "copies in flight", func() bool {
		st, err := m.engine.JobStatus(context.Background(), id)
		n, _ := st.Total(rebalancer.ObjectAssigned)
		return err == nil && n > 0
	})
	if r := m.cmd(t, "job", "pause", id); r.code != 0 {
		t.Fatalf("pause: %+v", r)
	}
	m.waitState(t, id, "Paused")
	watch := func(width int) string {
		var out, errb testutil.Buffer
		a := newApp(&out, &errb)
		a.isTerminal = func(io.Writer) bool { return true }
		a.width = func(io.Writer) int { return width }
		code := make(chan int, 1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { code <- a.run(ctx, []string{"--manager", m.url, "job", "watch", id, "--interval", "10ms"}) }()
		ended := false
		testutil.Eventually(t, "two frames", func() bool {
			select {
			case c := <-code:
				code <- c
				ended = true
			default:
			}
			return ended || strings.Count(out.String(), "\x1b[2K") >= 4
		})
		if ended {
			t.Fatalf("the watch ended before drawing two frames (the job ended?): %s\n%s", m.cmd(t, "job", "get", id).stdout, out.String())
		}
		cancel()
		if c := testutil.Receive(t, "watch to end", code); c != 130 {
			t.Errorf("watch interrupted: exit %d", c)
		}
		return out.String()
	}
	frames := lastFrame(watch(80))
	if !strings.HasPrefix(frames[0], "Paused ") || !strings.Contains(frames[1], "skipped 0  errors 0") || !strings.Contains(frames[1], "paused (") ||
		strings.Contains(strings.Join(frames, "\n"), "ETA") || strings.Contains(strings.Join(frames, "\n"), "obj/s") {
		t.Errorf("paused frame at 80 columns: %q", frames)
	}
	for _, l := range frames {
		if len(l) > 79 {
			t.Errorf("wider than 79 columns: %q", l)
		}
	}
	if f := lastFrame(watch(40)); !strings.Contains(f[1], "skipped 0  errors 0") {
		t.Errorf("at 40 columns the counts are cut: %q", f)
	}
	if r := m.cmd(t, "job", "stop", id); r.code != 0 {
		t.Fatalf("stop: %+v", r)
	}
	frames = lastFrame(watch(80))
	if !strings.HasPrefix(frames[0], "Stopping ") || !strings.Contains(frames[1], "stopping: ") || strings.Contains(frames[1], "ETA") {
		t.Errorf("stopping frame: %q", frames)
	}
	m.release()
}

// lastFrame returns the last two lines drawn in place.
func lastFrame(screen string) []string {
	parts := strings.Split(screen, "\x1b[2K")
	if len(parts) < 3 {
		return []string{"", ""}
	}
	clean := func(s string) string {
		s = strings.TrimRight(s, "\n")
		return regexp.MustCompile(`\r|\x1b\[[0-9]*[A-Z]`).ReplaceAllString(s, "")
	}
	return []string{clean(parts[len(parts)-2]), clean(parts[len(parts)-1])}
}

// The shell asks for completions through COMP_LINE; the answer lists the
// commands and flags that fit, and job ids from the manager.
func TestCompletion(t *testing.T) {
	m := newManager(t, testbed.Config{Objects: testbed.Objects{Count: 10, Seed: 10, Pin: shark1}})
	id := m.create(t, "--shark", shark1)
	m.waitState(t, id, "Complete")
	t.Setenv("REBALANCER_MANAGER", m.url)
	for line, want := range map[string]string{
		"rebalancer-adm job l":                    "list",
		"rebalancer-adm job list --st":            "--state",
		"rebalancer-adm job objects x --status s": "skipped",
		"rebalancer-adm job get " + id[:3]:        id,
	} {
		t.Setenv("COMP_LINE", line)
		t.Setenv("COMP_POINT", "")
		r := runWith(t, false, "whatever")
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("completing %q: exit %d, %q; want %q", line, r.code, r.stdout, want)
		}
	}
}
