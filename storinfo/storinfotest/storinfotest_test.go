package storinfotest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/storinfo/storinfotest"
)

func fleet(ids ...int) []storinfotest.Record {
	var out []storinfotest.Record
	for _, i := range ids {
		out = append(out, storinfotest.NewRecord(fmt.Sprintf("%d.stor.example.com", i), "dc0", 1000, 500))
	}
	return out
}

type answer struct {
	status int
	link   string
	ids    []string
	body   string
}

func get(t *testing.T, url string) answer {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, link: resp.Header.Get("Link"), body: string(b)}
	if resp.StatusCode == 200 && strings.HasPrefix(a.body, "[") && json.Valid(b) {
		var recs []storinfotest.Record
		if err := json.Unmarshal(b, &recs); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			a.ids = append(a.ids, strings.TrimSuffix(r.MantaStorageID, ".stor.example.com"))
		}
	}
	return a
}

func TestPaging(t *testing.T) {
	srv := storinfotest.NewServer(fleet(1, 2, 3, 9, 10, 11, 100)...)
	defer srv.Close()
	tests := []struct {
		query  string
		status int
		ids    string
		link   string
	}{
		{query: "", status: 200, ids: "1 2 3 9 10 11 100"},
		{query: "?limit=100&after_id=", status: 200, ids: "1 2 3 9 10 11 100"},
		{query: "?limit=3", status: 200, ids: "1 2 3", link: `</storagenodes?after_id=3.stor.example.com&limit=3>; rel="next"`},
		{query: "?after_id=3.stor.example.com&limit=3", status: 200, ids: "9 10 11", link: `</storagenodes?after_id=11.stor.example.com&limit=3>; rel="next"`},
		{query: "?after_id=11.stor.example.com&limit=3", status: 200, ids: "100"},
		{query: "?after_id=100.stor.example.com", status: 200, ids: ""},
		{query: "?limit=7", status: 200, ids: "1 2 3 9 10 11 100"},
		{query: "?limit=6", status: 200, ids: "1 2 3 9 10 11", link: `</storagenodes?after_id=11.stor.example.com&limit=6>; rel="next"`},
		{query: "?limit=500", status: 200, ids: "1 2 3 9 10 11 100"},
		// An unknown cursor starts at the first greater id, compared as
		// strings: "4" sorts after "3" and before "9".
		{query: "?after_id=4.stor", status: 200, ids: "9 10 11 100"},
		// ...which misbehaves with mixed digit counts, as the real one does:
		// numerically, 10.5 comes after 10.
		{query: "?after_id=10.5", status: 200, ids: "2 3 9 10 11 100"},
		{query: "?after_id=0", status: 200, ids: "1 2 3 9 10 11 100"},
		{query: "?after_id=99", status: 404},
		{query: "?limit=0", status: 400},
		{query: "?limit=501", status: 400},
		{query: "?limit=ten", status: 400},
		{query: "?limit=", status: 400},
		{query: "?offset=1", status: 400},
		{query: "?limit=10&sort=asc", status: 400},
	}
	for _, tt := range tests {
		a := get(t, srv.URL+"/storagenodes"+tt.query)
		if a.status != tt.status || strings.Join(a.ids, " ") != tt.ids || a.link != tt.link {
			t.Errorf("GET %s = %d %q link %q; want %d %q link %q (%s)", tt.query, a.status, a.ids, a.link, tt.status, tt.ids, tt.link, a.body)
		}
		if a.status != 200 && !strings.Contains(a.body, `"message"`) {
			t.Errorf("GET %s: error body %s", tt.query, a.body)
		}
	}
	if a := get(t, srv.URL+"/storagenodes?limit=2"); a.status != 200 || len(a.ids) != 2 {
		t.Fatalf("limit=2: %+v", a)
	}
}

func TestDefaultLimit(t *testing.T) {
	var recs []storinfotest.Record
	for i := range 150 {
		recs = append(recs, fleet(i+1)...)
	}
	srv := storinfotest.NewServer(recs...)
	defer srv.Close()
	a := get(t, srv.URL+"/storagenodes")
	if len(a.ids) != 100 || a.link == "" {
		t.Fatalf("got %d records, link %q", len(a.ids), a.link)
	}
}

