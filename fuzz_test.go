package rebalancer

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzAssignmentPayload decodes POST /assignments bodies, in both shapes
// (object and legacy array). It must never panic, and whatever decodes
// must encode, and the encoding must decode to the same value: the manager
// and the agent then agree on every payload either can read. The seed
// corpus (testdata/fuzz/FuzzAssignmentPayload) holds the literal payloads
// of the legacy agent and every task status and skip reason form (docs/golden.md).
func FuzzAssignmentPayload(f *testing.F) {
	f.Add([]byte(`["463ec933-1d31-41f9-8e76-0db3191f6346",[]]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p AssignmentPayload
		if err := json.Unmarshal(b, &p); err != nil {
			return
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("decoded %s into %+v, which does not encode: %v", b, p, err)
		}
		var again AssignmentPayload
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("%s decoded, but its encoding %s does not: %v", b, out, err)
		}
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("%s decoded as %+v, its encoding %s as %+v", b, p, out, again)
		}
	})
}
