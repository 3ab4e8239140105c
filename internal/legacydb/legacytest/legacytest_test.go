package legacytest_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer/internal/legacydb/legacytest"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestCheckConstraints checks the DDL against what the legacy's CHECK lists
// accept and refuse in each release.
func TestCheckConstraints(t *testing.T) {
	jobsURL := pgtest.NewDatabase(t)
	set := &legacytest.Set{Jobs: []*legacytest.Job{
		{Name: "orig", ID: uuid.NewString(), Action: "evacuate", State: "complete", Release: legacytest.Original},
		{Name: "new", ID: uuid.NewString(), Action: "evacuate", State: "complete", Release: legacytest.MANTA5484},
	}}
	legacytest.Layout(t, jobsURL, set)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	jobs, err := sql.Open("postgres", jobsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	for _, tc := range []struct {
		action, state string
		ok            bool
	}{
		{"evacuate", "running", true}, {"none", "init", true}, {"evacuate", "stopped", true},
		{"evacuate", "paused", false}, {"Evacuate", "running", false}, {"rebalance", "init", false},
	} {
		_, err := jobs.ExecContext(ctx, `INSERT INTO jobs (id, action, state) VALUES (gen_random_uuid()::text, $1, $2)`, tc.action, tc.state)
		if (err == nil) != tc.ok {
			t.Errorf("jobs (%s, %s): err = %v, want accepted %v", tc.action, tc.state, err, tc.ok)
		}
	}

	for _, tc := range []struct {
		status, reason, errKind string
		orig, new               bool
	}{
		{"complete", "", "", true, true},
		{"post_processing", "", "", true, true},
		{"paused", "", "", false, false},
		{"skipped", "source_is_evac_shark", "", true, true},
		{"skipped", "agent_fs_error", "", true, true},
		{"skipped", "source_object_not_found", "", false, true},
		{"skipped", "mpu_part_no_data", "", false, true},
		{"skipped", "agent_assignment_timeout", "", false, true},
		{"skipped", "{http_status_code:100}", "", true, true},
		{"skipped", "{http_status_code:599}", "", true, true},
		{"skipped", "{http_status_code:600}", "", false, false},
		{"skipped", "{http_status_code:99}", "", false, false},
		{"skipped", "{HTTPStatusCode:404}", "", false, false},
		{"skipped", "MD5Mismatch", "", false, false},
		{"error", "", "bad_content_length", true, true},
		{"error", "", "moray_update_failed", false, true},
		{"error", "", "mdapi_object_not_found", false, true},
		{"error", "", "etag_mismatch", false, false},
	} {
		for _, j := range set.Jobs {
			db, err := sql.Open("postgres", legacytest.JobURL(t, jobsURL, j.ID))
			if err != nil {
				t.Fatal(err)
			}
			_, err = db.ExecContext(ctx, `INSERT INTO evacuateobjects (id, assignment_id, object, shard, dest_shark, etag, status, skipped_reason, error)
				VALUES (gen_random_uuid()::text, '', '{}', 1, '', '', $1, NULLIF($2, ''), NULLIF($3, ''))`, tc.status, tc.reason, tc.errKind)
			db.Close()
			want := tc.orig
			if j.Release == legacytest.MANTA5484 {
				want = tc.new
			}
			if (err == nil) != want {
				t.Errorf("%s release: (%s, %q, %q): err = %v, want accepted %v", j.Release, tc.status, tc.reason, tc.errKind, err, want)
			}
		}
	}
}

// TestStandardCoverage checks that the standard set covers what it claims.
func TestStandardCoverage(t *testing.T) {
	set := legacytest.Standard()
	states, statuses, reasons, errs := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	codes, v2, retry, dups := 0, 0, 0, 0
	for _, j := range set.Jobs {
		states[j.State] = true
		if j.RetryOf != "" {
			retry++
		}
		dups += len(j.Duplicates)
		for _, o := range j.Objects {
			statuses[o.Status] = true
			if strings.HasPrefix(o.SkippedReason, "{") {
				codes++
			} else if o.SkippedReason != "" {
				reasons[o.SkippedReason] = true
			}
			if o.Error != "" {
				errs[o.Error] = true
			}
			if strings.Contains(o.Object, `"bucket_id"`) {
				v2++
			}
		}
	}
	for _, s := range legacytest.JobStates {
		if !states[s] {
			t.Errorf("no job in state %s", s)
		}
	}
	for _, s := range legacytest.ObjectStatuses {
		if !statuses[s] {
			t.Errorf("no object in status %s", s)
		}
	}
	for _, r := range legacytest.SkipReasons(legacytest.MANTA5484) {
		if !reasons[r] {
			t.Errorf("no object skipped for %s", r)
		}
	}
	for _, e := range legacytest.ObjectErrors(legacytest.MANTA5484) {
		if !errs[e] {
			t.Errorf("no object in error %s", e)
		}
	}
	if codes < 5 || v2 == 0 || retry == 0 || dups < 2 {
		t.Errorf("http codes %d, v2 objects %d, retry jobs %d, duplicates %d", codes, v2, retry, dups)
	}
}
