package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const evacuated = "1.stor.demo.example"

// running is a manager wired to a testbed fleet, serving its API.
type running struct {
	t     *testing.T
	fleet *testbed.Fleet
	m     *manager.Manager
	api   *httptest.Server
	cfg   map[string]any
	stop  func() // stops the manager and its API; the test's cleanup calls it too
}

// start builds a fleet and a manager on it through the production wiring,
// except for Moray and the agents (reached through the fleet's dialer)
// and the job timers (shortened).
func start(t *testing.T, fc testbed.Config, edit func(cfg map[string]any)) *running {
	t.Helper()
	f := testbed.New(t, fc)
	cfgMap := f.ManagerConfig()
	endpoints := map[string]any{}
	for _, n := range f.ShardNumbers() {
		endpoints[fmt.Sprint(n)] = f.MorayAddr(n)
	}
	cfgMap["moray_endpoints"] = endpoints
	if edit != nil {
		edit(cfgMap)
	}
	r := &running{t: t, fleet: f, cfg: cfgMap}
	r.launch()
	return r
}

// launch starts a manager on r's fleet and configuration.
func (r *running) launch() {
	t := r.t
	t.Helper()
	cfg := parse(t, r.cfg)
	ctx, cancel := context.WithCancel(context.Background())
	// Moray is reached through moray_endpoints, as a hand-made
	// configuration would; only the agents need the fleet's dialer.
	m, err := manager.New(ctx, cfg, manager.Deps{AgentClient: r.fleet.AgentClient(), Logger: r.fleet.Logger(), JobOptions: testbed.FastTimers})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	api := httptest.NewServer(m.Handler())
	r.m, r.api = m, api
	r.stop = sync.OnceFunc(func() {
		api.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		m.Close()
	})
	t.Cleanup(r.stop)
}

// restart stops the manager and starts another on the same job store, as
// an operator's restart does.
func (r *running) restart() {
	r.t.Helper()
	r.stop()
	r.launch()
}

func parse(t *testing.T, cfg map[string]any) *manager.Config {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := manager.ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (r *running) do(method, path, body string) (int, string) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.api.URL+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// client is a job API client of the manager.
func (r *running) client() *jobapi.Client {
	r.t.Helper()
	c, err := jobapi.NewClient(r.api.URL)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// createWith creates a job on shark, with options (a JSON object) when not
// empty.
func (r *running) createWith(shark, options string) string {
	r.t.Helper()
	id, err := r.client().CreateJob(context.Background(), jobapi.CreateParams{FromShark: shark, Options: []byte(options)})
	if err != nil {
		r.t.Fatal(err)
	}
	return id
}

func (r *running) create(shark string) string {
	r.t.Helper()
	return r.createWith(shark, "")
}

func (r *running) get(id string) *jobapi.JobStatus {
	r.t.Helper()
	st, err := r.client().JobStatus(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// waitFor polls the job until cond holds.
func (r *running) waitFor(id string, what string, cond func(*jobapi.JobStatus) bool) *jobapi.JobStatus {
	r.t.Helper()
	var st *jobapi.JobStatus
	testutil.Poll(r.t, "job "+id+": "+what, func() error {
		st = r.get(id)
		if !cond(st) {
			return fmt.Errorf("%s %q: %+v", st.State, st.Error, st.Results)
		}
		return nil
	})
	return st
}

func (r *running) verify() {
	r.t.Helper()
	rep, err := r.fleet.Verify(context.Background(), evacuated)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		r.t.Fatal(err)
	}
}

func terminal(d *jobapi.JobStatus) bool { return d.State.Terminal() }

// withStore configures a manager's job store for the subtests that run
// against both: the default SQLite file for "sqlite", a fresh database on
// the test PostgreSQL for "postgres".
func withStore(t *testing.T, store string) func(map[string]any) {
	return func(cfg map[string]any) {
		if store == "postgres" {
			cfg["database"] = pgtest.NewDatabase(t)
			cfg["store_mark"] = filepath.Join(t.TempDir(), "postgres.mark")
		}
	}
}

// The product's wiring end to end: sharkspotter through Moray's sql RPC on
// two shards, storinfo over HTTP, placement, agents, metadata updates,
// the job store, the API and the metrics.
func TestManagerEvacuates(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			r := start(t, testbed.Config{Sharks: 5, Shards: 2, Objects: testbed.Objects{Count: 300, Pin: evacuated, PinFraction: 1}}, withStore(t, store))
			id := r.create("1.stor") // short form: the manager completes the domain
			d := r.waitFor(id, "the end", terminal)
			if d.State != rebalancer.JobComplete || d.Results.Complete != 300 || d.Results.Total != 300 {
				t.Fatalf("job ended %s (%s): %v", d.State, d.Error, d.Results)
			}
			r.verify()

			rec := httptest.NewRecorder()
			r.m.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			for _, want := range []struct{ name, label, value string }{
				{"object_count", `type="evacuate"`, "300"},
				{"rebalancer_objects_discovered_total", "", "300"},
				{"request_count", `req="evacuate"`, "1"},
			} {
				if !hasMetric(rec.Body.String(), want.name, want.label, want.value) {
					t.Errorf("metrics lack %s{%s} %s:\n%s", want.name, want.label, want.value, rec.Body.String())
				}
			}
		})
	}
}

