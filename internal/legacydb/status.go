package legacydb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
)

// StateAfterRestart returns the state the legacy manager shows for a job
// in state s once the manager has restarted: at start it marks every job
// it finds init, setup or running as failed, since it cannot resume them
// (mark_stale_jobs_failed in manager/src/jobs/mod.rs). Other states are
// kept. Releases before that function kept showing such jobs as running
// forever; failed is what both show after a retry-worthy stop.
func StateAfterRestart(s rebalancer.JobState) rebalancer.JobState {
	switch s {
	case rebalancer.JobInit, rebalancer.JobSetup, rebalancer.JobRunning:
		return rebalancer.JobFailed
	}
	return s
}

// Results is the "results" part of the legacy's GET /jobs/{uuid} document,
// computed as the legacy computes it (manager/src/jobs/status.rs).
type Results struct {
	// Counts has one entry per object status, zero included: the rows of
	// evacuateobjects in that status.
	Counts map[rebalancer.ObjectStatus]int64
	// Duplicates is the number of rows of the duplicates table (object
	// ids, not extra copies); 0 when the table is missing, as in the
	// legacy.
	Duplicates int64
	// Total is the sum of Counts and Duplicates.
	Total int64
	// ErrorBreakdown counts the objects in status error by error, grouped
	// as the legacy groups them: "moray_X" under "moray" as "X", "mdapi_X"
	// under "mdapi" as "X", anything else under "other" by its full name.
	// Error rows whose error is NULL are counted in Counts only.
	ErrorBreakdown map[string]map[string]int64
	// SkipBreakdown counts the objects in status skipped by skip reason,
	// keyed by the database spelling ("{http_status_code:500}"). Skipped
	// rows whose reason is NULL are counted in Counts only.
	SkipBreakdown map[string]int64
}

// MarshalJSON encodes the legacy's shape: the counts flattened under their
// Title Case names ("Post Processing") next to "Duplicates" and "Total",
// and each breakdown only when not empty.
func (r Results) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(r.Counts)+4)
	for st, n := range r.Counts {
		m[st.Title()] = n
	}
	m["Duplicates"] = r.Duplicates
	m["Total"] = r.Total
	if len(r.ErrorBreakdown) > 0 {
		m["error_breakdown"] = r.ErrorBreakdown
	}
	if len(r.SkipBreakdown) > 0 {
		m["skip_breakdown"] = r.SkipBreakdown
	}
	return json.Marshal(m)
}

// Status is the legacy's GET /jobs/{uuid} document.
type Status struct {
	Action    rebalancer.JobAction
	FromShark rebalancer.StorageNode
	Results   Results
	State     rebalancer.JobState // as stored in the jobs table
}

// MarshalJSON encodes the legacy document:
// {"config":{"action":"Evacuate","from_shark":{..}},"results":{..},"state":"Running"}.
func (s Status) MarshalJSON() ([]byte, error) {
	type config struct {
		Action    rebalancer.JobAction   `json:"action"`
		FromShark rebalancer.StorageNode `json:"from_shark"`
	}
	return json.Marshal(struct {
		Config  config              `json:"config"`
		Results Results             `json:"results"`
		State   rebalancer.JobState `json:"state"`
	}{config{s.Action, s.FromShark}, s.Results, s.State})
}

// Status computes a job's legacy status document, as the legacy's GET
// /jobs/{uuid} shows it: the state from the jobs table (as stored: see
// StateAfterRestart), the counts from the job's database, the shark from its
// config table.
func (r *Reader) Status(ctx context.Context, id string) (Status, error) {
	j, err := r.Job(ctx, id)
	if err != nil {
		return Status{}, err
	}
	if j.Err != nil {
		return Status{}, j.Err
	}
	if j.Action != rebalancer.JobEvacuate {
		// The legacy reaches unreachable!() here.
		return Status{}, fmt.Errorf("legacy job %s: action %v has no status document", id, j.Action)
	}
	db, err := r.openJobDB(ctx, j.ID)
	if err != nil {
		return Status{}, err
	}
	defer db.Close()
	res, err := db.Results(ctx)
	if err != nil {
		return Status{}, err
	}
	from, err := db.FromShark(ctx)
	if err != nil {
		return Status{}, err
	}
	return Status{Action: j.Action, FromShark: from, Results: res, State: j.State}, nil
}

