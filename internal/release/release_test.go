package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testStamp = "test-20250102T030405Z-g0123abc"

var testEpoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeMantaScripts makes a directory standing for a manta-scripts
// checkout.
func fakeMantaScripts(t *testing.T, names ...string) string {
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("# "+n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a script\n"), 0o644)
	return dir
}

// The whole release, built for real by the command (a process without the
// race detector, which would make compressing the tarballs take minutes):
// the tarballs hold exactly the legacy layouts, the binaries carry the
// stamp, a second build gives the same bytes, and the checks find what is
// wrong in damaged artifacts.
func TestBuild(t *testing.T) {
	cmd := filepath.Join(t.TempDir(), "rebalancer-release")
	if out, err := exec.Command("go", "build", "-o", cmd, "../../cmd/rebalancer-release").CombinedOutput(); err != nil {
		t.Fatalf("building the command: %v\n%s", err, out)
	}
	runRelease := func(out string, args ...string) string {
		t.Helper()
		c := exec.Command(cmd, append([]string{"--out", out, "--stamp", testStamp}, args...)...)
		c.Dir = "../.."
		c.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(testEpoch.Unix(), 10))
		var stderr bytes.Buffer
		c.Stderr = &stderr
		stdout, err := c.Output()
		if err != nil {
			t.Fatalf("rebalancer-release %q: %v\n%s", c.Args, err, stderr.String())
		}
		if !strings.HasPrefix(string(stdout), "Release "+testStamp+" in "+out+" (checked):\n") {
			t.Errorf("rebalancer-release printed\n%s", stdout)
		}
		return stderr.String()
	}
	out := t.TempDir()
	if stderr := runRelease(out, "--manta-scripts", fakeMantaScripts(t, "util.sh", "services.sh", "backup.sh")); strings.Contains(stderr, "WARNING") {
		t.Errorf("warnings:\n%s", stderr)
	}
	a := artifactsIn(out, testStamp)
	host := Platform{runtime.GOOS, runtime.GOARCH}
	if host != target {
		a.HostDir = filepath.Join(out, host.String())
	}
	agentFiles := readAll(t, a.AgentTarball)

	t.Run("layout", func(t *testing.T) {
		const d, x, f = "drwxr-xr-x", "-rwxr-xr-x", "-rw-r--r--"
		checkListing(t, "manager", readAll(t, a.ManagerTarball), []string{
			d + " root/",
			d + " root/opt/",
			d + " root/opt/smartdc/",
			d + " root/opt/smartdc/boot/",
			x + " root/opt/smartdc/boot/configure.sh",
			d + " root/opt/smartdc/boot/scripts/",
			x + " root/opt/smartdc/boot/scripts/backup.sh",
			x + " root/opt/smartdc/boot/scripts/services.sh",
			x + " root/opt/smartdc/boot/scripts/util.sh",
			x + " root/opt/smartdc/boot/setup.sh",
			d + " root/opt/smartdc/rebalancer/",
			d + " root/opt/smartdc/rebalancer/bin/",
			x + " root/opt/smartdc/rebalancer/bin/rebalancer-adm",
			x + " root/opt/smartdc/rebalancer/bin/rebalancer-manager",
			x + " root/opt/smartdc/rebalancer/bin/sharkspotter",
			d + " root/opt/smartdc/rebalancer/sapi_manifests/",
			d + " root/opt/smartdc/rebalancer/sapi_manifests/rebalancer/",
			f + " root/opt/smartdc/rebalancer/sapi_manifests/rebalancer/manifest.json",
			f + " root/opt/smartdc/rebalancer/sapi_manifests/rebalancer/template",
			d + " root/opt/smartdc/rebalancer/sapi_manifests/registrar/",
			f + " root/opt/smartdc/rebalancer/sapi_manifests/registrar/manifest.json",
			f + " root/opt/smartdc/rebalancer/sapi_manifests/registrar/template",
			d + " root/opt/smartdc/rebalancer/smf/",
			d + " root/opt/smartdc/rebalancer/smf/manifests/",
			f + " root/opt/smartdc/rebalancer/smf/manifests/rebalancer.xml",
		})
		checkListing(t, "agent", agentFiles, []string{
			d + " root/",
			d + " root/opt/",
			d + " root/opt/smartdc/",
			d + " root/opt/smartdc/rebalancer-agent/",
			d + " root/opt/smartdc/rebalancer-agent/bin/",
			x + " root/opt/smartdc/rebalancer-agent/bin/rebalancer-agent",
			d + " root/opt/smartdc/rebalancer-agent/etc/",
			d + " root/opt/smartdc/rebalancer-agent/sapi_manifests/",
			d + " root/opt/smartdc/rebalancer-agent/sapi_manifests/agent/",
			f + " root/opt/smartdc/rebalancer-agent/sapi_manifests/agent/manifest.json",
			f + " root/opt/smartdc/rebalancer-agent/sapi_manifests/agent/template",
			d + " root/opt/smartdc/rebalancer-agent/smf/",
			d + " root/opt/smartdc/rebalancer-agent/smf/manifests/",
			f + " root/opt/smartdc/rebalancer-agent/smf/manifests/rebalancer-agent.xml",
		})
		// The files are the repository's, byte for byte.
		want, _ := os.ReadFile("../../deploy/sapi_manifests/agent/template")
		if got := fileData(agentFiles, "root/opt/smartdc/rebalancer-agent/sapi_manifests/agent/template"); !bytes.Equal(got, want) {
			t.Error("the agent's template in the tarball is not the repository's")
		}
		if err := checkBinary(fileData(agentFiles, "root/opt/smartdc/rebalancer-agent/bin/rebalancer-agent"), testStamp); err != nil {
			t.Error(err)
		}
	})

	t.Run("host binaries", func(t *testing.T) {
		if a.HostDir == "" {
			return // the tarballs' binaries are the host's
		}
		// manta-hotpatch-rebalancer-agent reads the version as the second
		// word of --version.
		for _, c := range []string{"rebalancer-agent", "rebalancer-manager", "rebalancer-adm", "sharkspotter"} {
			out, err := exec.Command(filepath.Join(a.HostDir, c), "--version").CombinedOutput()
			if got := strings.Fields(string(out)); err != nil || len(got) != 2 || got[0] != c || got[1] != testStamp {
				t.Errorf("%s --version: %q, %v; want %q", c, out, err, c+" "+testStamp)
			}
		}
		// A host binary is not an illumos one.
		b, err := os.ReadFile(filepath.Join(a.HostDir, "rebalancer-agent"))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkBinary(b, testStamp); err == nil {
			t.Errorf("checkBinary accepts a %s binary", host)
		}
	})

	t.Run("manifest", func(t *testing.T) {
		if err := checkManifest(a); err != nil {
			t.Fatal(err)
		}
		sum, size, err := sha1File(a.AgentTarball)
		if err != nil {
			t.Fatal(err)
		}
		m := agentManifest(testStamp, sum, size, "")
		if m.UUID == agentManifest(testStamp+"x", sum, size, "").UUID || m.UUID == agentManifest(testStamp, "0"+sum[1:], size, "").UUID {
			t.Error("the image uuid does not depend on the stamp and the sha1")
		}
		b, _ := os.ReadFile(a.AgentManifest)
		for _, want := range []string{`"uuid": "` + m.UUID + `"`, `"sha1": "` + sum + `"`, `"version": "` + testStamp + `"`, `"name": "mantav2-rebalancer-agent"`} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("manifest lacks %s:\n%s", want, b)
			}
		}
		// A manifest that does not match its tarball fails.
		bad := *a
		bad.AgentManifest = filepath.Join(t.TempDir(), "bad.manifest")
		os.WriteFile(bad.AgentManifest, bytes.Replace(b, []byte(sum), []byte("0"+sum[1:]), 1), 0o644)
		if err := checkManifest(&bad); err == nil || !strings.Contains(err.Error(), "want the agent tarball's sha1") {
			t.Errorf("a wrong sha1: %v", err)
		}
	})

	// Rebuilt into another directory, without manta-scripts: the agent's
	// artifacts are byte for byte the same, and the command warns that the
	// manager's lacks the scripts.
	t.Run("rebuild", func(t *testing.T) {
		out2 := t.TempDir()
		stderr := runRelease(out2, "--no-host")
		b := artifactsIn(out2, testStamp)
		for _, p := range [][2]string{{a.AgentTarball, b.AgentTarball}, {a.AgentManifest, b.AgentManifest}} {
			s1, _, _ := sha1File(p[0])
			s2, _, _ := sha1File(p[1])
			if s1 != s2 {
				t.Errorf("%s differs between two builds", filepath.Base(p[0]))
			}
		}
		if !strings.Contains(stderr, "WARNING: no --manta-scripts") {
			t.Errorf("no warning about manta-scripts:\n%s", stderr)
		}
	})

	// The checks find what is wrong in a damaged agent tarball.
	t.Run("damage", func(t *testing.T) {
		var hostAgent []byte
		if a.HostDir != "" {
			hostAgent, _ = os.ReadFile(filepath.Join(a.HostDir, "rebalancer-agent"))
		}
		tests := []struct {
			name   string
			change func([]tarFile) []tarFile
			want   []string
		}{
			{"wrong mode", func(fs []tarFile) []tarFile {
				changeFile(fs, "root/opt/smartdc/rebalancer-agent/sapi_manifests/agent/template", func(f *tarFile) { f.Header.Mode = 0o600 })
				return fs
			}, []string{"template has mode 600, want 644"}},
			{"extra file", func(fs []tarFile) []tarFile {
				return append(fs, tarFile{&tar.Header{Name: "root/opt/smartdc/rebalancer-agent/zz", Mode: 0o644, Typeflag: tar.TypeReg, ModTime: testEpoch}, nil})
			}, []string{"zz does not belong"}},
			{"missing file", func(fs []tarFile) []tarFile {
				return slices.DeleteFunc(fs, func(f tarFile) bool { return strings.HasSuffix(f.Header.Name, "/agent/template") })
			}, []string{"template is missing", "has no template beside it"}},
			{"bad SMF", func(fs []tarFile) []tarFile {
				changeFile(fs, "root/opt/smartdc/rebalancer-agent/smf/manifests/rebalancer-agent.xml", func(f *tarFile) {
					f.Data = bytes.Replace(f.Data, []byte("<!-- nobody"), []byte("<!-- --nobody"), 1)
				})
				return fs
			}, []string{"not well-formed XML"}},
			{"wrong config path", func(fs []tarFile) []tarFile {
				changeFile(fs, "root/opt/smartdc/rebalancer-agent/sapi_manifests/agent/manifest.json", func(f *tarFile) {
					f.Data = bytes.Replace(f.Data, []byte("etc/config.toml"), []byte("etc/agent.toml"), 1)
				})
				return fs
			}, []string{"but config-agent writes"}},
			{"owner", func(fs []tarFile) []tarFile {
				fs[0].Header.Uid = 1000
				return fs
			}, []string{"root/ is owned by 1000:0"}},
			{"date", func(fs []tarFile) []tarFile {
				fs[3].Header.ModTime = testEpoch.Add(time.Second)
				return fs
			}, []string{"is dated"}},
			{"unsorted", func(fs []tarFile) []tarFile {
				fs[len(fs)-1], fs[len(fs)-2] = fs[len(fs)-2], fs[len(fs)-1]
				return fs
			}, []string{"entries are not sorted"}},
			{"unstamped", func(fs []tarFile) []tarFile {
				changeFile(fs, "root/opt/smartdc/rebalancer-agent/bin/rebalancer-agent", func(f *tarFile) {
					f.Data = bytes.ReplaceAll(f.Data, []byte(testStamp), []byte(strings.Repeat("x", len(testStamp))))
				})
				return fs
			}, []string{"not stamped"}},
			{"host binary", func(fs []tarFile) []tarFile {
				if hostAgent == nil {
					hostAgent = []byte("not an ELF file")
				}
				changeFile(fs, "root/opt/smartdc/rebalancer-agent/bin/rebalancer-agent", func(f *tarFile) { f.Data = hostAgent })
				return fs
			}, []string{"bin/rebalancer-agent: "}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				errs := checkTarball(tt.change(copyFiles(agentFiles)), agentLayout(), testStamp,
					"root/opt/smartdc/rebalancer-agent/smf/manifests/rebalancer-agent.xml",
					"root/opt/smartdc/rebalancer-agent/sapi_manifests/agent/manifest.json")
				msg := fmt.Sprint(errs)
				for _, w := range tt.want {
					if !strings.Contains(msg, w) {
						t.Errorf("the checks do not say %q: %v", w, errs)
					}
				}
			})
		}
		if errs := checkTarball(agentFiles, agentLayout(), testStamp,
			"root/opt/smartdc/rebalancer-agent/smf/manifests/rebalancer-agent.xml",
			"root/opt/smartdc/rebalancer-agent/sapi_manifests/agent/manifest.json"); len(errs) > 0 {
			t.Errorf("the undamaged tarball fails: %v", errs)
		}
	})
}