// A reload changes the metadata threads of a running job and the placement
// limits, and the snaplink gate then refuses new jobs. (A static job keeps
// its threads: TestStaticMetadataThreads.)
func TestReloadAppliesToRunningJob(t *testing.T) {
	dynamic := func(cfg map[string]any) { cfg["options"].(map[string]any)["use_static_md_update_threads"] = false }
	r := start(t, testbed.Config{Sharks: 4, Objects: testbed.Objects{Count: 200, Pin: evacuated, PinFraction: 1}}, dynamic)
	id := r.create(evacuated)
	if err := r.client().PauseJob(context.Background(), id); err != nil {
		t.Fatalf("pause: %v", err)
	}
	r.waitFor(id, "paused", func(d *jobapi.JobStatus) bool { return d.State == rebalancer.JobPaused })

	next := r.fleet.ManagerConfig()
	dynamic(next)
	next["options"].(map[string]any)["max_metadata_update_threads"] = 3
	next["max_fill_percentage"] = 77
	next["listen_port"] = 8080 // needs a restart: logged, kept
	applied, err := r.m.Reload(context.Background(), parse(t, next))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(applied, ","); got != "placement,options,max_metadata_update_threads" {
		t.Errorf("applied %s", got)
	}
	if d := r.get(id); d.Options.MetadataThreads != 3 {
		t.Errorf("running job's metadata threads = %d, want 3", d.Options.MetadataThreads)
	}
	if got := r.m.Placement().Tunables().MaxFillPercentage; got != 77 {
		t.Errorf("max fill = %d, want 77", got)
	}

	if err := r.client().ResumeJob(context.Background(), id); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if d := r.waitFor(id, "the end", terminal); d.State != rebalancer.JobComplete {
		t.Fatalf("job ended %s (%s): %v", d.State, d.Error, d.Results)
	}
	r.verify()

	next["snaplink_cleanup_required"] = true
	if _, err := r.m.Reload(context.Background(), parse(t, next)); err != nil {
		t.Fatal(err)
	}
	code, body := r.do("POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"2.stor.demo.example"}}`)
	if code != http.StatusInternalServerError || !strings.Contains(body, "Snaplink Cleanup Required") {
		t.Errorf("create with snaplink cleanup required: %d %s", code, body)
	}
}

// hasMetric reports whether the Prometheus text has a sample of name, with
// label among its labels, equal to value.
func hasMetric(text, name, label, value string) bool {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, label) && strings.HasSuffix(line, "} "+value) {
			return true
		}
	}
	return false
}
