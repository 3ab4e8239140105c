package storinfo_test

import (
	"context"
	"testing"

	"github.com/TritonDataCenter/rebalancer/rebalancertest"
	"github.com/TritonDataCenter/rebalancer/storinfo"
	"github.com/TritonDataCenter/rebalancer/storinfo/storinfotest"
)

// Placement keeps the rebalancer.Placement contract over a fleet read from
// storinfotest through the client and a View, as the manager reads it.
// Every destination's free space is its room: no minimum kept free, fill
// up to 100%.
func TestPlacementConformance(t *testing.T) {
	rebalancertest.TestPlacement(t, func(t *testing.T, fleet []rebalancertest.Destination) rebalancertest.PlacementHarness {
		var records []storinfotest.Record
		for _, d := range fleet {
			mb := d.RoomBytes / storinfo.MiB
			records = append(records, storinfotest.NewRecord(d.Node.MantaStorageID, d.Node.Datacenter, mb, mb))
		}
		srv := storinfotest.NewServer(records...)
		t.Cleanup(srv.Close)
		client, err := storinfo.NewClient(storinfo.ClientConfig{BaseURL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.CloseIdleConnections)
		view := storinfo.NewView(storinfo.ViewConfig{Source: client})
		if err := view.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		p, err := storinfo.NewPlacement(storinfo.PlacementConfig{
			Tunables:  storinfo.Tunables{MaxFillPercentage: 100, MinAvailMB: -1},
			Snapshots: view,
		})
		if err != nil {
			t.Fatal(err)
		}
		return rebalancertest.PlacementHarness{Placement: p, TracksSpace: true}
	})
}
