package legacyimport

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/legacydb/legacytest"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/jobapi"
	"github.com/TritonDataCenter/rebalancer/moray"
)

// The outcomes the legacy job of fleetJob gives the objects the fleet
// still has on the evacuated shark, in turn: every status a retry takes
// over, with reasons and without.
var leftOnShark = []legacytest.Object{
	{Status: "skipped", SkippedReason: "source_is_evac_shark"},
	{Status: "skipped", SkippedReason: "{http_status_code:500}"},
	{Status: "skipped", SkippedReason: "agent_assignment_timeout"},
	{Status: "skipped", SkippedReason: "md5_mismatch"},
	{Status: "skipped"},
	{Status: "error", Error: "moray_update_failed"},
	{Status: "error", Error: "moray_etag_mismatch"},
	{Status: "error"},
	{Status: "assigned", SkippedReason: "agent_busy"}, // a retried object's stale reason
	{Status: "post_processing"},
}

// fleetJob builds a legacy job that evacuated shark on f and was running
// when the legacy manager stopped: the objects that no longer list the
// shark are its complete rows (one with the error the legacy leaves on an
// object whose shark rewrite failed), those that still do are in
// leftOnShark's statuses, in turn; one of them was found again under
// another key. It returns the job and how many objects a retry must move.
func fleetJob(t *testing.T, f *testbed.Fleet, shark string) (*legacytest.Job, int) {
	t.Helper()
	node := f.Shark(shark).Node()
	from, _ := json.Marshal(node)
	j := &legacytest.Job{Name: "fleet", ID: "5eed5eed-0000-4000-8000-000000000001", Action: "evacuate", State: "running",
		Release: legacytest.MANTA5484, FromShark: string(from)}
	left := 0
	for _, shard := range f.ShardNumbers() {
		for rec := range f.Moray(shard).Objects(moray.MantaBucket) {
			o, err := rebalancer.ParseObject(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			row := legacytest.Object{Status: "complete", AssignmentID: "a-done", DestShark: "9.stor.elsewhere"}
			if o.HasShark(shark) {
				row = leftOnShark[left%len(leftOnShark)]
				if row.Status == "assigned" || row.Status == "post_processing" || row.SkippedReason == "md5_mismatch" {
					row.AssignmentID, row.DestShark = fmt.Sprintf("a-%d", left), f.Sharks()[0].ID()
				}
				left++
			} else if len(j.Objects)%7 == 0 {
				row.Error = "duplicate_shark"
			}
			row.ID, row.Object, row.Shard, row.Etag = o.ID, string(rec.Value), shard, rec.Etag
			j.Objects = append(j.Objects, row)
		}
	}
	for _, o := range j.Objects {
		if o.Status != "complete" {
			j.Duplicates = []legacytest.Duplicate{{ID: o.ID, Key: "/" + legacytest.Owner + "/stor/a-link", Shards: []int{2, 1, 2}}}
			break
		}
	}
	return j, left
}

// What an upgrade in place promises, end to end, on SQLite and PostgreSQL
// job stores: a legacy job, laid out in a real PostgreSQL from the objects
// of an in-process fleet, is imported; the job API shows for it the
// counts the legacy showed (job get) and its objects in the legacy's
// statuses (job objects); a retry of it (job retry) moves every object the
// legacy left on the shark, skipped, in error, assigned or
// post_processing, and the fleet, checked from scratch, has nothing left
// there and every copy verified.
func TestImportThenRetryOnFleet(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := testContext(t)
			cfg := testbed.Config{Sharks: 5, Shards: 2}
			if kind == "postgres" {
				cfg.JobStore = pgtest.NewDatabase(t)
			}
			f := testbed.New(t, cfg)
			const shark = "1.stor.demo.example"
			if _, err := f.Populate(ctx, testbed.Objects{Count: 90, Pin: shark, PinFraction: 0.6, Seed: 19}); err != nil {
				t.Fatal(err)
			}
			j, left := fleetJob(t, f, shark)
			if left < 2*len(leftOnShark) || len(j.Objects)-left < 10 {
				t.Fatalf("%d objects on the shark of %d: the fixture covers too little", left, len(j.Objects))
			}
			set := &legacytest.Set{Jobs: []*legacytest.Job{j}}
			_, r := legacy(t, set)

			ecfg, err := f.EngineConfig(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sum, err := Import(ctx, r, ecfg.Store, Config{Options: testbed.FastJobOptions()})
			if err != nil || sum.Count(Imported) != 1 {
				t.Fatalf("import: %+v %v", sum, err)
			}
			e, err := f.NewEngine(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer((&jobapi.Server{Engine: e, Domain: f.Domain(), Logger: testutil.Discard()}).Handler())
			t.Cleanup(srv.Close)
			cl, err := jobapi.NewClient(srv.URL)
			if err != nil {
				t.Fatal(err)
			}

			// job get and job objects: the legacy's view of it.
			checkJob(t, ctx, cl, r, j)
			legacyStatus, err := r.Status(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cl.JobStatus(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != rebalancer.JobFailed || legacyStatus.State != rebalancer.JobRunning {
				t.Errorf("state %v, legacy %v", got.State, legacyStatus.State)
			}

			// job retry: everything left on the shark moves.
			id, err := cl.RetryJob(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if rj, err := e.Wait(ctx, id); err != nil || rj.State != rebalancer.JobComplete || rj.RetryOf != j.ID {
				t.Fatalf("retry job: %+v %v", rj, err)
			}
			rs, err := cl.JobStatus(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if res := rs.Results; res.Complete != int64(left) || res.Total != int64(left) {
				t.Errorf("retry results %+v, want all %d objects left on the shark complete", res, left)
			}
			rep, err := f.Verify(ctx, shark)
			if err != nil {
				t.Fatal(err)
			}
			if err := rep.Err(); err != nil {
				t.Fatal(err)
			}
			if rep.ByShark[shark] != 0 {
				t.Errorf("%d copies still listed on %s: %s", rep.ByShark[shark], shark, rep)
			}
			// The imported job is as it was.
			checkJob(t, ctx, cl, r, j)
		})
	}
}
