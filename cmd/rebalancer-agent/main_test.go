package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// legacyTOML is what config-agent renders from the legacy SAPI template.
const legacyTOML = `
[server]
host = "10.0.0.5"
port = 7979
workers = 3
workers_per_assignment = 2
download_timeout_secs = 60

[metrics]
host = "10.0.0.5"
port = 8979
datacenter = "us-east-1"
service = "rebalancer-agent.example.com"
server = "44454c4c-3800-1052-8038-b3c04f4b4a32"
`

func TestResolve(t *testing.T) {
	legacy := writeFile(t, "config.toml", legacyTOML)
	missing := filepath.Join(t.TempDir(), "none.toml")
	cases := []struct {
		name    string
		c       cli
		dflt    string
		wantErr string
		check   func(t *testing.T, s settings)
	}{
		{name: "no file", dflt: missing, check: func(t *testing.T, s settings) {
			if s.listen != "0.0.0.0:7878" || s.metricsListen != "0.0.0.0:8878" || s.configFile != "" {
				t.Errorf("addresses %q %q", s.listen, s.metricsListen)
			}
			if a := s.agent; a.Root != "/manta" || a.DataDir != "/var/tmp/rebalancer" || a.Workers != 4 ||
				a.WorkersPerAssignment != 4 || a.DownloadTimeout != 120*time.Second || a.MaxQueued != 200 {
				t.Errorf("agent config %+v", a)
			}
		}},
		{name: "explicit missing", c: cli{Config: missing}, dflt: legacy, wantErr: "no such file"},
		{name: "invalid", dflt: writeFile(t, "bad.toml", "[server\nport = "), wantErr: "config file"},
		{name: "wrong type", dflt: writeFile(t, "type.toml", "[server]\nworkers = \"many\""), wantErr: "config file"},
		{name: "negative", dflt: writeFile(t, "neg.toml", "[server]\nworkers = -1"), wantErr: "workers"},
		{name: "legacy file", dflt: legacy, check: func(t *testing.T, s settings) {
			if s.listen != "10.0.0.5:7979" || s.metricsListen != "10.0.0.5:8979" || s.configFile != legacy {
				t.Errorf("addresses %q %q", s.listen, s.metricsListen)
			}
			a := s.agent
			if a.Workers != 3 || a.WorkersPerAssignment != 2 || a.DownloadTimeout != time.Minute || a.MaxQueued != 150 {
				t.Errorf("agent config %+v", a)
			}
			if a.Metrics.Datacenter != "us-east-1" || a.Metrics.Service != "rebalancer-agent.example.com" ||
				a.Metrics.Server != "44454c4c-3800-1052-8038-b3c04f4b4a32" {
				t.Errorf("metric labels %+v", a.Metrics)
			}
		}},
		{name: "flags win", dflt: legacy, c: cli{Listen: "127.0.0.1:1", MetricsListen: "off", Workers: 7, Root: "/r",
			DataDir: "/d", DownloadTimeout: time.Second, Token: "t", Retention: time.Hour, MaxBodyBytes: 10},
			check: func(t *testing.T, s settings) {
				a := s.agent
				if s.listen != "127.0.0.1:1" || s.metricsListen != "" || a.Workers != 7 || a.WorkersPerAssignment != 2 ||
					a.Root != "/r" || a.DataDir != "/d" || a.DownloadTimeout != time.Second || a.Token != "t" ||
					a.Retention != time.Hour || a.MaxBodyBytes != 10 {
					t.Errorf("settings %+v %+v", s, a)
				}
			}},
		{name: "source proxy", dflt: missing, c: cli{SourceProxy: "http://127.0.0.1:3128"}, check: func(t *testing.T, s settings) {
			if p := s.agent.SourceProxy; p == nil || p.String() != "http://127.0.0.1:3128" {
				t.Errorf("source proxy %v", p)
			}
		}},
		{name: "no source proxy", dflt: missing, check: func(t *testing.T, s settings) {
			if s.agent.SourceProxy != nil {
				t.Errorf("source proxy %v without the flag", s.agent.SourceProxy)
			}
		}},
		{name: "bad source proxy", dflt: missing, c: cli{SourceProxy: "127.0.0.1:3128"}, wantErr: "--source-proxy"},
		{name: "limits from the file", dflt: writeFile(t, "limits.toml", `[server]
allow_sources = [".stor.us-east.joyent.us", "10.0.0.9:8080"]
min_source_rate = 8192
min_source_rate_window = "30s"
max_body_bytes = 1048576
max_body_bytes_in_flight = 4194304
header_timeout = "5s"
body_timeout = "1m"
idle_timeout = "90s"
`), check: func(t *testing.T, s settings) {
			a := s.agent
			if !slices.Equal(a.AllowSources, []string{".stor.us-east.joyent.us", "10.0.0.9:8080"}) || a.MinSourceRate != 8192 ||
				a.MinSourceRateWindow != 30*time.Second || a.MaxBodyBytes != 1<<20 || a.MaxBodyBytesInFlight != 4<<20 ||
				a.HeaderTimeout != 5*time.Second || a.BodyTimeout != time.Minute || a.IdleTimeout != 90*time.Second {
				t.Errorf("agent config %+v", a)
			}
			if len(s.unknownKeys) != 0 {
				t.Errorf("unknown keys %v", s.unknownKeys)
			}
		}},
		{name: "limits from flags", dflt: writeFile(t, "limits2.toml", "[server]\nallow_sources = [\".a.example.com\"]\nmin_source_rate = 1"),
			c: cli{AllowSources: []string{"127.0.0.1:9"}, MinSourceRate: 100, MinSourceRateWindow: time.Second, MaxBodyBytesInFlight: 1 << 30,
				HeaderTimeout: time.Second, BodyTimeout: 2 * time.Second, IdleTimeout: 3 * time.Second},
			check: func(t *testing.T, s settings) {
				a := s.agent
				if !slices.Equal(a.AllowSources, []string{"127.0.0.1:9"}) || a.MinSourceRate != 100 || a.MinSourceRateWindow != time.Second ||
					a.MaxBodyBytesInFlight != 1<<30 || a.HeaderTimeout != time.Second || a.BodyTimeout != 2*time.Second ||
					a.IdleTimeout != 3*time.Second {
					t.Errorf("agent config %+v", a)
				}
			}},
		{name: "limit defaults", dflt: missing, check: func(t *testing.T, s settings) {
			a := s.agent
			if a.AllowSources != nil || a.MinSourceRate != agent.DefaultMinSourceRate || a.MinSourceRateWindow != time.Minute ||
				a.MaxBodyBytesInFlight != 2*agent.DefaultMaxBodyBytes || a.HeaderTimeout != 10*time.Second ||
				a.BodyTimeout != 2*time.Minute || a.IdleTimeout != 2*time.Minute {
				t.Errorf("agent config %+v", a)
			}
		}},
		{name: "bad allowed source", dflt: missing, c: cli{AllowSources: []string{"http://shark"}}, wantErr: "source host"},
		{name: "budget below body", dflt: missing, c: cli{MaxBodyBytes: 1000, MaxBodyBytesInFlight: 10}, wantErr: "in flight"},
		{name: "negative rate", dflt: writeFile(t, "neg2.toml", "[server]\nmin_source_rate = -1"), wantErr: "min source rate"},
		{name: "new and unknown keys", dflt: writeFile(t, "new.toml",
			"[server]\nmanta_root = \"/zones/manta\"\ndata_dir = \"/var/db/ra\"\nretention = \"48h\"\nmax_body_bytes = 1024\ncolour = \"blue\""),
			check: func(t *testing.T, s settings) {
				a := s.agent
				if a.Root != "/zones/manta" || a.DataDir != "/var/db/ra" || a.Retention != 48*time.Hour || a.MaxBodyBytes != 1024 {
					t.Errorf("agent config %+v", a)
				}
				if len(s.unknownKeys) != 1 || s.unknownKeys[0] != "server.colour" {
					t.Errorf("unknown keys %v", s.unknownKeys)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := resolve(&c.c, c.dflt)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, s)
		})
	}
}

