package moray_test

import (
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// MetadataStore keeps the rebalancer.MetadataStore and
// BatchMetadataStore contracts, against moraytest over real Fast: one
// server per shard, as in Manta.
func TestMetadataStoreConformance(t *testing.T) {
	testutil.CheckLeaks(t)
	rebalancertest.TestMetadataStore(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.MetadataHarness {
		servers := map[int]*moraytest.Server{}
		addrs := moray.StaticShards{}
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
		}
		clients := moray.NewShards(addrs, moray.Options{Logger: testutil.Logger(t)})
		t.Cleanup(func() { clients.Close() })
		return rebalancertest.MetadataHarness{
			Store: moray.NewMetadataStore(clients),
			Delete: func(shard int, key string) {
				if err := servers[shard].Delete(moray.MantaBucket, key); err != nil {
					t.Errorf("delete %s on shard %d: %v", key, shard, err)
				}
			},
		}
	})
}