// copyFiles copies the entries deeply enough for a test to change them.
func copyFiles(files []tarFile) []tarFile {
	out := make([]tarFile, len(files))
	for i, f := range files {
		h := *f.Header
		out[i] = tarFile{&h, f.Data}
	}
	return out
}

func TestBuildRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"stamp", Options{Root: "../..", Out: t.TempDir(), Stamp: "a b", Epoch: testEpoch}, "use letters, digits"},
		{"manta-scripts", Options{Root: "../..", Out: t.TempDir(), Stamp: testStamp, Epoch: testEpoch,
			MantaScripts: fakeMantaScripts(t, "util.sh")}, "has no services.sh"},
		{"missing manta-scripts", Options{Root: "../..", Out: t.TempDir(), Stamp: testStamp, Epoch: testEpoch,
			MantaScripts: "/nonexistent"}, "not a directory"},
		{"no out", Options{Root: "../.."}, "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(ctx, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build: %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestGitStamp(t *testing.T) {
	g := git{branch: "master", sha: "6dc482c", time: time.Date(2020, 6, 17, 23, 40, 37, 0, time.UTC)}
	if got, want := g.stamp(), "master-20200617T234037Z-g6dc482c"; got != want {
		t.Errorf("stamp %q, want %q (Triton's form)", got, want)
	}
	g.dirty = true
	if got := g.stamp(); !strings.HasSuffix(got, "-dirty") {
		t.Errorf("dirty stamp %q", got)
	}
	// This repository's own.
	info, err := gitInfo(context.Background(), "../..")
	if err != nil {
		t.Fatal(err)
	}
	if !stampRE.MatchString(info.stamp()) || len(info.sha) < 7 || info.time.IsZero() {
		t.Errorf("stamp from git: %q", info.stamp())
	}
}

