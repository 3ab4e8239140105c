package rebalancer

import (
	"encoding/json"
	"strings"
	"testing"
)

// The JSON literals in these tables are the legacy encodings (docs/golden.md,
// "Legacy encodings and schemas"); they must match byte for byte.

func TestSkipReasonEncodings(t *testing.T) {
	tests := []struct {
		reason SkipReason
		wire   string
		db     string
		label  string
	}{
		{SkipAgentFSError, `"AgentFSError"`, "agent_fs_error", "agent_fs_error"},
		{SkipAgentAssignmentNoEnt, `"AgentAssignmentNoEnt"`, "agent_assignment_no_ent", "agent_assignment_no_ent"},
		{SkipAgentBusy, `"AgentBusy"`, "agent_busy", "agent_busy"},
		{SkipAssignmentError, `"AssignmentError"`, "assignment_error", "assignment_error"},
		{SkipAssignmentMismatch, `"AssignmentMismatch"`, "assignment_mismatch", "assignment_mismatch"},
		{SkipAssignmentRejected, `"AssignmentRejected"`, "assignment_rejected", "assignment_rejected"},
		{SkipDestinationInsufficientSpace, `"DestinationInsufficientSpace"`, "destination_insufficient_space", "destination_insufficient_space"},
		{SkipDestinationUnreachable, `"DestinationUnreachable"`, "destination_unreachable", "destination_unreachable"},
		{SkipMD5Mismatch, `"MD5Mismatch"`, "md5_mismatch", "md5_mismatch"},
		{SkipNetworkError, `"NetworkError"`, "network_error", "network_error"},
		{SkipObjectAlreadyOnDestShark, `"ObjectAlreadyOnDestShark"`, "object_already_on_dest_shark", "object_already_on_dest_shark"},
		{SkipObjectAlreadyInDatacenter, `"ObjectAlreadyInDatacenter"`, "object_already_in_datacenter", "object_already_in_datacenter"},
		{SkipSourceOtherError, `"SourceOtherError"`, "source_other_error", "source_other_error"},
		{SkipSourceObjectNotFound, `"SourceObjectNotFound"`, "source_object_not_found", "source_object_not_found"},
		{SkipSourceIsEvacShark, `"SourceIsEvacShark"`, "source_is_evac_shark", "source_is_evac_shark"},
		{SkipMPUPartNoData, `"MpuPartNoData"`, "mpu_part_no_data", "mpu_part_no_data"},
		{SkipAgentAssignmentTimeout, `"AgentAssignmentTimeout"`, "agent_assignment_timeout", "agent_assignment_timeout"},
		{SkipHTTPStatus(404), `{"HTTPStatusCode":404}`, "{http_status_code:404}", "http_status_code"},
		{SkipHTTPStatus(500), `{"HTTPStatusCode":500}`, "{http_status_code:500}", "http_status_code"},
		{SkipHTTPStatus(0), `{"HTTPStatusCode":0}`, "{http_status_code:0}", "http_status_code"},
		{SkipHTTPStatus(65535), `{"HTTPStatusCode":65535}`, "{http_status_code:65535}", "http_status_code"},
	}
	seen := map[SkipReason]bool{}
	for _, tt := range tests {
		t.Run(tt.db, func(t *testing.T) {
			got, err := json.Marshal(tt.reason)
			if err != nil || string(got) != tt.wire {
				t.Fatalf("Marshal = %s, %v; want %s", got, err, tt.wire)
			}
			var back SkipReason
			if err := json.Unmarshal([]byte(tt.wire), &back); err != nil || back != tt.reason {
				t.Fatalf("Unmarshal(%s) = %v, %v; want %v", tt.wire, back, err, tt.reason)
			}
			if s := tt.reason.String(); s != tt.db {
				t.Errorf("String = %q, want %q", s, tt.db)
			}
			if l := tt.reason.Label(); l != tt.label {
				t.Errorf("Label = %q, want %q", l, tt.label)
			}
			parsed, err := ParseSkipReason(tt.db)
			if err != nil || parsed != tt.reason {
				t.Errorf("ParseSkipReason(%q) = %v, %v", tt.db, parsed, err)
			}
		})
		seen[tt.reason&skipKindMask] = true
	}
	// All 18 legacy variants are covered above.
	if len(seen) != 18 || len(SkipReasons()) != 17 {
		t.Errorf("covered %d variants, SkipReasons has %d; want 18 and 17", len(seen), len(SkipReasons()))
	}
}

