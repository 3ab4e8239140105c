package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

func writeConfig(t *testing.T, path string, cfg any) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUsageAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	writeConfig(t, bad, map[string]any{"shards": []any{}, "max_fill_percentage": 120})
	good := filepath.Join(dir, "good.json")
	writeConfig(t, good, map[string]any{"domain_name": "demo.example", "shards": []any{map[string]any{"host": "1.moray.demo.example"}}})
	broken := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(broken, []byte(`{"domain_name": `), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"help", []string{"--help"}, 0, []string{"--config", "--listen", "--metrics-listen", "--database", "--agent-proxy", "SIGUSR1", "--strict", "check-config",
			"--agent-token", "REBALANCER_AGENT_TOKEN", "--api-token", "REBALANCER_API_TOKEN", "--accept-empty-store", "503"}},
		{"missing file", []string{"-c", filepath.Join(dir, "none.json")}, 2, []string{"error parsing config file", "none.json",
			"give the manager's config file with --config FILE or $REBALANCER_CONFIG (/opt/smartdc/rebalancer/config.json is where config-agent renders it in the rebalancer zone)"}},
		{"invalid values", []string{"--config", bad}, 2, []string{"domain_name is required", "at least one shard", "max_fill_percentage must be in 1..100"}},
		{"not JSON", []string{"--config_file", broken}, 2, []string{"broken.json"}},
		{"unknown flag", []string{"--nope"}, 2, []string{"unknown flag --nope"}},
		{"bad agent proxy", []string{"--config", good, "--agent-proxy", "localhost:3128"}, 2, []string{"--agent-proxy", "not an http://"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut testutil.Buffer
			code := run(context.Background(), tt.args, &out, &errOut, nil, manager.Deps{}, nil)
			all := out.String() + errOut.String()
			if code != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tt.code, all)
			}
			for _, want := range tt.contains {
				if !strings.Contains(all, want) {
					t.Errorf("output lacks %q:\n%s", want, all)
				}
			}
		})
	}
}

// runningManager is the command running in-process on fleet f: the
// addresses its API and metrics listen on (metrics "" when off), what it
// writes, and its exit code once its context ends.
type runningManager struct {
	api, metrics string
	out, errOut  *testutil.Buffer
	done         chan int
}

// startManager runs the command with the configuration at cfgPath, its API
// on a loopback port and its metrics on metricsListen ("off" for none),
// and waits until it listens.
func startManager(ctx context.Context, t *testing.T, f *testbed.Fleet, cfgPath, metricsListen string, reload chan os.Signal) *runningManager {
	t.Helper()
	m := &runningManager{out: &testutil.Buffer{}, errOut: &testutil.Buffer{}, done: make(chan int, 1)}
	addrs := make(chan [2]string, 1)
	go func() {
		m.done <- run(ctx, []string{"--config", cfgPath, "--listen", "127.0.0.1:0", "--metrics-listen", metricsListen},
			m.out, m.errOut, reload, manager.Deps{Shards: f.Shards(), AgentClient: f.AgentClient(), JobOptions: testbed.FastTimers},
			func(api, metrics string) { addrs <- [2]string{api, metrics} })
	}()
	select {
	case a := <-addrs:
		m.api, m.metrics = a[0], a[1]
	case code := <-m.done:
		t.Fatalf("exited %d before listening:\n%s%s", code, m.out.String(), m.errOut.String())
	}
	return m
}

