// Package release builds the artifacts that Triton deploys the rebalancer
// from, in the legacy rebalancer's layouts (its Makefile's release and
// pkg_agent targets), and checks them:
//
//   - rebalancer-pkg-STAMP.tar.gz: the manager zone's files, laid over the
//     zone image by Triton's image build: the binaries, SMF manifest and
//     SAPI manifests under root/opt/smartdc/rebalancer, the boot scripts
//     under root/opt/smartdc/boot (layout.go);
//   - rebalancer-agent-STAMP.tar.gz: the agent for storage zones under
//     root/opt/smartdc/rebalancer-agent;
//   - rebalancer-agent-STAMP.manifest: the agent tarball's image manifest
//     for IMGAPI (uuid, version, size, sha1);
//   - GOOS-GOARCH/: the same commands built for this machine, to try them;
//   - SHA1SUMS.
//
// The binaries are built for illumos/amd64 without cgo. The same commit
// built with the same Go gives the same bytes in every artifact: -trimpath,
// no VCS stamping by the go command, the stamp and the tarballs' dates taken
// from the commit, tar entries sorted and owned by root.
//
// cmd/rebalancer-release (scripts/release.sh) is the command.
package release

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// target is the platform the tarballs' binaries are built for.
var target = Platform{OS: "illumos", Arch: "amd64"}

// Platform is a GOOS/GOARCH pair.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "-" + p.Arch }

// stampVar is the variable the release stamp is linked into.
const stampVar = "github.com/TritonDataCenter/rebalancer/internal/cmdline.stamp"

