package rebalancer

import (
	"encoding/json"
	"fmt"
)

// enum is the shared machinery of the job vocabulary below: each value has a
// database spelling (snake case, what String returns) and a JSON spelling
// (PascalCase or Title Case, what the legacy manager API emits).
type enumNames []struct{ db, json string }

func (n enumNames) db(i int, typ string) string {
	if i <= 0 || i >= len(n) {
		return fmt.Sprintf("%s(%d)", typ, i)
	}
	return n[i].db
}

func (n enumNames) marshal(i int, typ string) ([]byte, error) {
	if i <= 0 || i >= len(n) {
		return nil, fmt.Errorf("cannot encode invalid %s %d", typ, i)
	}
	return json.Marshal(n[i].json)
}

func (n enumNames) parse(s, typ string, byJSON bool) (int, error) {
	for i := 1; i < len(n); i++ {
		if (!byJSON && n[i].db == s) || (byJSON && n[i].json == s) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q", typ, s)
}

func (n enumNames) unmarshal(b []byte, typ string) (int, error) {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, fmt.Errorf("%s: %w", typ, err)
	}
	return n.parse(s, typ, true)
}

// JobState is the state of a manager job. The zero value is invalid.
type JobState uint8

// Job states. The legacy declares Init to Failed (Stopped was never used);
// Paused is new. The database spelling is snake case ("running"), the API's
// is PascalCase ("Running").
const (
	JobInit     JobState = iota + 1 // being built, never persisted by the legacy
	JobSetup                        // created and waiting to run
	JobRunning                      // running
	JobStopped                      // stopped by an operator; retryable
	JobComplete                     // every object reached a terminal state
	JobFailed                       // the job itself failed (see its error)
	JobPaused                       // paused by an operator; resumable
)

var jobStateNames = enumNames{
	{},
	JobInit:     {"init", "Init"},
	JobSetup:    {"setup", "Setup"},
	JobRunning:  {"running", "Running"},
	JobStopped:  {"stopped", "Stopped"},
	JobComplete: {"complete", "Complete"},
	JobFailed:   {"failed", "Failed"},
	JobPaused:   {"paused", "Paused"},
}

// String returns the database spelling.
func (s JobState) String() string { return jobStateNames.db(int(s), "JobState") }

// Title returns the API spelling ("Running"), which operators see.
func (s JobState) Title() string {
	if s == 0 || int(s) >= len(jobStateNames) {
		return s.String()
	}
	return jobStateNames[s].json
}

// Terminal reports whether a job in this state will not run again by itself.
func (s JobState) Terminal() bool {
	return s == JobStopped || s == JobComplete || s == JobFailed
}

// ParseJobState parses the database spelling.
func ParseJobState(s string) (JobState, error) {
	i, err := jobStateNames.parse(s, "job state", false)
	return JobState(i), err
}

func (s JobState) MarshalJSON() ([]byte, error) { return jobStateNames.marshal(int(s), "job state") }

func (s *JobState) UnmarshalJSON(b []byte) error {
	i, err := jobStateNames.unmarshal(b, "job state")
	*s = JobState(i)
	return err
}

// JobAction is what a job does. Only evacuation exists.
type JobAction uint8

const (
	JobEvacuate JobAction = iota + 1
	JobNone               // declared by the legacy, never used
)

var jobActionNames = enumNames{
	{},
	JobEvacuate: {"evacuate", "Evacuate"},
	JobNone:     {"none", "None"},
}

func (a JobAction) String() string { return jobActionNames.db(int(a), "JobAction") }

// Title returns the API spelling ("Evacuate").
func (a JobAction) Title() string {
	if a == 0 || int(a) >= len(jobActionNames) {
		return a.String()
	}
	return jobActionNames[a].json
}

// ParseJobAction parses the database spelling.
func ParseJobAction(s string) (JobAction, error) {
	i, err := jobActionNames.parse(s, "job action", false)
	return JobAction(i), err
}

func (a JobAction) MarshalJSON() ([]byte, error) { return jobActionNames.marshal(int(a), "job action") }

func (a *JobAction) UnmarshalJSON(b []byte) error {
	i, err := jobActionNames.unmarshal(b, "job action")
	*a = JobAction(i)
	return err
}

// ObjectStatus is where one object of an evacuation job is. The legacy
// database spells it in snake case; job status reports count objects under
// the Title Case spelling ("Post Processing").
type ObjectStatus uint8

