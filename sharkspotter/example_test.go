package sharkspotter_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

// A MorayScanner finds the objects on a shark through each shard's Moray.
// Here the shard is an in-process moraytest server.
func ExampleMorayScanner() {
	srv, err := moraytest.New(moraytest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	if err := srv.CreateMantaBucket(); err != nil {
		log.Fatal(err)
	}
	for i, sharks := range [][]string{{"1.stor.example.com", "2.stor.example.com"}, {"2.stor.example.com", "3.stor.example.com"}, {"3.stor.example.com", "1.stor.example.com"}} {
		key := fmt.Sprintf("/acct/stor/f%d", i)
		var nodes []rebalancer.StorageNode
		for _, s := range sharks {
			nodes = append(nodes, rebalancer.StorageNode{Datacenter: "dc0", MantaStorageID: s})
		}
		value := map[string]any{"key": key, "owner": "acct", "objectId": fmt.Sprintf("obj%d", i), "type": "object", "sharks": nodes}
		if _, err := srv.Put("manta", key, value); err != nil {
			log.Fatal(err)
		}
	}

	clients := moray.NewShards(moray.StaticShards{1: srv.Addr()}, moray.Options{})
	defer clients.Close()
	scanner := &sharkspotter.MorayScanner{
		Clients: clients,
		Options: sharkspotter.Options{Shards: []int{1}, Logger: slog.New(slog.DiscardHandler)},
	}
	err = scanner.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: "1.stor.example.com"},
		func(o rebalancer.Object) error {
			fmt.Printf("shard %d _id %d: %s (%s)\n", o.Shard, o.ScanID, o.Key, o.ID)
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// shard 1 _id 1: /acct/stor/f0 (obj0)
	// shard 1 _id 3: /acct/stor/f2 (obj2)
}

// A PostgresScanner reads the pgclone copies of the shards' databases. An
// interrupted scan resumes from the highest ScanID it visited on each shard.
func ExamplePostgresScanner() {
	scanner := &sharkspotter.PostgresScanner{
		Domain: "us-east.example.com", // shard N at N.rebalancer-postgres.us-east.example.com
		DSNs: map[int]string{ // except shard 3, read from elsewhere
			3: "postgres://postgres@10.0.0.3:5432/moray?sslmode=disable",
		},
		Options: sharkspotter.Options{
			Shards:             []int{1, 2, 3, 4},
			Workers:            4,
			ExcludeKeyPrefixes: []string{"/stor/logs/"},
		},
	}
	// Checkpoints of an earlier run: per shard, the highest ScanID visited.
	after := map[int]int64{1: 120400, 2: 98800}
	err := scanner.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: "1.stor.us-east.example.com", After: after},
		func(o rebalancer.Object) error {
			after[o.Shard] = o.ScanID // visit is never called concurrently
			return nil
		})
	var se *sharkspotter.ShardError
	if errors.As(err, &se) {
		log.Printf("shard %d (and maybe others) not fully scanned: %v", se.Shard, err)
	}
}

// One job discovers v1 and v2 objects: Multi runs a Moray-bucket scanner
// and a buckets scanner at once. Both number their shards from 1, so the
// checkpoints an interrupted job resumes from are kept by CheckpointShard,
// while each object keeps its own tier's shard for its metadata store.
func ExampleMulti() {
	var vnodes mdapi.VnodeMap // for the multipart upload record fix
	source := sharkspotter.Multi(
		sharkspotter.Part{Kind: sharkspotter.V1, Source: &sharkspotter.PostgresScanner{
			Domain:  "us-east.example.com", // N.rebalancer-postgres.us-east.example.com
			Options: sharkspotter.Options{Shards: []int{1, 2, 3}},
		}},
		sharkspotter.Part{Kind: sharkspotter.V2, Source: &sharkspotter.BucketsPostgresScanner{
			Domain:   "us-east.example.com", // N.rebalancer-buckets-postgres.us-east.example.com
			Options:  sharkspotter.Options{Shards: []int{1, 2}},
			OnVnodes: func(shard int, vs []uint64) { vnodes.Add(shard, vs...) },
		}},
	)
	after := map[int]int64{} // checkpoints, by CheckpointShard
	err := source.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: "1.stor.us-east.example.com", After: after},
		func(o rebalancer.Object) error {
			k := sharkspotter.CheckpointShard(o)
			after[k] = max(after[k], o.ScanID)
			// For a v2 object (KindOf), o.Shard is a buckets-mdapi shard:
			// mdapi.MetadataStore's, not moray.MetadataStore's.
			return nil
		})
	if err != nil {
		log.Print(err)
	}
}
