package agent

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

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
// id or task; 408 for a body that does not arrive within
// Config.BodyTimeout; 409 for an id the agent knows in any state; 503 when
// the queue is full, or when bodies being read already take
// Config.MaxBodyBytesInFlight; 500 when it cannot be saved.
func (s *Server) postAssignment(w http.ResponseWriter, r *http.Request) {
	s.m.request("POST")
	body, release, err := s.readBody(w, r)
	defer release()
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			s.m.error(errLabelBadRequest)
			textError(w, http.StatusBadRequest, "assignment body is larger than %d bytes", tooBig.Limit)
		case errors.Is(err, errBodyBudget):
			s.log.Warn("refused an assignment: bodies being read take the whole budget", "remote", r.RemoteAddr,
				"max_body_bytes_in_flight", s.cfg.MaxBodyBytesInFlight)
			// The rest of the body is not wanted: do not keep the connection.
			w.Header().Set("Connection", "close")
			textError(w, http.StatusServiceUnavailable, "agent busy: assignment bodies being read already take %d bytes", s.cfg.MaxBodyBytesInFlight)
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.m.error(errLabelBadRequest)
			w.Header().Set("Connection", "close")
			textError(w, http.StatusRequestTimeout, "assignment body not received within %v", s.cfg.BodyTimeout)
		default:
			s.m.error(errLabelBadRequest)
			textError(w, http.StatusBadRequest, "cannot read assignment body: %v", err)
		}
		return
	}
	var p rebalancer.AssignmentPayload
	if err := json.Unmarshal(body, &p); err != nil {
		s.m.error(errLabelBadRequest)
		textError(w, http.StatusBadRequest, "malformed assignment: %v", err)
		return
	}
	id, err := checkPayload(p, s.hosts)
	if err != nil {
		s.m.error(errLabelBadRequest)
		s.log.Warn("rejected invalid assignment", "assignment", truncate(p.ID, 80), "remote", r.RemoteAddr, "err", err)
		textError(w, http.StatusBadRequest, "invalid assignment: %v", err)
		return
	}
	// Both payload shapes carry a status per task, and the legacy manager
	// sends "Pending". Whatever it says, it is not a result: every task
	// starts pending, and the agent reports only what it did itself.
	for i := range p.Tasks {
		p.Tasks[i].Status = rebalancer.TaskStatus{}
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
	err = s.store.insert(ctx, newAssignment{id: id, tasks: p.Tasks, state: stateScheduled, origin: originPost})
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

// errBodyBudget is a POST body that would take the bodies being read over
// Config.MaxBodyBytesInFlight.
var errBodyBudget = errors.New("assignment bodies being read take the whole budget")

// readBody reads a POST body within the config's limits: MaxBodyBytes for
// this body, BodyTimeout from now, and MaxBodyBytesInFlight for all the
// bodies being read at once, from which the memory of each is reserved
// before it is allocated. A body with a Content-Length (what managers
// send) reserves all of it up front, so that concurrent bodies are
// admitted whole or refused, never starved half-read; one without
// reserves as it grows, doubling. release gives the reservation back;
// call it once the body and what was decoded from it are no longer used.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	var held int64
	release = func() {
		s.bodies.Release(held)
		s.inBodies.Add(-held)
	}
	// Headers were read under HeaderTimeout (APIServer); this covers the
	// body. A ResponseWriter that cannot set deadlines (a test recorder)
	// has no connection to hold.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	limit := s.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, release, &http.MaxBytesError{Limit: limit}
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	// One byte more than the body can hold, so that its end is read
	// without growing again.
	size, known := limit+1, r.ContentLength >= 0
	if known {
		size = r.ContentLength + 1
	}
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			want := size
			if !known {
				want = min(max(2*int64(cap(buf)), 64<<10), size)
			}
			grow := want - int64(cap(buf))
			if grow <= 0 {
				return nil, release, &http.MaxBytesError{Limit: limit}
			}
			if !s.bodies.TryAcquire(grow) {
				return nil, release, errBodyBudget
			}
			held += grow
			s.inBodies.Add(grow)
			buf = append(make([]byte, 0, want), buf...)
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, release, nil
		}
		if err != nil {
			return nil, release, err
		}
	}
}

// maxHeaderBytes caps a request's headers: the API needs a few hundred
// bytes of them.
const maxHeaderBytes = 64 << 10

// APIServer returns an http.Server for Handler with the config's limits on
// clients: HeaderTimeout to send a request's headers (a client that
// dribbles them is disconnected), IdleTimeout between requests on a
// kept-alive connection, 64 KiB of headers, and a ReadTimeout and
// WriteTimeout that bound a whole exchange (the handler itself enforces
// BodyTimeout on POST bodies). errorLog may be nil.
func (s *Server) APIServer(errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		ReadTimeout:       s.cfg.HeaderTimeout + s.cfg.BodyTimeout,
		// A reply is written after the body is read and the assignment
		// saved; the minute is for a save that waits on a busy database.
		WriteTimeout:   s.cfg.HeaderTimeout + s.cfg.BodyTimeout + time.Minute,
		IdleTimeout:    s.cfg.IdleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       errorLog,
	}
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
