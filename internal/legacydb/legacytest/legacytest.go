// Package legacytest lays out the legacy (Rust) rebalancer manager's job
// databases in a real PostgreSQL, exactly as the legacy's DDL creates them
// (see ddl.go for the sources), and fills them with hand-made legacy jobs,
// for the tests of package legacydb and of the import built on it.
//
// Standard returns a set of jobs that covers every job state, every object
// status, every skip reason and error kind of both legacy releases, several
// HTTP status codes, duplicates, a retry job, v1 and v2 (buckets) objects,
// a job whose database is missing and a database whose job row is missing.
// Layout creates it: the jobs table in the database of the URL it is given
// (which stands for the legacy's "rebalancer", so that tests sharing a
// server do not collide), and one database per job, named by the job's
// uuid, which Standard draws afresh on each call.
package legacytest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/lib/pq" // the PostgreSQL driver
)

// Set is a set of legacy jobs.
type Set struct {
	Jobs []*Job
}

// Job returns the job the fixture calls name, or nil.
func (s *Set) Job(name string) *Job {
	for _, j := range s.Jobs {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// Job is a legacy job: a row of the jobs table and its database.
type Job struct {
	Name    string // the fixture's name for it; not stored
	ID      string // uuid: jobs.id and the database's name
	Action  string // jobs.action, as stored
	State   string // jobs.state, as stored
	Release Release
	// NoDatabase leaves the job's database out: a jobs row without one.
	NoDatabase bool
	// NoRow leaves the jobs row out: a database without one (the legacy
	// leaves such a database behind when inserting the job's row fails).
	NoRow bool
	// FromShark is config.from_shark as JSON; "" leaves config empty.
	FromShark  string
	Objects    []Object
	Duplicates []Duplicate
	// RetryOf names the job this one retried. The legacy stores no link:
	// Layout only adds the id_and_status index to that job's database, as
	// a legacy retry does.
	RetryOf string
}

// Object is a row of evacuateobjects. "" stands for NULL in SkippedReason
// and Error.
type Object struct {
	ID            string
	AssignmentID  string
	Object        string // the metadata, JSON
	Shard         int
	DestShark     string
	Etag          string
	Status        string
	SkippedReason string
	Error         string
}

// Duplicate is a row of duplicates.
type Duplicate struct {
	ID     string
	Key    string
	Shards []int
}

// Layout creates set on the server of jobsURL: the jobs table in jobsURL's
// database, and a database per job. The job databases are dropped when t
// ends; jobsURL's database is the caller's (pgtest.NewDatabase drops it).
func Layout(t testing.TB, jobsURL string, set *Set) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	jobs := open(t, jobsURL)
	defer jobs.Close()
	mustExec(t, ctx, jobs, JobsDDL())
	for _, j := range set.Jobs {
		if !j.NoRow {
			mustExec(t, ctx, jobs, `INSERT INTO jobs (id, action, state) VALUES ($1, $2, $3)`, j.ID, j.Action, j.State)
		}
		if j.NoDatabase {
			continue
		}
		mustExec(t, ctx, jobs, `CREATE DATABASE "`+j.ID+`"`)
		id := j.ID
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			db := open(t, jobsURL)
			defer db.Close()
			if _, err := db.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+id+`" WITH (FORCE)`); err != nil {
				t.Errorf("legacytest: drop database %s: %v", id, err)
			}
		})
		fillJob(t, ctx, JobURL(t, jobsURL, j.ID), j)
	}
	for _, j := range set.Jobs {
		if j.RetryOf == "" {
			continue
		}
		parent := set.Job(j.RetryOf)
		if parent == nil || parent.NoDatabase {
			t.Fatalf("legacytest: job %s retries %q, which has no database", j.Name, j.RetryOf)
		}
		db := open(t, JobURL(t, jobsURL, parent.ID))
		mustExec(t, ctx, db, RetryIndexDDL)
		db.Close()
	}
}

