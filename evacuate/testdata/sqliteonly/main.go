// Command sqliteonly embeds the engine with its jobs in a SQLite file, its
// metadata in Moray, placement from storinfo and the job API: the
// program TestDrivers checks does not link the driver of PostgreSQL.
package main

import (
	"context"
	"log"
	"net/http"
	"os"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/sqlitestore"
	"github.com/TritonDataCenter/rebalancer/jobapi"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

func main() {
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, os.Args[1], evacuate.StoreOptions{MarkFile: sqlitestore.DefaultMarkFile(os.Args[1])})
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
