package legacydb

import (
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/legacydb/legacytest"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

// Rows sort before and after each other by id.
const (
	goodID = "00000000-0000-4000-8000-000000000001"
	badID  = "ffffffff-0000-4000-8000-000000000002"
)

// damaged lays out one job whose database has lost its CHECK and NOT NULL
// constraints, as a hand-edited database or one from a newer legacy
// release could have, and a jobs table likewise.
func damaged(t *testing.T) (jobsURL string, victim *legacytest.Job, r *Reader) {
	t.Helper()
	jobsURL = pgtest.NewDatabase(t)
	victim = &legacytest.Job{Name: "victim", ID: uuid.NewString(), Action: "evacuate", State: "complete",
		Release: legacytest.MANTA5484, FromShark: `{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}`}
	legacytest.Layout(t, jobsURL, &legacytest.Set{Jobs: []*legacytest.Job{victim}})
	legacytest.Exec(t, jobsURL, victim.ID,
		`ALTER TABLE evacuateobjects DROP CONSTRAINT evacuateobjects_status_check,
			DROP CONSTRAINT evacuateobjects_skipped_reason_check, DROP CONSTRAINT evacuateobjects_error_check,
			ALTER COLUMN status DROP NOT NULL`)
	execJobs(t, jobsURL, `ALTER TABLE jobs DROP CONSTRAINT jobs_action_check, DROP CONSTRAINT jobs_state_check,
		ALTER COLUMN action DROP NOT NULL, ALTER COLUMN state DROP NOT NULL`)
	r, err := Open(testContext(t), jobsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return jobsURL, victim, r
}

func execJobs(t *testing.T, jobsURL string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("postgres", jobsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(testContext(t), s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
	}
}

// checkValueError checks that err is a *ValueError about the given cell and
// that its message names the job, the row and the column.
func checkValueError(t *testing.T, err error, job, table, row, column string) {
	t.Helper()
	var ve *ValueError
	if !errors.As(err, &ve) {
		t.Errorf("got %v, want a *ValueError", err)
		return
	}
	if ve.Job != job || ve.Table != table || (row != "" && ve.Row != row) || ve.Column != column {
		t.Errorf("ValueError about %s.%s row %q of job %s, want %s.%s row %q of job %s", ve.Table, ve.Column, ve.Row, ve.Job, table, column, row, job)
	}
	msg := err.Error()
	for _, s := range []string{job, table, column} {
		if !strings.Contains(msg, s) {
			t.Errorf("message %q does not name %q", msg, s)
		}
	}
}

func TestDamagedObjects(t *testing.T) {
	jobsURL, victim, r := damaged(t)
	ctx := testContext(t)
	const good = `('` + goodID + `', 'a', '{"key":"/k"}', 1, '2.stor', 'E1', 'complete', NULL, NULL)`
	for _, tc := range []struct {
		name, row, column string
		// status reports whether Results must fail on the row too.
		status bool
	}{
		{"unknown status", `'paused', NULL, NULL`, "status", true},
		{"NULL status", `NULL, NULL, NULL`, "status", true},
		{"unknown skip reason", `'skipped', 'fell_off_truck', NULL`, "skipped_reason", false},
		{"serde spelling", `'skipped', '{HTTPStatusCode:404}', NULL`, "skipped_reason", false},
		{"code beyond 16 bits", `'skipped', '{http_status_code:70000}', NULL`, "skipped_reason", false},
		{"code not as the legacy writes it", `'skipped', '{http_status_code:0404}', NULL`, "skipped_reason", false},
		{"unknown error", `'error', NULL, 'cosmic_ray'`, "error", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			legacytest.Exec(t, jobsURL, victim.ID, `DELETE FROM evacuateobjects`,
				`INSERT INTO evacuateobjects VALUES `+good+`, ('`+badID+`', '', '{}', 1, '', '', `+tc.row+`)`)
			checkObjects(t, r, victim.ID, tc.column)
			db, err := r.OpenJob(ctx, victim.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_, err = db.Results(ctx)
			if !tc.status {
				if err != nil {
					t.Errorf("Results: %v (the legacy shows this row)", err)
				}
				return
			}
			row := badID
			if strings.HasPrefix(tc.row, "NULL") {
				row = ""
			}
			checkValueError(t, err, victim.ID, "evacuateobjects", row, "status")
		})
	}
	for _, tc := range []struct{ column, values string }{
		{"assignment_id", `('` + badID + `', NULL, '{}', 1, '', '', 'complete', NULL, NULL)`},
		{"object", `('` + badID + `', '', NULL, 1, '', '', 'complete', NULL, NULL)`},
		{"shard", `('` + badID + `', '', '{}', NULL, '', '', 'complete', NULL, NULL)`},
		{"dest_shark", `('` + badID + `', '', '{}', 1, NULL, '', 'complete', NULL, NULL)`},
		{"etag", `('` + badID + `', '', '{}', 1, '', NULL, 'complete', NULL, NULL)`},
	} {
		t.Run("NULL "+tc.column, func(t *testing.T) {
			legacytest.Exec(t, jobsURL, victim.ID, `DELETE FROM evacuateobjects`,
				`INSERT INTO evacuateobjects VALUES `+good+`, `+tc.values)
			checkObjects(t, r, victim.ID, tc.column)
		})
	}
}

// checkObjects reads the victim's objects: the good row comes first, then
// the scan stops on the bad one.
func checkObjects(t *testing.T, r *Reader, id, column string) {
	t.Helper()
	ctx := testContext(t)
	db, err := r.OpenJob(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seen []string
	err = db.Objects(ctx, "", func(o Object) error {
		seen = append(seen, o.ID)
		return nil
	})
	checkValueError(t, err, id, "evacuateobjects", badID, column)
	if len(seen) != 1 || seen[0] != goodID {
		t.Errorf("visited %v before the error, want the good row only", seen)
	}
}

func TestDamagedDuplicates(t *testing.T) {
	jobsURL, victim, r := damaged(t)
	ctx := testContext(t)
	for _, tc := range []struct{ name, column, values string }{
		{"NULL key", "key", `NULL, '{1}'`},
		{"NULL shards", "shards", `'/k', NULL`},
		{"NULL shard", "shards", `'/k', '{1,NULL}'`},
		{"two dimensions", "shards", `'/k', '{{1},{2}}'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			legacytest.Exec(t, jobsURL, victim.ID, `DELETE FROM duplicates`,
				`INSERT INTO duplicates VALUES ('`+goodID+`', '/k', '{1,2}'), ('`+badID+`', `+tc.values+`)`)
			db, err := r.OpenJob(ctx, victim.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var seen []Duplicate
			err = db.Duplicates(ctx, func(d Duplicate) error {
				seen = append(seen, d)
				return nil
			})
			checkValueError(t, err, victim.ID, "duplicates", badID, tc.column)
			if len(seen) != 1 || seen[0].ID != goodID || len(seen[0].Shards) != 2 {
				t.Errorf("visited %+v before the error, want the good row only", seen)
			}
		})
	}
}

func TestDamagedConfig(t *testing.T) {
	jobsURL, victim, r := damaged(t)
	ctx := testContext(t)
	for _, tc := range []struct{ name, insert string }{
		{"not an object", `INSERT INTO config VALUES (1, '"1.stor.example.com"')`},
		{"no datacenter", `INSERT INTO config VALUES (1, '{"manta_storage_id":"1.stor.example.com"}')`},
		{"null datacenter", `INSERT INTO config VALUES (1, '{"datacenter":null,"manta_storage_id":"1.stor.example.com"}')`},
		{"NULL", `INSERT INTO config VALUES (1, NULL)`},
		{"two rows", `INSERT INTO config VALUES (1, '{"datacenter":"","manta_storage_id":"a"}'), (2, '{"datacenter":"","manta_storage_id":"b"}')`},
		{"no row", ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stmts := []string{`DELETE FROM config`}
			if tc.insert != "" {
				stmts = append(stmts, tc.insert)
			}
			legacytest.Exec(t, jobsURL, victim.ID, stmts...)
			db, err := r.OpenJob(ctx, victim.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_, err = db.FromShark(ctx)
			if tc.insert == "" {
				if err == nil || !strings.Contains(err.Error(), victim.ID) || !strings.Contains(err.Error(), "no row") {
					t.Errorf("FromShark of an empty config: %v", err)
				}
				return
			}
			checkValueError(t, err, victim.ID, "config", "", "from_shark")
			if _, err := r.Status(ctx, victim.ID); err == nil {
				t.Error("Status: no error")
			}
		})
	}
}

func TestDamagedJobs(t *testing.T) {
	jobsURL, victim, r := damaged(t)
	ctx := testContext(t)
	paused, migrate, nullState := uuid.NewString(), uuid.NewString(), uuid.NewString()
	execJobs(t, jobsURL, `INSERT INTO jobs VALUES
		('`+paused+`', 'evacuate', 'paused'), ('`+migrate+`', 'migrate', 'running'),
		('`+nullState+`', 'evacuate', NULL), ('not-a-uuid', 'evacuate', 'complete')`)
	jobs, err := r.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{paused: "state", migrate: "action", nullState: "state", "not-a-uuid": "id", victim.ID: ""}
	if len(jobs) != len(want) {
		t.Errorf("%d jobs listed, want %d (none left out)", len(jobs), len(want))
	}
	for _, j := range jobs {
		column, ok := want[j.ID]
		switch {
		case !ok:
			t.Errorf("unexpected job %s", j.ID)
		case column == "":
			if j.Err != nil || j.State != rebalancer.JobComplete {
				t.Errorf("job %s: %+v", j.ID, j)
			}
		default:
			checkValueError(t, j.Err, j.ID, "jobs", j.ID, column)
			if _, err := r.OpenJob(ctx, j.ID); err == nil || j.Err == nil || err.Error() != j.Err.Error() {
				t.Errorf("OpenJob(%s): %v, want %v", j.ID, err, j.Err)
			}
			if _, err := r.Status(ctx, j.ID); err == nil || j.Err == nil || err.Error() != j.Err.Error() {
				t.Errorf("Status(%s): %v, want %v", j.ID, err, j.Err)
			}
		}
	}
}

func TestMissingTables(t *testing.T) {
	jobsURL := pgtest.NewDatabase(t)
	from := `{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}`
	bare := &legacytest.Job{Name: "bare", ID: uuid.NewString(), Action: "evacuate", State: "failed", Release: legacytest.MANTA5484, FromShark: from}
	nodups := &legacytest.Job{Name: "nodups", ID: uuid.NewString(), Action: "evacuate", State: "complete", Release: legacytest.Original, FromShark: from,
		// An empty objectId is possible in the legacy; it must not be
		// mistaken for "no lower bound" when paging.
		Objects: []legacytest.Object{{ID: "", Object: `{}`, Status: "complete"}, {ID: goodID, Object: `{}`, Status: "complete"}}}
	legacytest.Layout(t, jobsURL, &legacytest.Set{Jobs: []*legacytest.Job{bare, nodups}})
	// A job whose setup failed after creating config only, and a job
	// database without the duplicates table, which the legacy counts as 0.
	legacytest.Exec(t, jobsURL, bare.ID, `DROP TABLE evacuateobjects`, `DROP TABLE duplicates`)
	legacytest.Exec(t, jobsURL, nodups.ID, `DROP TABLE duplicates`)
	ctx := testContext(t)
	r, err := Open(ctx, jobsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	db, err := r.OpenJob(ctx, bare.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Duplicates(ctx, func(Duplicate) error { return errors.New("a duplicate") }); err != nil {
		t.Errorf("Duplicates without the table: %v", err)
	}
	err = db.Objects(ctx, "", func(Object) error { return nil })
	if err == nil || !strings.Contains(err.Error(), bare.ID) || !strings.Contains(err.Error(), "no evacuateobjects table") {
		t.Errorf("Objects without the table: %v", err)
	}
	db.Close()
	if _, err := r.Status(ctx, bare.ID); err == nil || !strings.Contains(err.Error(), "no evacuateobjects table") {
		t.Errorf("Status without the table: %v", err)
	}

	st, err := r.Status(ctx, nodups.ID)
	if err != nil || st.Results.Duplicates != 0 || st.Results.Total != 2 || st.Results.Counts[rebalancer.ObjectComplete] != 2 {
		t.Errorf("Status without duplicates: %+v, %v", st.Results, err)
	}
	r.PageSize = 1
	db, err = r.OpenJob(ctx, nodups.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := readObjects(t, db, ""); len(got) != 2 || got[0].ID != "" || got[1].ID != goodID {
		t.Errorf("objects in pages of 1: %+v", got)
	}
}
