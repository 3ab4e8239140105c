// Command pgonly embeds the engine with its jobs in PostgreSQL, its
// metadata in Moray, placement from storinfo and the job API: the
// program TestDrivers checks does not link the driver of SQLite.
package main

import (
	"context"
	"log"
	"net/http"
	"os"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/pgstore"
	"github.com/TritonDataCenter/rebalancer/jobapi"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

func main() {
	ctx := context.Background()
	store, err := pgstore.Open(ctx, os.Args[1], evacuate.StoreOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	shards := moray.NewShards(moray.StaticShards{1: os.Args[2]}, moray.Options{})
	defer shards.Close()
	lister, err := storinfo.NewClient(storinfo.ClientConfig{BaseURL: os.Args[3]})
	if err != nil {
		log.Fatal(err)
	}
	placement, err := storinfo.NewPlacement(storinfo.PlacementConfig{Snapshots: storinfo.NewView(storinfo.ViewConfig{Source: lister})})
	if err != nil {
		log.Fatal(err)
	}
	var agents rebalancer.Agent // an embedder's own agent client
	engine, err := evacuate.NewEngine(evacuate.Config{Store: store, Metadata: moray.NewMetadataStore(shards), Placement: placement, Agent: agents})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()
	log.Fatal(http.ListenAndServe(os.Args[4], (&jobapi.Server{Engine: engine}).Handler()))
}
