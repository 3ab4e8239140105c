// Command keylist evacuates a chosen list of objects off a shark instead of
// everything on it: it shows how to embed the library with a custom
// rebalancer.ObjectSource.
//
// The list is a file of "SHARD KEY" lines (a metadata shard number and an
// object's Moray key, e.g. "1 /9dbd.../stor/logs/a.txt"). The source reads
// each object's current metadata from Moray and hands the ones that still
// list the shark to the evacuation engine, which places, copies, verifies
// and rewrites them exactly as a full evacuation would.
//
//	go run ./examples/keylist -moray 1=127.0.0.1:2020 -storinfo http://127.0.0.1:8080 \
//	    -shark 1.stor.example.com -keys keys.txt
//
// The program is self-contained on purpose: its flags and engine wiring
// repeat examples/pinned's, so that either can be copied out of the repository
// and built on alone.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
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
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// KeyListSource is a rebalancer.ObjectSource over a list of object keys.
type KeyListSource struct {
	Path     string                   // the "SHARD KEY" file
	Metadata rebalancer.MetadataStore // where the objects' metadata is read
}

// Discover visits, in file order, every listed object that names the
// shark. Line numbers stand in for Moray _ids, so DiscoverRequest.After
// lets a resumed job skip the lines it already took.
func (s KeyListSource) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	f, err := os.Open(s.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := int64(1); sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		num, key, ok := strings.Cut(text, " ")
		shard, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("%s:%d: want \"SHARD KEY\", got %q", s.Path, line, text)
		}
		if line <= req.After[shard] {
			continue
		}
		obj, err := s.Metadata.GetObject(ctx, shard, strings.TrimSpace(key))
		if err != nil {
			return fmt.Errorf("%s:%d: %w", s.Path, line, err)
		}
		if !obj.HasShark(req.Shark) {
			continue // already moved, or never there
		}
		obj.ScanID = line
		if err := visit(obj); err != nil {
			return err
		}
	}
	return sc.Err()
}

// Options are what the program needs to reach the fleet.
type Options struct {
	Moray    moray.ShardClients // metadata shards
	Storinfo string             // storinfo base URL
	Agents   *agent.Client      // nil: agents on port 7878
	Shark    string             // the shark to take the objects off
	Keys     string             // the "SHARD KEY" file
	Database string             // job store: a SQLite file (package pgstore keeps jobs in PostgreSQL)
	Log      *slog.Logger
}

// Run evacuates the listed objects and returns the finished job's status.
func Run(ctx context.Context, o Options) (evacuate.Status, error) {
	store, err := sqlitestore.Open(ctx, o.Database, evacuate.StoreOptions{})
	if err != nil {
		return evacuate.Status{}, err
	}
	defer store.Close()
	lister, err := storinfo.NewClient(storinfo.ClientConfig{BaseURL: o.Storinfo})
	if err != nil {
		return evacuate.Status{}, err
	}
	view := storinfo.NewView(storinfo.ViewConfig{Source: lister})
	if err := view.Refresh(ctx); err != nil {
		return evacuate.Status{}, err
	}
	placement, err := storinfo.NewPlacement(storinfo.PlacementConfig{Snapshots: view})
	if err != nil {
		return evacuate.Status{}, err
	}
	viewCtx, stopView := context.WithCancel(ctx)
	defer stopView()
	go view.Run(viewCtx)

	agents := o.Agents
	if agents == nil {
		agents = &agent.Client{}
	}
	md := moray.NewMetadataStore(o.Moray)
	engine, err := evacuate.NewEngine(evacuate.Config{
		Store: store,
		Source: func(evacuate.JobRecord) (rebalancer.ObjectSource, error) {
			return KeyListSource{Path: o.Keys, Metadata: md}, nil
		},
		Metadata:  md,
		Placement: placement,
		Agent:     agents,
		LookupShark: func(ctx context.Context, id string) (rebalancer.StorageNode, error) {
			return moray.LookupShark(ctx, o.Moray.Client(1), id)
		},
		Logger: o.Log,
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
	var o Options
	shards := shardFlag{}
	flag.Var(shards, "moray", "a metadata shard as N=HOST:PORT (repeatable)")
	flag.StringVar(&o.Storinfo, "storinfo", "", "storinfo base URL")
	flag.StringVar(&o.Shark, "shark", "", "storage id of the shark to move the objects off")
	flag.StringVar(&o.Keys, "keys", "", `file of "SHARD KEY" lines`)
	flag.StringVar(&o.Database, "db", "keylist-jobs.db", "job store: a SQLite file")
	flag.Parse()
	if len(shards) == 0 || o.Storinfo == "" || o.Shark == "" || o.Keys == "" {
		fmt.Fprintln(os.Stderr, "keylist: -moray, -storinfo, -shark and -keys are required")
		flag.Usage()
		os.Exit(2)
	}
	s := moray.NewShards(moray.StaticShards(shards), moray.Options{})
	defer s.Close()
	o.Moray = s
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	st, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keylist:", err)
		os.Exit(1)
	}
	report(os.Stdout, st)
}

func report(w io.Writer, st evacuate.Status) {
	done, _ := st.Total(rebalancer.ObjectComplete)
	fmt.Fprintf(w, "job %s: %s; %d of the listed objects moved off %s\n", st.Job.ID, st.Job.State, done, st.Job.From.MantaStorageID)
	for _, c := range st.Counts {
		fmt.Fprintf(w, "  %+v\n", c)
	}
}

// shardFlag collects repeated -moray N=HOST:PORT flags.
type shardFlag moray.StaticShards

func (f shardFlag) String() string { return fmt.Sprint(map[int]string(f)) }

func (f shardFlag) Set(v string) error {
	n, addr, ok := strings.Cut(v, "=")
	shard, err := strconv.Atoi(n)
	if !ok || err != nil || addr == "" {
		return fmt.Errorf("want N=HOST:PORT, got %q", v)
	}
	f[shard] = addr
	return nil
}
