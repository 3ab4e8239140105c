package testbed

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

// bucketsEvacuation is a fleet with v1 objects and a buckets tier, about
// 60% of every kind on shark1: plain v2 objects in several buckets and
// vnodes, and multipart uploads in progress.
type bucketsEvacuation struct {
	f      *Fleet
	v1, v2 Population
	ups    BucketPopulation
}

func newBucketsEvacuation(t *testing.T, cfg Config) *bucketsEvacuation {
	t.Helper()
	cfg.Sharks, cfg.Datacenters, cfg.Shards = 5, 2, 2
	cfg.Buckets.DSNs = BucketsDatabases(t, 2)
	cfg.Buckets.Vnodes = 8
	f := New(t, cfg)
	ctx := context.Background()
	v1, err := f.Populate(ctx, Objects{Count: 120, Seed: 21, Pin: shark1, PinFraction: 0.6, MaxSize: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ups, err := f.PopulateBuckets(ctx, BucketObjects{Objects: Objects{Count: 120, Seed: 22, Pin: shark1, PinFraction: 0.6,
		MinSize: 100, MaxSize: 8 << 10}, Uploads: 8, Parts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if ups.UploadsPinned == 0 || ups.UploadsPinned == ups.Uploads {
		t.Fatalf("%d of %d uploads on %s: pick another seed", ups.UploadsPinned, ups.Uploads, shark1)
	}
	return &bucketsEvacuation{f: f, v1: v1, v2: ups.Population, ups: ups}
}

// One job moves every v1 and v2 object off the shark, and fixes the record
// of every upload whose parts it moved: on SQLite and PostgreSQL job
// stores, with v2 objects discovered straight from the buckets databases
// and through buckets-mdapi's listings, with batched and individual
// updates. Verify then finds nothing on the shark and nothing wrong.
func TestEvacuationV1AndV2EndToEnd(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		for _, discovery := range []string{"direct", "listing"} {
			t.Run(store+"/"+discovery, func(t *testing.T) {
				t.Parallel()
				cfg := Config{}
				if store == "postgres" {
					cfg.JobStore = pgtest.NewDatabase(t)
				}
				if discovery == "listing" {
					cfg.Source = func(f *Fleet) (rebalancer.ObjectSource, error) {
						return multiSource(f, f.BucketsMdapiSource()), nil
					}
				}
				// Individual updates in one of the four: upload records
				// are fixed in both modes.
				individual := store == "postgres" && discovery == "direct"
				opts := FastJobOptions()
				opts.IndividualUpdates = individual
				ev := newBucketsEvacuation(t, cfg)
				f := ev.f
				ctx := context.Background()
				e, err := f.NewEngine(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				j, err := e.CreateJob(ctx, shark1, opts)
				if err != nil {
					t.Fatal(err)
				}
				st := waitJob(t, e, j.ID)
				if st.Job.State != rebalancer.JobComplete || st.Job.Error != "" {
					t.Fatalf("job ended %s: %s", st.Job.State, st.Job.Error)
				}
				want := map[string]int64{"complete/": int64(ev.v1.Pinned + ev.v2.Pinned)}
				if got := jobCounts(st); !maps.Equal(got, want) {
					t.Fatalf("counts %v, want %v", got, want)
				}
				b := st.Buckets
				var v2done int64
				for _, c := range b.Counts {
					if c.Status == rebalancer.ObjectComplete.String() {
						v2done += c.N
					}
				}
				if !b.Scanned || v2done != int64(ev.v2.Pinned) || !maps.Equal(b.Uploads, map[string]int64{"fixed": int64(ev.ups.UploadsPinned)}) {
					t.Fatalf("v2: %d complete of %d, uploads %v (want %d fixed); %+v", v2done, ev.v2.Pinned, b.Uploads, ev.ups.UploadsPinned, b)
				}
				rep, err := f.Verify(ctx, shark1)
				if err != nil {
					t.Fatal(err)
				}
				if err := rep.Err(); err != nil {
					t.Fatal(err)
				}
				if rep.V2Objects != ev.v2.Objects || rep.Uploads != ev.ups.Uploads || rep.UploadsSkipped != 0 ||
					rep.Unreferenced[shark1] != ev.v1.Pinned+ev.v2.Pinned {
					t.Fatalf("report %s", rep)
				}
				if n := f.Shark(shark1).MakoRequests(); n != 0 {
					t.Fatalf("the evacuated shark served %d downloads", n)
				}
				var batches int
				for _, srv := range f.Mdapis() {
					batches += srv.Calls("batchupdateobjects")
				}
				if (batches == 0) != individual {
					t.Fatalf("%d batchupdateobjects with individual updates %v", batches, individual)
				}
			})
		}
	}
}

// multiSource is the fleet's v1 scan beside a v2 source.
func multiSource(f *Fleet, v2 rebalancer.ObjectSource) rebalancer.ObjectSource {
	return sharkspotter.Multi(sharkspotter.Part{Kind: sharkspotter.V1, Source: f.ScanSource()}, sharkspotter.Part{Kind: sharkspotter.V2, Source: v2})
}

// A job whose buckets-mdapi cannot be reached never ends Complete: with
// direct discovery its v2 objects are found, copied, and their metadata
// cannot be updated, so they stay in error (and on the shark) and the job
// fails saying why, once the v1 objects have moved; with discovery through
// buckets-mdapi the discovery fails.
func TestEvacuationWithMdapiDown(t *testing.T) {
	for _, discovery := range []string{"direct", "listing"} {
		t.Run(discovery, func(t *testing.T) {
			t.Parallel()
			cfg := Config{}
			if discovery == "listing" {
				cfg.Source = func(f *Fleet) (rebalancer.ObjectSource, error) {
					return multiSource(f, f.BucketsMdapiSource()), nil
				}
			}
			ev := newBucketsEvacuation(t, cfg)
			f := ev.f
			ctx := context.Background()
			e, err := f.NewEngine(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			f.MdapiOffline()
			j, err := e.CreateJob(ctx, shark1, evacuate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			st := waitJob(t, e, j.ID)
			if st.Job.State != rebalancer.JobFailed {
				t.Fatalf("job ended %s (%s): %+v", st.Job.State, st.Job.Error, st.Counts)
			}
			got := jobCounts(st)
			switch discovery {
			case "direct":
				want := map[string]int64{"complete/": int64(ev.v1.Pinned), "error/mdapi_update_failed": int64(ev.v2.Pinned)}
				if !maps.Equal(got, want) || !strings.Contains(st.Job.Error, "buckets (v2) metadata could not be updated") {
					t.Fatalf("counts %v, want %v; error %s", got, want, st.Job.Error)
				}
			case "listing":
				if !strings.HasPrefix(st.Job.Error, "discovery:") || !strings.Contains(st.Job.Error, "v2 (buckets-mdapi) discovery") {
					t.Fatalf("job error %s", st.Job.Error)
				}
			}
			if err := f.MdapiOnline(); err != nil {
				t.Fatal(err)
			}
			rep, err := f.Verify(ctx, shark1)
			if err != nil {
				t.Fatal(err)
			}
			// The v2 objects are all still on the shark; nothing is wrong
			// besides.
			if n := rep.Counts[ProblemStillOnEvacuated]; n != ev.v2.Pinned || len(rep.Counts) != 1 {
				t.Fatalf("report %s", rep)
			}
		})
	}
}
