package release

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Verify checks a release's artifacts: each tarball holds its layout and
// nothing else, with directories 0755, executables 0755 and other files
// 0644, all owned by root and dated alike, in name order; the binaries
// are illumos/amd64 executables carrying the stamp; the SMF manifests
// pass CheckSMF and start a binary of the tarball with its SAPI manifest's
// config file; the SAPI manifests are JSON naming their file; the image
// manifest matches the agent tarball. It returns every problem found.
func Verify(a *Artifacts) error {
	var errs []error
	check := func(name string, layout func([]tarFile) []entry, smf, sapi string) {
		f, err := os.Open(name)
		if err != nil {
			errs = append(errs, err)
			return
		}
		defer f.Close()
		files, err := readTarball(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		for _, err := range checkTarball(files, layout(files), a.Stamp, smf, sapi) {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(name), err))
		}
	}
	check(a.ManagerTarball, managerLayoutOf,
		"root/opt/smartdc/rebalancer/smf/manifests/rebalancer.xml", "root/opt/smartdc/rebalancer/sapi_manifests/rebalancer/manifest.json")
	check(a.AgentTarball, func([]tarFile) []entry { return agentLayout() },
		"root/opt/smartdc/rebalancer-agent/smf/manifests/rebalancer-agent.xml", "root/opt/smartdc/rebalancer-agent/sapi_manifests/agent/manifest.json")
	if err := checkManifest(a); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(a.AgentManifest), err))
	}
	return errors.Join(errs...)
}

// managerLayoutOf is the layout a manager tarball should have: managerLayout
// plus the manta-scripts it holds, if any, among which must be those that
// setup.sh sources.
func managerLayoutOf(files []tarFile) []entry {
	layout := managerLayout()
	var scripts []entry
	for _, f := range files {
		if name := f.Header.Name; strings.HasPrefix(name, scriptsDir) && name != scriptsDir {
			scripts = append(scripts, entry{Name: name, Mode: 0o755})
		}
	}
	if len(scripts) == 0 {
		return layout
	}
	for _, s := range requiredScripts {
		if !slices.ContainsFunc(scripts, func(e entry) bool { return e.Name == scriptsDir+s }) {
			// Listing it makes checkTarball report it missing.
			scripts = append(scripts, entry{Name: scriptsDir + s, Mode: 0o755})
		}
	}
	return append(layout, scripts...)
}

// checkTarball checks one tarball's entries against its layout.
func checkTarball(files []tarFile, layout []entry, stamp, smfName, sapiName string) []error {
	var errs []error
	want := map[string]entry{}
	for _, e := range withDirs(layout) {
		want[e.Name] = e
	}
	byName := map[string]tarFile{}
	var mtime time.Time
	for i, f := range files {
		h := f.Header
		if i == 0 {
			mtime = h.ModTime
		}
		if _, dup := byName[h.Name]; dup {
			errs = append(errs, fmt.Errorf("%s is in the tarball twice", h.Name))
		}
		byName[h.Name] = f
		if i > 0 && h.Name < files[i-1].Header.Name {
			errs = append(errs, fmt.Errorf("%s comes after %s: entries are not sorted", h.Name, files[i-1].Header.Name))
		}
		e, ok := want[h.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s does not belong in the tarball", h.Name))
			continue
		}
		isDir := strings.HasSuffix(e.Name, "/")
		switch {
		case isDir && h.Typeflag != tar.TypeDir, !isDir && h.Typeflag != tar.TypeReg:
			errs = append(errs, fmt.Errorf("%s has type %q", h.Name, h.Typeflag))
		case h.Mode != e.Mode:
			errs = append(errs, fmt.Errorf("%s has mode %o, want %o", h.Name, h.Mode, e.Mode))
		}
		if h.Uid != 0 || h.Gid != 0 {
			errs = append(errs, fmt.Errorf("%s is owned by %d:%d, not root", h.Name, h.Uid, h.Gid))
		}
		if !h.ModTime.Equal(mtime) {
			errs = append(errs, fmt.Errorf("%s is dated %v, not %v as the others", h.Name, h.ModTime, mtime))
		}
		if strings.HasPrefix(e.Src, binPrefix) {
			if err := checkBinary(f.Data, stamp); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
			}
		}
	}
	for name := range want {
		if _, ok := byName[name]; !ok {
			errs = append(errs, fmt.Errorf("%s is missing", name))
		}
	}
	smf, ok := byName[smfName]
	sapi, ok2 := byName[sapiName]
	if !ok || !ok2 {
		return errs // reported as missing above
	}
	svc, err := CheckSMF(smf.Data)
	if err != nil {
		return append(errs, fmt.Errorf("%s: %w", smfName, err))
	}
	var m struct{ Name, Path string }
	if err := json.Unmarshal(sapi.Data, &m); err != nil || m.Name == "" || m.Path == "" {
		return append(errs, fmt.Errorf("%s: not a SAPI manifest with a name and a path: %v", sapiName, err))
	}
	if _, ok := byName[sapiName[:strings.LastIndex(sapiName, "/")+1]+"template"]; !ok {
		errs = append(errs, fmt.Errorf("%s has no template beside it", sapiName))
	}
	start := svc.StartCommand()
	if len(start) == 0 {
		return append(errs, fmt.Errorf("%s: empty start method", smfName))
	}
	if bin, ok := byName["root"+start[0]]; !ok || bin.Header.Mode != 0o755 {
		errs = append(errs, fmt.Errorf("%s starts %s, which is not an executable of the tarball", smfName, start[0]))
	}
	if cfg, _ := svc.Flag("config"); cfg != m.Path {
		errs = append(errs, fmt.Errorf("%s starts with --config %q, but config-agent writes %q", smfName, cfg, m.Path))
	}
	return errs
}

