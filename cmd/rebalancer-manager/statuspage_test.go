package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// chromium returns the headless browser the status page tests drive, or
// skips the test loudly where there is none; under CI (CI=true), where
// .ci/run installs Debian's chromium, its absence fails the test.
func chromium(t *testing.T) string {
	t.Helper()
	// Debian's /usr/bin/chromium is a shell wrapper; the binary behind it
	// starts the same and says less.
	for _, p := range []string{"/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium: the status page must be rendered in a real browser in CI (.ci/run installs Debian's chromium)")
	}
	t.Skip("SKIPPED: no chromium on this machine (apt-get install chromium); the status page was not rendered in a browser")
	return ""
}

// browse runs headless chromium on url with args (--dump-dom,
// --screenshot=...) and returns what it printed on standard output.
func browse(t *testing.T, bin, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	profile := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + profile,
	}, append(args, url)...)...)
	cmd.Dir = profile
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v %s: %v\n%s", args, url, err, errOut.String())
	}
	return out.Bytes()
}

// artifacts is where the screenshots go: $TEST_ARTIFACTS/statuspage when
// set, else the test's artifact directory (kept by go test -artifacts,
// under -outputdir; otherwise removed when the test ends). The test logs
// which.
func artifacts(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEST_ARTIFACTS")
	if base == "" {
		return t.ArtifactDir()
	}
	dir := filepath.Join(base, "statuspage")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The status page of a live manager over an in-process fleet, rendered by
// headless Chromium: the job list with a completed job (with skips from a
// failing source), a running one and a dry run, the sharks with the one
// being drained, and a job's page with its breakdowns and options. The
// assertions are on the DOM Chromium built; a screenshot of each page is
// written for people to look at.
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	shots := artifacts(t)
	f := testbed.New(t, testbed.Config{Sharks: 5, Objects: testbed.Objects{Count: 120, Seed: 5, Pin: "1.stor.demo.example", PinFraction: 1}})
	f.Shark("2.stor.demo.example").FailMako(http.StatusInternalServerError)

	cfgPath := filepath.Join(t.TempDir(), "config.json")
	writeConfig(t, cfgPath, f.ManagerConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := startManager(ctx, t, f, cfgPath, "off", nil)
	done := m.done
	api := "http://" + m.api
	c, err := jobapi.NewClient(api)
	if err != nil {
		t.Fatal(err)
	}
	waitEnd := func(id string) *jobapi.JobStatus {
		t.Helper()
		var st *jobapi.JobStatus
		testutil.Eventually(t, "job "+id+" to end", func() bool {
			st, err = c.JobStatus(ctx, id)
			return err == nil && st.State.Terminal()
		})
		return st
	}
	moved, err := c.CreateJob(ctx, jobapi.CreateParams{FromShark: "1.stor.demo.example"})
	if err != nil {
		t.Fatal(err)
	}
	if st := waitEnd(moved); st.State != rebalancer.JobComplete || st.Results.Skipped == 0 {
		t.Fatalf("first job: %s with %d skipped; want Complete with skips", st.State, st.Results.Skipped)
	}
	dry, err := c.CreateJob(ctx, jobapi.CreateParams{FromShark: "4.stor.demo.example", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	waitEnd(dry)
	// Every copy waits from now on: the next job stays running.
	hold := make(chan struct{})
	defer close(hold)
	for _, s := range f.Sharks() {
		s.SetMakoFault(func(w http.ResponseWriter, r *http.Request) bool {
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			return true
		})
	}
	running, err := c.CreateJob(ctx, jobapi.CreateParams{FromShark: "3.stor.demo.example"})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the third job to run with copies in flight", func() bool {
		st, err := c.JobStatus(ctx, running)
		return err == nil && st.State == rebalancer.JobRunning && st.Results.Assigned > 0
	})

	// The overview.
	dom := string(browse(t, bin, api+"/", "--dump-dom"))
	browse(t, bin, api+"/", "--screenshot="+filepath.Join(shots, "overview.png"), "--window-size=1400,900")
	for id, wants := range map[string][]string{
		moved:   {"<td>1.stor.demo.example</td>", `<span class="state complete">Complete</span>`, `<span class="pct">100.0%</span>`},
		running: {"<td>3.stor.demo.example</td>", `<span class="state running">Running</span>`, `<span class="bar"`},
		dry:     {"<td>4.stor.demo.example</td>", `<span class="state complete">Complete</span> <span class="dry">dry run</span>`},
	} {
		row := jobRow(dom, id)
		for _, want := range wants {
			if !strings.Contains(row, want) {
				t.Errorf("the overview's row of job %s lacks %s: %q", id, want, row)
			}
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`<meta http-equiv="refresh" content="5">`),
		regexp.MustCompile(`<span id="health" class="ok">the job store works</span>`),
		regexp.MustCompile(`(?s)<tr class="shark" data-shark="3\.stor\.demo\.example">.*?<td class="sstate">draining</td>.*?href="/ui/jobs/` + running + `"`),
		regexp.MustCompile(`(?s)<tr class="shark" data-shark="5\.stor\.demo\.example">.*?<td class="sstate">in service</td>`),
	} {
		if !want.MatchString(dom) {
			t.Errorf("the overview's DOM lacks %s:\n%s", want, dom)
		}
	}
	// Newest first.
	if i, j := strings.Index(dom, `data-job="`+running), strings.Index(dom, `data-job="`+moved); i < 0 || j < 0 || i > j {
		t.Errorf("jobs not newest first (running at %d, first job at %d)", i, j)
	}

	// A job's page: its breakdowns by reason and shark, its options.
	page := api + "/ui/jobs/" + moved
	dom = string(browse(t, bin, page, "--dump-dom"))
	browse(t, bin, page, "--screenshot="+filepath.Join(shots, "job.png"), "--window-size=1200,1600")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`<h2>Job <code>` + moved + `</code></h2>`),
		regexp.MustCompile(`(?s)<table id="counts">.*?<th>Complete</th><td class="n">[1-9][\d,]*</td>`),
		regexp.MustCompile(`(?s)<table id="skips">.*?<code>\{http_status_code:500\}</code></th><td class="n">[1-9]`),
		regexp.MustCompile(`(?s)<table id="dests">.*?<td>[2-5]\.stor\.demo\.example</td><td class="n">[1-9]`),
		regexp.MustCompile(`(?s)<table id="sources">.*?<td>2\.stor\.demo\.example</td><td class="n">0</td><td class="n">0 B</td><td class="n bad">[1-9]`),
		regexp.MustCompile(`(?s)<table id="options">.*?<code>max_tasks_per_assignment</code></th><td><code>\d+</code>`),
	} {
		if !want.MatchString(dom) {
			t.Errorf("the job page's DOM lacks %s:\n%s", want, dom)
		}
	}
	page = api + "/ui/jobs/" + dry
	dom = string(browse(t, bin, page, "--dump-dom"))
	browse(t, bin, page, "--screenshot="+filepath.Join(shots, "dry-run.png"), "--window-size=1200,1400")
	if !regexp.MustCompile(`(?s)<table id="drydests">.*?\.stor\.demo\.example</td><td class="n">[1-9]`).MatchString(dom) {
		t.Errorf("the dry run's page lacks its destinations:\n%s", dom)
	}
	for _, name := range []string{"overview.png", "job.png", "dry-run.png"} {
		if fi, err := os.Stat(filepath.Join(shots, name)); err != nil || fi.Size() < 1000 {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	t.Logf("screenshots of the status pages: %s", shots)
	cancel()
	testutil.Receive(t, "the manager to stop", done)
}

// jobRow returns the overview's table row of job id, "" when there is none.
func jobRow(dom, id string) string {
	_, row, ok := strings.Cut(dom, `<tr class="job" data-job="`+id+`">`)
	if !ok {
		return ""
	}
	row, _, _ = strings.Cut(row, "</tr>")
	return row
}
