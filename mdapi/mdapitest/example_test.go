package mdapitest_test

import (
	"fmt"

	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
)

// buckets-mdapi finds where a request frame ends by writing its payload
// again with serde_json: a payload whose length changes on the way is a
// lost connection. The server records such a frame as a violation.
func ExampleSerdeLen() {
	for _, doc := range []string{
		`{"owner":"acct","name":"a.log"}`,
		`{"owner": "acct", "name": "a.log"}`, // spaces: 3 bytes shorter once rewritten
		`{"name":"caf\u00e9"}`,               // an escape serde_json does not write: 4 bytes shorter
	} {
		n, err := mdapitest.SerdeLen([]byte(doc))
		fmt.Println(len(doc), n, err)
	}
	// Output:
	// 31 31 <nil>
	// 34 31 <nil>
	// 20 16 <nil>
}
