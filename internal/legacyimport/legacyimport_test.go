package legacyimport

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq" // the PostgreSQL driver, for the legacy fingerprint

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/pgstore"
	"github.com/TritonDataCenter/rebalancer/evacuate/sqlitestore"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
	"github.com/TritonDataCenter/rebalancer/internal/legacydb"
	"github.com/TritonDataCenter/rebalancer/internal/legacydb/legacytest"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// stores runs a test against a SQLite and a PostgreSQL job store.
func stores(t *testing.T, fn func(t *testing.T, st *evacuate.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "jobs.db"), evacuate.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := pgstore.Open(context.Background(), pgtest.NewDatabase(t), evacuate.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st)
	})
}

// legacy lays out set in a real PostgreSQL and opens it.
func legacy(t *testing.T, set *legacytest.Set) (string, *legacydb.Reader) {
	t.Helper()
	jobsURL := pgtest.NewDatabase(t)
	legacytest.Layout(t, jobsURL, set)
	r, err := legacydb.Open(testContext(t), jobsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return jobsURL, r
}

// api serves the job API over an engine on st (whose jobs the test never
// runs: the fakes stand in for Manta) and returns its client.
func api(t *testing.T, st *evacuate.Store) *jobapi.Client {
	t.Helper()
	e, err := evacuate.NewEngine(evacuate.Config{Store: st, Metadata: fakes.NewMoray(), Placement: fakes.NewPlacement(fakes.Shark(3)),
		Agent: fakes.NewAgents(), Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&jobapi.Server{Engine: e, Logger: testutil.Discard()}).Handler())
	t.Cleanup(func() {
		srv.Close()
		e.Close()
	})
	c, err := jobapi.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fingerprint digests every table of the legacy databases, to show that
// importing changes none.
func fingerprint(t *testing.T, jobsURL string, set *legacytest.Set) string {
	t.Helper()
	var b strings.Builder
	digest := func(url, what, q string) {
		db, err := sql.Open("postgres", url)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var s sql.NullString
		if err := db.QueryRowContext(testContext(t), q).Scan(&s); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		fmt.Fprintf(&b, "%s=%s\n", what, s.String)
	}
	digest(jobsURL, "jobs", `SELECT md5(string_agg(j::text, '|' ORDER BY id)) FROM jobs j`)
	for _, j := range set.Jobs {
		if j.NoDatabase {
			continue
		}
		for _, table := range []string{"evacuateobjects", "config", "duplicates"} {
			digest(legacytest.JobURL(t, jobsURL, j.ID), j.Name+" "+table, `SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) FROM `+table+` t`)
		}
		digest(legacytest.JobURL(t, jobsURL, j.ID), j.Name+" indexes", `SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'`)
	}
	return b.String()
}

// The outcome each job of standard() must have.
var standardOutcomes = map[string]Outcome{
	"complete": Imported, "running": Imported, "retry": Imported, "failed": Imported, "setup": Imported,
	"init": Imported, "stopped": Imported, "original": Imported, "none": Skipped, "missing": Skipped,
	"nulls": Imported,
}

// standard is legacytest.Standard and a job whose skipped and errored rows
// have no reason (the legacy's CHECK lists allow NULL, and its status
// leaves such rows out of its breakdowns).
func standard() *legacytest.Set {
	set := legacytest.Standard()
	value := func(id string) string {
		return fmt.Sprintf(`{"key":"/%s/stor/n/%s","owner":%q,"objectId":%q,"contentLength":5,"sharks":[{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}]}`,
			legacytest.Owner, id, legacytest.Owner, id)
	}
	j := &legacytest.Job{Name: "nulls", ID: "0badc0de-0000-4000-8000-000000000000", Action: "evacuate", State: "complete",
		Release: legacytest.MANTA5484, FromShark: `{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}`}
	for i, o := range []legacytest.Object{
		{Status: "error"}, {Status: "error"}, {Status: "error", Error: "internal_error"},
		{Status: "skipped"}, {Status: "skipped", SkippedReason: "agent_busy"}, {Status: "complete"},
	} {
		o.ID = fmt.Sprintf("0000000%d-0000-4000-8000-000000000000", i)
		o.Object, o.Shard, o.Etag = value(o.ID), 1, "E"
		j.Objects = append(j.Objects, o)
	}
	set.Jobs = append(set.Jobs, j)
	return set
}

// Every job of the standard legacy set that the legacy can show is
// imported, into SQLite and PostgreSQL alike, and the job API then shows
// for each the legacy's status document (legacydb.Reader.Status: its
// action, shark and every count and breakdown; its state after a restart)
// and lists its objects in the legacy's statuses with the legacy's
// reasons. A second run imports nothing; neither run changes anything of
// the legacy's.
func TestImportStandard(t *testing.T) {
	stores(t, func(t *testing.T, st *evacuate.Store) {
		ctx := testContext(t)
		set := standard()
		jobsURL, r := legacy(t, set)
		before := fingerprint(t, jobsURL, set)
		var lines []string
		sum, err := Import(ctx, r, st, Config{Options: evacuate.DefaultOptions(), Progress: func(p Progress) { lines = append(lines, p.String()) }})
		if err != nil {
			t.Fatal(err)
		}
		checkOutcomes(t, set, sum, Imported)
		// Other tests' job databases share the server, and are orphans
		// here: check only ours.
		for _, j := range set.Jobs {
			if slices.Contains(sum.Orphans, j.ID) != (j.Name == "orphan") {
				t.Errorf("job %s: listed as an orphan: %v (orphans %v)", j.Name, j.Name != "orphan", sum.Orphans)
			}
		}
		c := set.Job("complete")
		if !slices.ContainsFunc(lines, func(l string) bool {
			return strings.HasPrefix(l, "legacy job 1 of 11, "+c.ID+" (complete, 1.stor.example.com): ") && strings.HasSuffix(l, fmt.Sprintf(": %d objects imported", len(c.Objects)))
		}) {
			t.Errorf("no progress line for the first job's end in %q", lines)
		}

		cl := api(t, st)
		listed, err := cl.Jobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var listedIDs, want []string
		for _, j := range listed {
			listedIDs = append(listedIDs, j.ID)
		}
		legacyJobs, err := r.Jobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range legacyJobs {
			if byID(set, j.ID) != nil && standardOutcomes[byID(set, j.ID).Name] == Imported {
				want = append(want, j.ID)
			}
		}
		if !slices.Equal(listedIDs, want) {
			t.Errorf("GET /jobs lists %v, want the legacy's order %v", listedIDs, want)
		}
		for _, j := range set.Jobs {
			if standardOutcomes[j.Name] == Imported {
				checkJob(t, ctx, cl, r, j)
			}
		}

		// A second run: nothing new, nothing changed.
		counts := allCounts(t, ctx, cl, set)
		again, err := Import(ctx, r, st, Config{})
		if err != nil {
			t.Fatal(err)
		}
		checkOutcomes(t, set, again, Present)
		if got := allCounts(t, ctx, cl, set); !reflect.DeepEqual(got, counts) {
			t.Errorf("counts after a second import:\n%v\nwere\n%v", got, counts)
		}
		if after := fingerprint(t, jobsURL, set); after != before {
			t.Errorf("the legacy databases changed:\n%s\nwere\n%s", after, before)
		}
		var out bytes.Buffer
		if err := again.Write(&out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "0 imported (0 objects, 0 duplicates), 9 already imported, 2 skipped, 0 failed, of 11 legacy jobs.") ||
			!strings.Contains(out.String(), set.Job("orphan").ID+"  not a job") {
			t.Errorf("summary:\n%s", out.String())
		}
	})
}

func byID(set *legacytest.Set, id string) *legacytest.Job {
	for _, j := range set.Jobs {
		if j.ID == id {
			return j
		}
	}
	return nil
}

// checkOutcomes checks what became of each job; imported is the outcome
// of the jobs an import can take (Present on a second run).
func checkOutcomes(t *testing.T, set *legacytest.Set, sum Summary, imported Outcome) {
	t.Helper()
	if len(sum.Jobs) != len(standardOutcomes) {
		t.Errorf("%d jobs in the summary, want %d", len(sum.Jobs), len(standardOutcomes))
	}
	for _, res := range sum.Jobs {
		j := byID(set, res.ID)
		if j == nil {
			t.Errorf("job %s in the summary is not the fixture's", res.ID)
			continue
		}
		want := standardOutcomes[j.Name]
		if want == Imported {
			want = imported
		}
		if res.Outcome != want {
			t.Errorf("job %s (%s): %v %q %v, want %v", j.Name, res.ID, res.Outcome, res.Why, res.Err, want)
		}
	}
}

// checkJob checks the job API's view of an imported job against the
// legacy's.
func checkJob(t *testing.T, ctx context.Context, cl *jobapi.Client, r *legacydb.Reader, j *legacytest.Job) {
	t.Helper()
	want, err := r.Status(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cl.JobStatus(ctx, j.ID)
	if err != nil {
		t.Fatalf("%s: %v", j.Name, err)
	}
	if got.Config.Action != want.Action || got.Config.FromShark != want.FromShark {
		t.Errorf("%s: config %+v, legacy %v %+v", j.Name, got.Config, want.Action, want.FromShark)
	}
	if ws := legacydb.StateAfterRestart(want.State); got.State != ws {
		t.Errorf("%s: state %v, want %v (the legacy's %v after a restart)", j.Name, got.State, ws, want.State)
	}
	if stopped := want.State != legacydb.StateAfterRestart(want.State); stopped != strings.Contains(got.Error, "when the legacy manager stopped") {
		t.Errorf("%s: error %q", j.Name, got.Error)
	}
	if got.Started != nil || got.Finished != nil || got.Created == nil || got.RetryOf != "" {
		t.Errorf("%s: times %v %v %v, retry of %q", j.Name, got.Created, got.Started, got.Finished, got.RetryOf)
	}
	for _, st := range rebalancer.ObjectStatuses() {
		if got.Results.Count(st) != want.Results.Counts[st] {
			t.Errorf("%s: %s %d, legacy %d", j.Name, st.Title(), got.Results.Count(st), want.Results.Counts[st])
		}
	}
	if got.Results.Duplicates != want.Results.Duplicates || got.Results.Total != want.Results.Total {
		t.Errorf("%s: duplicates %d total %d, legacy %d %d", j.Name, got.Results.Duplicates, got.Results.Total, want.Results.Duplicates, want.Results.Total)
	}
	if !sameMaps(got.Results.SkipBreakdown, want.Results.SkipBreakdown) {
		t.Errorf("%s: skip breakdown %v, legacy %v", j.Name, got.Results.SkipBreakdown, want.Results.SkipBreakdown)
	}
	if !reflect.DeepEqual(nonEmpty(got.Results.ErrorBreakdown), nonEmpty(want.Results.ErrorBreakdown)) {
		t.Errorf("%s: error breakdown %v, legacy %v", j.Name, got.Results.ErrorBreakdown, want.Results.ErrorBreakdown)
	}
	// The results object as a whole, as the legacy writes it.
	raw, err := cl.Get(ctx, jobapi.JobPath(j.ID))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Results json.RawMessage }
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	legacyResults, _ := json.Marshal(want.Results)
	if !sameJSON(t, doc.Results, legacyResults) {
		t.Errorf("%s: results\n%s\nlegacy\n%s", j.Name, doc.Results, legacyResults)
	}

	// Every object, in its legacy status, with the legacy's reason; a
	// reason its status does not call for is in its detail.
	db, err := r.OpenJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows := map[string]legacydb.Object{}
	if err := db.Objects(ctx, "", func(o legacydb.Object) error { rows[o.ID] = o; return nil }); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, st := range rebalancer.ObjectStatuses() {
		objs, err := cl.Objects(ctx, j.ID, jobapi.ObjectQuery{Status: st, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			seen++
			row, ok := rows[o.ID]
			if !ok || row.Status != st {
				t.Errorf("%s: object %s listed %v, legacy row %v (%v)", j.Name, o.ID, st, row.Status, ok)
				continue
			}
			checkObject(t, j.Name, o, row)
		}
	}
	if seen != len(rows) {
		t.Errorf("%s: %d objects listed, the legacy has %d", j.Name, seen, len(rows))
	}
}

func checkObject(t *testing.T, job string, o jobapi.Object, row legacydb.Object) {
	t.Helper()
	wantSkip, wantErr, stale := "", "", []string{}
	if row.SkipReason != 0 {
		if row.Status == rebalancer.ObjectSkipped {
			wantSkip = row.SkipReason.String()
		} else {
			stale = append(stale, "skipped_reason "+row.SkipReason.String())
		}
	}
	if row.Error != 0 {
		if row.Status == rebalancer.ObjectError {
			wantErr = row.Error.String()
		} else {
			stale = append(stale, "error "+row.Error.String())
		}
	}
	if o.SkippedReason != wantSkip || o.Error != wantErr || o.DestShark != row.DestShark || o.AssignmentID != row.AssignmentID || o.Shard != row.Shard {
		t.Errorf("%s: object %s: %+v, legacy row %+v", job, o.ID, o, row)
	}
	for _, s := range stale {
		if !strings.Contains(o.Detail, s) {
			t.Errorf("%s: object %s: detail %q does not keep the legacy's %s", job, o.ID, o.Detail, s)
		}
	}
	if len(stale) == 0 && o.Detail != "" {
		t.Errorf("%s: object %s: detail %q", job, o.ID, o.Detail)
	}
	if parsed, err := rebalancer.ParseObject(row.Object); err == nil && (o.Key != parsed.Key || o.ContentLength != parsed.ContentLength) {
		t.Errorf("%s: object %s: key %q length %d, metadata says %q %d", job, o.ID, o.Key, o.ContentLength, parsed.Key, parsed.ContentLength)
	}
}

func sameMaps(a, b map[string]int64) bool {
	return len(a) == len(b) && (len(a) == 0 || maps.Equal(a, b))
}

func nonEmpty(m map[string]map[string]int64) map[string]map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

// sameJSON compares JSON values but for key order and spacing.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// allCounts is the results of every fixture job, to compare two imports.
func allCounts(t *testing.T, ctx context.Context, cl *jobapi.Client, set *legacytest.Set) map[string]jobapi.Results {
	t.Helper()
	out := map[string]jobapi.Results{}
	for _, j := range set.Jobs {
		if standardOutcomes[j.Name] != Imported {
			continue
		}
		st, err := cl.JobStatus(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		out[j.Name] = st.Results
	}
	return out
}

// An import stopped half way through a job leaves that job out whole; the
// next run imports it, and the jobs after it.
func TestImportInterrupted(t *testing.T) {
	stores(t, func(t *testing.T, st *evacuate.Store) {
		set := standard()
		_, r := legacy(t, set)
		victim := set.Job("retry")
		ctx, cancel := context.WithCancel(testContext(t))
		sum, err := Import(ctx, r, st, Config{ProgressEvery: time.Nanosecond, Progress: func(p Progress) {
			if p.Job == victim.ID && p.Objects == 3 {
				cancel()
			}
		}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted import: %v", err)
		}
		last := sum.Jobs[len(sum.Jobs)-1]
		if last.ID != victim.ID || last.Outcome != Failed {
			t.Errorf("last job %+v, want the victim failed", last)
		}
		if ok, _ := st.HasJob(context.Background(), victim.ID); ok {
			t.Fatal("the job interrupted half way is in the store")
		}
		sum, err = Import(testContext(t), r, st, Config{})
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range sum.Jobs {
			want := standardOutcomes[byID(set, res.ID).Name]
			if want == Imported && res.ID != victim.ID && res.Outcome == Imported && slices.IndexFunc(set.Jobs, func(j *legacytest.Job) bool { return j.ID == res.ID }) < slices.Index(set.Jobs, victim) {
				t.Errorf("job %s, imported before the interruption, imported again", byID(set, res.ID).Name)
			}
			if want == Imported && res.Outcome != Imported && res.Outcome != Present {
				t.Errorf("job %s: %v %v", byID(set, res.ID).Name, res.Outcome, res.Err)
			}
		}
		cl := api(t, st)
		checkJob(t, testContext(t), cl, r, victim)
	})
}

// A job whose database holds a value the project cannot represent fails,
// naming the row and column, and leaves nothing in the store; the others
// are imported.
func TestImportDamaged(t *testing.T) {
	stores(t, func(t *testing.T, st *evacuate.Store) {
		set := standard()
		jobsURL, r := legacy(t, set)
		victim := set.Job("failed")
		legacytest.Exec(t, jobsURL, victim.ID,
			`ALTER TABLE evacuateobjects DROP CONSTRAINT evacuateobjects_error_check`,
			`UPDATE evacuateobjects SET error = 'cosmic_ray' WHERE id = (SELECT max(id) FROM evacuateobjects)`)
		sum, err := Import(testContext(t), r, st, Config{})
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range sum.Jobs {
			var ve *legacydb.ValueError
			switch {
			case res.ID == victim.ID:
				if res.Outcome != Failed || !errors.As(res.Err, &ve) || ve.Column != "error" || !strings.Contains(res.Err.Error(), "cosmic_ray") {
					t.Errorf("damaged job: %v %v", res.Outcome, res.Err)
				}
			case standardOutcomes[byID(set, res.ID).Name] == Imported && res.Outcome != Imported:
				t.Errorf("job %s: %v %v", byID(set, res.ID).Name, res.Outcome, res.Err)
			}
		}
		if ok, _ := st.HasJob(context.Background(), victim.ID); ok {
			t.Error("the damaged job is in the store")
		}
		if sum.Count(Failed) != 1 {
			t.Errorf("%d failed", sum.Count(Failed))
		}
	})
}

func TestCreationTimes(t *testing.T) {
	t0 := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	ms := time.Millisecond
	for _, tt := range []struct {
		name    string
		created []time.Time
		want    []time.Time
	}{
		{"all known", []time.Time{t0, t0.Add(time.Hour)}, []time.Time{t0, t0.Add(time.Hour)}},
		{"gaps follow the job before", []time.Time{t0, {}, {}, t0.Add(time.Hour)}, []time.Time{t0, t0.Add(ms), t0.Add(2 * ms), t0.Add(time.Hour)}},
		{"a head precedes the first known", []time.Time{{}, {}, t0}, []time.Time{t0.Add(-2 * ms), t0.Add(-ms), t0}},
		{"none known", []time.Time{{}, {}}, []time.Time{time.UnixMilli(1).UTC(), time.UnixMilli(2).UTC()}},
		{"ties broken in list order", []time.Time{t0, t0, t0.Add(-time.Second), t0.Add(time.Second)},
			[]time.Time{t0, t0.Add(ms), t0.Add(2 * ms), t0.Add(time.Second)}},
	} {
		jobs := make([]legacydb.Job, len(tt.created))
		for i, c := range tt.created {
			jobs[i].Created = c
		}
		if got := creationTimes(jobs); !slices.EqualFunc(got, tt.want, time.Time.Equal) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDistinctShards(t *testing.T) {
	for _, tt := range []struct{ in, want []int }{
		{[]int{2, 1, 2}, []int{2, 1}},
		{[]int{1}, []int{1}},
		{nil, []int{0}},
	} {
		if got := distinctShards(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("distinctShards(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// An imported evacuation leaves its shark out of service, as one of this
// manager's would: drained when the latest evacuation of the shark
// completed, draining otherwise; an operator's state is kept.
func TestImportSharkStates(t *testing.T) {
	stores(t, func(t *testing.T, st *evacuate.Store) {
		ctx := testContext(t)
		set := standard()
		_, r := legacy(t, set)
		if _, err := Import(ctx, r, st, Config{Options: evacuate.DefaultOptions()}); err != nil {
			t.Fatal(err)
		}
		cl := api(t, st)
		jobs, err := cl.Jobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		latest := map[string]jobapi.Job{} // shark -> its latest evacuation
		for _, j := range jobs {
			shark := j.FromShark.MantaStorageID
			if j.Action != rebalancer.JobEvacuate || shark == "" {
				continue
			}
			if l, ok := latest[shark]; !ok || j.Created > l.Created {
				latest[shark] = j
			}
		}
		if len(latest) == 0 {
			t.Fatal("the fixture imported no evacuation")
		}
		for shark, j := range latest {
			want := "draining"
			if j.State == rebalancer.JobComplete {
				want = "drained"
			}
			s, err := cl.Shark(ctx, shark)
			if err != nil {
				t.Fatalf("shark %s: %v", shark, err)
			}
			if s.State != want || s.Job != j.ID || s.ChangedBy != "job" {
				t.Errorf("shark %s after importing job %s (%s): state %s by %s (job %s), want %s by job", shark, j.ID, j.State, s.State, s.ChangedBy, s.Job, want)
			}
		}
	})
}
