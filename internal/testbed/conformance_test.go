package testbed

import (
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// The fleet's test sources keep the rebalancer.ObjectSource contract, so
// that what the engine's tests see of discovery is what sharkspotter
// gives it.
func TestSourcesConformance(t *testing.T) {
	t.Run("ScanSource", func(t *testing.T) {
		rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
			servers := map[int]*moraytest.Server{}
			addrs := moray.StaticShards{}
			var numbers []int
			for _, s := range shards {
				srv := moraytest.Start(t)
				if err := srv.CreateMantaBucket(); err != nil {
					t.Fatal(err)
				}
				for _, o := range s.Objects {
					if _, err := srv.Put(moray.MantaBucket, o.Key, o.Value); err != nil {
						t.Fatal(err)
					}
				}
				servers[s.Number], addrs[s.Number] = srv, srv.Addr()
				numbers = append(numbers, s.Number)
			}
			clients := moray.NewShards(addrs, moray.Options{Logger: testutil.Logger(t)})
			t.Cleanup(func() { clients.Close() })
			return rebalancertest.SourceHarness{
				Source: &ScanSource{Shards: clients, Numbers: numbers, PageSize: 7},
				Etag: func(shard int, key string) string {
					o, err := servers[shard].Get(moray.MantaBucket, key)
					if err != nil {
						t.Errorf("shard %d key %s: %v", shard, key, err)
					}
					return o.Etag
				},
				Break: func(shard int) { servers[shard].Offline() },
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
