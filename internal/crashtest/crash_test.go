package crashtest

import (
	"context"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// logWriter passes Run's lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestCrash is the short version of the crash tests, for CI: a few runs
// killing destination agents, a few killing the manager, with the real
// binaries, on a fleet holding v1 objects, v2 objects and multipart
// uploads. cmd/rebalancer-crash runs the long version.
func TestCrash(t *testing.T) {
	if err := pgtest.Available(); err != nil {
		// v2 objects need PostgreSQL; NewDatabase skips loudly, or fails
		// under CI, without one.
		pgtest.NewDatabase(t)
	}
	ctx := context.Background()
	bins := t.TempDir()
	if err := Build(ctx, bins); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kill  Target
		seeds []int64
	}{
		{Agent, []int64{1, 2, 3}},
		{Manager, []int64{1, 2}},
	} {
		t.Run(string(c.kill), func(t *testing.T) {
			rep, err := Run(ctx, Config{Kill: c.kill, Seeds: c.seeds, Objects: 200, BinDir: bins, Log: logWriter{t},
				Databases: pgtest.CreateDatabase, V2Objects: 60, Uploads: 4})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Runs) != len(c.seeds) {
				t.Fatalf("%d runs, want %d", len(rep.Runs), len(c.seeds))
			}
			for _, r := range rep.Failed() {
				t.Error(r)
			}
			for _, r := range rep.Runs {
				if r.V2 == 0 || r.Uploads == 0 {
					t.Errorf("no v2 objects or uploads on the evacuated shark: %s", r)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := Run(context.Background(), Config{Kill: "shark", Seeds: []int64{1}}); err == nil || !strings.Contains(err.Error(), `kill "shark"`) {
		t.Fatalf("unknown target: %v", err)
	}
}
