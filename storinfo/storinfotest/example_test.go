package storinfotest_test

import (
	"fmt"
	"io"
	"net/http"

	"github.com/TritonDataCenter/rebalancer/storinfo/storinfotest"
)

// A test starts a storinfo, changes the fleet while code under test reads
// it, and injects failures.
func ExampleServer() {
	srv := storinfotest.NewServer(
		storinfotest.NewRecord("1.stor.example.com", "dc0", 1000, 900),
		storinfotest.NewRecord("2.stor.example.com", "dc0", 1000, 100),
	)
	defer srv.Close()

	srv.AdjustAvailableMB("1.stor.example.com", -400) // 400 MiB written
	srv.Remove("2.stor.example.com")                  // minnow went stale
	srv.FailNext(1, http.StatusServiceUnavailable)

	for range 2 {
		resp, err := http.Get(srv.URL + "/storagenodes?limit=1&after_id=")
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, len(body) > 0)
	}
	r, _ := srv.Record("1.stor.example.com")
	fmt.Println(r.AvailableMB, r.PercentUsed)
	// Output:
	// 503 true
	// 200 true
	// 500 50
}
