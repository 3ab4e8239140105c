package rebalancer

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// StorageNode names a shark: the datacenter it is in and its storage id
// ("1.stor.us-east.joyent.us", optionally with ":port"). It is the element
// type of an object's sharks array and of a task's source.
type StorageNode struct {
	Datacenter     string `json:"datacenter"`
	MantaStorageID string `json:"manta_storage_id"`
}

func (n StorageNode) String() string { return n.MantaStorageID }

// TaskState is the phase of one task (one object copy) on an agent.
type TaskState uint8

const (
	TaskPending  TaskState = iota // not yet processed (the zero value, as in the legacy)
	TaskComplete                  // copied and verified on disk
	TaskFailed                    // not copied; TaskStatus.Reason says why
)

// TaskStatus is a task's state, in the legacy JSON: "Pending", "Complete",
// {"Failed":"MD5Mismatch"} or {"Failed":{"HTTPStatusCode":404}}.
// The zero value is Pending.
type TaskStatus struct {
	State  TaskState
	Reason SkipReason // set exactly when State is TaskFailed
}

// TaskFailedWith returns the status of a task that failed for reason r.
func TaskFailedWith(r SkipReason) TaskStatus { return TaskStatus{State: TaskFailed, Reason: r} }

func (s TaskStatus) String() string {
	switch s.State {
	case TaskPending:
		return "Pending"
	case TaskComplete:
		return "Complete"
	case TaskFailed:
		return "Failed(" + s.Reason.String() + ")"
	}
	return fmt.Sprintf("TaskStatus(%d)", s.State)
}

func (s TaskStatus) validate() error {
	switch {
	case s.State > TaskFailed:
		return fmt.Errorf("invalid task state %d", s.State)
	case s.State == TaskFailed && !s.Reason.Valid():
		return fmt.Errorf("failed task status without a valid reason (%d)", uint32(s.Reason))
	case s.State != TaskFailed && s.Reason != 0:
		return fmt.Errorf("task status %d carries a reason", s.State)
	}
	return nil
}

// MarshalJSON encodes the legacy externally tagged form.
func (s TaskStatus) MarshalJSON() ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	switch s.State {
	case TaskPending:
		return []byte(`"Pending"`), nil
	case TaskComplete:
		return []byte(`"Complete"`), nil
	}
	reason, err := s.Reason.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return append(append([]byte(`{"Failed":`), reason...), '}'), nil
}

// UnmarshalJSON accepts the legacy form and the Dropshot port's adjacently
// tagged form ({"state":"Failed","reason":{...}}). Anything else is an error.
func (s *TaskStatus) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var name string
		if err := json.Unmarshal(b, &name); err != nil {
			return err
		}
		switch name {
		case "Pending":
			*s = TaskStatus{}
		case "Complete":
			*s = TaskStatus{State: TaskComplete}
		default:
			return fmt.Errorf("unknown task status %q", name)
		}
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return fmt.Errorf("task status must be a string or an object, got %.40s", b)
	}
	if raw, ok := obj["Failed"]; ok && len(obj) == 1 {
		var r SkipReason
		if err := r.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("failed task status: %w", err)
		}
		*s = TaskFailedWith(r)
		return nil
	}
	if raw, ok := obj["state"]; ok {
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			return fmt.Errorf("task status state: %w", err)
		}
		switch name {
		case "Pending":
			*s = TaskStatus{}
			return nil
		case "Complete":
			*s = TaskStatus{State: TaskComplete}
			return nil
		case "Failed":
			var r SkipReason
			if err := r.UnmarshalJSON(obj["reason"]); err != nil {
				return fmt.Errorf("failed task status: %w", err)
			}
			*s = TaskFailedWith(r)
			return nil
		}
		return fmt.Errorf("unknown task status %q", name)
	}
	return fmt.Errorf("unknown task status %.60s", b)
}

// Task asks an agent to copy one object from Source onto its own shark.
// Field order and names are the legacy wire format. A task is a v2 (buckets)
// task exactly when both BucketID and ObjectNameHash are set.
type Task struct {
	ObjectID string      `json:"object_id"`
	Owner    string      `json:"owner"`
	MD5Sum   string      `json:"md5sum"` // base64 of the raw MD5 digest (Manta contentMD5)
	Source   StorageNode `json:"source"` // never the shark being evacuated
	Status   TaskStatus  `json:"status"`
	// BucketID and ObjectNameHash are only set for v2 (buckets) objects, and
	// are left out of the JSON otherwise, as the legacy does.
	BucketID       string `json:"bucket_id,omitempty"`
	ObjectNameHash string `json:"object_name_hash,omitempty"` // ObjectNameHash(name)
	// Detail, in a failed task of an agent's reply, says in words what
	// went wrong ("source 2.stor... unreachable after 4 attempts: dial
	// tcp ...: connection refused"), at most MaxTaskDetail bytes. The
	// legacy has no such field: its agents do not send it and its manager
	// ignores it. A manager does not send it to agents.
	Detail string `json:"detail,omitempty"`
}

// MaxTaskDetail bounds Task.Detail, so that an assignment's reply stays
// small whatever its sources answered.
const MaxTaskDetail = 512