func TestRunUsage(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errs, "/nonexistent"); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, flag := range []string{"--listen", "--metrics-listen", "--root", "--data-dir", "--config", "--workers",
		"--workers-per-assignment", "--token", "--retention", "--max-body-bytes", "--download-timeout", "--shutdown-grace",
		"--source-proxy", "--allow-sources", "--min-source-rate", "--min-source-rate-window", "--max-body-bytes-in-flight",
		"--header-timeout", "--body-timeout", "--idle-timeout"} {
		if !strings.Contains(out.String(), flag+"=") {
			t.Errorf("--help does not explain %s", flag)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "unknown flag"},
		{[]string{"--config", "/nonexistent/config.toml"}, "no such file"},
		{[]string{"--workers", "-2", "--config", writeFile(t, "c.toml", "")}, "workers"},
	} {
		errs.Reset()
		if code := run(context.Background(), c.args, &out, &errs, "/nonexistent"); code != 2 || !strings.Contains(errs.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errs.String(), c.want)
		}
	}
	errs.Reset()
	root := filepath.Join(t.TempDir(), "missing")
	if code := run(context.Background(), []string{"--root", root, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0",
		"--metrics-listen", "off"}, &out, &errs, "/nonexistent"); code != 1 || !strings.Contains(out.String(), "manta root") {
		t.Errorf("missing root: exit %d, stdout %s", code, out.String())
	}
}

