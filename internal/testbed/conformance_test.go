package testbed

import (
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// The fleet's test sources keep the rebalancer.ObjectSource contract, so
// that what the engine's tests see of discovery is what sharkspotter
// gives it.
func TestSourcesConformance(t *testing.T) {
	t.Run("ScanSource", func(t *testing.T) {
		rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
			m := LoadMorayShards(t, shards)
			return rebalancertest.SourceHarness{
				Source: &ScanSource{Shards: m.Clients, Numbers: m.Numbers, PageSize: 7},
				Etag:   m.Etag,
				Break:  m.Break,
			}
		})
	})
	t.Run("staticSource", func(t *testing.T) {
		rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
			var src staticSource
			for _, s := range shards {
				for i, rec := range s.Objects {
					if rec.Malformed {
						t.Skip("staticSource holds the objects of a populated fleet, which parse")
					}
					o, err := rebalancer.ParseObject(rec.Value)
					if err != nil {
						t.Fatal(err)
					}
					o.Shard, o.Key, o.ScanID = s.Number, rec.Key, int64(i+1)
					src = append(src, o)
				}
			}
			return rebalancertest.SourceHarness{Source: src}
		})
	})
}
