package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/testbed"
)

// The legacy rebalancer-adm's output (manager/src/rebalancer-adm.rs of the
// legacy, branch MANTA-5484), written out by hand from its source:
// output_common prints an empty line, "server version: " and the reply's
// Server header or "unknown" (the legacy manager sends none), then the
// message: serde_json::to_string_pretty of the reply parsed as a
// serde_json::Value (a BTreeMap: keys sorted) for job list and get, the
// reply body ("<uuid>\n") for create and retry.
const (
	goldenLegacyList = `
server version: unknown
[
  {
    "action": "Evacuate",
    "id": "9d5e4b18-cdec-440c-88fa-64f6c49ea814",
    "state": "Complete"
  },
  {
    "action": "Evacuate",
    "id": "bbd4088d-fec9-4875-9aa4-d1ca43a21c93",
    "state": "Running"
  }
]
`
	goldenLegacyGet = `
server version: unknown
{
  "config": {
    "action": "Evacuate",
    "from_shark": {
      "datacenter": "us-east-1",
      "manta_storage_id": "1.stor.us-east.joyent.us"
    }
  },
  "results": {
    "Assigned": 73091,
    "Complete": 1287,
    "Duplicates": 0,
    "Error": 2,
    "Post Processing": 0,
    "Skipped": 1002,
    "Total": 75382,
    "Unprocessed": 0,
    "error_breakdown": {
      "moray": {
        "update_failed": 2
      }
    },
    "skip_breakdown": {
      "source_is_evac_shark": 192,
      "source_object_not_found": 622,
      "{http_status_code:500}": 188
    }
  },
  "state": "Running"
}
`
	goldenLegacyCreate = "\nserver version: unknown\n" + legacyID + "\n\n"
)

// Against a legacy manager, --legacy-output prints what the legacy client
// printed, byte for byte, and fails as it failed: Error: "<message>" on
// stderr, exit 1, the manager's body not shown.
func TestLegacyOutputGolden(t *testing.T) {
	url := legacyManager(t, func() string { return legacyStatus })
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"job", "list"}, 0, goldenLegacyList, ""},
		{[]string{"job", "get", legacyID}, 0, goldenLegacyGet, ""},
		{[]string{"job", "create", "evacuate", "-s", "1.stor"}, 0, goldenLegacyCreate, ""},
		{[]string{"job", "get", "9d5e4b18-cdec-440c-88fa-64f6c49ea814"}, 1, "", "Error: \"Failed to get job: 404 Not Found\"\n"},
		{[]string{"job", "retry", legacyID}, 1, "", "Error: \"Server response: 404 Not Found\"\n"},
	} {
		r := runWith(t, false, append([]string{"--manager", url, "--legacy-output"}, tc.args...)...)
		if r.code != tc.code || r.stdout != tc.stdout || r.stderr != tc.stderr {
			t.Errorf("%v: exit %d\nstdout:\n%q\nwant:\n%q\nstderr: %q, want %q", tc.args, r.code, r.stdout, tc.stdout, r.stderr, tc.stderr)
		}
	}
	t.Setenv("REBALANCER_LEGACY_OUTPUT", "1")
	if r := runWith(t, false, "--manager", url, "job", "list"); r.stdout != goldenLegacyList {
		t.Errorf("with REBALANCER_LEGACY_OUTPUT=1: %q", r.stdout)
	}
	if r := runWith(t, false, "--manager", "http://127.0.0.1:1", "job", "list"); r.code != 1 || !strings.HasPrefix(r.stderr, `Error: "Request failed: `) {
		t.Errorf("an unreachable manager: exit %d, stderr %q", r.code, r.stderr)
	}
}

// Against this manager, --legacy-output prints its Server header and only
// the fields the legacy manager sent, with their values as --json shows
// them: a script reading the legacy output reads the same values.
func TestLegacyOutputOfThisManager(t *testing.T) {
	m := newManager(t, testbed.Config{Objects: testbed.Objects{Count: 20, Seed: 6, Pin: shark1}})
	id := m.create(t, "-s", shark1)
	doc := m.waitState(t, id, "Complete")

	r := m.cmd(t, "--legacy-output", "job", "get", id)
	body, ok := strings.CutPrefix(r.stdout, "\nserver version: rebalancer-manager test\n")
	if r.code != 0 || !ok {
		t.Fatalf("exit %d: %q %s", r.code, r.stdout, r.stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"config": doc["config"], "results": doc["results"], "state": doc["state"]}
	if !jsonEqual(got, want) {
		t.Errorf("legacy get %v, want %v", got, want)
	}
	if !strings.HasPrefix(body, "{\n  \"config\": {\n    \"action\": \"Evacuate\",\n    \"from_shark\": {\n      \"datacenter\": ") ||
		!strings.Contains(body, "\n  \"results\": {\n    \"Assigned\": 0,\n    \"Complete\": 20,\n") || !strings.HasSuffix(body, "\n  \"state\": \"Complete\"\n}\n") {
		t.Errorf("legacy get:\n%s", body)
	}

	r = m.cmd(t, "--legacy-output", "job", "list")
	want1 := "\nserver version: rebalancer-manager test\n[\n  {\n    \"action\": \"Evacuate\",\n    \"id\": \"" + id + "\",\n    \"state\": \"Complete\"\n  }\n]\n"
	if r.code != 0 || r.stdout != want1 {
		t.Errorf("legacy list: exit %d\n%q\nwant\n%q", r.code, r.stdout, want1)
	}
	r = m.cmd(t, "--legacy-output", "job", "retry", "not-a-uuid")
	if r.code != 1 || r.stderr != "Error: \"Server response: 400 Bad Request\"\n" {
		t.Errorf("legacy retry of a bad id: exit %d, %q", r.code, r.stderr)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// Numbers and strings are written as serde_json writes them.
func TestSerdeFormatting(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "-5": "-5", "75382": "75382",
		"9223372036854775807": "9223372036854775807", "18446744073709551615": "18446744073709551615",
		"18446744073709551616": "1.8446744073709552e19",
		"2.5":                  "2.5", "1e3": "1000.0", "1.0": "1.0", "0.0001": "0.0001", "0.00001": "0.00001",
		"1e-7": "1e-7", "1.5e-7": "1.5e-7", "1e15": "1000000000000000.0", "1e16": "1e16", "-0.0": "-0.0", "0.0": "0.0",
		"123.456e2": "12345.6",
	} {
		if got := serdeNumber(json.Number(in)); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	var b strings.Builder
	writeSerdeString(&b, "a\"b\\c\n\t\x01\x1f\x7f é/<&>\u2028")
	if want := `"a\"b\\c\n\t\u0001\u001f` + "\x7f é/<&>\u2028\""; b.String() != want {
		t.Errorf("string %s, want %s", b.String(), want)
	}
	b.Reset()
	writePretty(&b, map[string]any{"b": []any{}, "a": map[string]any{}, "B": []any{nil, true}}, "")
	if want := "{\n  \"B\": [\n    null,\n    true\n  ],\n  \"a\": {},\n  \"b\": []\n}"; b.String() != want {
		t.Errorf("pretty %q, want %q", b.String(), want)
	}
}