// logWatcher collects a process's log lines (bunyan records) and finds the
// listening addresses in them.
type logWatcher struct {
	mu     sync.Mutex
	lines  []string
	listen chan map[string]any
	done   chan struct{}
}

func watchLog(r io.Reader) *logWatcher {
	w := &logWatcher{listen: make(chan map[string]any, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			w.mu.Lock()
			w.lines = append(w.lines, line)
			w.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "listening" {
				w.listen <- rec
			}
		}
	}()
	return w
}

func (w *logWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// waitListening returns the agent's API address.
func (w *logWatcher) waitListening(t *testing.T) (string, string) {
	t.Helper()
	select {
	case rec := <-w.listen:
		addr, _ := rec["addr"].(string)
		maddr, _ := rec["metrics_addr"].(string)
		return addr, maddr
	case <-w.done:
		t.Fatalf("agent exited before listening:\n%s", w)
	case <-time.After(testutil.Timeout):
		t.Fatalf("agent not listening:\n%s", w)
	}
	return "", ""
}

// TestRunServes runs the command in process: it serves the API and the
// metrics, and stops cleanly when its context ends.
func TestRunServes(t *testing.T) {
	root, data := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	w := watchLog(pr)
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"--root", root, "--data-dir", data, "--listen", "127.0.0.1:0",
			"--metrics-listen", "127.0.0.1:0", "--shutdown-grace", "5s"}, pw, io.Discard, "/nonexistent")
		pw.Close()
	}()
	addr, maddr := w.waitListening(t)
	c := &agent.Client{BaseURL: func(rebalancer.StorageNode) string { return "http://" + addr }}
	id := uuid.NewString()
	if err := c.PostAssignment(ctx, rebalancer.StorageNode{}, rebalancer.AssignmentPayload{ID: id, Tasks: []rebalancer.Task{}}); err != nil {
		t.Fatal(err)
	}
	waitComplete(t, c, id)
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `request_count{`) {
		t.Fatalf("metrics: %s", b)
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("exit %d:\n%s", code, w)
	}
	<-w.done
	if !strings.Contains(w.String(), `"msg":"agent stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", w)
	}
	// The log on standard output is bunyan records, one stream for all.
	if _, err := logging.Check(strings.NewReader(w.String())); err != nil {
		t.Errorf("standard output is not bunyan records: %v", err)
	}
}

func waitComplete(t *testing.T, c *agent.Client, id string) rebalancer.Assignment {
	t.Helper()
	var a rebalancer.Assignment
	testutil.Poll(t, "assignment "+id+" complete", func() error {
		var err error
		a, err = c.GetAssignment(context.Background(), rebalancer.StorageNode{}, id)
		if err == nil && a.Stats.State.Phase != rebalancer.AssignmentComplete {
			err = fmt.Errorf("%+v", a.Stats)
		}
		return err
	})
	return a
}

// buildAgent builds this command into a temp directory.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rebalancer-agent")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess starts the agent binary and waits until it listens.
func startProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, string, *logWatcher) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := watchLog(stdout)
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-w.done
		cmd.Wait()
		// Every line the process logged is a bunyan record.
		recs, err := logging.Check(strings.NewReader(w.String()))
		if err != nil {
			t.Errorf("the agent's standard output is not bunyan records: %v", err)
		}
		for _, r := range recs {
			if r.Name != "rebalancer-agent" {
				t.Errorf("record named %q: %+v", r.Name, r)
			}
		}
	})
	addr, _ := w.waitListening(t)
	return cmd, addr, w
}

// TestSIGKILLMidDownload kills the agent process while it is writing an
// object, restarts it, and checks that no partial file ever appears at
// the final path and that the assignment completes without redoing what
// was recorded.
func TestSIGKILLMidDownload(t *testing.T) {
	bin := buildAgent(t)
	base := t.TempDir()
	root, data := filepath.Join(base, "manta"), filepath.Join(base, "data")
	os.Mkdir(root, 0o755)

	small := bytes.Repeat([]byte("small object "), 100)
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	owner, smallID, bigID := uuid.NewString(), uuid.NewString(), uuid.NewString()
	var (
		mu        sync.Mutex
		hits      = map[string]int{}
		stall     = true
		stalled   = make(chan struct{}, 10)
		unstalled = make(chan struct{})
	)
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		s := stall
		mu.Unlock()
		switch r.URL.Path {
		case "/" + owner + "/" + smallID:
			w.Write(small)
		case "/" + owner + "/" + bigID:
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			if !s {
				w.Write(big)
				return
			}
			// Half the object, then nothing until the agent is killed.
			w.Write(big[:len(big)/2])
			w.(http.Flusher).Flush()
			stalled <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-unstalled:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer src.Close()
	defer close(unstalled)
	host := strings.TrimPrefix(src.URL, "http://")
	task := func(id string, body []byte) rebalancer.Task {
		sum := md5.Sum(body)
		return rebalancer.Task{ObjectID: id, Owner: owner, MD5Sum: base64.StdEncoding.EncodeToString(sum[:]),
			Source: rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: host}}
	}
	args := []string{"--root", root, "--data-dir", data, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
		"--workers-per-assignment", "1", "--config", writeFile(t, "empty.toml", "")}

	cmd, addr, log1 := startProcess(t, bin, args...)
	c := &agent.Client{BaseURL: func(rebalancer.StorageNode) string { return "http://" + addr }}
	id := uuid.NewString()
	if err := c.PostAssignment(context.Background(), rebalancer.StorageNode{},
		rebalancer.AssignmentPayload{ID: id, Tasks: []rebalancer.Task{task(smallID, small), task(bigID, big)}}); err != nil {
		t.Fatal(err)
	}
	testutil.Receive(t, "the big download to start", stalled)
	// Wait until part of the object is on disk in a temp file.
	tmpDir := filepath.Join(root, agent.TempDirName)
	testutil.Poll(t, "a partial download in "+tmpDir, func() error {
		entries, _ := os.ReadDir(tmpDir)
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && fi.Size() > 0 {
				return nil
			}
		}
		return fmt.Errorf("none; agent log:\n%s", log1)
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	bigDest := filepath.Join(root, owner, bigID)
	if _, err := os.Lstat(bigDest); !os.IsNotExist(err) {
		t.Fatalf("after SIGKILL, something is at the final path: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(root, owner, smallID)); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("small object: %v", err)
	}

	mu.Lock()
	stall = false
	mu.Unlock()
	cmd2, addr, log2 := startProcess(t, bin, args...)
	c = &agent.Client{BaseURL: func(rebalancer.StorageNode) string { return "http://" + addr }}
	a := waitComplete(t, c, id)
	if a.Stats.Failed != 0 || a.Stats.Complete != 2 || a.Stats.Total != 2 {
		t.Fatalf("after restart: %+v\n%s", a.Stats, log2)
	}
	if got, err := os.ReadFile(bigDest); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big object after restart: %v", err)
	}
	if entries, _ := os.ReadDir(tmpDir); len(entries) != 0 {
		t.Fatalf("temp directory not empty: %d entries", len(entries))
	}
	mu.Lock()
	n := hits["/"+owner+"/"+smallID]
	mu.Unlock()
	if n != 1 {
		t.Fatalf("small object downloaded %d times, want 1 (its result was recorded before the kill)", n)
	}

	// SIGTERM stops it cleanly.
	if err := cmd2.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-log2.done
	if err := cmd2.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, log2)
	}
	if !strings.Contains(log2.String(), `"msg":"agent stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", log2)
	}
}

