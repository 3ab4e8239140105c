// Tests of the files that deploy the rebalancer on Triton: the manager's
// SAPI template rendered with fixtures of SAPI metadata and read by the
// manager's own config parser, the SAPI manifests, the boot scripts, and
// the documentation of every SAPI key (the SMF manifests: smf_test.go). The agent's template
// is read by the agent's parser in cmd/rebalancer-agent/sapi_template_test.go.
//
// testdata/sapi holds the metadata fixtures. testdata/legacy holds what the
// legacy templates render from them: hogan.js 3.0.2 (config-agent's
// renderer) over sapi_manifests/{rebalancer,agent}/template of
// TritonDataCenter/monitor-reef, branch MANTA-5484, libs/rebalancer-legacy.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/sapitest"
)

const managerTemplate = "sapi_manifests/rebalancer/template"

var fixtures = []string{"empty", "minimal", "legacy-defaults", "legacy-tuned", "falsy", "all-keys"}

func render(t *testing.T, template, fixture string) string {
	t.Helper()
	out, err := sapitest.RenderFiles(template, filepath.Join("testdata/sapi", fixture+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// loadManagerConfig writes a rendered config.json and loads it as
// rebalancer-manager does.
func loadManagerConfig(t *testing.T, text string) (*manager.Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return manager.LoadConfig(path)
}

// checkKnownKeys fails the test for every key of a config.json that the
// manager does not know, at any depth: the manager would ignore it with a
// warning at every start and reload (and refuse it with --strict).
func checkKnownKeys(t *testing.T, text string) {
	t.Helper()
	cfg, problems := manager.CheckConfig([]byte(text))
	if cfg == nil {
		t.Fatalf("%s\n%s", problems, text)
	}
	for _, u := range cfg.UnknownKeys() {
		t.Errorf("the rendered config has a key the manager does not know: %s", u)
	}
}

func TestManagerTemplateRendersValidConfig(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			text := render(t, managerTemplate, name)
			checkKnownKeys(t, text)
			_, err := loadManagerConfig(t, text)
			if name == "empty" {
				// Without the two keys every Manta has, the manager
				// refuses to start, and says why; nothing else the
				// template wrote is wrong.
				if err == nil {
					t.Fatal("empty metadata: the manager accepts the config")
				}
				lines := errorLines(err)
				for _, l := range lines {
					if !strings.Contains(strings.ToLower(l), "domain") && !strings.Contains(l, "shard") {
						t.Errorf("empty metadata: unexpected error %q", l)
					}
				}
				if !slices.Contains(lines, "domain_name is required") || !slices.Contains(lines, "configuration must contain at least one shard") {
					t.Errorf("empty metadata: errors %q do not name domain_name and shards", lines)
				}
				return
			}
			if err != nil {
				t.Errorf("%v\n%s", err, text)
			}
		})
	}
}

// errorLines are the messages joined in a LoadConfig error, without the
// file name.
func errorLines(err error) []string {
	_, msg, _ := strings.Cut(err.Error(), ": ")
	return strings.Split(msg, "\n")
}

