package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestMain(m *testing.M) { pgtest.Main(m) }

func runDemo(t *testing.T, h hooks, args ...string) (int, string) {
	t.Helper()
	code, out, errOut := runDemoCtx(t, context.Background(), h, args...)
	return code, out + errOut
}

// runDemoCtx runs the demo with args. Unless args say otherwise, it writes
// fewer v2 objects than the default (--v2-objects 60 --uploads 4), and the
// buckets shards keep them in databases of the test's PostgreSQL
// (pgtest.NewDatabase: without one, the test is skipped loudly, or fails
// under CI) rather than in a PostgreSQL of the demo's own.
func runDemoCtx(t *testing.T, ctx context.Context, h hooks, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if !slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "--v2-objects") || strings.HasPrefix(a, "--uploads") || a == "--help"
	}) {
		args = append(args, "--v2-objects", "60", "--uploads", "4")
	}
	if h.buckets == nil {
		h.buckets = testDatabases(t)
	}
	var out, errOut testutil.Buffer
	code = run(ctx, args, &out, &errOut, h)
	return code, out.String(), errOut.String()
}

// testDatabases gives the buckets shards databases of the test's
// PostgreSQL, dropped when t ends.
func testDatabases(t *testing.T) bucketsDatabases {
	return func(ctx context.Context, n int) ([]string, func(), error) {
		var dsns []string
		for range n {
			dsns = append(dsns, pgtest.NewDatabase(t))
		}
		return dsns, func() {}, nil
	}
}

// passLine matches the verdict of a run that moved v1 and v2 objects and
// fixed upload records, with the counts.
var passLine = regexp.MustCompile(`^PASS: ([\d,]+) objects moved off \S+ and verified \(v1 ([\d,]+), v2 ([\d,]+), MPU uploads (\d+) fixed; [\d,]+ copies MD5-checked on disk\)`)

