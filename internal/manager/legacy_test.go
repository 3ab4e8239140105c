package manager_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/legacydb"
	"github.com/TritonDataCenter/rebalancer/internal/legacydb/legacytest"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// With import_legacy_from, the manager imports the legacy jobs when it
// starts: the API lists them and shows the legacy's counts for them.
// (Importing again adds nothing: package legacyimport's tests.)
func TestImportLegacyAtStart(t *testing.T) {
	jobsURL := pgtest.NewDatabase(t)
	set := legacytest.Standard()
	legacytest.Layout(t, jobsURL, set)
	r := start(t, testbed.Config{Sharks: 4}, func(cfg map[string]any) { cfg["import_legacy_from"] = jobsURL })
	imported := []string{"complete", "running", "retry", "failed", "setup", "init", "stopped", "original"}
	testutil.Poll(t, "the legacy jobs listed", func() error {
		jobs, err := r.client().Jobs(context.Background())
		if err != nil {
			return err
		}
		if len(jobs) != len(imported) {
			return fmt.Errorf("%d jobs listed", len(jobs))
		}
		return nil
	})
	reader, err := legacydb.Open(context.Background(), jobsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	for _, name := range imported {
		j := set.Job(name)
		want, err := reader.Status(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		got := r.get(j.ID)
		if got.State != legacydb.StateAfterRestart(want.State) || got.Results.Total != want.Results.Total ||
			got.Results.Complete != want.Results.Counts[rebalancer.ObjectComplete] || got.Config.FromShark != want.FromShark {
			t.Errorf("%s: %v %+v %+v, legacy %v %+v %+v", name, got.State, got.Config.FromShark, got.Results, want.State, want.FromShark, want.Results)
		}
	}
	if got := r.get(set.Job("running").ID); !strings.Contains(got.Error, "it was running when the legacy manager stopped") {
		t.Errorf("the running job's error: %q", got.Error)
	}

}

func TestImportLegacyFromChecked(t *testing.T) {
	for _, tt := range []struct {
		from string
		ok   bool
	}{
		{"postgres://postgres@localhost/rebalancer", true},
		{"postgresql://10.0.0.9", true},
		{"/rebalancer/pg", false},
		{"mysql://localhost/rebalancer", false},
	} {
		_, err := manager.ParseConfig([]byte(`{"domain_name":"d","shards":[{"host":"1.moray.d"}],"import_legacy_from":"` + tt.from + `"}`))
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "import_legacy_from must be the postgres:// URL")) {
			t.Errorf("import_legacy_from %q: %v", tt.from, err)
		}
	}
}
