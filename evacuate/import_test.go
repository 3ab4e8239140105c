package evacuate

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
)

// objectsOf returns an ImportedJob.Objects over objs.
func objectsOf(objs ...ImportedObject) func(context.Context, func(ImportedObject) error) error {
	return func(ctx context.Context, visit func(ImportedObject) error) error {
		for _, o := range objs {
			if err := visit(o); err != nil {
				return err
			}
		}
		return nil
	}
}

// An imported job is stored whole: the job as given (terminal, never
// started, discovery done), every object with its metadata verbatim, its
// key and size derived from it (or not, when it does not parse), its
// status, reason, detail and destination, numbered in order; duplicates;
// and counters equal to a recount. Importing it again changes nothing.
func TestImportJob(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		h := newHarness(t, dsn, 0, nil)
		v1 := fakes.ObjectValue("acct", "00000000-0000-4000-8000-000000000001", 1234, fakes.Shark(1), fakes.Shark(2))
		// Numbers and spacing kept as they are: nothing re-encodes it.
		v1 = json.RawMessage(strings.Replace(string(v1), `"vnode"`, `"x-big": 18446744073709551617, "x-float":2.50, "vnode"`, 1))
		badLength := json.RawMessage(`{"key":"/acct/stor/bad","owner":"acct","objectId":"b","contentLength":"x"}`)
		created := time.Date(2020, 3, 4, 5, 6, 7, 8e6, time.UTC)
		objs := []ImportedObject{
			{ID: "00000000-0000-4000-8000-000000000001", Metadata: v1, Shard: 2, Etag: "E1", Status: rebalancer.ObjectComplete,
				Dest: rebalancer.StorageNode{MantaStorageID: "3.stor.test"}, AssignmentID: "a1"},
			{ID: "s", Metadata: v1, Shard: 1, Etag: "E2", Status: rebalancer.ObjectSkipped, SkipReason: rebalancer.SkipHTTPStatus(503)},
			{ID: "e", Metadata: v1, Shard: 1, Etag: "E3", Status: rebalancer.ObjectError, Error: rebalancer.ErrorMorayEtagMismatch},
			{ID: "e0", Metadata: v1, Shard: 1, Status: rebalancer.ObjectError}, // no reason recorded
			{ID: "b", Metadata: badLength, Shard: 1, Status: rebalancer.ObjectError, Error: rebalancer.ErrorBadContentLength},
			{ID: "n", Metadata: json.RawMessage(`{"no":"key"}`), Status: rebalancer.ObjectError, Error: rebalancer.ErrorBadShardNumber},
			{ID: "p", Metadata: v1, Shard: 3, Status: rebalancer.ObjectPostProcessing, Detail: "left over"},
		}
		imp := ImportedJob{ID: "11111111-2222-4333-8444-555555555555", State: rebalancer.JobFailed, From: fakes.Shark(1),
			Error: "was running", CreatedAt: created, Objects: objectsOf(objs...),
			Duplicates: func(ctx context.Context, visit func(ImportedDuplicate) error) error {
				for _, d := range []ImportedDuplicate{{"s", "/acct/stor/link", 1}, {"s", "/acct/stor/link", 2}, {"s", "/acct/stor/link", 2}} {
					if err := visit(d); err != nil {
						return err
					}
				}
				return nil
			}}
		res, err := h.store.ImportJob(ctx, imp)
		if err != nil {
			t.Fatal(err)
		}
		if res.Objects != int64(len(objs)) || res.Duplicates != 3 {
			t.Errorf("result %+v", res)
		}
		j, err := h.engine.Job(ctx, imp.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != rebalancer.JobFailed || j.Action != rebalancer.JobEvacuate || j.From != fakes.Shark(1) || j.Error != "was running" ||
			!j.CreatedAt.Equal(created) || !j.DiscoveryDone || !j.StartedAt.IsZero() || !j.FinishedAt.IsZero() || j.RetryOf != "" {
			t.Errorf("job %+v", j)
		}
		if !reflect.DeepEqual(j.Options, DefaultOptions()) {
			t.Errorf("options %+v, want the defaults", j.Options)
		}
		for i, o := range objs {
			row, err := h.js.GetObject(ctx, imp.ID, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if row.Metadata != string(o.Metadata) || row.Seq != int64(i+1) || row.Status != o.Status.String() || row.Etag != o.Etag ||
				row.Shard != o.Shard || row.Detail != o.Detail || row.DestShark != o.Dest.MantaStorageID || row.AssignmentID != o.AssignmentID {
				t.Errorf("object %s stored as %+v", o.ID, row)
			}
		}
		for id, want := range map[string]struct {
			key    string
			length int64
		}{"s": {"/acct/stor/00000000-0000-4000-8000-000000000001", 1234}, "b": {"/acct/stor/bad", 0}, "n": {"", 0}} {
			row, _ := h.js.GetObject(ctx, imp.ID, id)
			if row.Key != want.key || row.ContentLength != want.length {
				t.Errorf("object %s: key %q length %d, want %q %d", id, row.Key, row.ContentLength, want.key, want.length)
			}
		}
		counts, _ := h.js.Counts(ctx, imp.ID)
		recount, _ := h.js.Recount(ctx, imp.ID)
		if !reflect.DeepEqual(counts, recount) || len(counts) != 7 {
			t.Errorf("counters %v, recount %v", counts, recount)
		}
		st, err := h.engine.JobStatus(ctx, imp.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Duplicates != 1 {
			t.Errorf("%d duplicated ids, want 1", st.Duplicates)
		}

		// Again: refused before anything is read, nothing changed.
		imp.Objects = func(context.Context, func(ImportedObject) error) error {
			t.Error("objects read for a job already imported")
			return nil
		}
		if _, err := h.store.ImportJob(ctx, imp); !errors.Is(err, ErrJobExists) {
			t.Errorf("second import: %v, want ErrJobExists", err)
		}
		if again, _ := h.js.Counts(ctx, imp.ID); !reflect.DeepEqual(again, counts) {
			t.Errorf("counters after a second import %v, were %v", again, counts)
		}
		if ok, err := h.store.HasJob(ctx, imp.ID); !ok || err != nil {
			t.Errorf("HasJob = %v, %v", ok, err)
		}
	})
}

// An import that fails at any point leaves nothing behind, and can be
// done again; what cannot be stored faithfully is refused.
func TestImportJobAtomic(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		h := newHarness(t, dsn, 0, nil)
		v := fakes.ObjectValue("acct", "x", 10, fakes.Shark(1), fakes.Shark(2))
		var objs []ImportedObject
		for _, id := range []string{"a", "b", "c", "d", "e"} {
			objs = append(objs, ImportedObject{ID: id, Metadata: v, Shard: 1, Status: rebalancer.ObjectComplete})
		}
		job := func(objects func(context.Context, func(ImportedObject) error) error) ImportedJob {
			return ImportedJob{ID: "22222222-2222-4333-8444-555555555555", State: rebalancer.JobComplete, From: fakes.Shark(1),
				CreatedAt: time.Now(), Objects: objects}
		}
		interrupted := errors.New("interrupted")
		for _, tt := range []struct {
			name    string
			objects func(context.Context, func(ImportedObject) error) error
			want    error
			msg     string
		}{
			{"interrupted", func(ctx context.Context, visit func(ImportedObject) error) error {
				for _, o := range objs[:3] {
					if err := visit(o); err != nil {
						return err
					}
				}
				return interrupted
			}, interrupted, ""},
			{"stale skip reason", objectsOf(objs[0], ImportedObject{ID: "z", Metadata: v, Status: rebalancer.ObjectComplete,
				SkipReason: rebalancer.SkipAgentBusy}), nil, "a skip reason (agent_busy) on an object complete"},
			{"stale error", objectsOf(objs[0], ImportedObject{ID: "z", Metadata: v, Status: rebalancer.ObjectSkipped,
				Error: rebalancer.ErrorInternal}), nil, "an error (internal_error) on an object skipped"},
			{"an id twice", objectsOf(objs[0], objs[1], objs[0]), nil, "objects"},
		} {
			_, err := h.store.ImportJob(ctx, job(tt.objects))
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("%s: %v", tt.name, err)
			}
			if ok, _ := h.store.HasJob(ctx, "22222222-2222-4333-8444-555555555555"); ok {
				t.Fatalf("%s: the job is in the store", tt.name)
			}
			if _, err := h.js.GetObject(ctx, "22222222-2222-4333-8444-555555555555", "a"); err == nil {
				t.Fatalf("%s: an object of the failed import is in the store", tt.name)
			}
			if c, _ := h.js.Counts(ctx, "22222222-2222-4333-8444-555555555555"); len(c) != 0 {
				t.Fatalf("%s: counters %v left", tt.name, c)
			}
		}
		res, err := h.store.ImportJob(ctx, job(objectsOf(objs...)))
		if err != nil || res.Objects != 5 {
			t.Fatalf("import after the failures: %+v %v", res, err)
		}
		for _, bad := range []ImportedJob{
			{ID: "x", State: rebalancer.JobRunning, From: fakes.Shark(1), Objects: objectsOf()},
			{ID: "x", State: rebalancer.JobComplete, Objects: objectsOf()},
			{State: rebalancer.JobComplete, From: fakes.Shark(1), Objects: objectsOf()},
		} {
			if _, err := h.store.ImportJob(ctx, bad); err == nil {
				t.Errorf("import of %+v accepted", bad)
			}
		}
	})
}