// Options are a release's inputs.
type Options struct {
	// Root is the module's directory (go.mod, cmd/, deploy/).
	Root string
	// Out is where the artifacts are written (created if needed). Earlier
	// artifacts there are removed first.
	Out string
	// Stamp names the artifacts and is what the binaries print for
	// --version. Empty: BRANCH-YYYYMMDDTHHMMSSZ-gSHA from git, the date
	// being the commit's (Triton's builds use the build's; this keeps
	// rebuilds identical), with -dirty when the work tree has changes.
	Stamp string
	// Epoch dates every tarball entry. Zero: $SOURCE_DATE_EPOCH, else the
	// commit's date.
	Epoch time.Time
	// MantaScripts is a checkout of TritonDataCenter/manta-scripts, whose
	// *.sh the boot scripts source from root/opt/smartdc/boot/scripts (the
	// legacy took them from its deps/manta-scripts submodule). Empty
	// leaves them out: the manager tarball then cannot set up a zone.
	MantaScripts string
	// Host also builds the commands for the machine running the build.
	Host bool
	// ImageUUID is the agent image's uuid. Empty: a name-based (version 5)
	// uuid of the image's name, stamp and sha1, so that a rebuild gives
	// the same manifest (the legacy drew a random one).
	ImageUUID string
	// Go is the go command (default "go" from $PATH).
	Go string
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Artifacts are the paths of a release's outputs.
type Artifacts struct {
	Stamp          string
	ManagerTarball string
	AgentTarball   string
	AgentManifest  string
	// HostDir holds the commands built for the host, "" without Options.Host.
	HostDir string
	Sums    string
	// Warnings are problems that do not stop a release, such as missing
	// manta-scripts.
	Warnings []string
}

// artifactsIn names the artifacts of a release stamped stamp in dir.
func artifactsIn(dir, stamp string) *Artifacts {
	return &Artifacts{
		Stamp:          stamp,
		ManagerTarball: filepath.Join(dir, managerTarballPrefix+stamp+tarballSuffix),
		AgentTarball:   filepath.Join(dir, agentTarballPrefix+stamp+tarballSuffix),
		AgentManifest:  filepath.Join(dir, agentTarballPrefix+stamp+manifestSuffix),
		Sums:           filepath.Join(dir, sumsFile),
	}
}

var stampRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Build compiles the commands and writes the artifacts.
func Build(ctx context.Context, o Options) (*Artifacts, error) {
	if o.Root == "" || o.Out == "" {
		return nil, errors.New("release: Root and Out are required")
	}
	if o.Go == "" {
		o.Go = "go"
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	stamp, epoch, err := versionInfo(ctx, o)
	if err != nil {
		return nil, err
	}
	if o.MantaScripts != "" {
		if fi, err := os.Stat(o.MantaScripts); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("manta-scripts: %s is not a directory", o.MantaScripts)
		}
	}
	scripts, err := mantaScripts(o.MantaScripts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	if err := removeOld(o.Out); err != nil {
		return nil, err
	}
	a := artifactsIn(o.Out, stamp)

	build, err := os.MkdirTemp("", "rebalancer-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(build)
	commands := append(append([]string(nil), managerCommands...), agentCommands...)
	logf("building %s for %s (stamp %s)", strings.Join(commands, ", "), target, stamp)
	if err := goBuild(ctx, o, target, stamp, commands, build); err != nil {
		return nil, err
	}
	host := Platform{runtime.GOOS, runtime.GOARCH}
	if o.Host && host != target {
		a.HostDir = filepath.Join(o.Out, host.String())
		logf("building them for %s into %s", host, a.HostDir)
		if err := os.RemoveAll(a.HostDir); err != nil {
			return nil, err
		}
		if err := goBuild(ctx, o, host, stamp, commands, a.HostDir); err != nil {
			return nil, err
		}
	}

	open := func(e entry) (io.ReadCloser, int64, error) {
		if c, ok := strings.CutPrefix(e.Src, binPrefix); ok {
			return openFile(filepath.Join(build, c))
		}
		if filepath.IsAbs(e.Src) {
			return openFile(e.Src)
		}
		return openFile(filepath.Join(o.Root, filepath.FromSlash(e.Src)))
	}
	manager := managerLayout()
	if scripts == nil {
		a.Warnings = append(a.Warnings, "no --manta-scripts: "+filepath.Base(a.ManagerTarball)+
			" lacks root/opt/smartdc/boot/scripts, which its setup.sh sources; give a checkout of TritonDataCenter/manta-scripts for a deployable image")
	}
	manager = append(manager, scripts...)
	for _, t := range []struct {
		path    string
		entries []entry
	}{{a.ManagerTarball, manager}, {a.AgentTarball, agentLayout()}} {
		logf("writing %s", t.path)
		if err := writeFile(t.path, func(w io.Writer) error { return writeTarball(w, t.entries, epoch, open) }); err != nil {
			return nil, err
		}
	}

	sum, size, err := sha1File(a.AgentTarball)
	if err != nil {
		return nil, err
	}
	m := agentManifest(stamp, sum, size, o.ImageUUID)
	logf("writing %s (image %s)", a.AgentManifest, m.UUID)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(a.AgentManifest, append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := writeSums(a); err != nil {
		return nil, err
	}
	return a, nil
}

// versionInfo resolves the stamp and the tarballs' date.
func versionInfo(ctx context.Context, o Options) (string, time.Time, error) {
	stamp, epoch := o.Stamp, o.Epoch
	if epoch.IsZero() {
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			sec, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return "", time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds", s)
			}
			epoch = time.Unix(sec, 0)
		}
	}
	if stamp == "" || epoch.IsZero() {
		g, err := gitInfo(ctx, o.Root)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("release: no --stamp and no git to derive it from: %w", err)
		}
		if stamp == "" {
			stamp = g.stamp()
		}
		if epoch.IsZero() {
			epoch = g.time
		}
	}
	if !stampRE.MatchString(stamp) {
		return "", time.Time{}, fmt.Errorf("release: stamp %q: use letters, digits, '.', '_' and '-' only", stamp)
	}
	return stamp, epoch.UTC().Truncate(time.Second), nil
}

// git is what the stamp is made of.
type git struct {
	branch, sha string
	time        time.Time
	dirty       bool
}

func (g git) stamp() string {
	s := g.branch + "-" + g.time.UTC().Format("20060102T150405Z") + "-g" + g.sha
	if g.dirty {
		s += "-dirty"
	}
	return s
}

var notStampChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func gitInfo(ctx context.Context, dir string) (git, error) {
	var g git
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	out, err := run("log", "-1", "--format=%ct %h", "--abbrev=7")
	if err != nil {
		return g, err
	}
	secs, sha, _ := strings.Cut(out, " ")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return g, fmt.Errorf("git log: %q", out)
	}
	g.time, g.sha = time.Unix(sec, 0), sha
	branch, err := run("rev-parse", "--abbrev-ref", "HEAD")
	if err != nil {
		return g, err
	}
	if branch == "HEAD" {
		branch = "detached"
	}
	g.branch = strings.Trim(notStampChars.ReplaceAllString(branch, "-"), "-")
	status, err := run("status", "--porcelain")
	if err != nil {
		return g, err
	}
	g.dirty = status != ""
	return g, nil
}

