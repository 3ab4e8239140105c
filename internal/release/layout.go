package release

import (
	"path"
	"sort"
)

// Names of the artifacts, the legacy Makefile's (TritonDataCenter/monitor-reef,
// libs/rebalancer-legacy/Makefile: RELEASE_TARBALL, AGENT_TARBALL,
// AGENT_MANIFEST), so that Triton's build and update tooling finds them.
const (
	managerTarballPrefix = "rebalancer-pkg-"
	agentTarballPrefix   = "rebalancer-agent-"
	tarballSuffix        = ".tar.gz"
	manifestSuffix       = ".manifest"
	sumsFile             = "SHA1SUMS"

	// AgentImageName and AgentImageDescription are the agent image's, as
	// the legacy published it: manta-hotpatch-rebalancer-agent lists the
	// images of this name.
	AgentImageName        = "mantav2-rebalancer-agent"
	AgentImageDescription = "Manta Rebalancer Agent"
)

// Packages built into the tarballs.
var (
	managerCommands = []string{"rebalancer-manager", "rebalancer-adm", "sharkspotter"}
	agentCommands   = []string{"rebalancer-agent"}
)

// entry is one file or directory of a tarball.
type entry struct {
	// Name is the path in the tarball; a directory's ends in "/".
	Name string
	Mode int64
	// Src is the file's content: a path relative to the repository, or,
	// after binPrefix, the name of a built command.
	Src string
}

// binPrefix marks an entry's Src as a command built for illumos.
const binPrefix = "bin:"

// managerLayout is the manager zone's tarball, without the manta-scripts
// (root/opt/smartdc/boot/scripts/*.sh), which depend on the --manta-scripts
// directory. It is the legacy layout less PostgreSQL (its SMF manifest and
// method, etc/postgresql.conf) and less the agent's SAPI manifest, which
// config-agent would have rendered into the manager zone for nothing.
func managerLayout() []entry {
	const opt = "root/opt/smartdc/rebalancer/"
	es := []entry{
		{opt + "smf/manifests/rebalancer.xml", 0o644, "deploy/smf/manifests/rebalancer.xml"},
		{opt + "sapi_manifests/rebalancer/manifest.json", 0o644, "deploy/sapi_manifests/rebalancer/manifest.json"},
		{opt + "sapi_manifests/rebalancer/template", 0o644, "deploy/sapi_manifests/rebalancer/template"},
		{opt + "sapi_manifests/registrar/manifest.json", 0o644, "deploy/sapi_manifests/registrar/manifest.json"},
		{opt + "sapi_manifests/registrar/template", 0o644, "deploy/sapi_manifests/registrar/template"},
		{"root/opt/smartdc/boot/setup.sh", 0o755, "deploy/boot/setup.sh"},
		{"root/opt/smartdc/boot/configure.sh", 0o755, "deploy/boot/configure.sh"},
	}
	for _, c := range managerCommands {
		es = append(es, entry{opt + "bin/" + c, 0o755, binPrefix + c})
	}
	return es
}

// agentLayout is the agent's tarball, the legacy pkg_agent layout: storage
// zones import its SMF manifest and config-agent renders its SAPI manifest
// into the empty etc/.
func agentLayout() []entry {
	const opt = "root/opt/smartdc/rebalancer-agent/"
	es := []entry{
		{opt + "etc/", 0o755, ""},
		{opt + "smf/manifests/rebalancer-agent.xml", 0o644, "deploy/smf/manifests/rebalancer-agent.xml"},
		{opt + "sapi_manifests/agent/manifest.json", 0o644, "deploy/sapi_manifests/agent/manifest.json"},
		{opt + "sapi_manifests/agent/template", 0o644, "deploy/sapi_manifests/agent/template"},
	}
	for _, c := range agentCommands {
		es = append(es, entry{opt + "bin/" + c, 0o755, binPrefix + c})
	}
	return es
}

// withDirs returns es plus every parent directory of its entries, sorted
// by name, so that each directory comes before what it holds.
func withDirs(es []entry) []entry {
	seen := map[string]bool{}
	var out []entry
	add := func(e entry) {
		if !seen[e.Name] {
			seen[e.Name] = true
			out = append(out, e)
		}
	}
	for _, e := range es {
		for d := path.Dir(trimSlash(e.Name)); d != "." && d != "/"; d = path.Dir(d) {
			add(entry{Name: d + "/", Mode: 0o755})
		}
		add(e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func trimSlash(s string) string {
	if len(s) > 1 && s[len(s)-1] == '/' {
		return s[:len(s)-1]
	}
	return s
}