// Results computes the job's status counts with the legacy's queries. A
// status the project does not know is a *ValueError naming one of its rows
// (the legacy would show it under its Title Case name).
func (j *JobDB) Results(ctx context.Context) (Results, error) {
	res := Results{
		Counts:         map[rebalancer.ObjectStatus]int64{},
		ErrorBreakdown: map[string]map[string]int64{},
		SkipBreakdown:  map[string]int64{},
	}
	for _, st := range rebalancer.ObjectStatuses() {
		res.Counts[st] = 0
	}
	err := j.each(ctx, `SELECT status, count(status) FROM evacuateobjects GROUP BY status`, func(status sql.NullString, n int64) error {
		if !status.Valid {
			return &ValueError{Job: j.id, Table: "evacuateobjects", Row: "(some)", Column: "status", Value: shown(status), Err: errNull}
		}
		st, err := rebalancer.ParseObjectStatus(status.String)
		if err != nil {
			return j.unknownStatus(ctx, status, err)
		}
		res.Counts[st] = n
		res.Total += n
		return nil
	})
	if err != nil {
		return Results{}, j.wrap("evacuateobjects", err)
	}
	err = j.each(ctx, `SELECT error AS reason, count(*) AS count FROM evacuateobjects
		WHERE status = 'error' AND error IS NOT NULL GROUP BY error ORDER BY count DESC`, func(reason sql.NullString, n int64) error {
		group, name := "other", reason.String
		for _, prefix := range []string{"moray_", "mdapi_"} {
			if rest, ok := strings.CutPrefix(reason.String, prefix); ok {
				group, name = strings.TrimSuffix(prefix, "_"), rest
				break
			}
		}
		if res.ErrorBreakdown[group] == nil {
			res.ErrorBreakdown[group] = map[string]int64{}
		}
		res.ErrorBreakdown[group][name] = n
		return nil
	})
	if err != nil {
		return Results{}, j.wrap("evacuateobjects", err)
	}
	err = j.each(ctx, `SELECT skipped_reason AS reason, count(*) AS count FROM evacuateobjects
		WHERE status = 'skipped' AND skipped_reason IS NOT NULL GROUP BY skipped_reason ORDER BY count DESC`, func(reason sql.NullString, n int64) error {
		res.SkipBreakdown[reason.String] = n
		return nil
	})
	if err != nil {
		return Results{}, j.wrap("evacuateobjects", err)
	}
	// The legacy takes 0 when this count fails, which happens when the
	// table is missing; any other failure here is reported.
	ok, err := j.hasTable(ctx, "duplicates")
	if err == nil && ok {
		err = j.tx.QueryRowContext(ctx, `SELECT count(*) FROM duplicates`).Scan(&res.Duplicates)
	}
	if err != nil {
		return Results{}, j.wrap("duplicates", err)
	}
	res.Total += res.Duplicates
	return res, nil
}

// each runs a (text, count) query and calls fn for each row, after reading
// them all: fn may query too, and a transaction's connection cannot run a
// query while another's rows are open. These queries return a few rows.
func (j *JobDB) each(ctx context.Context, query string, fn func(sql.NullString, int64) error) error {
	type row struct {
		s sql.NullString
		n int64
	}
	var all []row
	rows, err := j.tx.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.s, &r.n); err != nil {
			return err
		}
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	for _, r := range all {
		if err := fn(r.s, r.n); err != nil {
			return err
		}
	}
	return nil
}

// unknownStatus names one row in an unknown status, so that the operator
// can look at it.
func (j *JobDB) unknownStatus(ctx context.Context, status sql.NullString, cause error) error {
	var id string
	err := j.tx.QueryRowContext(ctx, `SELECT id FROM evacuateobjects WHERE status = $1 ORDER BY id LIMIT 1`, status.String).Scan(&id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return &ValueError{Job: j.id, Table: "evacuateobjects", Row: id, Column: "status", Value: shown(status), Err: cause}
}