func fillJob(t testing.TB, ctx context.Context, dbURL string, j *Job) {
	t.Helper()
	db := open(t, dbURL)
	defer db.Close()
	for _, stmt := range JobDDL(j.Release) {
		mustExec(t, ctx, db, stmt)
	}
	if j.FromShark != "" {
		mustExec(t, ctx, db, `INSERT INTO config (id, from_shark) VALUES (1, $1)`, j.FromShark)
	}
	for _, o := range j.Objects {
		mustExec(t, ctx, db, `INSERT INTO evacuateobjects
			(id, assignment_id, object, shard, dest_shark, etag, status, skipped_reason, error)
			VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, ''), NULLIF($9, ''))`,
			o.ID, o.AssignmentID, o.Object, o.Shard, o.DestShark, o.Etag, o.Status, o.SkippedReason, o.Error)
	}
	for _, d := range j.Duplicates {
		shards := make([]string, len(d.Shards))
		for i, s := range d.Shards {
			shards[i] = fmt.Sprint(s)
		}
		mustExec(t, ctx, db, `INSERT INTO duplicates (id, key, shards) VALUES ($1, $2, $3::int[])`,
			d.ID, d.Key, "{"+strings.Join(shards, ",")+"}")
	}
}

// JobURL returns the URL of job id's database on jobsURL's server.
func JobURL(t testing.TB, jobsURL, id string) string {
	t.Helper()
	u, err := url.Parse(jobsURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + id
	return u.String()
}

// Exec runs statements in a job's database, for tests that damage one.
func Exec(t testing.TB, jobsURL, id string, stmts ...string) {
	t.Helper()
	db := open(t, JobURL(t, jobsURL, id))
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range stmts {
		mustExec(t, ctx, db, s)
	}
}

// LargeJob lays out on jobsURL's server one complete legacy evacuation of
// 1.stor.example.com, with job id id, of n objects whose metadata is the
// size of a real Moray value (about 600 bytes), a tenth of them skipped.
// duplicates is the statement that fills the job's duplicates table; both
// tables are analysed after it, as a long-running legacy database is.
func LargeJob(t testing.TB, jobsURL, id string, n int, duplicates string) {
	t.Helper()
	job := &Job{ID: id, Action: "evacuate", State: "complete", Release: MANTA5484,
		FromShark: `{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}`}
	Layout(t, jobsURL, &Set{Jobs: []*Job{job}})
	const value = `{"dirname":"/61368287-aa5b-6c0f-f3a9-931a228215e4/stor/logs/2019/10","key":"/61368287-aa5b-6c0f-f3a9-931a228215e4/stor/logs/2019/10/OBJECTID.log",` +
		`"headers":{"m-source":"cron"},"mtime":1570611723062,"name":"OBJECTID.log","creator":"61368287-aa5b-6c0f-f3a9-931a228215e4",` +
		`"owner":"61368287-aa5b-6c0f-f3a9-931a228215e4","roles":[],"type":"object","contentLength":1048576,` +
		`"contentMD5":"1B2M2Y8AsgTpgAmY7PhCfg==","contentType":"application/octet-stream","etag":"OBJECTID","objectId":"OBJECTID",` +
		`"sharks":[{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"},{"datacenter":"dc2","manta_storage_id":"3.stor.example.com"}],"vnode":417}`
	Exec(t, jobsURL, id, fmt.Sprintf(`INSERT INTO evacuateobjects
		SELECT id, 'a0000000-0000-4000-8000-' || lpad(to_hex(g / 50), 12, '0'), replace('%s', 'OBJECTID', id)::jsonb,
			1 + g %% 4, '2.stor.example.com', upper(to_hex(g)),
			CASE WHEN g %% 10 = 0 THEN 'skipped' ELSE 'complete' END,
			CASE WHEN g %% 10 = 0 THEN '{http_status_code:500}' END, NULL
		FROM (SELECT g, lpad(to_hex(g), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(g), 12, '0') AS id
			FROM generate_series(1, %d) g) s`, value, n),
		duplicates,
		`ANALYZE evacuateobjects`, `ANALYZE duplicates`)
}

func open(t testing.TB, u string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", u)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func mustExec(t testing.TB, ctx context.Context, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("legacytest: %v\n%s", err, q)
	}
}