func TestSkipReasonDecodesDropshotForm(t *testing.T) {
	tests := []struct {
		in   string
		want SkipReason
	}{
		{`{"type":"MD5Mismatch"}`, SkipMD5Mismatch},
		{`{"type":"AgentFSError"}`, SkipAgentFSError},
		{`{"type":"HTTPStatusCode","status_code":404}`, SkipHTTPStatus(404)},
	}
	for _, tt := range tests {
		var got SkipReason
		if err := json.Unmarshal([]byte(tt.in), &got); err != nil || got != tt.want {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestSkipReasonRejectsUnknown(t *testing.T) {
	for _, in := range []string{
		`"NoSuchReason"`, `"md5_mismatch"`, `""`, `null`, `42`, `[]`, `{}`,
		`{"HTTPStatusCode":70000}`, `{"HTTPStatusCode":-1}`, `{"HTTPStatusCode":"404"}`,
		`{"HTTPStatusCode":404,"x":1}`, `{"type":"Nope"}`, `{"type":"HTTPStatusCode"}`,
	} {
		var r SkipReason
		if err := json.Unmarshal([]byte(in), &r); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", in, r)
		}
	}
	for _, in := range []string{"", "MD5Mismatch", "{http_status_code:}", "{http_status_code:99999}", "{other:1}", "unknown"} {
		if r, err := ParseSkipReason(in); err == nil {
			t.Errorf("ParseSkipReason(%q) = %v, want an error", in, r)
		}
	}
	for _, r := range []SkipReason{0, 200, skipHTTPStatusCode + 1, SkipMD5Mismatch | 1<<8} {
		if _, err := json.Marshal(r); err == nil {
			t.Errorf("Marshal(%d) succeeded, want an error", uint32(r))
		}
	}
}

func TestTaskStatusEncodings(t *testing.T) {
	tests := []struct {
		status TaskStatus
		json   string
	}{
		{TaskStatus{}, `"Pending"`},
		{TaskStatus{State: TaskComplete}, `"Complete"`},
		{TaskFailedWith(SkipMD5Mismatch), `{"Failed":"MD5Mismatch"}`},
		{TaskFailedWith(SkipHTTPStatus(404)), `{"Failed":{"HTTPStatusCode":404}}`},
		{TaskFailedWith(SkipSourceObjectNotFound), `{"Failed":"SourceObjectNotFound"}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.status)
		if err != nil || string(got) != tt.json {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tt.status, got, err, tt.json)
		}
		var back TaskStatus
		if err := json.Unmarshal([]byte(tt.json), &back); err != nil || back != tt.status {
			t.Errorf("Unmarshal(%s) = %v, %v", tt.json, back, err)
		}
	}
}

func TestTaskStatusDecodesDropshotForm(t *testing.T) {
	tests := []struct {
		in   string
		want TaskStatus
	}{
		{`{"state":"Pending"}`, TaskStatus{}},
		{`{"state":"Complete"}`, TaskStatus{State: TaskComplete}},
		{`{"state":"Failed","reason":{"type":"MD5Mismatch"}}`, TaskFailedWith(SkipMD5Mismatch)},
		{`{"state":"Failed","reason":{"type":"HTTPStatusCode","status_code":404}}`, TaskFailedWith(SkipHTTPStatus(404))},
	}
	for _, tt := range tests {
		var got TaskStatus
		if err := json.Unmarshal([]byte(tt.in), &got); err != nil || got != tt.want {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestTaskStatusRejectsInvalid(t *testing.T) {
	// The legacy docs show a nested {"Failed":{"Failed":..}} and a Running task
	// state; neither exists.
	for _, in := range []string{
		`"Running"`, `"Failed"`, `"pending"`, `null`, `1`, `{}`, `{"Failed":"Bogus"}`,
		`{"Failed":{"Failed":"MD5Mismatch"}}`, `{"state":"Failed"}`, `{"state":"Odd"}`,
		`{"Complete":null}`,
	} {
		var s TaskStatus
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", in, s)
		}
	}
	for _, s := range []TaskStatus{
		{State: TaskFailed},
		{State: TaskComplete, Reason: SkipMD5Mismatch},
		{State: 7},
	} {
		if b, err := json.Marshal(s); err == nil {
			t.Errorf("Marshal(%+v) = %s, want an error", s, b)
		}
	}
}

const (
	specV1Task = `{"object_id":"7f3ee78a-2e64-4f3d-829f-a31c7c2c2b03","owner":"d50c4fc4-f408-492f-b8bc-a0dd7c73683f",` +
		`"md5sum":"QXBlX0QFcscVIwptkUaI8g==","source":{"datacenter":"dc1","manta_storage_id":"3.stor.us-west.joyent.us"},` +
		`"status":"Pending"}`
	specV2Task = `{"object_id":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0","owner":"d50c4fc4-f408-492f-b8bc-a0dd7c73683f",` +
		`"md5sum":"1B2M2Y8AsgTpgAmY7PhCfg==","source":{"datacenter":"dc2","manta_storage_id":"1.stor.us-west.joyent.us"},` +
		`"bucket_id":"9a0a6b3e-0d0e-4c1c-9a7e-3b9f6f7c1d22","object_name_hash":"5d41402abc4b2a76b9719d911017c592"}`
)

func TestTaskEncoding(t *testing.T) {
	var v1 Task
	if err := json.Unmarshal([]byte(specV1Task), &v1); err != nil {
		t.Fatal(err)
	}
	// A v1 task leaves the bucket fields out (legacy task_serde_v1_skips_none_fields).
	if got, _ := json.Marshal(v1); string(got) != specV1Task {
		t.Errorf("v1 task re-encodes as\n%s\nwant\n%s", got, specV1Task)
	}
	if v1.IsV2() || v1.BucketID != "" || v1.ObjectNameHash != "" {
		t.Errorf("v1 task decoded with bucket fields: %+v", v1)
	}

	// The v2 example has no status: it defaults to Pending, and the fields
	// come out in legacy order with the bucket fields last.
	var v2 Task
	if err := json.Unmarshal([]byte(specV2Task), &v2); err != nil {
		t.Fatal(err)
	}
	want := `{"object_id":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0","owner":"d50c4fc4-f408-492f-b8bc-a0dd7c73683f",` +
		`"md5sum":"1B2M2Y8AsgTpgAmY7PhCfg==","source":{"datacenter":"dc2","manta_storage_id":"1.stor.us-west.joyent.us"},` +
		`"status":"Pending","bucket_id":"9a0a6b3e-0d0e-4c1c-9a7e-3b9f6f7c1d22","object_name_hash":"5d41402abc4b2a76b9719d911017c592"}`
	if got, _ := json.Marshal(v2); string(got) != want {
		t.Errorf("v2 task encodes as\n%s\nwant\n%s", got, want)
	}
	if !v2.IsV2() {
		t.Error("v2 task not recognised as v2")
	}
	// A Go agent's failed task carries its detail after every legacy field,
	// and only when there is one.
	failed := v1
	failed.Status, failed.Detail = TaskFailedWith(SkipSourceOtherError), "dial tcp 10.0.0.9:80: connection refused"
	got, _ := json.Marshal(failed)
	wantFailed := strings.TrimSuffix(specV1Task, `"status":"Pending"}`) +
		`"status":{"Failed":"SourceOtherError"},"detail":"dial tcp 10.0.0.9:80: connection refused"}`
	if string(got) != wantFailed {
		t.Errorf("failed task with a detail encodes as\n%s\nwant\n%s", got, wantFailed)
	}
	var back Task
	if err := json.Unmarshal(got, &back); err != nil || back != failed {
		t.Errorf("failed task decodes as %+v (%v), want %+v", back, err, failed)
	}
	// With only one of the two bucket fields a task is v1, as in the legacy.
	if (Task{BucketID: "x"}).IsV2() {
		t.Error("task with only bucket_id treated as v2")
	}
}

func TestAssignmentPayloadShapes(t *testing.T) {
	const id = "463ec933-1d31-41f9-8e76-0db3191f6346"
	object := `{"id":"` + id + `","tasks":[` + specV1Task + `,` + specV2Task + `]}`
	array := `["` + id + `",[` + specV1Task + `,` + specV2Task + `]]`
	withUnknown := `{"extra":{"a":[1,2]},"id":"` + id + `","tasks":[` + specV1Task + `,` + specV2Task + `]}`
	for name, in := range map[string]string{"object": object, "array": array, "unknown fields": withUnknown} {
		t.Run(name, func(t *testing.T) {
			var p AssignmentPayload
			if err := json.Unmarshal([]byte(in), &p); err != nil {
				t.Fatal(err)
			}
			if p.ID != id || len(p.Tasks) != 2 || p.Tasks[0].MD5Sum != "QXBlX0QFcscVIwptkUaI8g==" || !p.Tasks[1].IsV2() {
				t.Fatalf("decoded %+v", p)
			}
			out, _ := json.Marshal(p)
			if !strings.HasPrefix(string(out), `{"id":"`+id+`","tasks":[{"object_id"`) {
				t.Errorf("encodes as %s", out)
			}
		})
	}
	var empty AssignmentPayload
	if err := json.Unmarshal([]byte(`{"id":"`+id+`","tasks":[]}`), &empty); err != nil || empty.Tasks == nil || len(empty.Tasks) != 0 {
		t.Errorf("empty tasks: %+v, %v", empty, err)
	}
}

func TestAssignmentPayloadRejects(t *testing.T) {
	for _, in := range []string{
		``, `null`, `"x"`, `{}`, `{"id":"a"}`, `{"tasks":[]}`, `{"id":"a","tasks":null}`,
		`["a"]`, `["a",[],1]`, `[1,[]]`, `["a",{}]`, `{"id":1,"tasks":[]}`,
		`{"id":"a","tasks":[{"object_id":"o","owner":"w","md5sum":"m","source":{"datacenter":"d","manta_storage_id":"s"},"status":"Bogus"}]}`,
	} {
		var p AssignmentPayload
		if err := json.Unmarshal([]byte(in), &p); err == nil {
			t.Errorf("Unmarshal(%s) = %+v, want an error", in, p)
		}
	}
}

func TestAssignmentStateEncodings(t *testing.T) {
	failed := Task{ObjectID: "o", Owner: "w", MD5Sum: "m", Source: StorageNode{"dc", "s"}, Status: TaskFailedWith(SkipMD5Mismatch)}
	tests := []struct {
		state AssignmentState
		json  string
	}{
		{AssignmentState{}, `"Scheduled"`},
		{AssignmentState{Phase: AssignmentRunning}, `"Running"`},
		{AssignmentState{Phase: AssignmentComplete}, `{"Complete":null}`},
		{AssignmentState{Phase: AssignmentComplete, Failed: []Task{failed}},
			`{"Complete":[{"object_id":"o","owner":"w","md5sum":"m","source":{"datacenter":"dc","manta_storage_id":"s"},"status":{"Failed":"MD5Mismatch"}}]}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.state)
		if err != nil || string(got) != tt.json {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tt.state, got, err, tt.json)
		}
		var back AssignmentState
		if err := json.Unmarshal([]byte(tt.json), &back); err != nil || back.Phase != tt.state.Phase || len(back.Failed) != len(tt.state.Failed) {
			t.Errorf("Unmarshal(%s) = %v, %v", tt.json, back, err)
		}
	}
	for _, in := range []string{`"Complete"`, `"Pending"`, `{"Complete":{}}`, `{"Running":null}`, `{}`, `null`,
		`{"Complete":[{"object_id":"o","owner":"w","md5sum":"m","source":{"datacenter":"d","manta_storage_id":"s"},"status":"Complete"}]}`} {
		var s AssignmentState
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", in, s)
		}
	}
}

func TestAssignmentGoldenReplies(t *testing.T) {
	// The legacy agent's completed-with-failure, running and completed replies (docs/golden.md).
	tests := []string{
		`{"uuid":"fd45e70b-5435-457e-a371-93fcb8215e0d","stats":{"state":{"Complete":[` +
			`{"object_id":"7f3ee78a-2e64-4f3d-829f-a31c7c2c2b03","owner":"d50c4fc4-f408-492f-b8bc-a0dd7c73683f",` +
			`"md5sum":"QXBlX0QFcscVIwptkUaI8g==","source":{"datacenter":"dc","manta_storage_id":"3.stor.us-west.joyent.us"},` +
			`"status":{"Failed":"MD5Mismatch"}}]},"failed":1,"complete":1,"total":1}}`,
		`{"uuid":"77ed0000-0000-4000-8000-000000000000","stats":{"state":"Running","failed":0,"complete":12,"total":50}}`,
		`{"uuid":"77ed0000-0000-4000-8000-000000000000","stats":{"state":{"Complete":null},"failed":0,"complete":3,"total":3}}`,
	}
	for _, in := range tests {
		var a Assignment
		if err := json.Unmarshal([]byte(in), &a); err != nil {
			t.Fatalf("Unmarshal: %v\n%s", err, in)
		}
		out, err := json.Marshal(a)
		if err != nil || string(out) != in {
			t.Errorf("round trip:\n got %s (%v)\nwant %s", out, err, in)
		}
	}
}

func TestJobEnums(t *testing.T) {
	states := []struct {
		s        JobState
		db, json string
	}{
		{JobInit, "init", `"Init"`}, {JobSetup, "setup", `"Setup"`}, {JobRunning, "running", `"Running"`},
		{JobStopped, "stopped", `"Stopped"`}, {JobComplete, "complete", `"Complete"`}, {JobFailed, "failed", `"Failed"`},
		{JobPaused, "paused", `"Paused"`},
	}
	for _, tt := range states {
		if tt.s.String() != tt.db {
			t.Errorf("%d.String() = %q, want %q", tt.s, tt.s.String(), tt.db)
		}
		if p, err := ParseJobState(tt.db); err != nil || p != tt.s {
			t.Errorf("ParseJobState(%q) = %v, %v", tt.db, p, err)
		}
		if b, err := json.Marshal(tt.s); err != nil || string(b) != tt.json {
			t.Errorf("Marshal(%v) = %s, %v", tt.s, b, err)
		}
		var back JobState
		if err := json.Unmarshal([]byte(tt.json), &back); err != nil || back != tt.s {
			t.Errorf("Unmarshal(%s) = %v, %v", tt.json, back, err)
		}
		if `"`+tt.s.Title()+`"` != tt.json {
			t.Errorf("%v.Title() = %q, want %s", tt.s, tt.s.Title(), tt.json)
		}
	}
	actions := []struct {
		a        JobAction
		db, json string
	}{{JobEvacuate, "evacuate", `"Evacuate"`}, {JobNone, "none", `"None"`}}
	for _, tt := range actions {
		if p, err := ParseJobAction(tt.db); err != nil || p != tt.a || tt.a.String() != tt.db {
			t.Errorf("ParseJobAction(%q) = %v, %v", tt.db, p, err)
		}
		if b, err := json.Marshal(tt.a); err != nil || string(b) != tt.json {
			t.Errorf("Marshal(%v) = %s, %v", tt.a, b, err)
		}
		if `"`+tt.a.Title()+`"` != tt.json {
			t.Errorf("%v.Title() = %q, want %s", tt.a, tt.a.Title(), tt.json)
		}
	}
	statuses := []struct {
		s         ObjectStatus
		db, title string
	}{
		{ObjectUnprocessed, "unprocessed", "Unprocessed"}, {ObjectAssigned, "assigned", "Assigned"},
		{ObjectSkipped, "skipped", "Skipped"}, {ObjectError, "error", "Error"},
		{ObjectPostProcessing, "post_processing", "Post Processing"}, {ObjectComplete, "complete", "Complete"},
	}
	if len(ObjectStatuses()) != len(statuses) {
		t.Errorf("ObjectStatuses has %d entries", len(ObjectStatuses()))
	}
	for i, tt := range statuses {
		if ObjectStatuses()[i] != tt.s || tt.s.String() != tt.db || tt.s.Title() != tt.title {
			t.Errorf("status %d: %q/%q", tt.s, tt.s.String(), tt.s.Title())
		}
		if p, err := ParseObjectStatus(tt.db); err != nil || p != tt.s {
			t.Errorf("ParseObjectStatus(%q) = %v, %v", tt.db, p, err)
		}
	}
	errs := []string{"bad_moray_client", "bad_moray_object", "bad_manta_object", "bad_shard_number",
		"duplicate_shark", "internal_error", "metadata_update_failed", "moray_update_failed",
		"moray_etag_mismatch", "moray_object_not_found", "mdapi_update_failed", "mdapi_etag_mismatch",
		"mdapi_object_not_found", "missing_sharks", "bad_content_length"}
	kinds := ObjectErrorKinds()
	if len(kinds) != len(errs) {
		t.Fatalf("%d error kinds, want %d", len(kinds), len(errs))
	}
	for i, s := range errs {
		if kinds[i].String() != s {
			t.Errorf("error kind %d = %q, want %q", i, kinds[i], s)
		}
		if k, err := ParseObjectErrorKind(s); err != nil || k != kinds[i] {
			t.Errorf("ParseObjectErrorKind(%q) = %v, %v", s, k, err)
		}
	}
}

func TestJobEnumsRejectUnknown(t *testing.T) {
	if _, err := ParseJobState("Running"); err == nil {
		t.Error("ParseJobState accepted the JSON spelling")
	}
	if _, err := ParseJobState("bogus"); err == nil {
		t.Error("ParseJobState accepted bogus")
	}
	var s JobState
	if err := json.Unmarshal([]byte(`"running"`), &s); err == nil {
		t.Error("JobState JSON accepted the database spelling")
	}
	var a JobAction
	if err := json.Unmarshal([]byte(`"Delete"`), &a); err == nil {
		t.Error("JobAction accepted Delete")
	}
	if _, err := json.Marshal(JobState(0)); err == nil {
		t.Error("zero JobState encoded")
	}
	if _, err := ParseObjectStatus("Post Processing"); err == nil {
		t.Error("ParseObjectStatus accepted the title spelling")
	}
	if _, err := ParseObjectErrorKind("etag_mismatch"); err == nil {
		t.Error("ParseObjectErrorKind accepted etag_mismatch")
	}
}

func TestObjectNameHash(t *testing.T) {
	for in, want := range map[string]string{
		"hello": "5d41402abc4b2a76b9719d911017c592",
		"":      "d41d8cd98f00b204e9800998ecf8427e",
	} {
		if got := ObjectNameHash(in); got != want {
			t.Errorf("ObjectNameHash(%q) = %s, want %s", in, got, want)
		}
	}
}
