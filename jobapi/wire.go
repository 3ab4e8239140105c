package jobapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
)

// The wire types below are the API's bodies, shared by Server and Client.
// A field the legacy manager does not send is optional (a pointer, or
// omitted when empty), so that a Client reads a legacy manager's replies;
// the field order of JobStatus and Results is the order in which the Go
// manager has always written them.

// CreateRequest is the body of POST /jobs.
type CreateRequest struct {
	// Action is "evacuate", the only action.
	Action string        `json:"action"`
	Params *CreateParams `json:"params"`
}

// CreateParams says what a new job evacuates, and how.
type CreateParams struct {
	// FromShark is the storage id of the shark to empty; a short name
	// ("1.stor") is completed with the manager's domain.
	FromShark string `json:"from_shark"`
	// MaxObjects stops discovery after this many objects (0..4294967295;
	// nil or 0: all). It is sent as null when nil, as the legacy client
	// sends it.
	MaxObjects *int64 `json:"max_objects"`
	// DryRun discovers and places without copying or changing metadata.
	DryRun bool `json:"dry_run,omitempty"`
	// Options, a JSON object, overrides some of the manager's job options
	// (evacuate.Options, by their JSON names).
	Options json.RawMessage `json:"options,omitempty"`
}

// UpdateRequest is the body of PUT /jobs/{uuid}: the legacy's only
// update, {"action":"set_metadata_threads","params":N}.
type UpdateRequest struct {
	Action string `json:"action"`
	Params *int64 `json:"params"`
}

// Job is one element of GET /jobs. A legacy manager sends ID, Action and
// State only.
type Job struct {
	ID        string                 `json:"id"`
	Action    rebalancer.JobAction   `json:"action"`
	State     rebalancer.JobState    `json:"state"`
	FromShark rebalancer.StorageNode `json:"from_shark"`
	// RetryOf is the job a retry job retries, "" for others (a legacy
	// manager does not send it).
	RetryOf string `json:"retry_of"`
	// Stopping is set for a running job that was asked to stop and waits
	// for its copies in flight (State stays Running until it ends
	// Stopped, as the legacy's clients know no other state).
	Stopping bool `json:"stopping"`
	// Created is when the job was created, in UTC to the millisecond
	// ("2006-01-02T15:04:05.000Z").
	Created string `json:"created"`
	// DryRun marks a dry run: it moved nothing, and is not retried.
	DryRun bool `json:"dry_run,omitempty"`
}

