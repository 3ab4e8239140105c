package evacuate_test

import (
	"go/build"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The drivers of the job store's databases are linked only by the package
// that opens that database: a program keeping its jobs in PostgreSQL does
// not link SQLite, and the reverse; the engine and the job API link
// neither.
func TestDrivers(t *testing.T) {
	const (
		sqlite = "modernc.org/sqlite"
		pq     = "github.com/lib/pq"
	)
	for _, tt := range []struct {
		pkg       string
		want, not []string
	}{
		{"./testdata/pgonly", []string{pq}, []string{sqlite}},
		{"./testdata/sqliteonly", []string{sqlite}, []string{pq}},
		{"./pgstore", []string{pq}, []string{sqlite}},
		{"./sqlitestore", []string{sqlite}, []string{pq}},
		{".", nil, []string{sqlite, pq}},
		{"../jobapi", nil, []string{sqlite, pq}},
	} {
		deps := listDeps(t, tt.pkg)
		for _, d := range tt.want {
			if !slices.Contains(deps, d) {
				t.Errorf("%s does not link %s: the check below proves nothing", tt.pkg, d)
			}
		}
		for _, d := range tt.not {
			if slices.Contains(deps, d) {
				t.Errorf("%s links %s", tt.pkg, d)
			}
		}
	}
}

// listDeps returns the packages pkg depends on, as go list -deps says.
func listDeps(t *testing.T, pkg string) []string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(build.Default.GOROOT, "bin", "go")
	}
	out, err := exec.Command(goCmd, "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	return strings.Fields(string(out))
}
