package rebalancer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// SkipReason says why an object was not moved. The legacy rebalancer calls it
// ObjectSkippedReason; its 18 variants and their three spellings are part of
// the wire and database formats and must not change:
//
//   - JSON (agent wire format): the variant name, e.g. "MD5Mismatch", or
//     {"HTTPStatusCode":404} for the one variant that carries a value;
//   - String (job database, status breakdowns): snake case, e.g.
//     "md5_mismatch", or "{http_status_code:404}";
//   - Label (Prometheus label values): snake case without the status code,
//     e.g. "http_status_code".
//
// The zero value means "no reason" and is not a valid reason to encode.
// SkipReason values are comparable, so they work in switch statements:
//
//	switch r {
//	case SkipMD5Mismatch, SkipSourceObjectNotFound:
//	}
//	if code, ok := r.HTTPStatus(); ok { ... }
type SkipReason uint32

// The legacy skip reasons, in the legacy declaration order.
const (
	SkipAgentFSError                 SkipReason = iota + 1 // the agent could not write the file
	SkipAgentAssignmentNoEnt                               // the agent does not know the assignment
	SkipAgentBusy                                          // the agent kept answering 503
	SkipAssignmentError                                    // the manager could not build or hand off the assignment
	SkipAssignmentMismatch                                 // the agent answered about another assignment
	SkipAssignmentRejected                                 // the agent refused the assignment
	SkipDestinationInsufficientSpace                       // no room on the destination
	SkipDestinationUnreachable                             // the destination agent could not be reached
	SkipMD5Mismatch                                        // the downloaded bytes do not match contentMD5
	SkipNetworkError                                       // a network error talking to an agent
	SkipObjectAlreadyOnDestShark                           // every candidate already holds a copy
	SkipObjectAlreadyInDatacenter                          // every candidate is in a datacenter that holds a copy
	SkipSourceOtherError                                   // the source could not be read (transport errors, bad metadata)
	SkipSourceObjectNotFound                               // the source answered 404
	SkipSourceIsEvacShark                                  // the only copy is on the shark being evacuated
	SkipMPUPartNoData                                      // a multipart-upload part whose data is gone
	SkipAgentAssignmentTimeout                             // the agent did not finish in time

	skipHTTPStatusCode // HTTPStatusCode(n): see SkipHTTPStatus
)

const skipKindMask = 0xff

// SkipHTTPStatus is the reason for a source that answered with an HTTP status
// other than 200 and 404 (legacy HTTPStatusCode(n)). The code is kept as a
// 16-bit value, as in the legacy.
func SkipHTTPStatus(code uint16) SkipReason {
	return skipHTTPStatusCode | SkipReason(code)<<8
}

var skipNames = [...]struct{ wire, snake string }{
	SkipAgentFSError:                 {"AgentFSError", "agent_fs_error"},
	SkipAgentAssignmentNoEnt:         {"AgentAssignmentNoEnt", "agent_assignment_no_ent"},
	SkipAgentBusy:                    {"AgentBusy", "agent_busy"},
	SkipAssignmentError:              {"AssignmentError", "assignment_error"},
	SkipAssignmentMismatch:           {"AssignmentMismatch", "assignment_mismatch"},
	SkipAssignmentRejected:           {"AssignmentRejected", "assignment_rejected"},
	SkipDestinationInsufficientSpace: {"DestinationInsufficientSpace", "destination_insufficient_space"},
	SkipDestinationUnreachable:       {"DestinationUnreachable", "destination_unreachable"},
	SkipMD5Mismatch:                  {"MD5Mismatch", "md5_mismatch"},
	SkipNetworkError:                 {"NetworkError", "network_error"},
	SkipObjectAlreadyOnDestShark:     {"ObjectAlreadyOnDestShark", "object_already_on_dest_shark"},
	SkipObjectAlreadyInDatacenter:    {"ObjectAlreadyInDatacenter", "object_already_in_datacenter"},
	SkipSourceOtherError:             {"SourceOtherError", "source_other_error"},
	SkipSourceObjectNotFound:         {"SourceObjectNotFound", "source_object_not_found"},
	SkipSourceIsEvacShark:            {"SourceIsEvacShark", "source_is_evac_shark"},
	SkipMPUPartNoData:                {"MpuPartNoData", "mpu_part_no_data"},
	SkipAgentAssignmentTimeout:       {"AgentAssignmentTimeout", "agent_assignment_timeout"},
	skipHTTPStatusCode:               {"HTTPStatusCode", "http_status_code"},
}