// The binary's whole life: serve the API and metrics, run a job, apply
// SIGUSR1 reloads (a tunable of the running job and the log level change;
// a broken file changes nothing), warn of unknown keys at start and at
// each reload, and stop cleanly on cancellation.
func TestServeReloadAndShutdown(t *testing.T) {
	f := testbed.New(t, testbed.Config{Sharks: 4, Objects: testbed.Objects{Count: 200, Pin: "1.stor.demo.example", PinFraction: 1}})
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	cfg := f.ManagerConfig()
	cfg["max_fill_percentag"] = 90 // a typo: warned about, ignored
	// Dynamic metadata threads, which a reload changes (a static job keeps
	// its own: internal/manager's TestStaticMetadataThreads).
	cfg["options"].(map[string]any)["use_static_md_update_threads"] = false
	writeConfig(t, cfgPath, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reload := make(chan os.Signal, 1)
	m := startManager(ctx, t, f, cfgPath, "127.0.0.1:0", reload)
	out, errOut, done := m.out, m.errOut, m.done
	api, metrics := "http://"+m.api, "http://"+m.metrics

	call := func(method, url, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	c, err := jobapi.NewClient(api)
	if err != nil {
		t.Fatal(err)
	}
	get := func(id string) *jobapi.JobStatus {
		t.Helper()
		st, err := c.JobStatus(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	id, err := c.CreateJob(ctx, jobapi.CreateParams{FromShark: "1.stor"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := c.PauseJob(ctx, id); err != nil {
		t.Fatalf("pause: %v", err)
	}

	cfg["options"].(map[string]any)["max_metadata_update_threads"] = 4
	cfg["options"].(map[string]any)["max_sharkz"] = 2
	cfg["log_level"] = "error"
	writeConfig(t, cfgPath, cfg)
	reload <- syscall.SIGUSR1
	testutil.Eventually(t, "the reload to reach the paused job", func() bool { return get(id).Options.MetadataThreads == 4 })

	if err := os.WriteFile(cfgPath, []byte(`{"domain_name": 7}`), 0o644); err != nil {
		t.Fatal(err)
	}
	reload <- syscall.SIGUSR1
	testutil.Eventually(t, "the broken file to be reported", func() bool {
		return strings.Contains(out.String(), "error parsing config after signal received; not updating")
	})

	if err := c.ResumeJob(ctx, id); err != nil {
		t.Fatalf("resume: %v", err)
	}
	testutil.Eventually(t, "the job to complete", func() bool { return get(id).State == rebalancer.JobComplete })
	if d := get(id); d.Options.MetadataThreads != 4 {
		t.Errorf("metadata threads after a bad reload = %d, want 4", d.Options.MetadataThreads)
	}
	rep, err := f.Verify(ctx, "1.stor.demo.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if code, body := call("GET", metrics+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "object_count{") {
		t.Errorf("metrics: %d %s", code, body)
	}

	cancel()
	if code := testutil.Receive(t, "the manager to stop once cancelled", done); code != 0 {
		t.Errorf("exit %d after cancellation; stderr:\n%s", code, errOut.String())
	}
	// Standard output is bunyan records, named as the legacy's. After the
	// reload to log_level "error", info lines (such as the resume's) are
	// no longer written.
	recs, err := logging.Check(strings.NewReader(out.String()))
	if err != nil {
		t.Errorf("standard output is not bunyan records: %v", err)
	}
	var (
		paused, resumed, fromAPI bool
		unknown                  []string
		applied                  any
	)
	for _, rec := range recs {
		if rec.Name != "rebalancer" {
			t.Errorf("record named %q: %+v", rec.Name, rec)
		}
		paused = paused || rec.Msg == "job paused"
		resumed = resumed || rec.Msg == "job resumed"
		fromAPI = fromAPI || rec.Fields["component"] == "api"
		if rec.Msg == "unknown configuration key; ignored" && rec.Level == 40 {
			unknown = append(unknown, fmt.Sprint(rec.Fields["key"], " ", rec.Fields["did_you_mean"]))
		}
		if rec.Msg == "configuration reloaded" {
			applied = rec.Fields["applied"]
		}
	}
	if !paused || resumed {
		t.Errorf("info lines before/after the reload to log_level error: paused %v, resumed %v", paused, resumed)
	}
	want := []string{"max_fill_percentag max_fill_percentage", // at start
		"max_fill_percentag max_fill_percentage", "options.max_sharkz options.max_sharks"} // at the reload
	if !slices.Equal(unknown, want) {
		t.Errorf("unknown key warnings %q, want %q", unknown, want)
	}
	if a, _ := applied.([]any); !slices.Contains(a, any("log_level")) || !slices.Contains(a, any("max_metadata_update_threads")) {
		t.Errorf("the reload applied %v, want log_level and max_metadata_update_threads among them", applied)
	}
	if !fromAPI || len(recs) < 5 {
		t.Errorf("%d records, none from the API (component api):\n%s", len(recs), out.String())
	}
}

// A stop at any moment is a clean one: before the job store is open, and
// just as the API starts listening while the jobs of the previous run are
// being resumed.
func TestStopAtAnyMoment(t *testing.T) {
	f := testbed.New(t, testbed.Config{Sharks: 3, Objects: testbed.Objects{Count: 30, Pin: "1.stor.demo.example", PinFraction: 1}})
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	writeConfig(t, cfgPath, f.ManagerConfig())
	deps := manager.Deps{Shards: f.Shards(), AgentClient: f.AgentClient(), JobOptions: testbed.FastTimers}
	args := []string{"--config", cfgPath, "--listen", "127.0.0.1:0", "--metrics-listen", "off"}

	// A job for the later runs to resume, left paused.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	addr := make(chan string, 1)
	var out testutil.Buffer
	go func() {
		done <- run(ctx, args, &out, &out, nil, deps, func(api, _ string) { addr <- api })
	}()
	api := "http://" + <-addr
	resp, err := http.Post(api+"/jobs", "application/json", strings.NewReader(`{"action":"evacuate","params":{"from_shark":"1.stor"}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	resp, err = http.Post(api+"/jobs/"+strings.TrimSpace(string(b))+"/pause", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("first run: exit %d:\n%s", code, out.String())
	}

	for _, when := range []string{"before starting", "once listening"} {
		for range 3 {
			ctx, cancel := context.WithCancel(context.Background())
			if when == "before starting" {
				cancel()
			}
			var out testutil.Buffer
			code := run(ctx, args, &out, &out, nil, deps, func(string, string) { cancel() })
			cancel()
			if code != 0 {
				t.Errorf("stopped %s: exit %d:\n%s", when, code, out.String())
			}
		}
	}
}

// A job store that is not the one the manager used is refused at start,
// with exit status 2 and a message that says what to do.
func TestStoreReplacedExit(t *testing.T) {
	f := testbed.New(t, testbed.Config{Sharks: 3})
	dir := t.TempDir()
	cfg := f.ManagerConfig()
	cfg["database"] = filepath.Join(dir, "jobs.db")
	cfgPath := filepath.Join(dir, "config.json")
	writeConfig(t, cfgPath, cfg)
	deps := manager.Deps{Shards: f.Shards(), AgentClient: f.AgentClient(), JobOptions: testbed.FastTimers}
	args := []string{"--config", cfgPath, "--listen", "127.0.0.1:0", "--metrics-listen", "off"}
	ctx, cancel := context.WithCancel(context.Background())
	var out testutil.Buffer
	code := run(ctx, args, &out, &out, nil, deps, func(api, _ string) {
		resp, err := http.Post("http://"+api+"/jobs", "application/json", strings.NewReader(`{"action":"evacuate","params":{"from_shark":"2.stor"}}`))
		if err == nil {
			resp.Body.Close()
		}
		cancel()
	})
	if code != 0 {
		t.Fatalf("first run: exit %d:\n%s", code, out.String())
	}
	for _, name := range []string{"jobs.db", "jobs.db-wal", "jobs.db-shm"} {
		os.Remove(filepath.Join(dir, name))
	}
	var errOut testutil.Buffer
	code = run(context.Background(), args, &out, &errOut, nil, deps, func(string, string) { t.Error("listened on a replaced store") })
	if code != 2 || !strings.Contains(errOut.String(), "--accept-empty-store") || !strings.Contains(errOut.String(), "with 1 jobs") {
		t.Fatalf("on a replaced store: exit %d, stderr %q", code, errOut.String())
	}
	ctx, cancel = context.WithCancel(context.Background())
	if code := run(ctx, append(args, "--accept-empty-store"), &out, &out, nil, deps, func(string, string) { cancel() }); code != 0 {
		t.Fatalf("with --accept-empty-store: exit %d:\n%s", code, out.String())
	}
}
