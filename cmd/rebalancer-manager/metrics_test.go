package main

import (
	"bufio"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// documentedFamily is a row of a metrics table of docs/api.md.
type documentedFamily struct {
	name, typ, help string
	labels          []string
}

// metricTables reads the tables under "### Manager metrics" and "###
// Agent metrics" in docs/api.md: | `name` | type | `label`, ... | help |.
// A name ending in * (go_*, process_*) stands for the standard collectors'
// families under that prefix.
func metricTables(t *testing.T) map[string]map[string]documentedFamily {
	t.Helper()
	f, err := os.Open("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tables := map[string]map[string]documentedFamily{}
	var current map[string]documentedFamily
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "### Manager metrics":
			current = map[string]documentedFamily{}
			tables["manager"] = current
			continue
		case line == "### Agent metrics":
			current = map[string]documentedFamily{}
			tables["agent"] = current
			continue
		case strings.HasPrefix(line, "#"):
			current = nil
			continue
		}
		if current == nil || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 4 {
			t.Fatalf("docs/api.md: a metrics row without 4 cells: %s", line)
		}
		fam := documentedFamily{name: strings.Trim(strings.TrimSpace(cells[0]), "`"), typ: strings.TrimSpace(cells[1]), help: strings.TrimSpace(cells[3])}
		if l := strings.TrimSpace(cells[2]); l != "-" {
			for _, name := range strings.Split(l, ", ") {
				fam.labels = append(fam.labels, strings.Trim(name, "`"))
			}
		}
		if _, dup := current[fam.name]; dup {
			t.Errorf("docs/api.md lists %s twice", fam.name)
		}
		current[fam.name] = fam
	}
	if len(tables["manager"]) == 0 || len(tables["agent"]) == 0 {
		t.Fatalf("docs/api.md: no metrics tables found (%d manager rows, %d agent rows)", len(tables["manager"]), len(tables["agent"]))
	}
	return tables
}

// scrape reads the Prometheus text a metrics endpoint serves.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return fams
}

// constLabels are on every series of both components.
var constLabels = []string{"datacenter", "server", "service", "zonename"}

// checkScrape compares one scrape with the documented families: each
// family it has must be documented with its type, labels and help; it
// returns the documented families it has.
func checkScrape(t *testing.T, component string, doc map[string]documentedFamily, fams map[string]*dto.MetricFamily, want map[string]string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for name, fam := range fams {
		row, ok := doc[name]
		if !ok {
			for prefix := range doc {
				if p, wild := strings.CutSuffix(prefix, "*"); wild && strings.HasPrefix(name, p) {
					seen[prefix] = true
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s exports %s (%s: %q), which docs/api.md does not list", component, name, strings.ToLower(fam.GetType().String()), fam.GetHelp())
			}
			continue
		}
		seen[name] = true
		if typ := strings.ToLower(fam.GetType().String()); typ != row.typ {
			t.Errorf("%s %s is a %s; docs/api.md says %s", component, name, typ, row.typ)
		}
		if fam.GetHelp() != row.help {
			t.Errorf("%s %s: help %q; docs/api.md says %q", component, name, fam.GetHelp(), row.help)
		}
		// Every series of a family has the same label names: the first
		// tells them.
		if ms := fam.GetMetric(); len(ms) > 0 {
			m := ms[0]
			var labels []string
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
				if !slices.Contains(constLabels, l.GetName()) {
					labels = append(labels, l.GetName())
				}
			}
			if !slices.Equal(labels, row.labels) {
				t.Errorf("%s %s has labels %v; docs/api.md says %v", component, name, labels, row.labels)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s %s: constant label %s=%q, want %q", component, name, k, got[k], v)
				}
			}
		}
	}
	return seen
}

