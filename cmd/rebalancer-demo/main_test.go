package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func runDemo(t *testing.T, h hooks, args ...string) (int, string) {
	t.Helper()
	code, out, errOut := runDemoCtx(context.Background(), h, args...)
	return code, out + errOut
}

func runDemoCtx(ctx context.Context, h hooks, args ...string) (code int, stdout, stderr string) {
	var out, errOut testutil.Buffer
	code = run(ctx, args, &out, &errOut, h)
	return code, out.String(), errOut.String()
}

// The demo as CI runs it: a small evacuation, verified.
func TestDemo(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		contains []string
	}{
		{"clean", []string{"--objects", "300"}, []string{"0 not final", "agents download only from: .stor.demo.example",
			"The demo will write about ", "for this run only (--hold keeps it up"}},
		{"faults", []string{"--objects", "400", "--dead-source", "2.stor.demo.example", "--corrupt", "2", "--etag-conflicts", "3"},
			[]string{"md5_mismatch: 2", "could not be moved, each for the reason shown", "conflicts 3, kept 3, moved 3",
				"(0 unexplained)", "their other copy is on 2.stor.demo.example, which is down (source_other_error)",
				"2: their source copy on another shark is corrupted (md5_mismatch)", "(2 found)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runDemo(t, hooks{}, tt.args...)
			if code != 0 || !strings.HasPrefix(lastLine(out), "PASS: ") {
				t.Fatalf("exit %d, output:\n%s", code, out)
			}
			for _, want := range tt.contains {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			// The suggestion to use rebalancer-adm comes only with --hold,
			// without which the manager is gone seconds later.
			if strings.Contains(out, "rebalancer-adm --manager") {
				t.Errorf("rebalancer-adm suggested without --hold:\n%s", out)
			}
		})
	}
}

// Damage the verification must catch: a copy the metadata names is
// corrupted after the job, as a rebalancer that skipped the MD5 check would
// have left it.
func TestDemoCatchesDamage(t *testing.T) {
	damage := func(ctx context.Context, f *testbed.Fleet) error {
		var victim *rebalancer.Object
		err := f.ScanSource().Discover(ctx, rebalancer.DiscoverRequest{Shark: "3.stor.demo.example"}, func(o rebalancer.Object) error {
			if victim == nil {
				victim = &o
			}
			return nil
		})
		if err != nil || victim == nil {
			t.Fatalf("no object on shark 3: %v", err)
		}
		return f.Shark("3.stor.demo.example").Corrupt(victim.Owner, victim.ID)
	}
	code, out := runDemo(t, hooks{afterJob: damage}, "--objects", "200")
	if code != 1 || !strings.HasPrefix(lastLine(out), "FAIL: no copy with a wrong MD5") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

func TestDemoFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "--dead-source"},
		{[]string{"--objects", "0"}, 2, "--objects must be positive"},
		{[]string{"--copies", "6"}, 2, "--copies must be in 1..5"},
		{[]string{"--min-size", "1MiB", "--max-size", "4KiB"}, 2, "is below --min-size"},
		{[]string{"--min-size", "lots"}, 2, "--min-size"},
		{[]string{"--dead-source", "1.stor.demo.example"}, 2, "must differ from --evacuate"},
		{[]string{"--objects", "10", "--evacuate", "9.stor.demo.example"}, 1, "no shark 9.stor.demo.example"},
		{[]string{"--objects", "10", "--corrupt", "50"}, 1, "need that many objects"},
		{[]string{"--objects", "100000000", "--min-size", "1GiB", "--max-size", "1GiB"}, 2, "add --force to try anyway"},
	}
	for _, tt := range tests {
		code, out := runDemo(t, hooks{}, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q; output:\n%s", tt.args, code, tt.code, tt.want, out)
		}
	}
}

// What cannot fit in the scratch directory is refused before anything is
// written, with the estimate and the ways out; --force writes anyway.
func TestDemoRefusesWhatDoesNotFit(t *testing.T) {
	small := hooks{free: func(string) (int64, error) { return 1 << 20, nil }}
	code, out, errOut := runDemoCtx(context.Background(), small, "--objects", "200")
	if code != 2 || !strings.Contains(errOut, "the demo would write about ") || !strings.Contains(errOut, "has 1.0 MiB free") ||
		!strings.Contains(errOut, "--dir") || !strings.Contains(errOut, "--force") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.Contains(out, "Starting") || strings.Contains(out, "Wrote") {
		t.Errorf("work started before the refusal:\n%s", out)
	}
	code, out, errOut = runDemoCtx(context.Background(), small, "--objects", "200", "--force")
	if code != 0 || !strings.HasPrefix(lastLine(out), "PASS: ") {
		t.Fatalf("--force: exit %d\n%s%s", code, out, errOut)
	}
}

