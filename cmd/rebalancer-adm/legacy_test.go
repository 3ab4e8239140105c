package main

import (
	"errors"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// A legacy (Rust) manager's replies (docs/golden.md): the CLI must read them,
// since fleets upgrade one piece at a time.
const (
	legacyID     = "bbd4088d-fec9-4875-9aa4-d1ca43a21c93"
	legacyList   = `[{"id":"9d5e4b18-cdec-440c-88fa-64f6c49ea814","action":"Evacuate","state":"Complete"},{"id":"bbd4088d-fec9-4875-9aa4-d1ca43a21c93","action":"Evacuate","state":"Running"}]`
	legacyStatus = `{"config":{"action":"Evacuate","from_shark":{"datacenter":"us-east-1","manta_storage_id":"1.stor.us-east.joyent.us"}},` +
		`"results":{"Unprocessed":0,"Assigned":73091,"Skipped":1002,"Error":2,"Post Processing":0,"Complete":1287,"Duplicates":0,"Total":75382,` +
		`"error_breakdown":{"moray":{"update_failed":2}},"skip_breakdown":{"source_object_not_found":622,"source_is_evac_shark":192,"{http_status_code:500}":188}},"state":"Running"}`
)

// legacyManager serves a legacy manager's replies; status gives the job's
// status document, at each GET of it.
func legacyManager(t *testing.T, status func() string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "GET" && r.URL.Path == "/jobs":
			io.WriteString(w, legacyList)
		case r.Method == "GET" && r.URL.Path == "/jobs/"+legacyID:
			io.WriteString(w, status())
		case r.Method == "POST" && r.URL.Path == "/jobs":
			b, _ := io.ReadAll(r.Body)
			if !strings.Contains(string(b), `"from_shark":"1.stor"`) || !strings.Contains(string(b), `"max_objects":null`) {
				w.WriteHeader(422)
				return
			}
			io.WriteString(w, legacyID+"\n")
		default:
			w.WriteHeader(404)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestLegacyManager(t *testing.T) {
	complete := strings.Replace(strings.Replace(legacyStatus, `"Assigned":73091`, `"Assigned":0`, 1), `"Running"`, `"Complete"`, 1)
	var watching atomic.Bool // then the job completes at watch's third look
	var looks atomic.Int32
	url := legacyManager(t, func() string {
		if watching.Load() && looks.Add(1) >= 3 {
			return complete
		}
		return legacyStatus
	})
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"job", "list"}, []string{"9d5e4b18-cdec-440c-88fa-64f6c49ea814  Evacuate  Complete  -", legacyID + "  Evacuate  Running   -"}},
		{[]string{"job", "create", "evacuate", "-s", "1.stor"}, []string{legacyID + "\n"}},
		{[]string{"job", "get", legacyID}, []string{
			"Job:           " + legacyID,
			"Evacuating:    1.stor.us-east.joyent.us (us-east-1)",
			"Objects done:  2,291 of 75,382+ (discovery running) (3.0%)",
			"Counts:        unprocessed 0, assigned 73,091, post processing 0, complete 1,287, skipped 1,002, error 2",
			"Skipped:       source_object_not_found 622, source_is_evac_shark 192, {http_status_code:500} 188",
			"Errors:        moray_update_failed 2",
		}},
		{[]string{"job", "get", legacyID, "--json"}, []string{legacyStatus + "\n"}},
	} {
		r := runWith(t, false, append([]string{"--manager", url}, tc.args...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, r.code, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, r.stdout)
			}
		}
	}

	// watch derives progress from the counts, and ends when the job does.
	watching.Store(true)
	r := runWith(t, false, "--manager", url, "job", "watch", legacyID, "--interval", "10ms")
	if r.code != 0 || !strings.Contains(r.stdout, "Job "+legacyID+" Complete: 75,382 objects, 1,287 complete, 1,002 skipped, 2 errors.") {
		t.Fatalf("watch: %+v", r)
	}
}

// flakyTransport fails its first n requests as an unreachable manager.
type flakyTransport struct {
	n    atomic.Int32
	next http.RoundTripper
}

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.n.Add(-1) >= 0 {
		return nil, errors.New("connect: connection refused")
	}
	return f.next.RoundTrip(r)
}

// A manager that goes away for a while (a restart) is waited out.
func TestWatchWaitsOutAnUnreachableManager(t *testing.T) {
	complete := strings.Replace(legacyStatus, `"Running"`, `"Complete"`, 1)
	url := legacyManager(t, func() string { return complete })
	for _, tty := range []bool{false, true} {
		var out, errb testutil.Buffer
		a := newApp(&out, &errb)
		a.isTerminal = func(io.Writer) bool { return tty }
		a.width = func(io.Writer) int { return 200 }
		ft := &flakyTransport{next: http.DefaultTransport}
		ft.n.Store(2)
		a.transport = ft
		code := a.run(t.Context(), []string{"--manager", url, "job", "watch", legacyID, "--interval", "5ms"})
		if code != 0 {
			t.Fatalf("tty %v: exit %d: %s", tty, code, errb.String())
		}
		o := out.String()
		if strings.Count(o, "cannot reach the manager (retrying): GET /jobs/"+legacyID+": connect: connection refused") != 2 {
			t.Fatalf("tty %v: %q", tty, o)
		}
		if !strings.Contains(o, "Job "+legacyID+" Complete") {
			t.Fatalf("tty %v: no final line: %q", tty, o)
		}
	}
}
