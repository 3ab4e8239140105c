package main

import (
	"os"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// TestMain fails the package if any goroutine a test started outlives the
// tests: every manager, fleet and client must stop what it started.
func TestMain(m *testing.M) { os.Exit(testutil.CheckMain(m)) }