// TestSymlinkedOwnerProcess runs the real binary over a root whose owner
// directory is a symbolic link leading outside it: the task is reported
// failed, nothing is written outside, the source is never asked, and the
// log names the link. The source allow-list is on: a task from another
// source is refused with 400.
func TestSymlinkedOwnerProcess(t *testing.T) {
	bin := buildAgent(t)
	base := t.TempDir()
	root, data, outside := filepath.Join(base, "manta"), filepath.Join(base, "data"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	owner, linked, good := uuid.NewString(), uuid.NewString(), uuid.NewString()
	if err := os.Symlink(outside, filepath.Join(root, owner)); err != nil {
		t.Fatal(err)
	}
	body := []byte("an object")
	var (
		mu   sync.Mutex
		hits = map[string]int{}
	)
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		w.Write(body)
	}))
	defer src.Close()
	host := strings.TrimPrefix(src.URL, "http://")
	sum := md5.Sum(body)
	task := func(owner, id, host string) rebalancer.Task {
		return rebalancer.Task{ObjectID: id, Owner: owner, MD5Sum: base64.StdEncoding.EncodeToString(sum[:]),
			Source: rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: host}}
	}
	_, addr, log := startProcess(t, bin, "--root", root, "--data-dir", data, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
		"--allow-sources", ".stor.example.com,"+host, "--config", writeFile(t, "empty.toml", ""))
	c := &agent.Client{BaseURL: func(rebalancer.StorageNode) string { return "http://" + addr }}

	other := uuid.NewString()
	err := c.PostAssignment(context.Background(), rebalancer.StorageNode{},
		rebalancer.AssignmentPayload{ID: other, Tasks: []rebalancer.Task{task(uuid.NewString(), uuid.NewString(), "127.0.0.2:80")}})
	var se *agent.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusBadRequest {
		t.Fatalf("POST from a source not allowed: %v, want 400", err)
	}

	id := uuid.NewString()
	if err := c.PostAssignment(context.Background(), rebalancer.StorageNode{}, rebalancer.AssignmentPayload{ID: id,
		Tasks: []rebalancer.Task{task(owner, linked, host), task(uuid.NewString(), good, host)}}); err != nil {
		t.Fatal(err)
	}
	a := waitComplete(t, c, id)
	if a.Stats.Total != 2 || a.Stats.Failed != 1 || len(a.Stats.State.Failed) != 1 ||
		a.Stats.State.Failed[0].ObjectID != linked ||
		a.Stats.State.Failed[0].Status != rebalancer.TaskFailedWith(rebalancer.SkipAgentFSError) {
		t.Fatalf("stats %+v", a.Stats)
	}
	if entries, err := os.ReadDir(outside); err != nil || len(entries) != 0 {
		t.Fatalf("outside the root: %v %v", entries, err)
	}
	mu.Lock()
	n := hits["/"+owner+"/"+linked]
	mu.Unlock()
	if n != 0 {
		t.Fatalf("source asked %d times for the object behind the link", n)
	}
	logged := false
	for line := range strings.SplitSeq(log.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["level"] == float64(50) &&
			rec["msg"] == "refusing to write through a symbolic link" && rec["path"] == filepath.Join(root, owner) {
			logged = true
		}
	}
	if !logged {
		t.Fatalf("the log does not name the link:\n%s", log)
	}
}
