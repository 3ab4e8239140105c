package rebalancer_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/TritonDataCenter/rebalancer"
)

// An object's metadata is carried verbatim; ReplaceShark changes only the
// sharks element that names the evacuated shark.
func ExampleReplaceShark() {
	value := json.RawMessage(`{"key":"/acct/stor/a","objectId":"2e08b069","owner":"acct","vnode":23352,` +
		`"sharks":[{"datacenter":"dc0","manta_storage_id":"1.stor"},{"datacenter":"dc0","manta_storage_id":"3.stor"}]}`)

	updated, err := rebalancer.ReplaceShark(value, "1.stor", rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "7.stor"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(updated))
	// Output:
	// {"key":"/acct/stor/a","objectId":"2e08b069","owner":"acct","vnode":23352,"sharks":[{"datacenter":"dc1","manta_storage_id":"7.stor"},{"datacenter":"dc0","manta_storage_id":"3.stor"}]}
}

// A task's detail is cut to MaxTaskDetail bytes, between characters.
func ExampleTruncateDetail() {
	d := rebalancer.TruncateDetail(strings.Repeat("é", 300)) // 600 bytes
	fmt.Println(len(d), strings.HasSuffix(d, "é..."), utf8.ValidString(d))
	// Output:
	// 511 true true
}

// Skip reasons have a wire spelling, a database spelling and a metrics label.
func ExampleSkipReason() {
	for _, r := range []rebalancer.SkipReason{rebalancer.SkipMD5Mismatch, rebalancer.SkipHTTPStatus(503)} {
		wire, _ := json.Marshal(r)
		fmt.Printf("%s %s %s\n", wire, r, r.Label())
	}
	// Output:
	// "MD5Mismatch" md5_mismatch md5_mismatch
	// {"HTTPStatusCode":503} {http_status_code:503} http_status_code
}

// An agent's reply decodes into the shared types, whichever legacy shape it
// uses.
func ExampleAssignment() {
	reply := `{"uuid":"fd45e70b-5435-457e-a371-93fcb8215e0d","stats":{"state":{"Complete":[` +
		`{"object_id":"7f3ee78a","owner":"d50c4fc4","md5sum":"QXBlX0QFcscVIwptkUaI8g==",` +
		`"source":{"datacenter":"dc","manta_storage_id":"3.stor"},"status":{"Failed":"SourceObjectNotFound"}}]},` +
		`"failed":1,"complete":4,"total":4}}`
	var a rebalancer.Assignment
	if err := json.Unmarshal([]byte(reply), &a); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(a.Stats.State.Phase == rebalancer.AssignmentComplete, a.Stats.Complete, a.Stats.Total)
	for _, t := range a.Stats.State.Failed {
		fmt.Println(t.ObjectID, t.Status.Reason)
	}
	// Output:
	// true 4 4
	// 7f3ee78a source_object_not_found
}