// The same entries give the same bytes, whatever order they come in.
func TestWriteTarballIsDeterministic(t *testing.T) {
	es := []entry{
		{"root/b/x", 0o644, "x"}, {"root/a/y", 0o755, "y"}, {"root/a-b/z", 0o644, "z"}, {"root/c/", 0o755, ""},
	}
	open := func(e entry) (io.ReadCloser, int64, error) {
		return io.NopCloser(strings.NewReader(e.Src + "\n")), int64(len(e.Src) + 1), nil
	}
	var one, two bytes.Buffer
	if err := writeTarball(&one, es, testEpoch, open); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(es)
	if err := writeTarball(&two, es, testEpoch, open); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Error("two writes of the same entries differ")
	}
	files, err := readTarball(&one)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Header.Name)
		if f.Header.Uid != 0 || f.Header.Gid != 0 || !f.Header.ModTime.Equal(testEpoch) {
			t.Errorf("%s: owner %d:%d, mtime %v", f.Header.Name, f.Header.Uid, f.Header.Gid, f.Header.ModTime)
		}
	}
	want := []string{"root/", "root/a-b/", "root/a-b/z", "root/a/", "root/a/y", "root/b/", "root/b/x", "root/c/"}
	if !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
	zr, err := gzip.NewReader(bytes.NewReader(two.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header has name %q, time %v", zr.Name, zr.ModTime)
	}
	// A file whose size changes while it is written is an error, not a
	// corrupt tarball.
	err = writeTarball(io.Discard, es, testEpoch, func(e entry) (io.ReadCloser, int64, error) {
		return io.NopCloser(strings.NewReader("short")), 100, nil
	})
	if err == nil || !strings.Contains(err.Error(), "changed while being written") {
		t.Errorf("short file: %v", err)
	}
}