// SkipReasons returns every reason without a value, in legacy order. With
// SkipHTTPStatus it spans all 18 legacy variants.
func SkipReasons() []SkipReason {
	out := make([]SkipReason, 0, skipHTTPStatusCode-1)
	for r := SkipAgentFSError; r < skipHTTPStatusCode; r++ {
		out = append(out, r)
	}
	return out
}

func (r SkipReason) kind() SkipReason { return r & skipKindMask }

// Valid reports whether r is one of the legacy reasons.
func (r SkipReason) Valid() bool {
	k := r.kind()
	if k == 0 || k > skipHTTPStatusCode {
		return false
	}
	if k != skipHTTPStatusCode && r != k {
		return false
	}
	return r>>24 == 0
}

// HTTPStatus returns the status code of an HTTPStatusCode reason.
func (r SkipReason) HTTPStatus() (code uint16, ok bool) {
	if r.kind() != skipHTTPStatusCode {
		return 0, false
	}
	return uint16(r >> 8), true
}

// String returns the legacy database spelling: "md5_mismatch", or
// "{http_status_code:404}" (legacy into_string). Invalid values print as
// "SkipReason(n)".
func (r SkipReason) String() string {
	if !r.Valid() {
		return "SkipReason(" + strconv.FormatUint(uint64(r), 10) + ")"
	}
	if code, ok := r.HTTPStatus(); ok {
		return "{http_status_code:" + strconv.Itoa(int(code)) + "}"
	}
	return skipNames[r].snake
}

// Label returns the value used for metric labels: the snake name without
// the HTTP status code, which keeps label cardinality fixed.
func (r SkipReason) Label() string {
	if !r.Valid() {
		return "unknown"
	}
	return skipNames[r.kind()].snake
}

// ParseSkipReason parses the database spelling produced by String.
func ParseSkipReason(s string) (SkipReason, error) {
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		name, num, ok := strings.Cut(s[1:len(s)-1], ":")
		if ok && name == "http_status_code" {
			code, err := strconv.ParseUint(num, 10, 16)
			if err == nil {
				return SkipHTTPStatus(uint16(code)), nil
			}
		}
		return 0, fmt.Errorf("unknown skip reason %q", s)
	}
	for r := SkipAgentFSError; r < skipHTTPStatusCode; r++ {
		if skipNames[r].snake == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown skip reason %q", s)
}

func skipFromWireName(name string) (SkipReason, bool) {
	for r := SkipAgentFSError; r < skipHTTPStatusCode; r++ {
		if skipNames[r].wire == name {
			return r, true
		}
	}
	return 0, false
}

// MarshalJSON encodes r in the legacy (serde externally tagged) form.
func (r SkipReason) MarshalJSON() ([]byte, error) {
	if !r.Valid() {
		return nil, fmt.Errorf("cannot encode invalid skip reason %d", uint32(r))
	}
	if code, ok := r.HTTPStatus(); ok {
		return []byte(`{"HTTPStatusCode":` + strconv.Itoa(int(code)) + `}`), nil
	}
	return []byte(`"` + skipNames[r].wire + `"`), nil
}

// UnmarshalJSON decodes the legacy form, and also the adjacently tagged form
// of the Dropshot port ({"type":"MD5Mismatch"} or
// {"type":"HTTPStatusCode","status_code":404}) so that a Go manager can read
// either agent. Unknown variants are an error, never a default.
func (r *SkipReason) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var name string
		if err := json.Unmarshal(b, &name); err != nil {
			return err
		}
		v, ok := skipFromWireName(name)
		if !ok {
			return fmt.Errorf("unknown skip reason %q", name)
		}
		*r = v
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return fmt.Errorf("skip reason must be a string or an object, got %.40s", b)
	}
	if raw, ok := obj["HTTPStatusCode"]; ok && len(obj) == 1 {
		var code uint16
		if err := json.Unmarshal(raw, &code); err != nil {
			return fmt.Errorf("HTTPStatusCode: %w", err)
		}
		*r = SkipHTTPStatus(code)
		return nil
	}
	if raw, ok := obj["type"]; ok {
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			return fmt.Errorf("skip reason type: %w", err)
		}
		if name == "HTTPStatusCode" {
			var code uint16
			if err := json.Unmarshal(obj["status_code"], &code); err != nil {
				return fmt.Errorf("HTTPStatusCode status_code: %w", err)
			}
			*r = SkipHTTPStatus(code)
			return nil
		}
		v, ok := skipFromWireName(name)
		if !ok {
			return fmt.Errorf("unknown skip reason %q", name)
		}
		*r = v
		return nil
	}
	return fmt.Errorf("unknown skip reason %.60s", b)
}