// The demo as CI runs it: a small evacuation, verified.
func TestDemo(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		contains []string
	}{
		{"clean", []string{"--objects", "300"}, []string{"0 not final", "agents download only from: .stor.demo.example",
			"The demo will write about ", "for this run only (--hold keeps it up",
			"  safe to retire: yes (0 records name it; it is drained by job ", "ok   the manager's shark check agrees", "; 1.stor.demo.example is safe to retire."}},
		{"faults", []string{"--objects", "400", "--dead-source", "2.stor.demo.example", "--corrupt", "2", "--etag-conflicts", "3"},
			[]string{"md5_mismatch: 2", "could not be moved, each for the reason shown", "conflicts 3, kept 3, moved 3",
				"(0 unexplained)", "their other copy is on 2.stor.demo.example, which is down (source_other_error)",
				"2: their source copy on another shark is corrupted (md5_mismatch)", "(2 found)",
				"  safe to retire: no (", "skipped source_other_error, read from 2.stor.demo.example", "ok   the manager's shark check agrees",
				"  next: ", "; 1.stor.demo.example is not safe to retire: see the shark check above."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runDemo(t, hooks{}, tt.args...)
			if code != 0 || !strings.HasPrefix(lastLine(out), "PASS: ") {
				t.Fatalf("exit %d, output:\n%s", code, out)
			}
			// v1 and v2 objects moved, and upload records fixed.
			m := passLine.FindStringSubmatch(lastLine(out))
			if m == nil || m[2] == "0" || m[3] == "0" || m[4] == "0" {
				t.Errorf("the verdict lacks v1 and v2 counts and fixed uploads: %q", lastLine(out))
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
		{[]string{"--uploads=-1"}, 2, "--v2-objects and --uploads must not be negative"},
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
	code, out, errOut := runDemoCtx(t, context.Background(), small, "--objects", "200")
	if code != 2 || !strings.Contains(errOut, "the demo would write about ") || !strings.Contains(errOut, "has 1.0 MiB free") ||
		!strings.Contains(errOut, "--dir") || !strings.Contains(errOut, "--force") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.Contains(out, "Starting") || strings.Contains(out, "Wrote") {
		t.Errorf("work started before the refusal:\n%s", out)
	}
	code, out, errOut = runDemoCtx(t, context.Background(), small, "--objects", "200", "--force")
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
	code, out, errOut := runDemoCtx(t, context.Background(), hooks{}, "--listen", ln.Addr().String())
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
		code, out, errOut := runDemoCtx(t, ctx, hooks{populated: func() { cancel(interrupted{tt.sig}) }}, "--objects", "100")
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
	code, out, errOut := runDemoCtx(t, ctx, h, "--objects", "100", "--hold", "--listen", strings.TrimPrefix(api, "http://"),
		"--metrics-listen", strings.TrimPrefix(metrics, "http://"))
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"Holding everything up until you interrupt the demo (Ctrl-C, or kill -TERM ",
		"rebalancer-adm --manager " + api + " job list", "Moray, shard 1:", "buckets-mdapi, shard 2: 127.0.0.1:", "1.stor.demo.example: file server http://127.0.0.1:",
		"(removed when the demo stops)", "Stopping everything and ", "its status page:    " + api + "/",
		"metrics:            " + metrics + "/manager (the manager's), " + metrics + "/agent/1.stor.demo.example"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// Without PostgreSQL's server binaries the demo says so plainly and moves
// v1 objects only; so it does when asked for no v2 objects.
func TestDemoWithoutPostgres(t *testing.T) {
	noBinaries := hooks{buckets: func(context.Context, int) ([]string, func(), error) { return nil, nil, pgtest.ErrNoBinaries }}
	code, out := runDemo(t, noBinaries, "--objects", "200")
	if code != 0 || !strings.Contains(out, "No buckets (v2) objects: they need PostgreSQL's server binaries (initdb, postgres)") ||
		!strings.Contains(out, "Going on with v1 objects only.") || strings.Contains(out, "buckets-mdapi shards (Fast") || !strings.Contains(out, "v2 objects: not scanned (no buckets-mdapi shards are configured") ||
		!regexp.MustCompile(`^PASS: ([\d,]+) objects moved off \S+ and verified \(v1 ([\d,]+); no v2 objects: no PostgreSQL server binaries \(initdb, postgres\) on this machine; `).MatchString(lastLine(out)) {
		t.Fatalf("exit %d\n%s", code, out)
	}
	started := false
	code, out = runDemo(t, hooks{buckets: func(context.Context, int) ([]string, func(), error) {
		started = true
		return nil, nil, errors.New("not wanted")
	}}, "--objects", "200", "--v2-objects", "0", "--uploads", "0")
	if code != 0 || started || !strings.Contains(lastLine(out), "no v2 objects: --v2-objects 0 --uploads 0;") {
		t.Fatalf("exit %d, PostgreSQL started %v\n%s", code, started, out)
	}
	// Another failure to start PostgreSQL ends the demo, saying how to
	// run without.
	code, out = runDemo(t, hooks{buckets: func(context.Context, int) ([]string, func(), error) {
		return nil, nil, errors.New("initdb: disk full")
	}}, "--objects", "200")
	if code != 1 || !strings.Contains(lastLine(out), "initdb: disk full (--v2-objects 0 --uploads 0 runs with v1 objects only)") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// Off a terminal, writing the objects shows a line every so often.
func TestDemoPopulateProgress(t *testing.T) {
	code, out := runDemo(t, hooks{progressEvery: time.Millisecond}, "--objects", "1500")
	if code != 0 || !strings.Contains(out, "  writing: ") || !strings.Contains(out, " of 1,572 objects (" /* 1,500 v1, 60 v2 and 4 uploads of 3 parts */) {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// With -v every component logs to stderr as bunyan records, the demo's
// name on each, a component given once.
func TestDemoVerboseLogs(t *testing.T) {
	code, out, errOut := runDemoCtx(t, context.Background(), hooks{}, "--objects", "100", "-v")
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

// The verdict's v2 checks fail when the job did not look for v2 objects,
// or left the record of an upload whose parts all moved unfixed.
func TestVerdictChecksV2(t *testing.T) {
	complete := func(n int64) []evacuate.Count {
		return []evacuate.Count{{Status: rebalancer.ObjectComplete.String(), N: n, Bytes: 100 * n}}
	}
	for _, tt := range []struct {
		name    string
		buckets evacuate.BucketsStatus
		want    string
	}{
		{"fine", evacuate.BucketsStatus{Known: true, Scanned: true, Counts: complete(4), Uploads: map[string]int64{"fixed": 2}},
			"PASS: 10 objects moved off 1.stor.demo.example and verified (v1 6, v2 4, MPU uploads 2 fixed; 20 copies MD5-checked on disk); 1.stor.demo.example is safe to retire."},
		{"not scanned", evacuate.BucketsStatus{Known: true, NotScanned: "no buckets-mdapi shards are configured"},
			"FAIL: the job looked for v2 objects too, and found every one on 1.stor.demo.example (0 found, 4 written there)"},
		{"upload not fixed", evacuate.BucketsStatus{Known: true, Scanned: true, Counts: complete(4), Uploads: map[string]int64{"fixed": 1, "failed": 1}},
			"FAIL: the record of every multipart upload with parts on 1.stor.demo.example names where its parts went, unless some could not move (1 fixed, 0 with parts left, of 2)"},
		{"parts left without a cause", evacuate.BucketsStatus{Known: true, Scanned: true, Counts: complete(4), Uploads: map[string]int64{"fixed": 1, "parts_left": 1}},
			"FAIL: the record of every multipart upload with parts on 1.stor.demo.example names where its parts went, unless some could not move (1 fixed, 1 with parts left, of 2)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out testutil.Buffer
			d := &demo{cli: cli{Evacuate: "1.stor.demo.example"}, out: &out,
				pop: testbed.Population{Pinned: 6}, v2: testbed.BucketPopulation{Population: testbed.Population{Pinned: 4}, UploadsPinned: 2}}
			st := evacuate.Status{Job: evacuate.JobRecord{State: rebalancer.JobComplete}, Counts: complete(10), Buckets: tt.buckets}
			rep := testbed.Report{Copies: 20, CopiesOK: 20}
			sc := &jobapi.SharkCheck{Safe: true, Shark: jobapi.Shark{MantaStorageID: "1.stor.demo.example", State: "drained"}}
			ok := d.verdict(context.Background(), st, rep, &problems{}, map[string]outcome{}, sc)
			if got := lastLine(out.String()); ok != strings.HasPrefix(tt.want, "PASS") || got != tt.want {
				t.Errorf("verdict %v, last line\n%s\nwant\n%s\nall:\n%s", ok, got, tt.want, out.String())
			}
		})
	}
}