func TestRecordsAndMutation(t *testing.T) {
	srv := storinfotest.NewServer()
	defer srv.Close()
	if a := get(t, srv.URL+"/storagenodes"); a.status != 200 || a.body != "[]\n" {
		t.Fatalf("empty storinfo: %+v", a)
	}

	r := storinfotest.NewRecord("3.stor.example.com", "dc1", 1000, 250)
	if r.PercentUsed != 75 || r.TotalMB() != 1000 || r.Filesystem != "/manta" || r.MantaComputeID != "3.cn.example.com" || r.ZoneUUID == "" {
		t.Fatalf("record = %+v", r)
	}
	now := time.UnixMilli(1_700_000_000_000)
	srv.SetClock(func() time.Time { return now })
	srv.Put(r)

	// Live records carry the current time.
	var got storinfotest.Record
	decode(t, get(t, srv.URL+"/storagenodes/3.stor.example.com"), &got)
	if got.Timestamp != now.UnixMilli() || got.AvailableMB != 250 {
		t.Fatalf("record = %+v", got)
	}
	// Unknown fields of a real minnow record are all there.
	var raw map[string]any
	decode(t, get(t, srv.URL+"/storagenodes/3.stor.example.com"), &raw)
	for _, k := range []string{"availableMB", "percentUsed", "filesystem", "statvfs", "timestamp", "hostname", "datacenter", "server_uuid", "zone_uuid", "manta_compute_id", "manta_storage_id"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("record lacks %s", k)
		}
	}

	if !srv.AdjustAvailableMB("3.stor.example.com", -150) {
		t.Fatal("AdjustAvailableMB: unknown")
	}
	if r, _ := srv.Record("3.stor.example.com"); r.AvailableMB != 100 || r.PercentUsed != 90 || r.Timestamp != 0 {
		t.Fatalf("record = %+v", r)
	}
	srv.SetAvailableMB("3.stor.example.com", 5000) // capped at the size
	if r, _ := srv.Record("3.stor.example.com"); r.AvailableMB != 1000 || r.PercentUsed != 0 {
		t.Fatalf("record = %+v", r)
	}
	// A frozen record keeps its timestamp: a stale minnow.
	srv.Update("3.stor.example.com", func(r *storinfotest.Record) { r.Timestamp = 42 })
	decode(t, get(t, srv.URL+"/storagenodes/3.stor.example.com"), &got)
	if got.Timestamp != 42 {
		t.Fatalf("record = %+v", got)
	}
	if srv.Update("9.stor", func(*storinfotest.Record) {}) || srv.SetAvailableMB("9.stor", 1) {
		t.Fatal("updated an unknown record")
	}
	if !srv.Remove("3.stor.example.com") || srv.Remove("3.stor.example.com") {
		t.Fatal("Remove")
	}
	if a := get(t, srv.URL+"/storagenodes/3.stor.example.com"); a.status != 404 {
		t.Fatalf("removed record: %+v", a)
	}
}

func decode(t *testing.T, a answer, v any) {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if err := json.Unmarshal([]byte(a.body), v); err != nil {
		t.Fatal(err)
	}
}

func TestRoutes(t *testing.T) {
	srv := storinfotest.NewServer(fleet(1)...)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/flush", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || srv.Flushes() != 1 {
		t.Fatalf("flush: %d, %d", resp.StatusCode, srv.Flushes())
	}
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/flush", 405},
		{"POST", "/storagenodes", 405},
		{"DELETE", "/storagenodes/1.stor.example.com", 405},
		{"GET", "/nothing", 404},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 5 || reqs[0] != "POST /flush" || reqs[4] != "GET /nothing" {
		t.Errorf("requests = %q", reqs)
	}
}

func TestFaults(t *testing.T) {
	srv := storinfotest.NewServer(fleet(1)...)
	defer srv.Close()

	srv.FailNext(2, 503)
	for i, want := range []int{503, 503, 200} {
		if a := get(t, srv.URL+"/storagenodes"); a.status != want {
			t.Fatalf("request %d: %d, want %d", i, a.status, want)
		}
	}

	srv.SetDown(true)
	if resp, err := http.Get(srv.URL + "/storagenodes"); err == nil {
		resp.Body.Close()
		t.Fatal("a down storinfo answered")
	}
	srv.SetDown(false)

	srv.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		fmt.Fprint(w, "[{")
		return true
	})
	if a := get(t, srv.URL+"/storagenodes/1.stor.example.com"); a.body != "[{" {
		t.Fatalf("intercepted answer %+v", a)
	}
	srv.Intercept(nil)

	// A delayed request waits, and gives up with its client.
	srv.SetDelay(time.Hour)
	client := &http.Client{Timeout: 20 * time.Millisecond}
	if resp, err := client.Get(srv.URL + "/storagenodes"); err == nil {
		resp.Body.Close()
		t.Fatal("a delayed request answered")
	}
	srv.SetDelay(0)
	if a := get(t, srv.URL+"/storagenodes"); a.status != 200 {
		t.Fatalf("after the delay: %+v", a)
	}
}