// checkBinary checks that data is a Go executable for illumos/amd64
// carrying the release stamp: an x86-64 ELF executable for illumos's
// runtime linker (/lib/amd64/ld.so.1) that needs illumos's libc.so (Go
// leaves the ELF OSABI byte at SYSV on illumos, so that byte tells
// nothing), whose build information says GOOS=illumos and holds the stamp.
func checkBinary(data []byte, stamp string) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not an ELF file: %w", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		return fmt.Errorf("ELF %v %v %v, want a 64-bit x86-64 executable", f.Class, f.Machine, f.Type)
	}
	interp := ""
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return fmt.Errorf("reading its interpreter: %w", err)
			}
			interp = string(bytes.TrimRight(b, "\x00"))
		}
	}
	if interp != "/lib/amd64/ld.so.1" {
		return fmt.Errorf("its interpreter is %q, not illumos's /lib/amd64/ld.so.1", interp)
	}
	libs, err := f.ImportedLibraries()
	if err != nil || !slices.Contains(libs, "libc.so") {
		return fmt.Errorf("it does not need illumos's libc.so (%v)", libs)
	}
	bi, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("no Go build information: %w", err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOOS"] != target.OS || settings["GOARCH"] != target.Arch {
		return fmt.Errorf("built for %s/%s", settings["GOOS"], settings["GOARCH"])
	}
	if settings["-trimpath"] != "true" || settings["CGO_ENABLED"] != "0" {
		return fmt.Errorf("not built with -trimpath and without cgo (%v)", settings)
	}
	// -trimpath keeps -ldflags out of the build information: look for the
	// stamp's bytes, which the linker put in the string data.
	if !bytes.Contains(data, []byte(stamp)) {
		return fmt.Errorf("not stamped %s", stamp)
	}
	return nil
}

// checkManifest checks the agent's image manifest against its tarball.
func checkManifest(a *Artifacts) error {
	b, err := os.ReadFile(a.AgentManifest)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m ImageManifest
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("not an image manifest: %w", err)
	}
	sum, size, err := sha1File(a.AgentTarball)
	if err != nil {
		return err
	}
	var errs []error
	if _, err := uuid.Parse(m.UUID); err != nil {
		errs = append(errs, fmt.Errorf("uuid %q: %w", m.UUID, err))
	}
	if m.V != 2 || m.Name != AgentImageName || m.Version != a.Stamp || m.Type != "other" || m.OS != "other" || m.State != "active" {
		errs = append(errs, fmt.Errorf("v %d, name %q, version %q, type %q, os %q, state %q: want 2, %q, %q, other, other, active",
			m.V, m.Name, m.Version, m.Type, m.OS, m.State, AgentImageName, a.Stamp))
	}
	if len(m.Files) != 1 || m.Files[0].SHA1 != sum || m.Files[0].Size != size || m.Files[0].Compression != "gzip" {
		errs = append(errs, fmt.Errorf("files %+v, want the agent tarball's sha1 %s and size %d, gzip", m.Files, sum, size))
	}
	return errors.Join(errs...)
}