// Every SAPI key reaches the config key it is meant for.
func TestManagerTemplateAllKeys(t *testing.T) {
	got, err := loadManagerConfig(t, render(t, managerTemplate, "all-keys"))
	if err != nil {
		t.Fatal(err)
	}
	f, tr := false, true
	want := &manager.Config{
		DomainName: "us-east.example.com",
		Shards: []manager.ShardHost{
			{Host: "1.moray.us-east.example.com"}, {Host: "2.moray.us-east.example.com"}, {Host: "3.moray.us-east.example.com"},
		},
		SnaplinkCleanupRequired: true,
		Options: manager.Options{
			MaxTasksPerAssignment: 200, MaxMetadataUpdateThreads: 30, MaxSharks: 10,
			UseStaticMdUpdateThreads: true, StaticQueueDepth: 20, MaxAssignmentAge: 1800,
			UseBatchedUpdates: true, MdReadChunkSize: 5000, MaxMdReadThreads: 20,
			SharkListRetryDelayMillis: 500,
			ExcludeKeyPrefixes:        []string{"/stor/logs/", "/poseidon/stor/usage/"},
		},
		Mdapi: manager.MdapiConfig{
			Shards: []manager.ShardHost{
				{Host: "1.buckets-mdapi.us-east.example.com"}, {Host: "2.buckets-mdapi.us-east.example.com"},
			},
			ConnectionTimeoutMS: 3000, MaxBatchSize: 500, OperationTimeoutMS: 60000, MaxRetries: 3,
			InitialBackoffMS: 100, MaxBackoffMS: 5000,
		},
		MdapiDirectDB:        &tr,
		MdapiDatabases:       map[string]string{"1": "postgres://postgres@10.66.0.21:5432/buckets_metadata?connect_timeout=5"},
		MdapiEndpoints:       map[string]string{"2": "10.66.0.22:2030"},
		DirectDB:             &f,
		ListenPort:           80,
		MaxFillPercentage:    92,
		LogLevel:             "info",
		Database:             "postgres://rebalancer@10.66.0.9:5432/rebalancer?sslmode=disable&connect_timeout=10",
		MetricsPort:          8878,
		ImportLegacyFrom:     "postgres://postgres@10.66.0.12:5432/rebalancer?connect_timeout=5",
		StorinfoURL:          "http://storinfo.us-east.example.com:8080",
		StorinfoPollInterval: 30000,
		MinAvailMB:           2000,
		BlocklistSharks:      []string{"7.stor.us-east.example.com", "8.stor.us-east.example.com"},
		BlocklistDatacenters: []string{"us-east-3"},
		AgentPort:            7879,
		ShardDatabases:       map[string]string{"2": "postgres://postgres@10.66.0.7:5432/moray?sslmode=disable&connect_timeout=5"},
		MorayEndpoints:       map[string]string{"1": "10.66.0.5:2020", "3": "10.66.0.6:2020"},
		MaxInflightPerSource: 16,
		AgentToken:           "5pV2Qx9-kJ3mN_7rT1wYz8aBcD4eFgHi",
		APIToken:             "Zq8wE1rT6yU3iO0pA5sD7fG2hJ9kL4xC",
		Metrics:              manager.MetricsConfig{Datacenter: "us-east-2", Service: "stor.us-east.example.com", Server: "44454c4c-3300-1052-8048-b4c04f383499"},
	}
	if !reflect.DeepEqual(got, want) {
		a, _ := json.MarshalIndent(got, "", "  ")
		b, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("config\n%s\nwant\n%s", a, b)
	}
}

// A fleet keeps its SAPI metadata: the config the legacy template rendered
// from it and the one the new template renders mean the same to the
// manager, but for the job store, which moves to the delegated dataset.
func TestManagerTemplateMatchesLegacy(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			legacyText, err := os.ReadFile(filepath.Join("testdata/legacy", name+".config.json"))
			if err != nil {
				t.Fatal(err)
			}
			legacy, legacyErr := loadManagerConfig(t, string(legacyText))
			if name != "all-keys" {
				// The legacy template's keys, its misspelt
				// max_fill_precentage included, are all known.
				checkKnownKeys(t, string(legacyText))
			}
			ours, err := loadManagerConfig(t, render(t, managerTemplate, name))
			switch name {
			case "empty":
				if legacyErr == nil || err == nil || !slices.Equal(errorLines(legacyErr), errorLines(err)) {
					t.Errorf("empty metadata: legacy error %v, new error %v", legacyErr, err)
				}
				return
			case "all-keys":
				// The legacy template repeats the exclude_key_prefixes key
				// once per prefix and drops the commas: two prefixes make
				// it invalid JSON. The new template lists them.
				var syntax *json.SyntaxError
				if !errors.As(legacyErr, &syntax) {
					t.Errorf("legacy rendering with two prefixes: %v, want a JSON syntax error", legacyErr)
				}
				if err != nil {
					t.Error(err)
				}
				return
			}
			if legacyErr != nil || err != nil {
				t.Fatalf("legacy: %v; new: %v", legacyErr, err)
			}
			if legacy.Database != "" || ours.Database != "/rebalancer/manager/jobs.db" {
				t.Errorf("database: legacy %q, new %q", legacy.Database, ours.Database)
			}
			legacy.Database = ours.Database
			// The legacy manager always talked to agents on 7878, even
			// when REBALANCER_AGENT_PORT moved them elsewhere; the new
			// template gives it the agents' port.
			if want := agentPort(t, name); legacy.AgentPort != 7878 || ours.AgentPort != want {
				t.Errorf("agent_port: legacy %d, new %d, want 7878 and %d", legacy.AgentPort, ours.AgentPort, want)
			}
			legacy.AgentPort = ours.AgentPort
			// The metric labels are new keys, from the zone's metadata.
			if ours.Metrics.Datacenter == "" || ours.Metrics.Service == "" || ours.Metrics.Server == "" {
				t.Errorf("metrics: %+v, want datacenter, service and server from the metadata", ours.Metrics)
			}
			legacy.Metrics = ours.Metrics
			normalize(legacy)
			normalize(ours)
			if !reflect.DeepEqual(legacy, ours) {
				a, _ := json.MarshalIndent(legacy, "", "  ")
				b, _ := json.MarshalIndent(ours, "", "  ")
				t.Errorf("legacy rendering gives\n%s\nnew one gives\n%s", a, b)
			}
		})
	}
}

