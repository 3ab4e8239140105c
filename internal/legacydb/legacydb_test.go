package legacydb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/legacydb/legacytest"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// standard lays out legacytest.Standard on a fresh database and opens it.
func standard(t *testing.T) (*legacytest.Set, string, *Reader) {
	t.Helper()
	jobsURL := pgtest.NewDatabase(t)
	set := legacytest.Standard()
	legacytest.Layout(t, jobsURL, set)
	r, err := Open(testContext(t), jobsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return set, jobsURL, r
}

// The legacy spellings and the values they must map to, written out here
// rather than taken from the root package's tables, so that a mistake in
// either shows.
var (
	wantStates = map[string]rebalancer.JobState{
		"init": rebalancer.JobInit, "setup": rebalancer.JobSetup, "running": rebalancer.JobRunning,
		"stopped": rebalancer.JobStopped, "complete": rebalancer.JobComplete, "failed": rebalancer.JobFailed,
	}
	wantActions  = map[string]rebalancer.JobAction{"evacuate": rebalancer.JobEvacuate, "none": rebalancer.JobNone}
	wantStatuses = map[string]rebalancer.ObjectStatus{
		"unprocessed": rebalancer.ObjectUnprocessed, "assigned": rebalancer.ObjectAssigned,
		"skipped": rebalancer.ObjectSkipped, "error": rebalancer.ObjectError,
		"post_processing": rebalancer.ObjectPostProcessing, "complete": rebalancer.ObjectComplete,
	}
	wantReasons = map[string]rebalancer.SkipReason{
		"agent_fs_error":                 rebalancer.SkipAgentFSError,
		"agent_assignment_no_ent":        rebalancer.SkipAgentAssignmentNoEnt,
		"agent_busy":                     rebalancer.SkipAgentBusy,
		"assignment_error":               rebalancer.SkipAssignmentError,
		"assignment_mismatch":            rebalancer.SkipAssignmentMismatch,
		"assignment_rejected":            rebalancer.SkipAssignmentRejected,
		"destination_insufficient_space": rebalancer.SkipDestinationInsufficientSpace,
		"destination_unreachable":        rebalancer.SkipDestinationUnreachable,
		"md5_mismatch":                   rebalancer.SkipMD5Mismatch,
		"network_error":                  rebalancer.SkipNetworkError,
		"object_already_on_dest_shark":   rebalancer.SkipObjectAlreadyOnDestShark,
		"object_already_in_datacenter":   rebalancer.SkipObjectAlreadyInDatacenter,
		"source_other_error":             rebalancer.SkipSourceOtherError,
		"source_object_not_found":        rebalancer.SkipSourceObjectNotFound,
		"source_is_evac_shark":           rebalancer.SkipSourceIsEvacShark,
		"mpu_part_no_data":               rebalancer.SkipMPUPartNoData,
		"agent_assignment_timeout":       rebalancer.SkipAgentAssignmentTimeout,
		"{http_status_code:100}":         rebalancer.SkipHTTPStatus(100),
		"{http_status_code:403}":         rebalancer.SkipHTTPStatus(403),
		"{http_status_code:404}":         rebalancer.SkipHTTPStatus(404),
		"{http_status_code:500}":         rebalancer.SkipHTTPStatus(500),
		"{http_status_code:502}":         rebalancer.SkipHTTPStatus(502),
		"{http_status_code:503}":         rebalancer.SkipHTTPStatus(503),
		"{http_status_code:599}":         rebalancer.SkipHTTPStatus(599),
	}
	wantErrors = map[string]rebalancer.ObjectErrorKind{
		"bad_moray_client":       rebalancer.ErrorBadMorayClient,
		"bad_moray_object":       rebalancer.ErrorBadMorayObject,
		"bad_manta_object":       rebalancer.ErrorBadMantaObject,
		"bad_shard_number":       rebalancer.ErrorBadShardNumber,
		"duplicate_shark":        rebalancer.ErrorDuplicateShark,
		"internal_error":         rebalancer.ErrorInternal,
		"metadata_update_failed": rebalancer.ErrorMetadataUpdateFailed,
		"moray_update_failed":    rebalancer.ErrorMorayUpdateFailed,
		"moray_etag_mismatch":    rebalancer.ErrorMorayEtagMismatch,
		"moray_object_not_found": rebalancer.ErrorMorayObjectNotFound,
		"mdapi_update_failed":    rebalancer.ErrorMdapiUpdateFailed,
		"mdapi_etag_mismatch":    rebalancer.ErrorMdapiEtagMismatch,
		"mdapi_object_not_found": rebalancer.ErrorMdapiObjectNotFound,
		"missing_sharks":         rebalancer.ErrorMissingSharks,
		"bad_content_length":     rebalancer.ErrorBadContentLength,
	}
)

// expected maps a fixture row to what the reader must return for it.
func expected(t *testing.T, o legacytest.Object) Object {
	t.Helper()
	st, ok := wantStatuses[o.Status]
	if !ok {
		t.Fatalf("no expectation for status %q", o.Status)
	}
	want := Object{ID: o.ID, AssignmentID: o.AssignmentID, Object: json.RawMessage(o.Object), Shard: o.Shard,
		DestShark: o.DestShark, Etag: o.Etag, Status: st}
	if o.SkippedReason != "" {
		if want.SkipReason, ok = wantReasons[o.SkippedReason]; !ok {
			t.Fatalf("no expectation for skip reason %q", o.SkippedReason)
		}
	}
	if o.Error != "" {
		if want.Error, ok = wantErrors[o.Error]; !ok {
			t.Fatalf("no expectation for error %q", o.Error)
		}
	}
	return want
}

// sameJSON compares JSON values exactly but for key order and whitespace,
// which jsonb does not keep: numbers are compared as written.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	decode := func(raw []byte) any {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("bad JSON %s: %v", raw, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

func readObjects(t *testing.T, db *JobDB, after string) []Object {
	t.Helper()
	var got []Object
	if err := db.Objects(testContext(t), after, func(o Object) error {
		got = append(got, o)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func readDuplicates(t *testing.T, db *JobDB) []Duplicate {
	t.Helper()
	var got []Duplicate
	if err := db.Duplicates(testContext(t), func(d Duplicate) error {
		got = append(got, d)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestStandardSet(t *testing.T) {
	set, jobsURL, r := standard(t)
	ctx := testContext(t)
	started := time.Now()

	t.Run("jobs", func(t *testing.T) {
		jobs, err := r.Jobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Creation order, the job without a database last; the orphan
		// database has no row.
		var wantOrder []string
		for _, name := range []string{"complete", "running", "retry", "failed", "setup", "init", "stopped", "original", "none", "missing"} {
			wantOrder = append(wantOrder, set.Job(name).ID)
		}
		var gotOrder []string
		for _, j := range jobs {
			gotOrder = append(gotOrder, j.ID)
			fj := set.Job(nameOf(set, j.ID))
			if j.Err != nil {
				t.Errorf("job %s: %v", fj.Name, j.Err)
				continue
			}
			if j.Action != wantActions[fj.Action] || j.State != wantStates[fj.State] {
				t.Errorf("job %s: action %v state %v, want %s %s", fj.Name, j.Action, j.State, fj.Action, fj.State)
			}
			if j.HasDatabase == fj.NoDatabase {
				t.Errorf("job %s: HasDatabase %v", fj.Name, j.HasDatabase)
			}
			// Created comes from the server's clock, on this machine.
			if fj.NoDatabase != j.Created.IsZero() || (!j.Created.IsZero() &&
				(j.Created.Before(started.Add(-10*time.Minute)) || j.Created.After(time.Now().Add(time.Minute)))) {
				t.Errorf("job %s: Created %v (test started %v)", fj.Name, j.Created, started)
			}
		}
		if !slices.Equal(gotOrder, wantOrder) {
			t.Errorf("jobs in order\n%v\nwant\n%v", gotOrder, wantOrder)
		}
		one, err := r.Job(ctx, set.Job("running").ID)
		if err != nil || one.State != rebalancer.JobRunning {
			t.Errorf("Job(running) = %+v, %v", one, err)
		}
		if _, err := r.Job(ctx, set.Job("orphan").ID); !errors.Is(err, ErrJobNotFound) {
			t.Errorf("Job(orphan): %v, want ErrJobNotFound", err)
		}
	})

	t.Run("objects", func(t *testing.T) {
		for _, fj := range set.Jobs {
			if fj.NoDatabase || fj.NoRow {
				continue
			}
			db, err := r.OpenJob(ctx, fj.ID)
			if err != nil {
				t.Fatal(err)
			}
			got := readObjects(t, db, "")
			want := slices.Clone(fj.Objects)
			slices.SortFunc(want, func(a, b legacytest.Object) int { return strings.Compare(a.ID, b.ID) })
			if len(got) != len(want) {
				t.Errorf("job %s: %d objects, want %d", fj.Name, len(got), len(want))
			}
			for i := range min(len(got), len(want)) {
				w := expected(t, want[i])
				g := got[i]
				if !sameJSON(t, g.Object, w.Object) {
					t.Errorf("job %s object %s: metadata\n%s\nwant\n%s", fj.Name, w.ID, g.Object, w.Object)
				}
				g.Object, w.Object = nil, nil
				if !reflect.DeepEqual(g, w) {
					t.Errorf("job %s object %d:\n got %+v\nwant %+v", fj.Name, i, g, w)
				}
				// What the project would write back is what was stored.
				if g.Status.String() != want[i].Status || (want[i].SkippedReason != "" && g.SkipReason.String() != want[i].SkippedReason) ||
					(want[i].Error != "" && g.Error.String() != want[i].Error) {
					t.Errorf("job %s object %s does not round-trip: %+v", fj.Name, w.ID, g)
				}
			}
			db.Close()
		}
	})

	t.Run("pages", func(t *testing.T) {
		fj := set.Job("complete")
		small, err := Open(ctx, jobsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer small.Close()
		small.PageSize = 4
		db, err := small.OpenJob(ctx, fj.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		all := readObjects(t, db, "")
		if len(all) != len(fj.Objects) {
			t.Fatalf("%d objects in pages of 4, want %d", len(all), len(fj.Objects))
		}
		for i := 1; i < len(all); i++ {
			if all[i-1].ID >= all[i].ID {
				t.Fatalf("objects out of order at %d: %s, %s", i, all[i-1].ID, all[i].ID)
			}
		}
		// Resuming after an id gives exactly the rest.
		rest := readObjects(t, db, all[9].ID)
		if len(rest) != len(all)-10 || rest[0].ID != all[10].ID {
			t.Errorf("after %s: %d objects starting %s, want %d starting %s", all[9].ID, len(rest), rest[0].ID, len(all)-10, all[10].ID)
		}
		// An error from visit stops the scan and comes back.
		stop := errors.New("stop")
		n := 0
		err = db.Objects(ctx, "", func(Object) error {
			n++
			if n == 6 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 6 {
			t.Errorf("visit error: err %v after %d objects", err, n)
		}
	})

	t.Run("duplicates", func(t *testing.T) {
		for _, name := range []string{"complete", "original", "running"} {
			fj := set.Job(name)
			db, err := r.OpenJob(ctx, fj.ID)
			if err != nil {
				t.Fatal(err)
			}
			got := readDuplicates(t, db)
			db.Close()
			var want []Duplicate
			for _, d := range fj.Duplicates {
				want = append(want, Duplicate{ID: d.ID, Key: d.Key, Shards: d.Shards})
			}
			slices.SortFunc(want, func(a, b Duplicate) int { return strings.Compare(a.ID, b.ID) })
			if !reflect.DeepEqual(got, want) {
				t.Errorf("job %s duplicates %+v, want %+v", name, got, want)
			}
		}
	})

	t.Run("from shark", func(t *testing.T) {
		for name, want := range map[string]rebalancer.StorageNode{
			"complete": {Datacenter: "dc1", MantaStorageID: "1.stor.example.com"},
			"stopped":  {Datacenter: "dc2", MantaStorageID: "6.stor.example.com"},
			"setup":    {Datacenter: "", MantaStorageID: "5.stor.example.com"},
		} {
			db, err := r.OpenJob(ctx, set.Job(name).ID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.FromShark(ctx)
			db.Close()
			if err != nil || got != want {
				t.Errorf("job %s: from shark %+v, %v; want %+v", name, got, err, want)
			}
		}
	})

	t.Run("retried", func(t *testing.T) {
		for _, fj := range set.Jobs {
			if fj.NoDatabase || fj.NoRow {
				continue
			}
			db, err := r.OpenJob(ctx, fj.ID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.Retried(ctx)
			db.Close()
			if err != nil || got != (fj.Name == "complete") {
				t.Errorf("job %s: Retried %v, %v", fj.Name, got, err)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		for name, want := range wantStatus {
			st, err := r.Status(ctx, set.Job(name).ID)
			if err != nil {
				t.Errorf("job %s: %v", name, err)
				continue
			}
			got, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, got, []byte(want)) {
				t.Errorf("job %s status\n%s\nwant\n%s", name, got, want)
			}
		}
	})

	t.Run("status from objects", func(t *testing.T) {
		// The legacy's SQL counts and the streamed rows agree, so that an
		// import can check the one against the other.
		for _, fj := range set.Jobs {
			if fj.NoDatabase || fj.NoRow || fj.Action != "evacuate" {
				continue
			}
			db, err := r.OpenJob(ctx, fj.ID)
			if err != nil {
				t.Fatal(err)
			}
			res, err := db.Results(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := countLegacy(readObjects(t, db, ""), readDuplicates(t, db)); !reflect.DeepEqual(res, want) {
				t.Errorf("job %s: results %+v, counted %+v", fj.Name, res, want)
			}
			db.Close()
		}
	})

	t.Run("missing database", func(t *testing.T) {
		id := set.Job("missing").ID
		_, err := r.OpenJob(ctx, id)
		if !errors.Is(err, ErrNoJobDatabase) || !strings.Contains(err.Error(), id) {
			t.Errorf("OpenJob(missing): %v, want ErrNoJobDatabase naming the job", err)
		}
		if _, err := r.Status(ctx, id); !errors.Is(err, ErrNoJobDatabase) {
			t.Errorf("Status(missing): %v, want ErrNoJobDatabase", err)
		}
	})

	t.Run("unknown job", func(t *testing.T) {
		id := uuid.NewString()
		for _, err := range []error{
			func() error { _, err := r.OpenJob(ctx, id); return err }(),
			func() error { _, err := r.Status(ctx, id); return err }(),
			func() error { _, err := r.OpenJob(ctx, set.Job("orphan").ID); return err }(),
		} {
			if !errors.Is(err, ErrJobNotFound) {
				t.Errorf("got %v, want ErrJobNotFound", err)
			}
		}
	})

	t.Run("action none", func(t *testing.T) {
		_, err := r.Status(ctx, set.Job("none").ID)
		if err == nil || !strings.Contains(err.Error(), "none") {
			t.Errorf("Status(none): %v, want an error about the action", err)
		}
	})

	t.Run("orphans", func(t *testing.T) {
		orphans, err := r.OrphanDatabases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Other tests' job databases share the server: check only ours.
		for _, fj := range set.Jobs {
			if slices.Contains(orphans, fj.ID) != fj.NoRow {
				t.Errorf("job %s: listed as orphan: %v", fj.Name, !fj.NoRow)
			}
		}
	})
}

func nameOf(set *legacytest.Set, id string) string {
	for _, j := range set.Jobs {
		if j.ID == id {
			return j.Name
		}
	}
	return ""
}

// countLegacy applies the legacy's status rules to streamed rows.
func countLegacy(objs []Object, dups []Duplicate) Results {
	res := Results{Counts: map[rebalancer.ObjectStatus]int64{}, ErrorBreakdown: map[string]map[string]int64{}, SkipBreakdown: map[string]int64{}}
	for _, st := range rebalancer.ObjectStatuses() {
		res.Counts[st] = 0
	}
	for _, o := range objs {
		res.Counts[o.Status]++
		switch {
		case o.Status == rebalancer.ObjectError && o.Error != 0:
			group, name, ok := strings.Cut(o.Error.String(), "_")
			if !ok || (group != "moray" && group != "mdapi") {
				group, name = "other", o.Error.String()
			}
			if res.ErrorBreakdown[group] == nil {
				res.ErrorBreakdown[group] = map[string]int64{}
			}
			res.ErrorBreakdown[group][name]++
		case o.Status == rebalancer.ObjectSkipped && o.SkipReason != 0:
			res.SkipBreakdown[o.SkipReason.String()]++
		}
	}
	res.Duplicates = int64(len(dups))
	res.Total = int64(len(objs)) + res.Duplicates
	return res
}

// wantStatus is what the legacy's GET /jobs/{uuid} shows for the standard
// jobs, counted by hand from legacytest.Standard.
var wantStatus = map[string]string{
	"complete": `{"config":{"action":"Evacuate","from_shark":{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}},
		"results":{"Unprocessed":0,"Assigned":0,"Skipped":23,"Error":17,"Post Processing":0,"Complete":10,
			"Duplicates":2,"Total":52,
			"error_breakdown":{
				"other":{"bad_moray_client":1,"bad_moray_object":1,"bad_manta_object":1,"bad_shard_number":1,
					"duplicate_shark":1,"internal_error":1,"metadata_update_failed":1,"missing_sharks":1,"bad_content_length":1},
				"moray":{"update_failed":3,"etag_mismatch":1,"object_not_found":1},
				"mdapi":{"update_failed":1,"etag_mismatch":1,"object_not_found":1}},
			"skip_breakdown":{"agent_fs_error":1,"agent_assignment_no_ent":1,"agent_busy":1,"assignment_error":1,
				"assignment_mismatch":1,"assignment_rejected":1,"destination_insufficient_space":1,
				"destination_unreachable":1,"md5_mismatch":1,"network_error":1,"object_already_on_dest_shark":1,
				"object_already_in_datacenter":1,"source_other_error":1,"source_object_not_found":1,
				"source_is_evac_shark":1,"mpu_part_no_data":1,"agent_assignment_timeout":1,
				"{http_status_code:100}":1,"{http_status_code:403}":1,"{http_status_code:500}":2,
				"{http_status_code:503}":1,"{http_status_code:599}":1}},
		"state":"Complete"}`,
	"running": `{"config":{"action":"Evacuate","from_shark":{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}},
		"results":{"Unprocessed":1,"Assigned":4,"Skipped":2,"Error":1,"Post Processing":2,"Complete":3,
			"Duplicates":0,"Total":13,
			"error_breakdown":{"moray":{"update_failed":1}},
			"skip_breakdown":{"source_is_evac_shark":1,"{http_status_code:404}":1}},
		"state":"Running"}`,
	"retry": `{"config":{"action":"Evacuate","from_shark":{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}},
		"results":{"Unprocessed":0,"Assigned":1,"Skipped":2,"Error":1,"Post Processing":0,"Complete":6,
			"Duplicates":0,"Total":10,
			"error_breakdown":{"moray":{"update_failed":1}},
			"skip_breakdown":{"agent_busy":1,"{http_status_code:500}":1}},
		"state":"Complete"}`,
	"failed": `{"config":{"action":"Evacuate","from_shark":{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}},
		"results":{"Unprocessed":0,"Assigned":2,"Skipped":1,"Error":0,"Post Processing":0,"Complete":1,
			"Duplicates":0,"Total":4,"skip_breakdown":{"agent_assignment_timeout":1}},
		"state":"Failed"}`,
	"setup": `{"config":{"action":"Evacuate","from_shark":{"datacenter":"","manta_storage_id":"5.stor.example.com"}},
		"results":{"Unprocessed":0,"Assigned":0,"Skipped":0,"Error":0,"Post Processing":0,"Complete":0,
			"Duplicates":0,"Total":0},
		"state":"Setup"}`,
	"init": `{"config":{"action":"Evacuate","from_shark":{"datacenter":"","manta_storage_id":"5.stor.example.com"}},
		"results":{"Unprocessed":0,"Assigned":0,"Skipped":0,"Error":0,"Post Processing":0,"Complete":0,
			"Duplicates":0,"Total":0},
		"state":"Init"}`,
	"stopped": `{"config":{"action":"Evacuate","from_shark":{"datacenter":"dc2","manta_storage_id":"6.stor.example.com"}},
		"results":{"Unprocessed":0,"Assigned":0,"Skipped":1,"Error":0,"Post Processing":0,"Complete":2,
			"Duplicates":0,"Total":3,"skip_breakdown":{"md5_mismatch":1}},
		"state":"Stopped"}`,
	"original": `{"config":{"action":"Evacuate","from_shark":{"datacenter":"dc1","manta_storage_id":"7.stor.example.com"}},
		"results":{"Unprocessed":0,"Assigned":0,"Skipped":17,"Error":9,"Post Processing":0,"Complete":3,
			"Duplicates":1,"Total":30,
			"error_breakdown":{"other":{"bad_moray_client":1,"bad_moray_object":1,"bad_manta_object":1,"bad_shard_number":1,
				"duplicate_shark":1,"internal_error":1,"metadata_update_failed":1,"missing_sharks":1,"bad_content_length":1}},
			"skip_breakdown":{"agent_fs_error":1,"agent_assignment_no_ent":1,"agent_busy":1,"assignment_error":1,
				"assignment_mismatch":1,"assignment_rejected":1,"destination_insufficient_space":1,
				"destination_unreachable":1,"md5_mismatch":1,"network_error":1,"object_already_on_dest_shark":1,
				"object_already_in_datacenter":1,"source_other_error":1,"source_is_evac_shark":1,
				"{http_status_code:404}":2,"{http_status_code:502}":1}},
		"state":"Complete"}`,
}

func TestStateAfterRestart(t *testing.T) {
	for in, want := range map[rebalancer.JobState]rebalancer.JobState{
		rebalancer.JobInit:     rebalancer.JobFailed,
		rebalancer.JobSetup:    rebalancer.JobFailed,
		rebalancer.JobRunning:  rebalancer.JobFailed,
		rebalancer.JobStopped:  rebalancer.JobStopped,
		rebalancer.JobComplete: rebalancer.JobComplete,
		rebalancer.JobFailed:   rebalancer.JobFailed,
	} {
		if got := StateAfterRestart(in); got != want {
			t.Errorf("StateAfterRestart(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, env := range []string{"PGSSLMODE", "PGUSER", "PGDATABASE", "PGHOST", "PGPORT", "PGCONNECT_TIMEOUT", "PGAPPNAME"} {
		t.Setenv(env, "") // restored when the test ends
		os.Unsetenv(env)
	}
	for _, tc := range []struct {
		url                  string
		host, user, database string
		port                 uint16
		ssl                  string
		timeout              time.Duration
	}{
		{"postgres://", "localhost", "postgres", "rebalancer", 5432, "disable", 10 * time.Second},
		{"postgres://db.example:5433", "db.example", "postgres", "rebalancer", 5433, "disable", 10 * time.Second},
		{"postgresql://alice:pw@10.0.0.7/jobs?sslmode=require&connect_timeout=3", "10.0.0.7", "alice", "jobs", 5432, "require", 3 * time.Second},
		{"postgres://h?dbname=jobs&user=bob", "h", "bob", "jobs", 5432, "disable", 10 * time.Second},
	} {
		cfg, err := parseURL(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if cfg.Host != tc.host || cfg.User != tc.user || cfg.Database != tc.database || cfg.Port != tc.port ||
			string(cfg.SSLMode) != tc.ssl || cfg.ConnectTimeout != tc.timeout || cfg.Runtime["default_transaction_read_only"] != "on" {
			t.Errorf("%s: host %s user %s database %s port %d sslmode %s timeout %v runtime %v", tc.url,
				cfg.Host, cfg.User, cfg.Database, cfg.Port, cfg.SSLMode, cfg.ConnectTimeout, cfg.Runtime)
		}
	}

	t.Setenv("PGSSLMODE", "verify-full")
	if cfg, err := parseURL("postgres://h/"); err != nil || cfg.SSLMode != "verify-full" {
		t.Errorf("PGSSLMODE: sslmode %s, %v", cfg.SSLMode, err)
	}

	for _, bad := range []string{"host=h dbname=rebalancer", "mysql://h/x", "postgres://u:s3cret@h/x?sslmode=bogus", "::"} {
		_, err := parseURL(bad)
		if err == nil {
			t.Errorf("%s: no error", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error shows the password: %v", bad, err)
		}
	}
}

func TestOpen(t *testing.T) {
	ctx := testContext(t)
	empty := pgtest.NewDatabase(t)

	// The URL without user or sslmode gets the legacy's: the test server
	// has no TLS and a postgres superuser.
	u, err := url.Parse(empty)
	if err != nil {
		t.Fatal(err)
	}
	u.User = nil
	q := u.Query()
	q.Del("sslmode")
	u.RawQuery = q.Encode()
	if _, err := Open(ctx, u.String()); err == nil || !strings.Contains(err.Error(), "not a legacy rebalancer jobs database") {
		t.Errorf("Open(database without jobs): %v", err)
	}
	legacytest.Layout(t, empty, &legacytest.Set{})
	r, err := Open(ctx, u.String())
	if err != nil {
		t.Fatalf("Open with the legacy's defaults: %v", err)
	}
	if jobs, err := r.Jobs(ctx); err != nil || len(jobs) != 0 {
		t.Errorf("Jobs of an empty table: %v, %v", jobs, err)
	}
	r.Close()

	u.Path = "/no_such_database_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if _, err := Open(ctx, u.String()); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open(missing database): %v", err)
	}
	if _, err := Open(ctx, "host=localhost"); err == nil || !strings.Contains(err.Error(), "postgres://") {
		t.Errorf("Open(key=value string): %v, want an error showing the URL form", err)
	}
}

func ExampleReader() {
	ctx := context.Background()
	r, err := Open(ctx, "postgres://postgres@localhost/rebalancer")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	jobs, err := r.Jobs(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, j := range jobs {
		if j.Err != nil || !j.HasDatabase {
			fmt.Println("cannot import", j.ID, j.Err)
			continue
		}
		db, err := r.OpenJob(ctx, j.ID)
		if err != nil {
			fmt.Println(err)
			continue
		}
		res, _ := db.Results(ctx)
		n := 0
		err = db.Objects(ctx, "", func(o Object) error {
			n++ // write o to the job store here
			return nil
		})
		db.Close()
		fmt.Println(j.ID, StateAfterRestart(j.State), n, res.Total, err)
	}
}

func TestValueErrorMessage(t *testing.T) {
	long := strings.Repeat("é", 100)
	for _, tc := range []struct {
		v    sql.NullString
		want string
	}{
		{sql.NullString{}, "NULL"},
		{sql.NullString{Valid: true, String: "paused"}, `"paused"`},
		{sql.NullString{Valid: true, String: long}, `"` + strings.Repeat("é", 77) + `"...`},
	} {
		if got := shown(tc.v); got != tc.want {
			t.Errorf("shown(%v) = %s, want %s", tc.v, got, tc.want)
		}
	}
	err := &ValueError{Job: "j", Table: "evacuateobjects", Row: "o", Column: "status", Value: `"paused"`, Err: errors.New("unknown")}
	if got, want := err.Error(), `legacy job j: evacuateobjects row "o": column status = "paused": unknown`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