func TestDemoEstimate(t *testing.T) {
	c := cli{Objects: 100000, MinSize: 1 << 20, MaxSize: 16 << 20, Copies: 2, OnEvacuated: 0.5}
	e := c.estimate()
	// 250,000 files of 8.5 MiB on average.
	if lo, hi := int64(250000)*(17<<19), int64(250000)*(17<<19)+int64(1<<30); e.bytes < lo || e.bytes > hi {
		t.Errorf("estimate %d, want about %d", e.bytes, lo)
	}
	if s := e.String(); !strings.Contains(s, "about 2.0 TiB: 100,000 objects x 8.5 MiB mean x 2 copies, plus 50,000 copies the agents make") {
		t.Errorf("estimate reads %q", s)
	}
	// Small objects take whole blocks.
	c = cli{Objects: 1000, MinSize: 100, MaxSize: 100, Copies: 2, OnEvacuated: 1}
	if e := c.estimate(); e.bytes != 3000*blockSize+1000*dbBytesPerObject+dbBytes {
		t.Errorf("estimate of 100-byte objects: %d", e.bytes)
	}
}

// A busy --listen is noticed before any work.
func TestDemoBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, out, errOut := runDemoCtx(context.Background(), hooks{}, "--listen", ln.Addr().String())
	if code != 2 || !strings.Contains(errOut, "--listen "+ln.Addr().String()) || !strings.Contains(errOut, "address already in use") ||
		!strings.Contains(errOut, "127.0.0.1:0 picks a free port") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if out != "" {
		t.Errorf("work started before the busy port was noticed:\n%s", out)
	}
}

// An interrupt ends the demo with "interrupted" and the shell's status for
// the signal, not with a failure; its scratch directory is removed.
func TestDemoInterrupted(t *testing.T) {
	for _, tt := range []struct {
		sig  os.Signal
		code int
	}{{os.Interrupt, 130}, {syscall.SIGTERM, 143}} {
		ctx, cancel := context.WithCancelCause(context.Background())
		code, out, errOut := runDemoCtx(ctx, hooks{populated: func() { cancel(interrupted{tt.sig}) }}, "--objects", "100")
		if code != tt.code || !strings.HasPrefix(lastLine(out), "interrupted: ") || strings.Contains(out, "FAIL") {
			t.Fatalf("%v: exit %d\n%s%s", tt.sig, code, out, errOut)
		}
		_, rest, _ := strings.Cut(out, "fleet directory: ")
		dir, _, _ := strings.Cut(rest, "\n")
		if _, err := os.Stat(dir); dir == "" || !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", dir, err)
		}
	}
}