// The sharks of the standard set.
var (
	Evacuated = shark{"dc1", "1.stor.example.com"}
	sharkB    = shark{"dc1", "2.stor.example.com"}
	sharkC    = shark{"dc2", "3.stor.example.com"}
	sharkD    = shark{"dc1", "4.stor.example.com"}
)

type shark struct{ dc, id string }

func (s shark) json() string {
	return fmt.Sprintf(`{"datacenter":%q,"manta_storage_id":%q}`, s.dc, s.id)
}

// Owner is the account owning every object of the standard set.
const Owner = "61368287-aa5b-6c0f-f3a9-931a228215e4"

// objectID returns the n-th object id of job number job: uuids, so that the
// database's collation orders them as bytes do.
func objectID(job, n int) string {
	return fmt.Sprintf("%04x%04x-0000-4000-8000-%012x", job, n, n)
}

// v1 is a Moray "manta" value as sharkspotter hands it to the legacy.
func v1(id, key string, size int64, sharks ...shark) string {
	sh := make([]string, len(sharks))
	for i, s := range sharks {
		sh[i] = s.json()
	}
	name := key[strings.LastIndex(key, "/")+1:]
	dir := key[:strings.LastIndex(key, "/")]
	k, _ := json.Marshal(key)
	n, _ := json.Marshal(name)
	d, _ := json.Marshal(dir)
	return fmt.Sprintf(`{"dirname":%s,"key":%s,"headers":{},"mtime":1570611723062,"name":%s,"creator":%q,"owner":%q,`+
		`"roles":[],"type":"object","contentLength":%d,"contentMD5":"1B2M2Y8AsgTpgAmY7PhCfg==",`+
		`"contentType":"application/octet-stream","etag":%q,"objectId":%q,"sharks":[%s],"vnode":417}`,
		d, k, n, Owner, Owner, size, id, id, strings.Join(sh, ","))
}

// v2 is a buckets-mdapi object as the legacy's sharkspotter remaps it
// (libs/sharkspotter/src/directdb_buckets.rs): bucket_id set, etag the id.
func v2(id, name string, size int64, sharks ...shark) string {
	sh := make([]string, len(sharks))
	for i, s := range sharks {
		sh[i] = s.json()
	}
	n, _ := json.Marshal(name)
	return fmt.Sprintf(`{"objectId":%q,"etag":%q,"contentLength":%d,"contentMD5":"XUFAKrxLKna5cZ2REBfFkg==",`+
		`"contentType":"text/plain","name":%s,"key":%s,"owner":%q,"creator":%q,"sharks":[%s],`+
		`"bucket_id":"2b4a3c5d-9e8f-4a1b-8c7d-6e5f4a3b2c1d","headers":{},"dirname":"","roles":[],"mtime":0,"vnode":42,"type":"object"}`,
		id, id, size, n, n, Owner, Owner, strings.Join(sh, ","))
}

// jobBuilder makes a job's objects with ids numbered in order.
type jobBuilder struct {
	*Job
	no, n int
}

func newJob(no int, name, action, state string, r Release, from string) *jobBuilder {
	return &jobBuilder{Job: &Job{Name: name, ID: uuid.NewString(), Action: action, State: state, Release: r, FromShark: from}, no: no}
}

// add appends an object and returns its id. value builds the metadata from
// the id.
func (b *jobBuilder) add(o Object, value func(id string) string) string {
	b.n++
	o.ID = objectID(b.no, b.n)
	if o.Object == "" {
		o.Object = value(o.ID)
	}
	if o.Etag == "" {
		o.Etag = fmt.Sprintf("%08X", b.no<<16|b.n)
	}
	b.Objects = append(b.Objects, o)
	return o.ID
}

