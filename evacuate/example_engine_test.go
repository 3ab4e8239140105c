package evacuate_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"path/filepath"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/sqlitestore"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// An engine evacuating a shark of a small Manta running in this process:
// one Moray, a storinfo and four sharks, each with a real agent (the
// module's test fleet stands for a real Manta here). 200 objects have a
// copy on 1.stor.demo.example.
func ExampleEngine() {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	fleet, err := testbed.Start(ctx, testbed.Config{Objects: testbed.Objects{Count: 200, Pin: "1.stor.demo.example"}})
	if err != nil {
		log.Fatal(err)
	}
	defer fleet.Close()

	// The job store, and where copies may go: storinfo's view of the
	// sharks' free space (a long-running program keeps it fresh with
	// view.Run).
	store, err := sqlitestore.Open(ctx, filepath.Join(fleet.Dir(), "jobs.db"), evacuate.StoreOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	lister, err := storinfo.NewClient(storinfo.ClientConfig{BaseURL: fleet.StorinfoURL()})
	if err != nil {
		log.Fatal(err)
	}
	view := storinfo.NewView(storinfo.ViewConfig{Source: lister})
	if err := view.Refresh(ctx); err != nil {
		log.Fatal(err)
	}
	placement, err := storinfo.NewPlacement(storinfo.PlacementConfig{Snapshots: view})
	if err != nil {
		log.Fatal(err)
	}

	engine, err := evacuate.NewEngine(evacuate.Config{
		Store: store,
		// Discovery scans every metadata shard through Moray.
		Source: func(evacuate.JobRecord) (rebalancer.ObjectSource, error) {
			return &sharkspotter.MorayScanner{Clients: fleet.Shards(), Options: sharkspotter.Options{Shards: fleet.ShardNumbers(), Logger: quiet}}, nil
		},
		Metadata:    fleet.MetadataStore(), // moray.NewMetadataStore over the shards
		Placement:   placement,
		Agent:       fleet.AgentClient(), // an agent.Client
		LookupShark: fleet.LookupShark,   // the shark's datacenter, from manta_storage
		Defaults:    testbed.FastJobOptions(),
		Logger:      quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	job, err := engine.CreateJob(ctx, "1.stor.demo.example", evacuate.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if job, err = engine.Wait(ctx, job.ID); err != nil {
		log.Fatal(err)
	}
	st, err := engine.JobStatus(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	moved, _ := st.Total(rebalancer.ObjectComplete)
	fmt.Printf("%s: %d objects moved, %d left\n", job.State.Title(), moved, st.Remaining())
	// Output: Complete: 200 objects moved, 0 left
}
