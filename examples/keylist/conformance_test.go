package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// KeyListSource keeps the rebalancer.ObjectSource contract when its list
// names every object of the shards (moraytest servers, one per shard):
// it reads each object's current metadata and visits those on the shark.
func TestKeyListSourceConformance(t *testing.T) {
	rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
		m := testbed.LoadMorayShards(t, shards)
		var lines []string
		for _, s := range shards {
			for _, o := range s.Objects {
				lines = append(lines, fmt.Sprintf("%d %s", s.Number, o.Key))
			}
		}
		keys := filepath.Join(t.TempDir(), "keys.txt")
		if err := os.WriteFile(keys, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return rebalancertest.SourceHarness{
			Source: KeyListSource{Path: keys, Metadata: moray.NewMetadataStore(m.Clients)},
			Etag:   m.Etag,
			Break:  m.Break,
		}
	})
}