func plain(key string) func(string) string {
	return func(id string) string { return v1(id, "/"+Owner+"/stor/"+key, 1<<20, Evacuated, sharkB) }
}

// assignment returns a fixed assignment id for job number job.
func assignment(job, n int) string { return fmt.Sprintf("a%07x-0000-4000-8000-%012x", job, n) }

// Standard returns the standard set of legacy jobs, with fresh job ids.
// Tests state the counts the legacy shows for each by hand; keep them in
// step when changing it.
func Standard() *Set {
	set := &Set{}
	from := Evacuated.json()

	// complete: a finished MANTA-5484 job with every outcome: complete v1
	// and v2 objects, one object per skip reason and per error kind, HTTP
	// status codes, and duplicates.
	c := newJob(1, "complete", "evacuate", "complete", MANTA5484, from)
	var firstComplete string
	for i := 1; i <= 6; i++ {
		id := c.add(Object{AssignmentID: assignment(1, 1), Shard: 1 + i%2, DestShark: sharkB.id, Status: "complete"}, plain(fmt.Sprintf("c/%d.txt", i)))
		if i == 1 {
			firstComplete = id
		}
	}
	// Numbers beyond float64's precision, a decimal with a trailing zero,
	// and a key with quotes and non-ASCII characters must come back as
	// stored.
	c.add(Object{AssignmentID: assignment(1, 1), Shard: 2, DestShark: sharkB.id, Status: "complete"}, func(id string) string {
		v := v1(id, "/"+Owner+`/stor/ünïcødé ☃ "q" \ 'x'`, 1152921504606846977, Evacuated, sharkC)
		return strings.Replace(v, `"vnode":417}`, `"vnode":417,"x-float":2.50,"x-big":-9007199254740993}`, 1)
	})
	for i := 1; i <= 2; i++ {
		c.add(Object{AssignmentID: assignment(1, 2), Shard: 1, DestShark: sharkC.id, Status: "complete"}, func(id string) string {
			return v2(id, fmt.Sprintf("photos/%d.jpg", i), 4096, Evacuated, sharkD)
		})
	}
	// The legacy marks an object complete even after its shark rewrite
	// failed, leaving the error set.
	c.add(Object{AssignmentID: assignment(1, 1), Shard: 1, DestShark: sharkB.id, Status: "complete", Error: "duplicate_shark"}, plain("c/dup-shark.txt"))
	managerSide := map[string]bool{"source_is_evac_shark": true, "destination_insufficient_space": true,
		"object_already_on_dest_shark": true, "object_already_in_datacenter": true, "assignment_error": true}
	var skipped []string
	for _, reason := range SkipReasons(MANTA5484) {
		o := Object{AssignmentID: assignment(1, 3), Shard: 1, DestShark: sharkD.id, Status: "skipped", SkippedReason: reason}
		if managerSide[reason] {
			o.AssignmentID = ""
		}
		if reason == "source_is_evac_shark" {
			o.DestShark = ""
		}
		skipped = append(skipped, c.add(o, plain("s/"+reason)))
	}
	for _, code := range []int{100, 403, 500, 500, 503, 599} {
		skipped = append(skipped, c.add(Object{AssignmentID: assignment(1, 4), Shard: 2, DestShark: sharkB.id, Status: "skipped",
			SkippedReason: fmt.Sprintf("{http_status_code:%d}", code)}, plain(fmt.Sprintf("h/%d", code))))
	}
	errs := map[string]string{}
	for _, kind := range append(ObjectErrors(MANTA5484), "moray_update_failed", "moray_update_failed") {
		o := Object{AssignmentID: assignment(1, 5), Shard: 2, DestShark: sharkB.id, Status: "error", Error: kind}
		if kind == "bad_shard_number" {
			o.Shard, o.AssignmentID, o.DestShark = 0, "", ""
		}
		errs[kind] = c.add(o, plain("e/"+kind))
	}
	c.Duplicates = []Duplicate{
		// Found twice in one assignment: one shard recorded.
		{ID: firstComplete, Key: "/" + Owner + "/stor/link-to-c1", Shards: []int{1}},
		// Met three times across assignments: shards appended each time.
		{ID: skipped[0], Key: "/" + Owner + "/stor/s/again", Shards: []int{2, 1, 2}},
	}
	set.Jobs = append(set.Jobs, c.Job)

	// running: a job the legacy manager was running when it stopped.
	r := newJob(2, "running", "evacuate", "running", MANTA5484, from)
	r.add(Object{Shard: 1, Status: "unprocessed"}, plain("r/u"))
	for i := 1; i <= 4; i++ {
		dest := sharkB
		if i > 2 {
			dest = sharkC
		}
		r.add(Object{AssignmentID: assignment(2, 1+(i-1)/2), Shard: 1, DestShark: dest.id, Status: "assigned"}, plain(fmt.Sprintf("r/a%d", i)))
	}
	for i := 1; i <= 2; i++ {
		r.add(Object{AssignmentID: assignment(2, 3), Shard: 2, DestShark: sharkD.id, Status: "post_processing"}, plain(fmt.Sprintf("r/p%d", i)))
	}
	for i := 1; i <= 3; i++ {
		r.add(Object{AssignmentID: assignment(2, 4), Shard: 2, DestShark: sharkB.id, Status: "complete"}, plain(fmt.Sprintf("r/c%d", i)))
	}
	r.add(Object{Shard: 1, Status: "skipped", SkippedReason: "source_is_evac_shark"}, plain("r/s1"))
	r.add(Object{AssignmentID: assignment(2, 5), Shard: 1, DestShark: sharkC.id, Status: "skipped", SkippedReason: "{http_status_code:404}"}, plain("r/s2"))
	r.add(Object{AssignmentID: assignment(2, 4), Shard: 2, DestShark: sharkB.id, Status: "error", Error: "moray_update_failed"}, plain("r/e1"))
	set.Jobs = append(set.Jobs, r.Job)

	// retry: a retry of complete. Its rows are copies of complete's skipped
	// and errored rows (bad_shard_number ones excepted), with their new
	// outcome; the legacy keeps stale reasons on some.
	rt := &jobBuilder{Job: &Job{Name: "retry", ID: uuid.NewString(), Action: "evacuate", State: "complete", Release: MANTA5484,
		FromShark: from, RetryOf: "complete"}, no: 3}
	byID := map[string]Object{}
	for _, o := range c.Objects {
		byID[o.ID] = o
	}
	retried := func(id string, change func(*Object)) {
		o := byID[id]
		o.AssignmentID, o.DestShark = assignment(3, 1), sharkB.id
		change(&o)
		rt.Objects = append(rt.Objects, o)
	}
	for _, id := range skipped[:5] {
		retried(id, func(o *Object) { o.Status, o.SkippedReason = "complete", "" })
	}
	// The legacy inserts a retried object as assigned with its old reason
	// and does not always clear it when the object completes.
	rt.Objects[2].SkippedReason = byID[skipped[2]].SkippedReason
	retried(errs["internal_error"], func(o *Object) { o.Status, o.Error = "complete", "" })
	retried(errs["metadata_update_failed"], func(o *Object) { o.Status = "assigned" })
	retried(skipped[len(skipped)-4], func(o *Object) { o.SkippedReason = "agent_busy" })
	retried(skipped[len(skipped)-2], func(o *Object) { o.SkippedReason = "{http_status_code:500}" })
	retried(errs["moray_etag_mismatch"], func(o *Object) { o.Error = "moray_update_failed" })
	set.Jobs = append(set.Jobs, rt.Job)

	// failed: a job that failed, or was marked failed by a restart, with
	// objects still assigned.
	f := newJob(4, "failed", "evacuate", "failed", MANTA5484, from)
	f.add(Object{AssignmentID: assignment(4, 1), Shard: 1, DestShark: sharkC.id, Status: "assigned"}, plain("f/a1"))
	f.add(Object{AssignmentID: assignment(4, 1), Shard: 1, DestShark: sharkC.id, Status: "assigned"}, plain("f/a2"))
	f.add(Object{AssignmentID: assignment(4, 2), Shard: 1, DestShark: sharkB.id, Status: "complete"}, plain("f/c1"))
	f.add(Object{AssignmentID: assignment(4, 3), Shard: 1, DestShark: sharkD.id, Status: "skipped", SkippedReason: "agent_assignment_timeout"}, plain("f/s1"))
	set.Jobs = append(set.Jobs, f.Job)

	// setup and init: queued jobs that never ran. The legacy writes the
	// shark as typed, with no datacenter, until the job starts.
	unvalidated := `{"datacenter":"","manta_storage_id":"5.stor.example.com"}`
	set.Jobs = append(set.Jobs,
		newJob(5, "setup", "evacuate", "setup", MANTA5484, unvalidated).Job,
		newJob(6, "init", "evacuate", "init", MANTA5484, unvalidated).Job)

	// stopped: a state the legacy declares and never sets; in an original
	// release database.
	st := newJob(7, "stopped", "evacuate", "stopped", Original, shark{"dc2", "6.stor.example.com"}.json())
	st.add(Object{AssignmentID: assignment(7, 1), Shard: 3, DestShark: sharkB.id, Status: "complete"}, plain("st/c1"))
	st.add(Object{AssignmentID: assignment(7, 1), Shard: 3, DestShark: sharkB.id, Status: "complete"}, plain("st/c2"))
	st.add(Object{AssignmentID: assignment(7, 1), Shard: 3, DestShark: sharkB.id, Status: "skipped", SkippedReason: "md5_mismatch"}, plain("st/s1"))
	set.Jobs = append(set.Jobs, st.Job)

	// original: a finished job of the original release, with each of its
	// skip reasons and errors.
	o := newJob(8, "original", "evacuate", "complete", Original, shark{"dc1", "7.stor.example.com"}.json())
	var firstOriginal string
	for i := 1; i <= 3; i++ {
		id := o.add(Object{AssignmentID: assignment(8, 1), Shard: 1, DestShark: sharkB.id, Status: "complete"}, plain(fmt.Sprintf("o/c%d", i)))
		if i == 1 {
			firstOriginal = id
		}
	}
	for _, reason := range append(SkipReasons(Original), "{http_status_code:404}", "{http_status_code:404}", "{http_status_code:502}") {
		o.add(Object{AssignmentID: assignment(8, 2), Shard: 1, DestShark: sharkC.id, Status: "skipped", SkippedReason: reason}, plain("o/s/"+reason))
	}
	for _, kind := range ObjectErrors(Original) {
		o.add(Object{AssignmentID: assignment(8, 3), Shard: 1, DestShark: sharkC.id, Status: "error", Error: kind}, plain("o/e/"+kind))
	}
	o.Duplicates = []Duplicate{{ID: firstOriginal, Key: "/" + Owner + "/stor/o/other", Shards: []int{4, 1}}}
	set.Jobs = append(set.Jobs, o.Job)

	// none: the action the legacy declares and never uses.
	set.Jobs = append(set.Jobs, newJob(9, "none", "none", "init", MANTA5484, unvalidated).Job)

	// missing: a row whose database is gone.
	m := newJob(10, "missing", "evacuate", "failed", MANTA5484, from)
	m.NoDatabase = true
	set.Jobs = append(set.Jobs, m.Job)

	// orphan: a database whose row the legacy never inserted.
	orphan := newJob(11, "orphan", "evacuate", "", MANTA5484, unvalidated)
	orphan.NoRow = true
	set.Jobs = append(set.Jobs, orphan.Job)
	return set
}
