package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/legacydb/legacytest"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func importRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"import-legacy"}, args...), &out, &errb, nil, manager.Deps{}, nil)
	return code, out.String(), errb.String()
}

// import-legacy writes the legacy jobs into the job store of the manager's
// configuration (here the README's example, with its store moved to a
// temporary directory), with a progress line per job on stderr and a line
// per job and the totals on stdout; run again, it imports nothing; and
// the manager then opens that store, its mark included.
func TestImportLegacyCommand(t *testing.T) {
	jobsURL := pgtest.NewDatabase(t)
	set := legacytest.Standard()
	legacytest.Layout(t, jobsURL, set)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	example := readmeConfig(t)
	cfgText := strings.Replace(example, `"/var/tmp/rebalancer-manager"`, `"`+store+`"`, 1)
	if cfgText == example {
		t.Fatal("the README's example config has no database to replace")
	}
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errs := importRun(t, "--from", jobsURL, "--config", cfgPath)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	c := set.Job("complete")
	for _, want := range []string{"8 imported (", "0 already imported, 2 skipped, 0 failed, of 10 legacy jobs.",
		c.ID + "  imported", set.Job("none").ID + "  skipped", set.Job("orphan").ID + "  not a job"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "legacy job 1 of 10, "+c.ID+" (complete, 1.stor.example.com): importing") ||
		!strings.Contains(errs, "objects imported") {
		t.Errorf("stderr lacks the progress lines:\n%s", errs)
	}

	code, out, errs = importRun(t, "--from", jobsURL, "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "0 imported (0 objects, 0 duplicates), 8 already imported, 2 skipped, 0 failed") || strings.Contains(errs, "importing") {
		t.Fatalf("second run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}

	cfg, err := manager.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := manager.OpenStore(context.Background(), cfg, testutil.Discard())
	if err != nil {
		t.Fatalf("the manager's store after the import: %v", err)
	}
	defer st.Close()
	if ok, err := st.HasJob(context.Background(), c.ID); !ok || err != nil {
		t.Errorf("job %s in the manager's store: %v %v", c.ID, ok, err)
	}
}

func TestImportLegacyCommandErrors(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, []byte(`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"database":"`+filepath.Join(dir, "s")+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no --from", []string{"--config", cfgPath}, 2, "missing flags: --from=URL"},
		{"no config", []string{"--from", "postgres://localhost", "--config", filepath.Join(dir, "none.json")}, 2, "give the manager's config with --config"},
		{"not a URL", []string{"--from", "/rebalancer/pg", "--config", cfgPath}, 1, "want postgres://"},
		{"help", []string{"--help"}, 0, "Idempotent"},
	} {
		code, out, errs := importRun(t, tt.args...)
		if code != tt.code || !strings.Contains(out+errs, tt.want) || (code != 0 && out != "") {
			t.Errorf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", tt.name, code, out, errs)
		}
	}
}