// A retry of an imported job moves every object it did not complete, as
// for a job of the engine's own: skipped and errored ones, and those the
// other rebalancer left assigned or post_processing, but not objects
// whose shard number was bad.
func TestRetryImportedJob(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, filepath.Join(t.TempDir(), "jobs.db"), 10, func(i int) []rebalancer.StorageNode {
		if i == 0 || i == 9 {
			return []rebalancer.StorageNode{fakes.Shark(2), fakes.Shark(7)} // moved off shark 1 by the job
		}
		return []rebalancer.StorageNode{fakes.Shark(1), fakes.Shark(2)}
	})
	status := []struct {
		status rebalancer.ObjectStatus
		skip   rebalancer.SkipReason
		err    rebalancer.ObjectErrorKind
	}{
		{status: rebalancer.ObjectComplete},
		{status: rebalancer.ObjectSkipped, skip: rebalancer.SkipSourceIsEvacShark},
		{status: rebalancer.ObjectSkipped, skip: rebalancer.SkipHTTPStatus(500)},
		{status: rebalancer.ObjectError, err: rebalancer.ErrorMorayUpdateFailed},
		{status: rebalancer.ObjectError},
		{status: rebalancer.ObjectAssigned},
		{status: rebalancer.ObjectPostProcessing},
		{status: rebalancer.ObjectError, err: rebalancer.ErrorBadShardNumber},
		{status: rebalancer.ObjectUnprocessed},
		{status: rebalancer.ObjectComplete},
	}
	var objs []ImportedObject
	for i, o := range h.objs {
		objs = append(objs, ImportedObject{ID: o.ID, Metadata: o.Metadata, Shard: o.Shard, Etag: o.Etag,
			Status: status[i].status, SkipReason: status[i].skip, Error: status[i].err})
	}
	const id = "33333333-2222-4333-8444-555555555555"
	if _, err := h.store.ImportJob(ctx, ImportedJob{ID: id, State: rebalancer.JobFailed, From: rebalancer.StorageNode{MantaStorageID: h.from.MantaStorageID},
		CreatedAt: time.Now(), Objects: objectsOf(objs...)}); err != nil {
		t.Fatal(err)
	}
	r, err := h.engine.RetryJob(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	r = h.wait(r.ID)
	got := h.check(r.ID)
	if r.State != rebalancer.JobComplete || r.RetryOf != id || r.From != h.from || got["complete"] != 7 || len(got) != 1 {
		t.Fatalf("retry %v %q of %s from %v: counts %v, want the 7 objects not complete nor with a bad shard number complete", r.State, r.Error, r.RetryOf, r.From, got)
	}
	for i, o := range h.objs {
		_, err := h.js.GetObject(ctx, r.ID, o.ID)
		if retried := status[i].status != rebalancer.ObjectComplete && status[i].err != rebalancer.ErrorBadShardNumber; retried != (err == nil) {
			t.Errorf("object %d (%v %v): in the retry job: %v", i, status[i].status, status[i].err, err == nil)
		}
	}
}