func TestCheckSMF(t *testing.T) {
	good := `<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type="manifest" name="x">
  <service name="site/x" type="service" version="1">
    <dependency name="n" grouping="require_all" restart_on="error" type="service"><service_fmri value="svc:/network/physical"/></dependency>
    <method_context><method_credential user="nobody" privileges="basic"/></method_context>
    <exec_method type="method" name="start" exec="/x --config /etc/x.json &amp;" timeout_seconds="30"/>
    <exec_method type="method" name="stop" exec=":kill" timeout_seconds="30"/>
    <instance name="default" enabled="true"/>
    <stability value="Unstable"/>
    <template><common_name><loctext xml:lang="C">X</loctext></common_name></template>
  </service>
</service_bundle>`
	svc, err := CheckSMF([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _ := svc.Flag("config"); svc.Name != "site/x" || svc.User != "nobody" || svc.Privileges != "basic" ||
		!slices.Equal(svc.StartCommand(), []string{"/x", "--config", "/etc/x.json"}) || cfg != "/etc/x.json" {
		t.Errorf("%+v", svc)
	}
	tests := []struct{ name, from, to, want string }{
		{"not XML", "</service_bundle>", "", "not well-formed"},
		{"-- in a comment", `<stability`, `<!-- --x --><stability`, "not well-formed"},
		{"no stability is fine", `<stability value="Unstable"/>`, ``, ""},
		{"exec_method before dependency", `<method_context><method_credential user="nobody" privileges="basic"/></method_context>`,
			`<method_context><method_credential user="nobody" privileges="basic"/></method_context><dependency name="m" grouping="require_all" restart_on="error" type="service"/>`,
			"<dependency> comes too late in <service>"},
		{"two method contexts", `<exec_method type="method" name="start"`, `<method_context/><exec_method type="method" name="start"`, "holds more than one <method_context>"},
		{"unknown element", `<instance name`, `<bogus/><instance name`, "<service> may not hold <bogus>"},
		{"missing attribute", `timeout_seconds="30"/>`, `/>`, "lacks the timeout_seconds attribute"},
		{"no stop", `name="stop"`, `name="restart"`, "no stop method"},
		{"no template", `<template><common_name><loctext xml:lang="C">X</loctext></common_name></template>`, ``, "no <template>"},
		{"no instance", `<instance name="default" enabled="true"/>`, ``, "no <instance>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := strings.Replace(good, tt.from, tt.to, 1)
			if bad == good {
				t.Fatalf("%q is not in the manifest", tt.from)
			}
			_, err := CheckSMF([]byte(bad))
			if tt.want == "" {
				if err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckSMF: %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func checkListing(t *testing.T, name string, files []tarFile, want []string) {
	t.Helper()
	var got []string
	for _, f := range files {
		got = append(got, f.Header.FileInfo().Mode().String()+" "+f.Header.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("the %s tarball holds\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func readAll(t *testing.T, tarball string) []tarFile {
	t.Helper()
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files, err := readTarball(f)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func fileData(files []tarFile, name string) []byte {
	for _, f := range files {
		if f.Header.Name == name {
			return f.Data
		}
	}
	return nil
}

func changeFile(files []tarFile, name string, change func(*tarFile)) {
	for i := range files {
		if files[i].Header.Name == name {
			change(&files[i])
			return
		}
	}
	panic("no " + name)
}
