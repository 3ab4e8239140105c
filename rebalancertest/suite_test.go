package rebalancertest_test

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// The reference implementations pass every suite.
func TestReferenceImplementations(t *testing.T) {
	t.Run("ObjectSource", func(t *testing.T) {
		rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
			return newMemSource(shards, "").harness()
		})
	})
	t.Run("MetadataStore", func(t *testing.T) {
		rebalancertest.TestMetadataStore(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.MetadataHarness {
			return newMemStore(shards, "").harness()
		})
	})
	t.Run("Placement", func(t *testing.T) {
		rebalancertest.TestPlacement(t, func(t *testing.T, fleet []rebalancertest.Destination) rebalancertest.PlacementHarness {
			return newMemPlacement(fleet, "")
		})
	})
	t.Run("Agent", func(t *testing.T) {
		rebalancertest.TestAgent(t, func(t *testing.T) rebalancertest.AgentHarness { return newMemAgent(t, "") })
	})
}

// mutants are the reference implementations, each breaking one rule, and
// what the suite must say about it.
var mutants = map[string]string{
	"source: visits a doubly listed object twice": "visited twice",
	"source: misses the last shard's last object": "not visited",
	"source: descending ids":                      "visited after ScanID",
	"source: wrong etag":                          "as stored",
	"source: ignores After":                       "visited again after resuming",
	"source: swallows visit's error":              "want visit's error",
	"source: ignores cancellation":                "want context.Canceled",
	"source: failure without the shard":           "does not name shard 2",
	"source: skips unusable records":              "has no objectId",
	"store: ignores the shard":                    "GetObject(1, ",
	"store: not found is a plain error":           "want ErrObjectNotFound",
	"store: unconditional writes":                 "want ErrEtagConflict",
	"store: reformats the value":                  "the metadata is",
	"store: replaces unlisted sharks":             "want ErrSharkNotListed",
	"store: batches write as they go":             "a failed batch wrote",
	"placement: picks the evacuated shark":        "allowed: sharks",
	"placement: picks holders":                    "allowed: sharks",
	"placement: ignores avoid":                    "allowed: sharks",
	"placement: loses the datacenter":             "as the fleet names them",
	"placement: plain error when nothing fits":    "want a *SkipError",
	"placement: overfills":                        "where 3 fit",
	"placement: keeps released room":              "released uncopied",
	"agent: drops a task":                         "want 5, 5 (processed, failed included) and 2",
	"agent: missing objects complete":             "the missing and the corrupt object",
	"agent: accepts known ids":                    "want ErrAssignmentExists",
	"agent: never busy":                           "want ErrAgentBusy",
	"agent: delete keeps the assignment":          "after DeleteAssignment",
}

// runMutant runs the suite of the mutant's interface over it.
func runMutant(t *testing.T, name string) {
	switch kind, _, _ := strings.Cut(name, ":"); kind {
	case "source":
		rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
			return newMemSource(shards, name).harness()
		})
	case "store":
		rebalancertest.TestMetadataStore(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.MetadataHarness {
			return newMemStore(shards, name).harness()
		})
	case "placement":
		rebalancertest.TestPlacement(t, func(t *testing.T, fleet []rebalancertest.Destination) rebalancertest.PlacementHarness {
			return newMemPlacement(fleet, name)
		})
	case "agent":
		rebalancertest.TestAgent(t, func(t *testing.T) rebalancertest.AgentHarness { return newMemAgent(t, name) })
	default:
		t.Fatalf("mutant %q of no interface", name)
	}
}

// TestMutants is run by TestSuitesCatchMutants in a child process, where
// every subtest is expected to fail; run directly, it does nothing.
func TestMutants(t *testing.T) {
	if os.Getenv("REBALANCERTEST_MUTANTS") != "1" {
		return
	}
	for name := range mutants {
		t.Run(subtestName(name), func(t *testing.T) { runMutant(t, name) })
	}
}

func subtestName(mutant string) string {
	return regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(mutant, "_")
}

// Every suite fails each mutant of its interface, saying why: the suites
// can fail, and for the reasons they claim.
func TestSuitesCatchMutants(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestMutants$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REBALANCERTEST_MUTANTS=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("no mutant failed its suite:\n%s", out)
	}
	// Split the report by mutant: each failed one heads its own block.
	blocks := map[string]string{}
	head := regexp.MustCompile(`^ {4}--- FAIL: TestMutants/(\S+) `)
	current := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := head.FindStringSubmatch(line); m != nil {
			current = m[1]
		}
		if current != "" {
			blocks[current] += line + "\n"
		}
	}
	for name, says := range mutants {
		block, failed := blocks[subtestName(name)]
		switch {
		case !failed:
			t.Errorf("mutant %q survived its suite", name)
		case !strings.Contains(block, says):
			t.Errorf("mutant %q failed its suite, but not saying %q:\n%s", name, says, block)
		}
	}
	if t.Failed() {
		t.Logf("child output:\n%s", out)
	}
}

// The examples' implementations pass their suites.
func TestExamples(t *testing.T) {
	t.Run("memorySource", func(t *testing.T) { rebalancertest.TestObjectSource(t, newMemorySource) })
	t.Run("rotation", func(t *testing.T) { rebalancertest.TestPlacement(t, newRotation) })
}
