package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/release"
)

// The SMF manifests start the binaries the release ships, with the config
// files config-agent writes, as the users and privileges docs/deploying.md
// gives; config-agent's post_cmd refreshes the manager with SIGUSR1.
func TestSMFManifests(t *testing.T) {
	tests := []struct {
		smf, sapi    string
		name         string
		binary       string
		user, privs  string
		refresh      string
		dependencies []string
	}{
		{
			"smf/manifests/rebalancer.xml", "sapi_manifests/rebalancer/manifest.json",
			"manta/application/rebalancer", "/opt/smartdc/rebalancer/bin/rebalancer-manager",
			"nobody", "basic,net_privaddr", ":kill -USR1",
			[]string{"svc:/network/physical", "svc:/system/filesystem/local"},
		},
		{
			"smf/manifests/rebalancer-agent.xml", "sapi_manifests/agent/manifest.json",
			"manta/application/rebalancer-agent", "/opt/smartdc/rebalancer-agent/bin/rebalancer-agent",
			"nobody", "basic", "",
			[]string{"svc:/network/physical", "svc:/system/filesystem/local"},
		},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.smf), func(t *testing.T) {
			data, err := os.ReadFile(tt.smf)
			if err != nil {
				t.Fatal(err)
			}
			svc, err := release.CheckSMF(data)
			if err != nil {
				t.Fatal(err)
			}
			var sapi struct{ Name, Path string }
			b, err := os.ReadFile(tt.sapi)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &sapi); err != nil {
				t.Fatal(err)
			}
			start := svc.StartCommand()
			cfg, _ := svc.Flag("config")
			switch {
			case svc.Name != tt.name:
				t.Errorf("service %s, want %s", svc.Name, tt.name)
			case !slices.Equal(svc.Instances, []string{"default"}):
				t.Errorf("instances %q", svc.Instances)
			case len(start) == 0 || start[0] != tt.binary:
				t.Errorf("start method %q, want %s", svc.Methods["start"], tt.binary)
			case !strings.HasSuffix(svc.Methods["start"], " &"):
				t.Errorf("start method %q does not run it in the background (contract service)", svc.Methods["start"])
			case cfg != sapi.Path:
				t.Errorf("--config %q, but config-agent writes %s", cfg, sapi.Path)
			case svc.Methods["stop"] != ":kill":
				t.Errorf("stop method %q, want :kill (SIGTERM)", svc.Methods["stop"])
			case svc.Methods["refresh"] != tt.refresh:
				t.Errorf("refresh method %q, want %q", svc.Methods["refresh"], tt.refresh)
			case svc.User != tt.user || svc.Privileges != tt.privs:
				t.Errorf("runs as %s with %s, want %s with %s", svc.User, svc.Privileges, tt.user, tt.privs)
			case !slices.Equal(svc.Dependencies, tt.dependencies):
				t.Errorf("dependencies %q", svc.Dependencies)
			}
			// The binary is one of the module's commands.
			if _, err := os.Stat(filepath.Join("../cmd", filepath.Base(tt.binary))); err != nil {
				t.Errorf("%s is not a command of this module: %v", tt.binary, err)
			}
		})
	}
}
