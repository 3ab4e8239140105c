package moray_test

import (
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// MetadataStore keeps the rebalancer.MetadataStore and
// BatchMetadataStore contracts, against moraytest over real Fast: one
// server per shard, as in Manta.
func TestMetadataStoreConformance(t *testing.T) {
	testutil.CheckLeaks(t)
	rebalancertest.TestMetadataStore(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.MetadataHarness {
		m := testbed.LoadMorayShards(t, shards)
		return rebalancertest.MetadataHarness{Store: moray.NewMetadataStore(m.Clients), Delete: m.Delete}
	})
}
