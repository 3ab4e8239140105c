package jobstore

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/TritonDataCenter/rebalancer"
)

// Shark lifecycle states, as stored. A shark without a row is in service.
const (
	SharkInService = "in_service" // an operator put it back in service
	SharkDraining  = "draining"   // a job evacuates it, or one did and did not complete
	SharkDrained   = "drained"    // its evacuation completed, or an operator took it out
)

// Who changed a shark's state.
const (
	ByJob      = "job"
	ByOperator = "operator"
)

// SharkRecord is a shark's lifecycle state as stored, and what set it.
type SharkRecord struct {
	Shark     string `db:"shark"`
	State     string `db:"state"`
	JobID     string `db:"job_id"`     // the job that set it, when a job did
	ChangedBy string `db:"changed_by"` // ByJob or ByOperator
	Reason    string `db:"reason"`
	UpdatedAt int64  `db:"updated_at"` // Unix milliseconds
}

// Sharks returns every stored shark state, by storage id.
func (s *Store) Sharks(ctx context.Context) ([]SharkRecord, error) {
	var out []SharkRecord
	if err := s.db.SelectContext(ctx, &out, `SELECT shark, state, job_id, changed_by, reason, updated_at FROM sharks ORDER BY shark`); err != nil {
		return nil, fmt.Errorf("read shark states: %w", err)
	}
	return out, nil
}

// SetShark stores a shark's state (UpdatedAt is set to now).
func (s *Store) SetShark(ctx context.Context, rec SharkRecord) error {
	return s.write(ctx, func(tx *sqlx.Tx) error { return setShark(ctx, tx, rec) })
}

func setShark(ctx context.Context, tx *sqlx.Tx, rec SharkRecord) error {
	switch rec.State {
	case SharkInService, SharkDraining, SharkDrained:
	default:
		return fmt.Errorf("shark %s: unknown state %q", rec.Shark, rec.State)
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO sharks (shark, state, job_id, changed_by, reason, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (shark) DO UPDATE SET state = excluded.state, job_id = excluded.job_id,
		changed_by = excluded.changed_by, reason = excluded.reason, updated_at = excluded.updated_at`),
		rec.Shark, rec.State, rec.JobID, rec.ChangedBy, rec.Reason, now())
	if err != nil {
		return fmt.Errorf("shark %s: set state %s: %w", rec.Shark, rec.State, err)
	}
	return nil
}

// CreateJobWithShark stores a new job and its shark's new state in one
// transaction: an evacuation marks its shark draining as it is created, so
// that no crash leaves one without the other.
func (s *Store) CreateJobWithShark(ctx context.Context, j Job, shark SharkRecord) error {
	err := s.write(ctx, func(tx *sqlx.Tx) error {
		if err := createJob(ctx, tx, j); err != nil {
			return err
		}
		return setShark(ctx, tx, shark)
	})
	if err == nil {
		s.mark.jobCreated()
	}
	return err
}

// SetJobStateWithShark is SetJobState and SetShark in one transaction: a
// completed evacuation leaves its shark drained.
func (s *Store) SetJobStateWithShark(ctx context.Context, id string, state rebalancer.JobState, errMsg string, shark SharkRecord) error {
	return s.write(ctx, func(tx *sqlx.Tx) error {
		if err := setJobState(ctx, tx, id, state, errMsg); err != nil {
			return err
		}
		return setShark(ctx, tx, shark)
	})
}
