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
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
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
	cfg := parse(t, cfgMap)
	ctx, cancel := context.WithCancel(context.Background())
	// Moray is reached through moray_endpoints, as a hand-made
	// configuration would; only the agents need the fleet's dialer.
	m, err := manager.New(ctx, cfg, manager.Deps{AgentClient: f.AgentClient(), Logger: f.Logger(), JobOptions: testbed.FastTimers})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	api := httptest.NewServer(m.Handler())
	t.Cleanup(func() {
		api.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		m.Close()
	})
	return &running{t: t, fleet: f, m: m, api: api, cfg: cfgMap}
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

func (r *running) create(shark string) string {
	r.t.Helper()
	code, body := r.do("POST", "/jobs", fmt.Sprintf(`{"action":"evacuate","params":{"from_shark":%q}}`, shark))
	if code != http.StatusOK {
		r.t.Fatalf("POST /jobs: %d %s", code, body)
	}
	return strings.TrimSpace(body)
}

type jobDoc struct {
	State   string           `json:"state"`
	Error   string           `json:"error"`
	Results map[string]any   `json:"results"`
	Options evacuate.Options `json:"options"`
}

func (r *running) get(id string) jobDoc {
	r.t.Helper()
	code, body := r.do("GET", "/jobs/"+id, "")
	if code != http.StatusOK {
		r.t.Fatalf("GET /jobs/%s: %d %s", id, code, body)
	}
	var d jobDoc
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		r.t.Fatalf("GET /jobs/%s: %v in %s", id, err, body)
	}
	return d
}

// waitFor polls the job until cond holds.
func (r *running) waitFor(id string, what string, cond func(jobDoc) bool) jobDoc {
	r.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		d := r.get(id)
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("job %s: waited too long for %s; last %+v", id, what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
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

func terminal(d jobDoc) bool {
	switch d.State {
	case "Complete", "Failed", "Stopped":
		return true
	}
	return false
}

// The product's wiring end to end: sharkspotter through Moray's sql RPC on
// two shards, storinfo over HTTP, placement, agents, metadata updates,
// the job store, the API and the metrics.
func TestManagerEvacuates(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			r := start(t, testbed.Config{Sharks: 5, Shards: 2, Objects: testbed.Objects{Count: 300, Pin: evacuated, PinFraction: 1}},
				func(cfg map[string]any) {
					if store == "postgres" {
						cfg["database"] = pgtest.NewDatabase(t)
						cfg["store_mark"] = filepath.Join(t.TempDir(), "postgres.mark")
					}
				})
			id := r.create("1.stor") // short form: the manager completes the domain
			d := r.waitFor(id, "the end", terminal)
			if d.State != "Complete" || d.Results["Complete"] != float64(300) || d.Results["Total"] != float64(300) {
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
// limits, and the snaplink gate then refuses new jobs.
func TestReloadAppliesToRunningJob(t *testing.T) {
	r := start(t, testbed.Config{Sharks: 4, Objects: testbed.Objects{Count: 200, Pin: evacuated, PinFraction: 1}}, nil)
	id := r.create(evacuated)
	if code, body := r.do("POST", "/jobs/"+id+"/pause", ""); code != http.StatusOK {
		t.Fatalf("pause: %d %s", code, body)
	}
	r.waitFor(id, "paused", func(d jobDoc) bool { return d.State == "Paused" })

	next := r.fleet.ManagerConfig()
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

	if code, body := r.do("POST", "/jobs/"+id+"/resume", ""); code != http.StatusOK {
		t.Fatalf("resume: %d %s", code, body)
	}
	if d := r.waitFor(id, "the end", terminal); d.State != "Complete" {
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
