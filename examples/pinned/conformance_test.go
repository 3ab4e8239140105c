package main

import (
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// Pinned keeps the rebalancer.Placement contract. It knows nothing of
// space, so the suite's checks of room do not apply.
func TestPinnedConformance(t *testing.T) {
	rebalancertest.TestPlacement(t, func(t *testing.T, fleet []rebalancertest.Destination) rebalancertest.PlacementHarness {
		p := &Pinned{}
		for _, d := range fleet {
			p.Dests = append(p.Dests, d.Node)
		}
		return rebalancertest.PlacementHarness{Placement: p}
	})
}

var _ rebalancer.Placement = (*Pinned)(nil)