// --hold says what stays up and how to stop it; the interrupt that ends it
// is the normal way out.
func TestDemoHold(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return "http://" + ln.Addr().String()
	}
	api, metrics := free(), free()
	h := hooks{holding: func() {
		// What --hold keeps up answers: the API, the status page, the
		// manager's and the agents' metrics.
		for url, want := range map[string]string{
			api + "/jobs": "Evacuate", api + "/": "<h2>Jobs</h2>",
			metrics + "/manager": "rebalancer_job_objects{", metrics + "/agent/2.stor.demo.example": "rebalancer_agent_assignments",
		} {
			resp, err := http.Get(url)
			if err != nil {
				t.Errorf("GET %s while holding: %v", url, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
				t.Errorf("GET %s while holding: %d, lacks %q", url, resp.StatusCode, want)
			}
		}
		cancel()
	}}
	code, out, errOut := runDemoCtx(ctx, h, "--objects", "100", "--hold", "--listen", strings.TrimPrefix(api, "http://"),
		"--metrics-listen", strings.TrimPrefix(metrics, "http://"))
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"Holding everything up until you interrupt the demo (Ctrl-C, or kill -TERM ",
		"rebalancer-adm --manager " + api + " job list", "Moray, shard 1:", "1.stor.demo.example: file server http://127.0.0.1:",
		"(removed when the demo stops)", "Stopping everything and ", "its status page:    " + api + "/",
		"metrics:            " + metrics + "/manager (the manager's), " + metrics + "/agent/1.stor.demo.example"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// Off a terminal, writing the objects shows a line every so often.
func TestDemoPopulateProgress(t *testing.T) {
	code, out := runDemo(t, hooks{progressEvery: time.Millisecond}, "--objects", "1500")
	if code != 0 || !strings.Contains(out, "  writing: ") || !strings.Contains(out, " of 1,500 objects (") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// With -v every component logs to stderr as bunyan records, the demo's
// name on each, a component given once.
func TestDemoVerboseLogs(t *testing.T) {
	code, out, errOut := runDemoCtx(context.Background(), hooks{}, "--objects", "100", "-v")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	recs, err := logging.Check(strings.NewReader(errOut))
	if err != nil {
		t.Fatalf("stderr is not bunyan records: %v", err)
	}
	components := map[any]bool{}
	for _, r := range recs {
		if r.Name != "rebalancer-demo" {
			t.Fatalf("record named %q", r.Name)
		}
		components[r.Fields["component"]] = true
	}
	for _, c := range []string{"agent", "api", "moray"} {
		if !components[c] {
			t.Errorf("no record from component %s among %d (components %v)", c, len(recs), components)
		}
	}
}

// The verdict accounts for every problem Verify hands over, far beyond
// what a Report lists: the 5 corrupted copies are found behind thousands
// of objects the dead source kept on the evacuated shark (the path that
// failed at 30,000 objects), and each of those is explained.
func TestVerdictCountsEverything(t *testing.T) {
	d := &demo{cli: cli{Evacuate: "1.stor.demo.example", DeadSource: "2.stor.demo.example"},
		corrupted: map[string]string{}, onDead: map[string]bool{}}
	notMoved := map[string]outcome{}
	var found problems
	n := 3 * testbed.MaxProblems
	for i := range n {
		id := fmt.Sprintf("dead-%d", i)
		d.onDead[id] = true
		notMoved[id] = outcome{status: "skipped", reason: "source_other_error"}
		found.add(d, testbed.Problem{Kind: testbed.ProblemStillOnEvacuated, ObjectID: id, Shark: d.Evacuate}, notMoved)
	}
	for i := range 5 {
		id := fmt.Sprintf("bad-%d", i)
		d.corrupted[id] = "3.stor.demo.example"
		notMoved[id] = outcome{status: "skipped", reason: "md5_mismatch"}
		found.add(d, testbed.Problem{Kind: testbed.ProblemStillOnEvacuated, ObjectID: id, Shark: d.Evacuate}, notMoved)
		found.add(d, testbed.Problem{Kind: testbed.ProblemBadMD5, ObjectID: id, Shark: "3.stor.demo.example"}, notMoved)
	}
	found.add(d, testbed.Problem{Kind: testbed.ProblemStillOnEvacuated, Key: "/o/stor/lost", ObjectID: "lost", Shark: d.Evacuate}, notMoved)
	found.add(d, testbed.Problem{Kind: testbed.ProblemTempFile, Shark: "4.stor.demo.example", Path: "/x/.rebalancer-tmp/y"}, notMoved)
	notMoved["odd"] = outcome{status: "error", reason: "agent_busy", detail: "503"}

	if found.stillReported.n != n+5 || found.stillUnreported.n != 1 || len(found.corruptFound) != 5 || found.other.n != 1 {
		t.Fatalf("sorted %+v", found)
	}
	if s := found.stillUnreported.String(); !strings.Contains(s, "lost") {
		t.Errorf("sample %q", s)
	}
	explained, unexplained := d.explain(notMoved, testbed.Report{})
	want := []string{
		fmt.Sprintf("%s: their other copy is on 2.stor.demo.example, which is down (source_other_error)", humanize.Comma(int64(n))),
		"5: their source copy on another shark is corrupted (md5_mismatch)",
	}
	if !slices.Equal(explained, want) || unexplained.n != 1 || !strings.Contains(unexplained.String(), "object odd error agent_busy 503") {
		t.Errorf("explained %q, unexplained %v %s", explained, unexplained.n, unexplained)
	}
}