const (
	ObjectUnprocessed    ObjectStatus = iota + 1 // discovered, not yet placed
	ObjectAssigned                               // in an assignment sent (or about to be sent) to an agent
	ObjectSkipped                                // not moved; see its SkipReason (terminal, retryable)
	ObjectError                                  // not moved; see its ObjectErrorKind (terminal, retryable)
	ObjectPostProcessing                         // copied by the agent; metadata update pending
	ObjectComplete                               // metadata points at the new copy (terminal)
)

var objectStatusNames = enumNames{
	{},
	ObjectUnprocessed:    {"unprocessed", "Unprocessed"},
	ObjectAssigned:       {"assigned", "Assigned"},
	ObjectSkipped:        {"skipped", "Skipped"},
	ObjectError:          {"error", "Error"},
	ObjectPostProcessing: {"post_processing", "Post Processing"},
	ObjectComplete:       {"complete", "Complete"},
}

// ObjectStatuses lists every status in legacy order.
func ObjectStatuses() []ObjectStatus {
	return []ObjectStatus{ObjectUnprocessed, ObjectAssigned, ObjectSkipped, ObjectError, ObjectPostProcessing, ObjectComplete}
}

func (s ObjectStatus) String() string { return objectStatusNames.db(int(s), "ObjectStatus") }

// Title returns the Title Case key used in job status results.
func (s ObjectStatus) Title() string {
	if s == 0 || int(s) >= len(objectStatusNames) {
		return s.String()
	}
	return objectStatusNames[s].json
}

// Terminal reports whether the object needs no more work in this job.
func (s ObjectStatus) Terminal() bool {
	return s == ObjectSkipped || s == ObjectError || s == ObjectComplete
}

// ParseObjectStatus parses the database spelling.
func ParseObjectStatus(s string) (ObjectStatus, error) {
	i, err := objectStatusNames.parse(s, "object status", false)
	return ObjectStatus(i), err
}

// ObjectErrorKind is the legacy EvacuateObjectError: why an object ended in
// the error status. Only the database (snake case) spelling exists.
type ObjectErrorKind uint8

// The legacy object errors, in declaration order.
const (
	ErrorBadMorayClient ObjectErrorKind = iota + 1
	ErrorBadMorayObject
	ErrorBadMantaObject
	ErrorBadShardNumber
	ErrorDuplicateShark
	ErrorInternal
	ErrorMetadataUpdateFailed
	ErrorMorayUpdateFailed
	ErrorMorayEtagMismatch
	ErrorMorayObjectNotFound
	ErrorMdapiUpdateFailed
	ErrorMdapiEtagMismatch
	ErrorMdapiObjectNotFound
	ErrorMissingSharks
	ErrorBadContentLength
)

var objectErrorNames = enumNames{
	{},
	ErrorBadMorayClient:       {"bad_moray_client", ""},
	ErrorBadMorayObject:       {"bad_moray_object", ""},
	ErrorBadMantaObject:       {"bad_manta_object", ""},
	ErrorBadShardNumber:       {"bad_shard_number", ""},
	ErrorDuplicateShark:       {"duplicate_shark", ""},
	ErrorInternal:             {"internal_error", ""},
	ErrorMetadataUpdateFailed: {"metadata_update_failed", ""},
	ErrorMorayUpdateFailed:    {"moray_update_failed", ""},
	ErrorMorayEtagMismatch:    {"moray_etag_mismatch", ""},
	ErrorMorayObjectNotFound:  {"moray_object_not_found", ""},
	ErrorMdapiUpdateFailed:    {"mdapi_update_failed", ""},
	ErrorMdapiEtagMismatch:    {"mdapi_etag_mismatch", ""},
	ErrorMdapiObjectNotFound:  {"mdapi_object_not_found", ""},
	ErrorMissingSharks:        {"missing_sharks", ""},
	ErrorBadContentLength:     {"bad_content_length", ""},
}

// ObjectErrorKinds lists every error kind in legacy order.
func ObjectErrorKinds() []ObjectErrorKind {
	out := make([]ObjectErrorKind, 0, len(objectErrorNames)-1)
	for i := 1; i < len(objectErrorNames); i++ {
		out = append(out, ObjectErrorKind(i))
	}
	return out
}

func (e ObjectErrorKind) String() string { return objectErrorNames.db(int(e), "ObjectErrorKind") }

// ParseObjectErrorKind parses the database spelling.
func ParseObjectErrorKind(s string) (ObjectErrorKind, error) {
	i, err := objectErrorNames.parse(s, "object error", false)
	return ObjectErrorKind(i), err
}
