package agent

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// FuzzPostAssignment posts arbitrary bodies to a real agent's POST
// /assignments. Whatever the body, the agent answers 200, 400, 409 or 503:
// never 500 (a body it accepted and cannot store, or an error it did not
// foresee) and never a panic. The agent does not run, so nothing accepted
// is downloaded; its queue limit is out of reach so that valid bodies keep
// reaching the store. The seed corpus (testdata/fuzz/FuzzPostAssignment)
// holds legacy payloads (docs/golden.md) and malformed variants.
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
	f.Add([]byte(`["463ec933-1d31-41f9-8e76-0db3191f6346",[]]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/assignments", bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusConflict, http.StatusServiceUnavailable:
		default:
			t.Fatalf("POST %q: %d %s", body, w.Code, w.Body)
		}
	})
}
