package agent

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
)

// routes builds the API. Status codes are the legacy agent's; error
// bodies are one line of plain text for the operator (legacy managers
// ignore them).
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /assignments", s.auth(s.postAssignment))
	mux.Handle("GET /assignments", s.auth(s.listAssignments))
	mux.Handle("GET /assignments/{id}", s.auth(s.getAssignment))
	mux.Handle("DELETE /assignments/{id}", s.auth(s.deleteAssignment))
	mux.HandleFunc("GET /health", s.health)
	return mux
}

// auth requires the bearer token, when one is configured.
func (s *Server) auth(h http.HandlerFunc) http.Handler {
	if s.cfg.Token == "" {
		return h
	}
	want := []byte("Bearer " + s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rebalancer-agent"`)
			textError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		h(w, r)
	})
}

func textError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintf(w, format+"\n", args...)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		textError(w, http.StatusInternalServerError, "cannot encode reply: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// postAssignment accepts an assignment: 200 with its id as a JSON string;
// 400 for a body that is too large, not an assignment, or has an invalid
// id or task; 409 for an id the agent knows in any state; 503 when the
// queue is full; 500 when it cannot be saved.
func (s *Server) postAssignment(w http.ResponseWriter, r *http.Request) {
	s.m.request("POST")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		s.m.error(errLabelBadRequest)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			textError(w, http.StatusBadRequest, "assignment body is larger than %d bytes", tooBig.Limit)
			return
		}
		textError(w, http.StatusBadRequest, "cannot read assignment body: %v", err)
		return
	}
	var p rebalancer.AssignmentPayload
	if err := json.Unmarshal(body, &p); err != nil {
		s.m.error(errLabelBadRequest)
		textError(w, http.StatusBadRequest, "malformed assignment: %v", err)
		return
	}
	id, err := checkPayload(p)
	if err != nil {
		s.m.error(errLabelBadRequest)
		s.log.Warn("rejected invalid assignment", "assignment", truncate(p.ID, 80), "remote", r.RemoteAddr, "err", err)
		textError(w, http.StatusBadRequest, "invalid assignment: %v", err)
		return
	}
	code, err := s.admit(r.Context(), id)
	switch code {
	case http.StatusOK:
	case http.StatusConflict:
		s.m.error(errLabelConflict)
		textError(w, code, "assignment %s already exists", id)
		return
	case http.StatusServiceUnavailable:
		textError(w, code, "agent busy: %d assignments scheduled or running", s.cfg.MaxQueued)
		return
	default:
		s.log.Error("cannot check assignment id", "assignment", id, "err", err)
		textError(w, code, "cannot check assignment %s: %v", id, err)
		return
	}
	// Once admitted, the save runs to its end even if the client goes
	// away: a save that committed but reported an error would leave the
	// id known but never queued.
	ctx := context.WithoutCancel(r.Context())
	err = s.store.insert(ctx, newAssignment{id: id, tasks: p.Tasks, state: stateScheduled, origin: "post"})
	if err != nil {
		s.aborted(id)
		if errors.Is(err, errExists) {
			s.m.error(errLabelConflict)
			textError(w, http.StatusConflict, "assignment %s already exists", id)
			return
		}
		s.log.Error("cannot save assignment", "assignment", id, "tasks", len(p.Tasks), "err", err)
		textError(w, http.StatusInternalServerError, "cannot save assignment %s: %v", id, err)
		return
	}
	s.accepted(id)
	s.log.Info("assignment accepted", "assignment", id, "tasks", len(p.Tasks), "remote", r.RemoteAddr)
	writeJSON(w, id)
}

// getAssignment answers 200 with the assignment's state and counters, 400
// for a malformed id, 404 for an unknown one.
func (s *Server) getAssignment(w http.ResponseWriter, r *http.Request) {
	s.m.request("GET")
	id, err := ParseID(r.PathValue("id"))
	if err != nil {
		textError(w, http.StatusBadRequest, "malformed get request: %v", err)
		return
	}
	a, err := s.store.get(r.Context(), id)
	switch {
	case errors.Is(err, errNotFound):
		textError(w, http.StatusNotFound, "assignment %s not found", id)
	case err != nil:
		s.log.Error("cannot read assignment", "assignment", id, "err", err)
		textError(w, http.StatusInternalServerError, "cannot read assignment %s: %v", id, err)
	default:
		writeJSON(w, a)
	}
}

// deleteAssignment forgets a completed assignment: 200 (empty), 403 while
// it is scheduled or running, 404 if unknown, 400 for a malformed id. As in
// the legacy agent, DELETE is not counted in request_count.
func (s *Server) deleteAssignment(w http.ResponseWriter, r *http.Request) {
	id, err := ParseID(r.PathValue("id"))
	if err != nil {
		textError(w, http.StatusBadRequest, "malformed delete request: %v", err)
		return
	}
	err = s.store.remove(context.WithoutCancel(r.Context()), id)
	switch {
	case err == nil:
		s.log.Info("assignment deleted", "assignment", id)
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, errNotFound):
		textError(w, http.StatusNotFound, "assignment %s not found", id)
	case errors.Is(err, errNotComplete):
		textError(w, http.StatusForbidden, "attempt to remove scheduled assignment: %s", id)
	default:
		s.log.Error("cannot delete assignment", "assignment", id, "err", err)
		textError(w, http.StatusInternalServerError, "cannot delete assignment %s: %v", id, err)
	}
}

const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// listAssignments pages through assignments in the order they were
// accepted: ?limit=N (default 100, at most 1000), ?after=<next from the
// previous page>, ?state=scheduled|running|complete.
func (s *Server) listAssignments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			textError(w, http.StatusBadRequest, "limit must be a number from 1 to %d", maxListLimit)
			return
		}
		limit = n
	}
	var after int64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			textError(w, http.StatusBadRequest, "after must be the next value of a previous page")
			return
		}
		after = n
	}
	state := strings.ToLower(q.Get("state"))
	switch state {
	case "", stateScheduled, stateRunning, stateComplete:
	default:
		textError(w, http.StatusBadRequest, "state must be scheduled, running or complete")
		return
	}
	items, last, err := s.store.list(r.Context(), after, limit, state)
	if err != nil {
		s.log.Error("cannot list assignments", "err", err)
		textError(w, http.StatusInternalServerError, "cannot list assignments: %v", err)
		return
	}
	out := List{Assignments: items}
	if len(items) == limit {
		out.Next = strconv.FormatInt(last, 10)
	}
	writeJSON(w, out)
}

// Health is the reply of GET /health.
type Health struct {
	Status    string `json:"status"` // "ok"
	Scheduled int    `json:"scheduled"`
	Running   int    `json:"running"`
	MaxQueued int    `json:"max_queued"`
}

// health answers 200 when the agent can read its database, 503 otherwise.
// It needs no token, so that probes can use it.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if err := s.store.ping(r.Context()); err != nil {
		textError(w, http.StatusServiceUnavailable, "state database unavailable: %v", err)
		return
	}
	scheduled, running := s.counts()
	writeJSON(w, Health{Status: "ok", Scheduled: scheduled, Running: running, MaxQueued: s.cfg.MaxQueued})
}
