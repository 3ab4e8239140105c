package testbed

import (
	"os"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// TestMain fails the package if any goroutine a test started outlives the
// tests: every fleet must stop everything it started. A PostgreSQL this
// process starts for the buckets tier (when REBALANCER_TEST_POSTGRES is
// unset) is started before the leak check looks, and stopped after.
func TestMain(m *testing.M) {
	_ = pgtest.Available()
	code := testutil.CheckMain(m)
	pgtest.Stop()
	os.Exit(code)
}