// TruncateDetail cuts s to at most MaxTaskDetail bytes, on a character
// boundary, marking the cut with "...": an agent bounds the detail it
// sends with it, and a manager what an agent sent, which it does not trust
// to be short.
func TruncateDetail(s string) string {
	if len(s) <= MaxTaskDetail {
		return s
	}
	cut := MaxTaskDetail - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// IsV2 reports whether the task is for a buckets (v2) object.
func (t Task) IsV2() bool { return t.BucketID != "" && t.ObjectNameHash != "" }

// ObjectNameHash is the lowercase hex MD5 of a v2 object's name, which names
// the object's file on a shark.
func ObjectNameHash(name string) string {
	sum := md5.Sum([]byte(name))
	return hex.EncodeToString(sum[:])
}

// AssignmentPayload is the body of POST /assignments: a batch of tasks for
// one destination agent. It encodes as {"id":..,"tasks":[..]} and decodes
// from that or from the legacy 2-element array form ["<id>", [..]].
type AssignmentPayload struct {
	ID    string `json:"id"`
	Tasks []Task `json:"tasks"`
}

// UnmarshalJSON accepts both payload shapes; id and tasks are required and
// unknown object fields are ignored.
func (p *AssignmentPayload) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var parts []json.RawMessage
		if err := json.Unmarshal(b, &parts); err != nil {
			return fmt.Errorf("assignment payload: %w", err)
		}
		if len(parts) != 2 {
			return fmt.Errorf("assignment payload array must have 2 elements, has %d", len(parts))
		}
		var out AssignmentPayload
		if err := json.Unmarshal(parts[0], &out.ID); err != nil {
			return fmt.Errorf("assignment payload id: %w", err)
		}
		if err := decodeTasks(parts[1], &out.Tasks); err != nil {
			return err
		}
		*p = out
		return nil
	}
	var obj struct {
		ID    *string         `json:"id"`
		Tasks json.RawMessage `json:"tasks"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("assignment payload: %w", err)
	}
	if obj.ID == nil {
		return errors.New("assignment payload: missing field id")
	}
	if obj.Tasks == nil {
		return errors.New("assignment payload: missing field tasks")
	}
	out := AssignmentPayload{ID: *obj.ID}
	if err := decodeTasks(obj.Tasks, &out.Tasks); err != nil {
		return err
	}
	*p = out
	return nil
}

func decodeTasks(raw json.RawMessage, tasks *[]Task) error {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return errors.New("assignment payload: tasks must be an array, got null")
	}
	if err := json.Unmarshal(raw, tasks); err != nil {
		return fmt.Errorf("assignment payload tasks: %w", err)
	}
	if *tasks == nil {
		*tasks = []Task{}
	}
	return nil
}

// AssignmentPhase is where an assignment is on its agent.
type AssignmentPhase uint8

const (
	AssignmentScheduled AssignmentPhase = iota // accepted and queued (the zero value)
	AssignmentRunning                          // being processed
	AssignmentComplete                         // every task processed
)

// AssignmentState is an assignment's state in the legacy JSON: "Scheduled",
// "Running", {"Complete":null} (every task copied) or {"Complete":[task..]}
// (the failed tasks, each with a Failed status).
type AssignmentState struct {
	Phase  AssignmentPhase
	Failed []Task // only for AssignmentComplete; nil or empty means no failure
}

func (s AssignmentState) String() string {
	switch s.Phase {
	case AssignmentScheduled:
		return "Scheduled"
	case AssignmentRunning:
		return "Running"
	case AssignmentComplete:
		return fmt.Sprintf("Complete(%d failed)", len(s.Failed))
	}
	return fmt.Sprintf("AssignmentPhase(%d)", s.Phase)
}

// MarshalJSON encodes the legacy externally tagged form.
func (s AssignmentState) MarshalJSON() ([]byte, error) {
	switch s.Phase {
	case AssignmentScheduled, AssignmentRunning:
		if len(s.Failed) != 0 {
			return nil, fmt.Errorf("assignment state %v carries failed tasks", s.Phase)
		}
		return []byte(`"` + s.String() + `"`), nil
	case AssignmentComplete:
		if len(s.Failed) == 0 {
			return []byte(`{"Complete":null}`), nil
		}
		failed, err := json.Marshal(s.Failed)
		if err != nil {
			return nil, err
		}
		return append(append([]byte(`{"Complete":`), failed...), '}'), nil
	}
	return nil, fmt.Errorf("invalid assignment phase %d", s.Phase)
}

// UnmarshalJSON decodes the legacy form; unknown states are an error.
func (s *AssignmentState) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var name string
		if err := json.Unmarshal(b, &name); err != nil {
			return err
		}
		switch name {
		case "Scheduled":
			*s = AssignmentState{Phase: AssignmentScheduled}
		case "Running":
			*s = AssignmentState{Phase: AssignmentRunning}
		default:
			return fmt.Errorf("unknown assignment state %q", name)
		}
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return fmt.Errorf("assignment state must be a string or an object, got %.40s", b)
	}
	raw, ok := obj["Complete"]
	if !ok || len(obj) != 1 {
		return fmt.Errorf("unknown assignment state %.60s", b)
	}
	var failed []Task
	if err := json.Unmarshal(raw, &failed); err != nil {
		return fmt.Errorf("complete assignment state: %w", err)
	}
	for i, t := range failed {
		if t.Status.State != TaskFailed {
			return fmt.Errorf("complete assignment state: task %d (%s) is listed as failed but has status %v", i, t.ObjectID, t.Status)
		}
	}
	*s = AssignmentState{Phase: AssignmentComplete, Failed: failed}
	return nil
}

// AssignmentStats counts an assignment's progress. Complete counts every
// processed task, failed ones included, so Failed <= Complete <= Total.
type AssignmentStats struct {
	State    AssignmentState `json:"state"`
	Failed   int             `json:"failed"`
	Complete int             `json:"complete"`
	Total    int             `json:"total"`
}

// Assignment is an agent's answer to GET /assignments/{uuid}.
type Assignment struct {
	UUID  string          `json:"uuid"`
	Stats AssignmentStats `json:"stats"`
}