// docs/api.md lists every metric family of the manager and the agent,
// with its type, labels and help, and nothing else: live scrapes of both,
// while a job runs and once it ended (with skips, copies, a failing
// source), find every documented family and nothing undocumented. The
// manager's constant labels come from its configuration.
func TestMetricsMatchDocs(t *testing.T) {
	doc := metricTables(t)
	const evac = "1.stor.demo.example"
	f := testbed.New(t, testbed.Config{Sharks: 4, Objects: testbed.Objects{Count: 150, Seed: 3, Pin: evac, PinFraction: 1}})
	// Copies read from shark 2 fail, and those read from shark 4 wait
	// until the test has seen the running job's series.
	f.Shark("2.stor.demo.example").FailMako(http.StatusInternalServerError)
	hold := make(chan struct{})
	f.Shark("4.stor.demo.example").SetMakoFault(func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-hold:
			return false
		case <-r.Context().Done():
			return true
		}
	})
	released := false
	release := func() {
		if !released {
			released = true
			close(hold)
		}
	}
	defer release()

	cfgPath := filepath.Join(t.TempDir(), "config.json")
	cfg := f.ManagerConfig()
	cfg["metrics"] = map[string]any{"datacenter": "test-dc", "server": "test-server"}
	writeConfig(t, cfgPath, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := startManager(ctx, t, f, cfgPath, "127.0.0.1:0", nil)
	errOut, done := m.errOut, m.done
	api, metrics := "http://"+m.api, "http://"+m.metrics+"/metrics"
	c, err := jobapi.NewClient(api)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.CreateJob(ctx, jobapi.CreateParams{FromShark: evac})
	if err != nil {
		t.Fatal(err)
	}
	managerLabels := map[string]string{"service": "rebalancer.demo.example", "datacenter": "test-dc", "server": "test-server"}

	seen := map[string]bool{}
	// While the job runs: its ETA appears once it has a rate and
	// discovery is done.
	testutil.Eventually(t, "the running job's ETA series", func() bool {
		fams := scrape(t, metrics)
		maps.Copy(seen, checkScrape(t, "manager", doc["manager"], fams, managerLabels))
		return fams["rebalancer_job_eta_seconds"] != nil
	})
	release()
	testutil.Eventually(t, "the job to end", func() bool {
		st, err := c.JobStatus(ctx, id)
		return err == nil && st.State.Terminal()
	})
	st, err := c.JobStatus(ctx, id)
	if err != nil || st.State != rebalancer.JobComplete || st.Results.Skipped == 0 || st.Results.Complete == 0 {
		t.Fatalf("the job: %+v, %v; want complete with skips (copies from shark 2 fail) and moved objects", st, err)
	}
	maps.Copy(seen, checkScrape(t, "manager", doc["manager"], scrape(t, metrics), managerLabels))

	agent := httptest.NewServer(f.Shark("3.stor.demo.example").Agent().MetricsHandler())
	defer agent.Close()
	seenAgent := checkScrape(t, "agent", doc["agent"], scrape(t, agent.URL+"/metrics"), nil)

	for component, seen := range map[string]map[string]bool{"manager": seen, "agent": seenAgent} {
		var missing []string
		for name := range doc[component] {
			if !seen[name] {
				missing = append(missing, name)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("docs/api.md lists %s metrics that a live scrape does not have: %s", component, strings.Join(missing, ", "))
		}
	}
	cancel()
	if code := testutil.Receive(t, "the manager to stop", done); code != 0 {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
}

// The Grafana dashboard in docs/ queries only series that docs/api.md
// lists for the manager.
func TestGrafanaDashboardUsesDocumentedSeries(t *testing.T) {
	doc := metricTables(t)["manager"]
	b, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	series := regexp.MustCompile(`([a-z_]+)\{`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range series.FindAllStringSubmatch(tg.Expr, -1) {
				name := strings.TrimSuffix(m[1], "_bucket")
				_, ok := doc[name]
				if !ok && strings.HasPrefix(name, "process_") {
					_, ok = doc["process_*"]
				}
				if !ok {
					t.Errorf("panel %q queries %s, which docs/api.md does not list", p.Title, m[1])
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("the dashboard queries nothing")
	}
}
