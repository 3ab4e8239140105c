package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/internal/sapitest"
)

// The SAPI template of deploy/sapi_manifests/agent, rendered as
// config-agent does with each fixture of SAPI metadata in
// deploy/testdata/sapi, must be a config.toml that this command reads
// without an error or an unknown key (each of which it logs as a warning).
// deploy/deploy_test.go does the same for the manager's template.
const (
	sapiTemplate = "../../deploy/sapi_manifests/agent/template"
	sapiFixtures = "../../deploy/testdata/sapi"
	// The legacy template's renderings of the same fixtures (see
	// deploy/deploy_test.go for where they come from).
	legacyRenderings = "../../deploy/testdata/legacy"
)

var sapiFixtureNames = []string{"empty", "minimal", "legacy-defaults", "legacy-tuned", "falsy", "all-keys"}

// resolveFile resolves a config file the way the agent's main does with
// --config and no other flag.
func resolveFile(t *testing.T, path string) settings {
	t.Helper()
	s, err := resolve(&cli{Config: path}, "")
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(s.unknownKeys) > 0 {
		t.Errorf("%s: the agent would warn about unknown keys %q", path, s.unknownKeys)
	}
	return s
}

func renderAgentConfig(t *testing.T, fixture string) string {
	t.Helper()
	out, err := sapitest.RenderFiles(sapiTemplate, filepath.Join(sapiFixtures, fixture+".json"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSAPITemplateRendersReadableConfig(t *testing.T) {
	defaults := agent.Config{
		Metrics: agent.MetricLabels{
			Datacenter: "us-east-1", Service: "rebalancer.us-east.example.com", Server: "44454c4c-3300-1052-8048-b4c04f383432",
		},
	}.WithDefaults()
	allKeys := agent.Config{
		Workers: 8, WorkersPerAssignment: 2, DownloadTimeout: 300 * time.Second,
		Token: "5pV2Qx9-kJ3mN_7rT1wYz8aBcD4eFgHi", MaxBodyBytes: 134217728, Retention: 168 * time.Hour,
		AllowSources:  []string{".stor.us-east.example.com", "10.66.0.9:8080"},
		MinSourceRate: 8192, MinSourceRateWindow: 2 * time.Minute, MaxBodyBytesInFlight: 268435456,
		Metrics: agent.MetricLabels{
			Datacenter: "us-east-2", Service: "stor.us-east.example.com", Server: "44454c4c-3300-1052-8048-b4c04f383499",
		},
	}.WithDefaults()
	empty := agent.Config{}.WithDefaults()
	tests := []struct {
		fixture               string
		listen, metricsListen string
		want                  agent.Config
	}{
		{"empty", "0.0.0.0:7878", "0.0.0.0:8878", empty},
		{"minimal", "0.0.0.0:7878", "0.0.0.0:8878", defaults},
		// Every legacy key at its legacy default: as if none were set.
		{"legacy-defaults", "0.0.0.0:7878", "0.0.0.0:8878", defaults},
		// false, 0 and "" render the defaults, as in the legacy template.
		{"falsy", "0.0.0.0:7878", "0.0.0.0:8878", defaults},
		{"all-keys", "0.0.0.0:7879", "0.0.0.0:8879", allKeys},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			s := resolveFile(t, renderAgentConfig(t, tt.fixture))
			if s.listen != tt.listen || s.metricsListen != tt.metricsListen {
				t.Errorf("listen %s, metrics %s; want %s, %s", s.listen, s.metricsListen, tt.listen, tt.metricsListen)
			}
			if !reflect.DeepEqual(s.agent, tt.want) {
				t.Errorf("agent config\n%+v\nwant\n%+v", s.agent, tt.want)
			}
		})
	}
}

// A fleet keeps its SAPI metadata: what the legacy template rendered from
// it and what the new one renders configure the agent alike.
func TestSAPITemplateMatchesLegacy(t *testing.T) {
	for _, name := range sapiFixtureNames {
		t.Run(name, func(t *testing.T) {
			legacy := resolveFile(t, filepath.Join(legacyRenderings, name+".config.toml"))
			ours := resolveFile(t, renderAgentConfig(t, name))
			if name == "all-keys" {
				// The keys the legacy template lacks.
				legacy.agent.Token, legacy.agent.MaxBodyBytes, legacy.agent.Retention = ours.agent.Token, ours.agent.MaxBodyBytes, ours.agent.Retention
				// Defaults derived from them: the prune interval from the
				// retention, the bodies in flight from the body limit.
				legacy.agent.PruneInterval = ours.agent.PruneInterval
				legacy.agent.AllowSources, legacy.agent.MinSourceRate = ours.agent.AllowSources, ours.agent.MinSourceRate
				legacy.agent.MinSourceRateWindow, legacy.agent.MaxBodyBytesInFlight = ours.agent.MinSourceRateWindow, ours.agent.MaxBodyBytesInFlight
			}
			if !reflect.DeepEqual(legacy.agent, ours.agent) || legacy.listen != ours.listen || legacy.metricsListen != ours.metricsListen {
				t.Errorf("legacy rendering gives %s %s %+v\nnew one gives %s %s %+v",
					legacy.listen, legacy.metricsListen, legacy.agent, ours.listen, ours.metricsListen, ours.agent)
			}
		})
	}
}
