package evacuate

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

// fuzzEngine is an engine over the fakes, with a few objects on shark 1,
// for fuzzing the API; any shark can be looked up.
func fuzzEngine(f *testing.F, st *Store, agents *fakeAgents) *Engine {
	m := newFakeMoray()
	var objs []rebalancer.Object
	for i := range 5 {
		o := m.put(1, objectValue("acct", fmt.Sprintf("00000000-0000-4000-8000-%012d", i), 100, shark(1), shark(2)))
		o.ScanID = int64(i + 1)
		objs = append(objs, o)
	}
	e, err := NewEngine(Config{
		Store:     st,
		Source:    func(JobRecord) (rebalancer.ObjectSource, error) { return &sliceSource{objs: objs}, nil },
		Metadata:  m,
		Placement: newFakePlacement(shark(3), shark(4), shark(5)),
		Agent:     agents,
		LookupShark: func(ctx context.Context, id string) (rebalancer.StorageNode, error) {
			return rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: id}, nil
		},
		Defaults: fastOptions(),
		Logger:   quietLogger(),
	})
	if err != nil {
		f.Fatal(err)
	}
	return e
}

func serve(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	return w
}

// FuzzCreateJobBody posts arbitrary bodies to POST /jobs of a real engine
// (over the fakes): the answer is 2xx or 4xx, never 5xx, and nothing
// panics, not even later in the job the body started (each job runs for a
// while before its engine is closed). The seed corpus
// (testdata/fuzz/FuzzCreateJobBody) holds the legacy bodies of docs/golden.md
// and rebalancer-adm, with options.
func FuzzCreateJobBody(f *testing.F) {
	st, err := OpenStore(context.Background(), filepath.Join(f.TempDir(), "jobs.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	f.Add(`{"action":"evacuate","params":{"from_shark":"1.stor","max_objects":null}}`)
	f.Fuzz(func(t *testing.T, body string) {
		// A fresh engine per body: a job started by one body does not make
		// the next one a 409, and closing it ends the job.
		e := fuzzEngine(f, st, newFakeAgents())
		defer e.Close()
		api := &API{Engine: e, Domain: "test", Logger: quietLogger()}
		w := serve(api.Handler(), http.MethodPost, "/jobs", body)
		if w.Code >= 500 {
			t.Fatalf("POST /jobs %q: %d %s", body, w.Code, w.Body)
		}
		if w.Code == http.StatusOK {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			e.Wait(ctx, strings.TrimSpace(w.Body.String()))
		}
	})
}

// FuzzUpdateJobBody sends arbitrary bodies to PUT /jobs/{uuid} of a running
// job: the answer is 200, 400, 413 or 422, never 5xx, and nothing panics.
// The seed corpus (testdata/fuzz/FuzzUpdateJobBody) holds the legacy
// set_metadata_threads messages.
func FuzzUpdateJobBody(f *testing.F) {
	st, err := OpenStore(context.Background(), filepath.Join(f.TempDir(), "jobs.db"))
	if err != nil {
		f.Fatal(err)
	}
	agents := newFakeAgents()
	agents.slow = true // the job never ends
	e := fuzzEngine(f, st, agents)
	f.Cleanup(func() {
		e.Close()
		st.Close()
	})
	j, err := e.CreateJob(context.Background(), shark(1).MantaStorageID, Options{})
	if err != nil {
		f.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		cur, err := st.GetJob(context.Background(), j.ID)
		if err == nil && cur.State == rebalancer.JobRunning {
			break
		}
		if time.Now().After(deadline) {
			f.Fatalf("job never ran: %+v %v", cur, err)
		}
	}
	h := (&API{Engine: e, Logger: quietLogger()}).Handler()
	f.Add(`{"action":"set_metadata_threads","params":30}`)
	f.Fuzz(func(t *testing.T, body string) {
		w := serve(h, http.MethodPut, "/jobs/"+j.ID, body)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		default:
			t.Fatalf("PUT /jobs/{uuid} %q: %d %s", body, w.Code, w.Body)
		}
	})
}