// JobStatus is GET /jobs/{uuid}: the legacy document (Config, Results,
// State) and what the Go manager adds beside it. From a legacy manager
// everything but Config, Results and State is zero or nil.
type JobStatus struct {
	Config  JobConfig           `json:"config"`
	Results Results             `json:"results"`
	State   rebalancer.JobState `json:"state"`

	ID string `json:"id"`
	// Error says why a job failed, or what holds a running one up; ""
	// when nothing does.
	Error string `json:"error"`
	// RetryOf is the job a retry job retries, "" for others.
	RetryOf string `json:"retry_of"`
	// Stopping: see Job.Stopping.
	Stopping bool       `json:"stopping"`
	Created  *time.Time `json:"created,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// Progress has exact counters and, while the job runs, its rates.
	Progress *Progress `json:"progress,omitempty"`
	// Options are the job's options.
	Options *evacuate.Options `json:"options,omitempty"`
	// DryRun is a dry run's report: where objects would go.
	DryRun *evacuate.DryRunReport `json:"dry_run,omitempty"`
	// Kinds splits the counts between v1 and v2 (buckets) objects and
	// says whether the job looked for v2 objects at all.
	Kinds *Kinds `json:"kinds,omitempty"`
	// BySource counts the skipped and errored objects by the shark their
	// copy was read from, largest first.
	BySource []SourceCount `json:"by_source,omitempty"`
	// Verdict, once the job ended, says how many of the objects it found
	// still name its shark.
	Verdict *Verdict `json:"shark_verdict,omitempty"`
}

// SourceCount is the number of a job's objects skipped, or in error, for
// a reason after reading from a source shark ("": no copy was read, or the
// failure was not the copy's).
type SourceCount struct {
	Source  string `json:"source"`
	Status  string `json:"status"` // "skipped" or "error"
	Reason  string `json:"reason"`
	Objects int64  `json:"objects"`
}

// Verdict says how many of the objects a job found still name its shark,
// by the job's records (GET /sharks/{shark}/check scans afresh).
type Verdict struct {
	ObjectsLeft int64 `json:"objects_left"`
	// DiscoveryDone is false when the job ended before finding every
	// object: those it did not find are not counted.
	DiscoveryDone bool `json:"discovery_done"`
	// ExcludedKeyPrefixes were left out: objects under them are not
	// counted.
	ExcludedKeyPrefixes []string `json:"excluded_key_prefixes,omitempty"`
	// Message says it in a sentence.
	Message string `json:"message"`
}

// JobConfig is what a job does.
type JobConfig struct {
	Action    rebalancer.JobAction   `json:"action"`
	FromShark rebalancer.StorageNode `json:"from_shark"`
}

// Results are the legacy's counts: objects by status (under the statuses'
// Title Case names), Duplicates (object ids found under several keys),
// Total (all of them), and the breakdowns of skipped objects by skip
// reason and of errors grouped as "moray", "mdapi" and "other".
type Results struct {
	Assigned       int64                       `json:"Assigned"`
	Complete       int64                       `json:"Complete"`
	Duplicates     int64                       `json:"Duplicates"`
	Error          int64                       `json:"Error"`
	PostProcessing int64                       `json:"Post Processing"`
	Skipped        int64                       `json:"Skipped"`
	Total          int64                       `json:"Total"`
	Unprocessed    int64                       `json:"Unprocessed"`
	ErrorBreakdown map[string]map[string]int64 `json:"error_breakdown,omitempty"`
	SkipBreakdown  map[string]int64            `json:"skip_breakdown,omitempty"`
}

// Count returns the number of objects in status.
func (r *Results) Count(status rebalancer.ObjectStatus) int64 {
	if p := r.count(status); p != nil {
		return *p
	}
	return 0
}

func (r *Results) count(status rebalancer.ObjectStatus) *int64 {
	switch status {
	case rebalancer.ObjectUnprocessed:
		return &r.Unprocessed
	case rebalancer.ObjectAssigned:
		return &r.Assigned
	case rebalancer.ObjectSkipped:
		return &r.Skipped
	case rebalancer.ObjectError:
		return &r.Error
	case rebalancer.ObjectPostProcessing:
		return &r.PostProcessing
	case rebalancer.ObjectComplete:
		return &r.Complete
	}
	return nil
}

// Progress is a job's progress: exact counters, and for a running job its
// rates over the last minute and an ETA: smoothed, absent while the job is
// paused or stopping or has no rate yet, and an estimate (ETAEstimated)
// while discovery runs (see evacuate.Status).
type Progress struct {
	Objects          int64    `json:"objects"`
	ObjectsDone      int64    `json:"objects_done"`
	ObjectsComplete  int64    `json:"objects_complete"`
	Bytes            int64    `json:"bytes"`
	BytesComplete    int64    `json:"bytes_complete"`
	ObjectsPerSecond float64  `json:"objects_per_second"`
	BytesPerSecond   float64  `json:"bytes_per_second"`
	DiscoveryDone    bool     `json:"discovery_done"`
	ETASeconds       *float64 `json:"eta_seconds"`
	ETAEstimated     bool     `json:"eta_estimated"`
}

// Object is one element of GET /jobs/{uuid}/objects.
type Object struct {
	ID            string `json:"id"`
	Key           string `json:"key"`
	Shard         int    `json:"shard"`
	Status        string `json:"status"` // the database spelling: "skipped"
	SkippedReason string `json:"skipped_reason,omitempty"`
	Error         string `json:"error,omitempty"`
	Detail        string `json:"detail,omitempty"`
	// SourceShark, for a skipped or errored object, is the shark its copy
	// was read from.
	SourceShark   string `json:"source_shark,omitempty"`
	DestShark     string `json:"dest_shark,omitempty"`
	AssignmentID  string `json:"assignment_id,omitempty"`
	Attempts      int    `json:"attempts"`
	ContentLength int64  `json:"content_length"`
	Seq           int64  `json:"seq"`
}

// Health is GET /health: Status "ok", or "error" with what is wrong with
// the job store.
type Health struct {
	Error  string `json:"error,omitempty"`
	Status string `json:"status"`
}

// ParseJobStatus decodes a GET /jobs/{uuid} reply, the Go manager's or a
// legacy one's.
func ParseJobStatus(b []byte) (*JobStatus, error) {
	var st JobStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("cannot read the job status: %w", err)
	}
	if st.State == 0 {
		return nil, fmt.Errorf("cannot read the job status: no state in %.80q", b)
	}
	return &st, nil
}

// newJobStatus is the document of a job's status.
func newJobStatus(s evacuate.Status) JobStatus {
	var r Results
	for _, c := range s.Counts {
		status, err := rebalancer.ParseObjectStatus(c.Status)
		if p := r.count(status); err == nil && p != nil {
			*p += c.N
		}
		if c.Reason == "" {
			// Skipped or in error without a recorded reason: only an
			// imported legacy job has such objects, and the legacy leaves
			// them out of its breakdowns (counted in Skipped or Error).
			continue
		}
		switch status {
		case rebalancer.ObjectError:
			group, name := "other", c.Reason
			for _, prefix := range []string{"moray", "mdapi"} {
				if rest, ok := strings.CutPrefix(c.Reason, prefix+"_"); ok {
					group, name = prefix, rest
				}
			}
			if r.ErrorBreakdown == nil {
				r.ErrorBreakdown = map[string]map[string]int64{}
			}
			if r.ErrorBreakdown[group] == nil {
				r.ErrorBreakdown[group] = map[string]int64{}
			}
			r.ErrorBreakdown[group][name] += c.N
		case rebalancer.ObjectSkipped:
			if r.SkipBreakdown == nil {
				r.SkipBreakdown = map[string]int64{}
			}
			r.SkipBreakdown[c.Reason] += c.N
		}
	}
	r.Duplicates = s.Duplicates
	r.Total = r.Unprocessed + r.Assigned + r.Skipped + r.Error + r.PostProcessing + r.Complete + s.Duplicates

	complete, bytesComplete := s.Total(rebalancer.ObjectComplete)
	var objects, bytes int64
	for _, c := range s.Counts {
		objects += c.N
		bytes += c.Bytes
	}
	remaining := s.Remaining()
	p := &Progress{
		Objects: objects, ObjectsDone: objects - remaining, ObjectsComplete: complete,
		Bytes: bytes, BytesComplete: bytesComplete, DiscoveryDone: s.Job.DiscoveryDone,
		ObjectsPerSecond: math.Round(s.ObjectsPerSecond*100) / 100, BytesPerSecond: math.Round(s.BytesPerSecond),
	}
	if s.Running && s.HasETA {
		eta := math.Round(s.ETA.Seconds())
		p.ETASeconds, p.ETAEstimated = &eta, s.ETAEstimated
	}
	opts := s.Job.Options
	var bySource []SourceCount
	for _, c := range s.BySource {
		bySource = append(bySource, SourceCount{Source: c.Source, Status: c.Status, Reason: c.Reason, Objects: c.N})
	}
	var v *Verdict
	if s.Verdict != nil {
		v = &Verdict{ObjectsLeft: s.Verdict.ObjectsLeft, DiscoveryDone: s.Verdict.DiscoveryDone,
			ExcludedKeyPrefixes: s.Verdict.ExcludedKeyPrefixes, Message: s.Verdict.String()}
	}
	return JobStatus{
		Config:   JobConfig{Action: s.Job.Action, FromShark: s.Job.From},
		Results:  r,
		State:    s.Job.State,
		ID:       s.Job.ID,
		Error:    s.Job.Error,
		RetryOf:  s.Job.RetryOf,
		Stopping: s.Stopping,
		Created:  timePtr(s.Job.CreatedAt),
		Started:  timePtr(s.Job.StartedAt),
		Finished: timePtr(s.Job.FinishedAt),
		Progress: p,
		Options:  &opts,
		DryRun:   s.DryRun,
		Kinds:    newKinds(s),
		BySource: bySource,
		Verdict:  v,
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
