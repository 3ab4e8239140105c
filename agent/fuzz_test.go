package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// FuzzPostAssignment posts arbitrary bodies to a real agent's POST
// /assignments and checks what the agent stored against what it answered:
//
//   - 200: the assignment is stored under the canonical id, scheduled,
//     with exactly the posted tasks in order (fields as decoded from the
//     body), every one of them pending with no result, whatever status
//     the body gave it;
//   - 400: nothing is stored under the id, if it is one;
//   - 409: the id was already stored; 503 never stores either.
//
// Any other code (a 500 is a body it accepted and could not store, or an
// error it did not foresee) or a panic fails. The agent does not run, so
// nothing accepted is downloaded; its queue limit is out of reach so that
// valid bodies keep reaching the store. The seed corpus
// (testdata/fuzz/FuzzPostAssignment) holds the legacy payloads in both
// shapes (docs/golden.md), payloads whose tasks claim results, and malformed variants.
func FuzzPostAssignment(f *testing.F) {
	base := f.TempDir()
	root := filepath.Join(base, "manta")
	if err := os.Mkdir(root, 0o755); err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{Root: root, DataDir: filepath.Join(base, "data"), MaxQueued: 1 << 30,
		Metrics: MetricLabels{Zonename: "fuzz"}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	h := s.Handler()
	accepted := map[string]bool{} // ids stored by this process's agent
	f.Add([]byte(`["463ec933-1d31-41f9-8e76-0db3191f6346",[]]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var p rebalancer.AssignmentPayload
		decodeErr := json.Unmarshal(body, &p)
		id, idErr := ParseID(p.ID)
		var before bool
		if idErr == nil {
			_, before = storedAssignment(t, s, id)
		}

		req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/assignments", bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)

		switch w.Code {
		case http.StatusOK:
			if decodeErr != nil || idErr != nil {
				t.Fatalf("POST %q: 200 for a body that is not an assignment (%v, %v)", body, decodeErr, idErr)
			}
			if w.Body.String() != `"`+id+`"` {
				t.Fatalf("POST %q: reply %s, want the canonical id %q", body, w.Body, id)
			}
			if before {
				t.Fatalf("POST %q: 200 for id %s, which was already stored", body, id)
			}
			accepted[id] = true
			checkStoredPending(t, s, id, p.Tasks)
		case http.StatusBadRequest:
			if idErr == nil && !accepted[id] {
				if _, ok := storedAssignment(t, s, id); ok {
					t.Fatalf("POST %q: 400, yet assignment %s was stored", body, id)
				}
			}
		case http.StatusConflict:
			if idErr != nil || !before {
				t.Fatalf("POST %q: 409 for an id that was not stored", body)
			}
		case http.StatusServiceUnavailable:
		default:
			t.Fatalf("POST %q: %d %s", body, w.Code, w.Body)
		}
	})
}

// checkStoredPending checks that assignment id is stored as just accepted:
// scheduled, nothing done, and exactly tasks, each pending with no result.
func checkStoredPending(t *testing.T, s *Server, id string, tasks []rebalancer.Task) {
	t.Helper()
	got, ok := storedAssignment(t, s, id)
	if !ok {
		t.Fatalf("assignment %s accepted but not stored", id)
	}
	if got.state != stateScheduled || got.total != len(tasks) || got.done != 0 || got.failed != 0 {
		t.Fatalf("assignment %s stored as %+v, want scheduled with %d tasks and nothing done", id, got, len(tasks))
	}
	if len(got.tasks) != len(tasks) {
		t.Fatalf("assignment %s: %d tasks stored, %d posted", id, len(got.tasks), len(tasks))
	}
	for i, st := range got.tasks {
		want := tasks[i]
		want.Status = rebalancer.TaskStatus{}
		if st.task != want || st.state != taskPending || st.reason.Valid || st.detail.Valid || st.doneOrder.Valid {
			t.Fatalf("assignment %s task %d stored as %+v, posted %+v: want the same task, pending, with no result",
				id, i, st, tasks[i])
		}
	}
}