// agentPort is the REBALANCER_AGENT_PORT of a fixture, 7878 when unset.
func agentPort(t *testing.T, fixture string) int {
	b, err := os.ReadFile(filepath.Join("testdata/sapi", fixture+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var md struct{ REBALANCER_AGENT_PORT int }
	if err := json.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	if md.REBALANCER_AGENT_PORT == 0 {
		return 7878
	}
	return md.REBALANCER_AGENT_PORT
}

// normalize makes absent lists and maps empty: the new template writes
// [] and {} for the keys the legacy one does not write at all.
func normalize(c *manager.Config) {
	for _, s := range []*[]string{&c.BlocklistSharks, &c.BlocklistDatacenters} {
		if *s == nil {
			*s = []string{}
		}
	}
	for _, m := range []*map[string]string{&c.ShardDatabases, &c.MorayEndpoints, &c.MdapiDatabases, &c.MdapiEndpoints} {
		if *m == nil {
			*m = map[string]string{}
		}
	}
}

// A metadata value that mustache treats as unset (false, 0, "", [])
// renders the default, as with the legacy template; the documented way to
// turn direct_db off is the string "false".
func TestManagerTemplateFalsyValues(t *testing.T) {
	minimal, err := loadManagerConfig(t, render(t, managerTemplate, "minimal"))
	if err != nil {
		t.Fatal(err)
	}
	falsy, err := loadManagerConfig(t, render(t, managerTemplate, "falsy"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(minimal, falsy) {
		t.Errorf("false, 0, \"\" and [] should render the defaults:\n%+v\n%+v", minimal, falsy)
	}
	if !*falsy.DirectDB {
		t.Error("REBALANCER_DIRECT_DB false (a JSON boolean) should render the default, true, as in the legacy")
	}
	tuned, err := loadManagerConfig(t, render(t, managerTemplate, "legacy-tuned"))
	if err != nil {
		t.Fatal(err)
	}
	if *tuned.DirectDB {
		t.Error(`REBALANCER_DIRECT_DB "false" (a string) should turn direct_db off`)
	}
}

// Every SAPI metadata key a template reads is documented in
// docs/deploying.md and set by the all-keys fixture, so that the tests
// above cover it.
func TestTemplateVariablesDocumentedAndCovered(t *testing.T) {
	doc, err := os.ReadFile("../docs/deploying.md")
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]any
	b, err := os.ReadFile("testdata/sapi/all-keys.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	for _, tmpl := range []string{managerTemplate, "sapi_manifests/agent/template", "sapi_manifests/registrar/template"} {
		text, err := os.ReadFile(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		vars, err := sapitest.Variables(string(text))
		if err != nil {
			t.Fatalf("%s: %v", tmpl, err)
		}
		for _, v := range vars {
			if !bytes.Contains(doc, []byte("`"+v+"`")) {
				t.Errorf("%s reads %s, which docs/deploying.md does not document", tmpl, v)
			}
			head, tail, dotted := strings.Cut(v, ".")
			val, ok := all[head]
			if ok && dotted {
				_, ok = val.(map[string]any)[tail]
			}
			if !ok {
				t.Errorf("%s reads %s, which testdata/sapi/all-keys.json does not set", tmpl, v)
			}
		}
	}
}

func TestSAPIManifests(t *testing.T) {
	tests := []struct {
		dir, name, path, postCmd string
	}{
		{"rebalancer", "rebalancer", "/opt/smartdc/rebalancer/config.json", "/usr/sbin/svcadm refresh rebalancer"},
		{"agent", "rebalancer-agent", "/opt/smartdc/rebalancer-agent/etc/config.toml", ""},
		{"registrar", "registrar", "/opt/smartdc/registrar/etc/config.json", ""},
	}
	for _, tt := range tests {
		b, err := os.ReadFile(filepath.Join("sapi_manifests", tt.dir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Name    string `json:"name"`
			Path    string `json:"path"`
			Master  bool   `json:"master"`
			PostCmd string `json:"post_cmd"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("%s: %v", tt.dir, err)
		}
		if m.Name != tt.name || m.Path != tt.path || !m.Master || m.PostCmd != tt.postCmd {
			t.Errorf("%s: %+v", tt.dir, m)
		}
	}
	// The registrar's template renders JSON for every fixture.
	for _, name := range fixtures {
		if out := render(t, "sapi_manifests/registrar/template", name); !json.Valid([]byte(out)) {
			t.Errorf("registrar template with %s is not JSON:\n%s", name, out)
		}
	}
}

// The boot scripts parse (bash -n); CI also runs shellcheck on them.
func TestBootScripts(t *testing.T) {
	scripts, err := filepath.Glob("boot/*.sh")
	if err != nil || len(scripts) != 2 {
		t.Fatalf("boot scripts %q, %v", scripts, err)
	}
	for _, s := range scripts {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s is not executable", s)
		}
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
	}
}
