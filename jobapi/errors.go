package jobapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/TritonDataCenter/rebalancer/evacuate"
)

// Error bodies that say what to do next, beyond what went wrong.

// busyHint is the message of a refusal because another job is evacuating
// the shark: which job, and how to see it or stop it.
func busyHint(err error) string {
	var busy *evacuate.SharkBusyError
	if !errors.As(err, &busy) {
		return err.Error()
	}
	return fmt.Sprintf("shark %s is being evacuated by job %s: follow it with \"rebalancer-adm job watch %s\", "+
		"or stop it with \"rebalancer-adm job stop %s\" first", busy.Shark, busy.Job, busy.Job, busy.Job)
}

// routeMiss replaces the body of the mux's answer to a request that no
// route matches (404, or 405 with Allow) by a one-line message, labelled
// application/json as every reply of the API (the legacy sent these with
// an empty body: docs/compatibility.md).
type routeMiss struct {
	http.ResponseWriter
	r       *http.Request
	written bool
}

func (w *routeMiss) WriteHeader(code int) {
	if w.written {
		return
	}
	w.written = true
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("X-Content-Type-Options")
	var msg string
	switch code {
	case http.StatusMethodNotAllowed:
		msg = fmt.Sprintf("Method %s is not allowed on %s: it takes %s (docs/api.md lists the routes)",
			w.r.Method, w.r.URL.Path, h.Get("Allow"))
	case http.StatusNotFound:
		msg = fmt.Sprintf("No route %s %s: the job API's routes are under /jobs (docs/api.md); the status page is at /",
			w.r.Method, w.r.URL.Path)
		if w.r.URL.Path == "/metrics" {
			msg = "No route GET /metrics: the manager's metrics are on its metrics port (metrics_port, 8878 by default; --metrics-listen)"
		}
	}
	h.Set("Content-Length", fmt.Sprint(len(msg)))
	w.ResponseWriter.WriteHeader(code)
	io.WriteString(w.ResponseWriter, msg)
}

// Write drops the mux's own text.
func (w *routeMiss) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return len(b), nil
}