// goBuild builds the commands for p into dir with the release's flags.
// The environment's GOFLAGS are dropped and cgo is off, so that nothing
// of the machine's settings reaches the binaries.
func goBuild(ctx context.Context, o Options, p Platform, stamp string, commands []string, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-X " + stampVar + "=" + stamp, "-o", dir + string(filepath.Separator)}
	for _, c := range commands {
		args = append(args, "./cmd/"+c)
	}
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch, "GOAMD64=v1", "GOFLAGS=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s: %w\n%s", p, err, out.String())
	}
	return nil
}

// mantaScripts lists the top-level *.sh of a manta-scripts checkout as
// entries under root/opt/smartdc/boot/scripts; nil for no directory.
func mantaScripts(dir string) ([]entry, error) {
	if dir == "" {
		return nil, nil
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.sh"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var es []entry
	for _, n := range names {
		abs, err := filepath.Abs(n)
		if err != nil {
			return nil, err
		}
		es = append(es, entry{scriptsDir + filepath.Base(n), 0o755, abs})
	}
	for _, need := range requiredScripts {
		if !slices.ContainsFunc(es, func(e entry) bool { return e.Name == scriptsDir+need }) {
			return nil, fmt.Errorf("manta-scripts: %s has no %s (is it a checkout of TritonDataCenter/manta-scripts?)", dir, need)
		}
	}
	return es, nil
}

// scriptsDir is where the manta-scripts go, and requiredScripts those of
// them that setup.sh sources.
const scriptsDir = "root/opt/smartdc/boot/scripts/"

var requiredScripts = []string{"util.sh", "services.sh"}

// ImageManifest is an IMGAPI image manifest, the fields the legacy's
// agent-manifest.tmpl fills, in its order.
type ImageManifest struct {
	V           int               `json:"v"`
	UUID        string            `json:"uuid"`
	Owner       string            `json:"owner"`
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	State       string            `json:"state"`
	Disabled    bool              `json:"disabled"`
	Public      bool              `json:"public"`
	Type        string            `json:"type"`
	OS          string            `json:"os"`
	Files       []ImageFile       `json:"files"`
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
}

// ImageFile is the image's one file: the agent tarball.
type ImageFile struct {
	SHA1        string `json:"sha1"`
	Size        int64  `json:"size"`
	Compression string `json:"compression"`
}

// imageNamespace is the namespace of the agent images' name-based uuids.
var imageNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/TritonDataCenter/rebalancer#agent-image"))

func agentManifest(stamp, sha1sum string, size int64, id string) ImageManifest {
	if id == "" {
		id = uuid.NewSHA1(imageNamespace, []byte(AgentImageName+"\x00"+stamp+"\x00"+sha1sum)).String()
	}
	return ImageManifest{
		V: 2, UUID: id, Owner: "00000000-0000-0000-0000-000000000000",
		Name: AgentImageName, Version: stamp, State: "active",
		Type: "other", OS: "other",
		Files:       []ImageFile{{SHA1: sha1sum, Size: size, Compression: "gzip"}},
		Description: AgentImageDescription,
		Tags:        map[string]string{"smartdc_service": "true"},
	}
}

// removeOld removes what an earlier release left in dir, and nothing else.
func removeOld(dir string) error {
	for _, pattern := range []string{
		managerTarballPrefix + "*" + tarballSuffix,
		agentTarballPrefix + "*" + tarballSuffix,
		agentTarballPrefix + "*" + manifestSuffix,
		sumsFile,
	} {
		names, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := os.Remove(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeFile writes a file through a temporary name, so that a failed
// release leaves no partial artifact.
func writeFile(name string, fill func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

func sha1File(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha1.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// writeSums writes SHA1SUMS in sha1sum's format, relative to the output
// directory.
func writeSums(a *Artifacts) error {
	dir := filepath.Dir(a.Sums)
	files := []string{a.ManagerTarball, a.AgentTarball, a.AgentManifest}
	if a.HostDir != "" {
		bins, err := filepath.Glob(filepath.Join(a.HostDir, "*"))
		if err != nil {
			return err
		}
		files = append(files, bins...)
	}
	var b strings.Builder
	for _, f := range files {
		sum, _, err := sha1File(f)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, filepath.ToSlash(rel))
	}
	return os.WriteFile(a.Sums, []byte(b.String()), 0o644)
}
