// Command pinned empties a shark onto a fixed set of destinations (say, a
// rack of new storage nodes) instead of wherever storinfo finds room: it
// shows how to embed the library with a custom rebalancer.Placement, here
// with the product's own discovery (sharkspotter through Moray).
//
//	go run ./examples/pinned -moray 1=127.0.0.1:2020 -shark 1.stor.example.com \
//	    -dest 7.stor.example.com -dest 8.stor.example.com
//
// The program is self-contained on purpose: its flags and engine wiring
// repeat examples/keylist's, so that either can be copied out of the repository
// and built on alone.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/sqlitestore"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

// storageShard holds the manta_storage bucket, where sharks are described.
const storageShard = 1

// Options are what the program needs to reach the fleet.
type Options struct {
	Moray    moray.ShardClients // metadata shards
	Shards   []int              // the shards whose objects are scanned
	Agents   *agent.Client      // nil: agents on port 7878
	Shark    string             // the shark to empty
	Dests    []string           // storage ids of the only destinations
	Database string             // job store: a SQLite file (package pgstore keeps jobs in PostgreSQL)
	Log      *slog.Logger
}

// Run evacuates the shark onto the destinations and returns the finished
// job's status.
func Run(ctx context.Context, o Options) (evacuate.Status, error) {
	lookup := func(ctx context.Context, id string) (rebalancer.StorageNode, error) {
		return moray.LookupShark(ctx, o.Moray.Client(storageShard), id)
	}
	place := &Pinned{}
	for _, id := range o.Dests {
		n, err := lookup(ctx, id)
		if err != nil {
			return evacuate.Status{}, fmt.Errorf("destination %s: %w", id, err)
		}
		place.Dests = append(place.Dests, n)
	}
	store, err := sqlitestore.Open(ctx, o.Database, evacuate.StoreOptions{})
	if err != nil {
		return evacuate.Status{}, err
	}
	defer store.Close()
	agents := o.Agents
	if agents == nil {
		agents = &agent.Client{}
	}
	engine, err := evacuate.NewEngine(evacuate.Config{
		Store: store,
		Source: func(evacuate.JobRecord) (rebalancer.ObjectSource, error) {
			return &sharkspotter.MorayScanner{Clients: o.Moray, Options: sharkspotter.Options{Shards: o.Shards, Logger: o.Log}}, nil
		},
		Metadata:    moray.NewMetadataStore(o.Moray),
		Placement:   place,
		Agent:       agents,
		LookupShark: lookup,
		Logger:      o.Log,
	})
	if err != nil {
		return evacuate.Status{}, err
	}
	defer engine.Close()
	job, err := engine.CreateJob(ctx, o.Shark, evacuate.Options{})
	if err != nil {
		return evacuate.Status{}, err
	}
	if _, err := engine.Wait(ctx, job.ID); err != nil {
		return evacuate.Status{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	return engine.JobStatus(ctx, job.ID)
}

func main() {
	o := Options{Database: "pinned-jobs.db"}
	addrs := map[int]string{}
	flag.Func("moray", "a metadata shard as N=HOST:PORT (repeatable; shard 1 holds manta_storage)", func(v string) error {
		n, addr, ok := strings.Cut(v, "=")
		shard, err := strconv.Atoi(n)
		if !ok || err != nil || addr == "" {
			return fmt.Errorf("want N=HOST:PORT, got %q", v)
		}
		addrs[shard] = addr
		o.Shards = append(o.Shards, shard)
		return nil
	})
	flag.Func("dest", "storage id of a destination (repeatable)", func(v string) error {
		o.Dests = append(o.Dests, v)
		return nil
	})
	flag.StringVar(&o.Shark, "shark", "", "storage id of the shark to empty")
	flag.StringVar(&o.Database, "db", o.Database, "job store: a SQLite file")
	flag.Parse()
	if len(addrs) == 0 || o.Shark == "" || len(o.Dests) == 0 {
		fmt.Fprintln(os.Stderr, "pinned: -moray, -shark and -dest are required")
		flag.Usage()
		os.Exit(2)
	}
	s := moray.NewShards(moray.StaticShards(addrs), moray.Options{})
	defer s.Close()
	o.Moray = s
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	st, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pinned:", err)
		os.Exit(1)
	}
	done, _ := st.Total(rebalancer.ObjectComplete)
	fmt.Printf("job %s: %s; %d objects moved off %s onto %s\n", st.Job.ID, st.Job.State, done, o.Shark, strings.Join(o.Dests, ", "))
}
