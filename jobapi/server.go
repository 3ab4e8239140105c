package jobapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
)

// Server serves the job API (the routes: see the package documentation)
// of an evacuate.Engine: the legacy routes with their status codes and
// bodies, so that existing scripts and the legacy rebalancer-adm keep
// working, and the new ones.
type Server struct {
	// Engine runs the jobs. Required.
	Engine *evacuate.Engine
	// Domain completes a shark given without it ("1.stor" becomes
	// "1.stor.<domain>"), as the legacy does.
	Domain string
	// SnaplinkCleanupRequired, when it returns true, refuses new jobs (the
	// legacy gate; read on every request so a reload takes effect).
	SnaplinkCleanupRequired func() bool
	// JobOptions returns the options for a new job (the current
	// configuration's tunables); nil means the engine's defaults.
	JobOptions func() evacuate.Options
	// Metrics, when set, counts requests (the legacy request_count).
	Metrics *evacuate.Metrics
	// Version goes in the Server header: "rebalancer-manager <Version>".
	Version string
	Logger  *slog.Logger
	// MaxBodyBytes bounds request bodies (default 1 MiB).
	MaxBodyBytes int64
	// Token, when set, is required as "Authorization: Bearer <Token>" on
	// every route but GET /health, which probes use; a request without it
	// gets 401. Empty (the legacy) requires nothing. The status pages
	// take it as a bearer token too, or as the password of HTTP Basic
	// authentication (any user name), which browsers ask for by
	// themselves.
	Token string
	// Sharks, when set, lists the sharks for the status page, with the
	// state the manager gives each.
	Sharks func(ctx context.Context) ([]SharkState, error)
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /jobs", s.createJob)
	mux.HandleFunc("GET /jobs", s.listJobs)
	mux.HandleFunc("GET /jobs/{uuid}", s.getJob)
	mux.HandleFunc("PUT /jobs/{uuid}", s.updateJob)
	mux.HandleFunc("POST /jobs/{uuid}/retry", s.retryJob)
	mux.HandleFunc("POST /jobs/{uuid}/stop", s.control("stop"))
	mux.HandleFunc("POST /jobs/{uuid}/pause", s.control("pause"))
	mux.HandleFunc("POST /jobs/{uuid}/resume", s.control("resume"))
	mux.HandleFunc("GET /jobs/{uuid}/objects", s.jobObjects)
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /sharks", s.listSharks)
	mux.HandleFunc("GET /sharks/{shark}", s.getShark)
	mux.HandleFunc("POST /sharks/{shark}/out", s.setShark(evacuate.SharkDrained))
	mux.HandleFunc("POST /sharks/{shark}/in", s.setShark(evacuate.SharkInService))
	mux.HandleFunc("GET /sharks/{shark}/check", s.checkShark)
	mux.HandleFunc("GET /{$}", s.overview)
	mux.HandleFunc("GET /ui/jobs/{uuid}", s.jobPage)
	mux.HandleFunc("GET /ui/style.css", s.style)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		version := s.Version
		if version == "" {
			version = "dev"
		}
		w.Header().Set("Server", "rebalancer-manager "+version)
		// The legacy labels every reply JSON, plain-text bodies included.
		w.Header().Set("Content-Type", "application/json")
		if !s.authorized(r) {
			challenge := `Bearer realm="rebalancer-manager"`
			if isPage(r) {
				challenge = `Basic realm="rebalancer-manager: the api_token as the password", charset="UTF-8"`
			}
			w.Header().Set("WWW-Authenticate", challenge)
			writeText(w, http.StatusUnauthorized, "This manager requires its API token: send \"Authorization: Bearer <api_token>\" "+
				"(rebalancer-adm: --token or REBALANCER_TOKEN)")
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			// No route: the mux answers 404, or 405 with Allow; its
			// text/plain body is replaced by one that says what to do.
			w = &routeMiss{ResponseWriter: w, r: r}
		}
		mux.ServeHTTP(w, r)
	})
}

// authorized reports whether r may use the API: it carries the token, or
// none is required, or it is the health probe.
func (s *Server) authorized(r *http.Request) bool {
	if s.Token == "" || ((r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == "/health") {
		return true
	}
	if _, pass, ok := r.BasicAuth(); ok && isPage(r) {
		return subtle.ConstantTimeCompare([]byte(pass), []byte(s.Token)) == 1
	}
	want := "Bearer " + s.Token
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) == 1
}

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "cannot encode reply: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// writeText writes a legacy plain-text body (errors, created job ids).
func writeText(w http.ResponseWriter, code int, msg string) {
	w.WriteHeader(code)
	io.WriteString(w, msg)
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := s.MaxBodyBytes
	if limit <= 0 {
		limit = 1 << 20
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

// parseJobID validates and canonicalises a job id from the path.
func parseJobID(s string) (string, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request) {
	// The legacy checks the snaplink gate before reading the body.
	if s.SnaplinkCleanupRequired != nil && s.SnaplinkCleanupRequired() {
		writeText(w, http.StatusInternalServerError, "Snaplink Cleanup Required")
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		writeText(w, http.StatusRequestEntityTooLarge, "cannot read request: "+err.Error())
		return
	}
	var req CreateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeText(w, http.StatusUnprocessableEntity, "Could not parse job request: "+err.Error())
		return
	}
	switch {
	case req.Action != "evacuate":
		writeText(w, http.StatusUnprocessableEntity, fmt.Sprintf("Could not parse job request: unknown action %q (only \"evacuate\")", req.Action))
		return
	case req.Params == nil || strings.TrimSpace(req.Params.FromShark) == "":
		writeText(w, http.StatusUnprocessableEntity, "Could not parse job request: params.from_shark is required")
		return
	case req.Params.MaxObjects != nil && (*req.Params.MaxObjects < 0 || *req.Params.MaxObjects > 1<<32-1):
		writeText(w, http.StatusUnprocessableEntity, "Could not parse job request: params.max_objects must be in 0..4294967295")
		return
	}
	s.Metrics.Request("evacuate")
	opts := s.Engine.Defaults()
	if s.JobOptions != nil {
		opts = s.JobOptions()
	}
	if len(req.Params.Options) > 0 && string(req.Params.Options) != "null" {
		if err := opts.MergeJSON(req.Params.Options, "params.options."); err != nil {
			writeText(w, http.StatusUnprocessableEntity, "Could not parse job request: "+err.Error())
			return
		}
	}
	if req.Params.MaxObjects != nil {
		opts.MaxObjects = int(*req.Params.MaxObjects) // 0 (or null) is unlimited, as in the legacy
	}
	opts.DryRun = opts.DryRun || req.Params.DryRun
	shark := s.qualify(strings.TrimSpace(req.Params.FromShark))
	j, err := s.Engine.CreateJob(r.Context(), shark, opts)
	if err != nil {
		code := http.StatusInternalServerError
		var unknown *evacuate.UnknownSharkError
		switch {
		case errors.Is(err, evacuate.ErrSharkBusy):
			code = http.StatusConflict
		case errors.Is(err, evacuate.ErrInvalidOptions), errors.As(err, &unknown):
			code = http.StatusUnprocessableEntity
		case errors.Is(err, evacuate.ErrEngineClosed), errors.Is(err, evacuate.ErrSharkLookup):
			code = http.StatusServiceUnavailable
		}
		s.log().Error("cannot create job", "shark", shark, "err", err)
		writeText(w, code, "Could not create job: "+busyHint(err))
		return
	}
	s.log().Info("job created", "job", j.ID, "shark", shark, "dry_run", opts.DryRun)
	writeText(w, http.StatusOK, j.ID+"\n")
}

// health answers 200 {"status":"ok"} while the job store works, and 503
// {"status":"error","error":"..."} saying what is wrong with it otherwise
// (Engine.Health): a manager that cannot record progress is not healthy,
// even though it answers.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if err := s.Engine.Health(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, Health{Status: "error", Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, Health{Status: "ok"})
}

// qualify appends the domain to a shark given in short form: "1.stor" or
// "1". A name with more dots is taken as whole, so that a misspelt one
// ("2.stor.demo.exmaple") is refused as it was given instead of growing
// the domain; the legacy appended the domain to any name not containing it.
func (s *Server) qualify(shark string) string {
	if s.Domain == "" || strings.Contains(shark, s.Domain) || strings.Count(shark, ".") > 1 {
		return shark
	}
	return shark + "." + s.Domain
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	s.Metrics.Request("list_jobs")
	jobs, err := s.Engine.Jobs(r.Context())
	if err != nil {
		writeText(w, http.StatusInternalServerError, "Error Getting Job List: "+err.Error())
		return
	}
	out := make([]Job, len(jobs))
	for i, j := range jobs {
		out[i] = newJob(j)
		out[i].Stopping = !j.State.Terminal() && s.Engine.Stopping(j.ID)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	s.Metrics.Request("get_job")
	if st, ok := s.pathJobStatus(w, r); ok {
		writeJSON(w, http.StatusOK, newJobStatus(st))
	}
}

// pathJobStatus returns the status of the job the request's path names,
// or writes the error the legacy wrote (a bad UUID, an unknown job, a
// store that fails) and returns false.
func (s *Server) pathJobStatus(w http.ResponseWriter, r *http.Request) (evacuate.Status, bool) {
	id, err := parseJobID(r.PathValue("uuid"))
	if err != nil {
		writeText(w, http.StatusBadRequest, "Invalid UUID: "+err.Error())
		return evacuate.Status{}, false
	}
	st, err := s.Engine.JobStatus(r.Context(), id)
	if errors.Is(err, evacuate.ErrJobNotFound) {
		writeText(w, http.StatusNotFound, "Could not find job UUID: "+id)
		return evacuate.Status{}, false
	}
	if err != nil {
		writeText(w, http.StatusInternalServerError, "Error Getting Job Status: "+err.Error())
		return evacuate.Status{}, false
	}
	return st, true
}

func (s *Server) updateJob(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("uuid")
	id, err := parseJobID(raw)
	if err != nil {
		writeText(w, http.StatusBadRequest, fmt.Sprintf("Invalid UUID %q: %v", raw, err))
		return
	}
	j, err := s.Engine.Job(r.Context(), id)
	if errors.Is(err, evacuate.ErrJobNotFound) {
		writeText(w, http.StatusBadRequest, "Could not find job "+id)
		return
	}
	if err != nil {
		writeText(w, http.StatusInternalServerError, err.Error())
		return
	}
	if (j.State != rebalancer.JobRunning && j.State != rebalancer.JobPaused) || !s.Engine.Running(id) {
		writeText(w, http.StatusBadRequest, "Attempt to update job that is not running")
		return
	}
	// The legacy checks this before it reads the body: a static job has
	// no update channel.
	if j.Options.StaticMetadataThreads {
		writeText(w, http.StatusBadRequest, staticThreadsMessage(id))
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		writeText(w, http.StatusRequestEntityTooLarge, "cannot read request: "+err.Error())
		return
	}
	var msg UpdateRequest
	if err := json.Unmarshal(body, &msg); err != nil || msg.Action != "set_metadata_threads" || msg.Params == nil {
		reason := "expected {\"action\":\"set_metadata_threads\",\"params\":N}"
		if err != nil {
			reason = err.Error()
		}
		writeText(w, http.StatusUnprocessableEntity, "Could not parse Evacuate Update Message: "+reason)
		return
	}
	switch n := *msg.Params; {
	case n < 1:
		writeText(w, http.StatusBadRequest, "Cannot set metadata update threads below 1")
		return
	case n > evacuate.MaxMetadataThreads:
		writeText(w, http.StatusBadRequest, fmt.Sprintf("Cannot set metadata update threads above %d", evacuate.MaxMetadataThreads))
		return
	}
	if err := s.Engine.SetMetadataThreads(r.Context(), id, int(*msg.Params)); err != nil {
		switch {
		case errors.Is(err, evacuate.ErrJobNotRunning):
			writeText(w, http.StatusBadRequest, "Attempt to update job that is not running")
		case errors.Is(err, evacuate.ErrStaticThreads):
			writeText(w, http.StatusBadRequest, staticThreadsMessage(id))
		default:
			writeText(w, http.StatusInternalServerError, "could not communicate with job: "+err.Error())
		}
		return
	}
	w.WriteHeader(http.StatusOK)
}

// staticThreadsMessage is the legacy's answer to PUT on a job whose
// metadata threads are static.
func staticThreadsMessage(id string) string {
	return fmt.Sprintf("Job (%s) does not support dynamic configuration updates", id)
}

func (s *Server) retryJob(w http.ResponseWriter, r *http.Request) {
	id, err := parseJobID(r.PathValue("uuid"))
	if err != nil {
		writeText(w, http.StatusBadRequest, "Invalid UUID: "+err.Error())
		return
	}
	var opts *evacuate.Options
	if s.JobOptions != nil {
		o := s.JobOptions()
		opts = &o
	}
	j, err := s.Engine.RetryJob(r.Context(), id, opts)
	switch {
	case errors.Is(err, evacuate.ErrJobNotFound):
		writeText(w, http.StatusNotFound, "Could not find job with UUID "+id)
	case errors.Is(err, evacuate.ErrStillRunning):
		writeText(w, http.StatusConflict, "Could not retry job: "+err.Error())
	case errors.Is(err, evacuate.ErrSharkBusy):
		writeText(w, http.StatusConflict, "Could not retry job: "+busyHint(err))
	case errors.Is(err, evacuate.ErrRetryDryRun):
		shark := "<shark>"
		if old, err := s.Engine.Job(r.Context(), id); err == nil {
			shark = old.From.MantaStorageID
		}
		writeText(w, http.StatusConflict, fmt.Sprintf("Could not retry job %s: it is a dry run, and a retry would move its objects. "+
			"Plan again: rebalancer-adm job create evacuate --shark %s --dry-run; or evacuate: rebalancer-adm job create evacuate --shark %s",
			id, shark, shark))
	case errors.Is(err, evacuate.ErrInvalidOptions):
		writeText(w, http.StatusUnprocessableEntity, "Could not retry job: "+err.Error())
	case errors.Is(err, evacuate.ErrEngineClosed):
		writeText(w, http.StatusServiceUnavailable, "Could not retry job: "+err.Error())
	case err != nil:
		writeText(w, http.StatusInternalServerError, "Could not retry job: "+err.Error())
	default:
		s.log().Info("retry job created", "job", j.ID, "retry_of", id)
		writeText(w, http.StatusOK, j.ID+"\n")
	}
}

func (s *Server) control(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := parseJobID(r.PathValue("uuid"))
		if err != nil {
			writeText(w, http.StatusBadRequest, "Invalid UUID: "+err.Error())
			return
		}
		if _, err := s.Engine.Job(r.Context(), id); errors.Is(err, evacuate.ErrJobNotFound) {
			writeText(w, http.StatusNotFound, "Could not find job "+id)
			return
		}
		switch action {
		case "stop":
			err = s.Engine.StopJob(r.Context(), id)
		case "pause":
			err = s.Engine.PauseJob(r.Context(), id)
		case "resume":
			err = s.Engine.ResumeJob(r.Context(), id)
		}
		var se *evacuate.StateError
		switch {
		case errors.Is(err, evacuate.ErrJobNotRunning):
			writeText(w, http.StatusConflict, fmt.Sprintf("Cannot %s job %s: it is not running", action, id))
		case errors.As(err, &se):
			writeText(w, http.StatusConflict, fmt.Sprintf("Cannot %s job %s: it %s", action, id, se.Why))
		case err != nil:
			writeText(w, http.StatusConflict, fmt.Sprintf("Cannot %s job %s: %v", action, id, err))
		default:
			s.log().Info("job control", "job", id, "action", action)
			w.WriteHeader(http.StatusOK)
		}
	}
}

func (s *Server) jobObjects(w http.ResponseWriter, r *http.Request) {
	id, err := parseJobID(r.PathValue("uuid"))
	if err != nil {
		writeText(w, http.StatusBadRequest, "Invalid UUID: "+err.Error())
		return
	}
	q := r.URL.Query()
	status, err := rebalancer.ParseObjectStatus(q.Get("status"))
	if err != nil {
		writeText(w, http.StatusBadRequest, "status must be one of unprocessed, assigned, skipped, error, post_processing, complete")
		return
	}
	limit, after := 100, int64(0)
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 10000 {
			writeText(w, http.StatusBadRequest, "limit must be in 1..10000")
			return
		}
	}
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil {
			writeText(w, http.StatusBadRequest, "after must be a sequence number")
			return
		}
	}
	if _, err := s.Engine.Job(r.Context(), id); errors.Is(err, evacuate.ErrJobNotFound) {
		writeText(w, http.StatusNotFound, "Could not find job "+id)
		return
	}
	objs, err := s.Engine.Objects(r.Context(), id, status, after, limit)
	if err != nil {
		writeText(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]Object, len(objs))
	for i, o := range objs {
		out[i] = Object{ID: o.ID, Key: o.Key, Shard: o.Shard, Status: o.Status.String(), SkippedReason: o.SkipReason, Error: o.Error,
			Detail: o.Detail, SourceShark: o.Source, DestShark: o.Dest.MantaStorageID, AssignmentID: o.AssignmentID, Attempts: o.Attempts,
			ContentLength: o.ContentLength, Seq: o.Seq}
	}
	writeJSON(w, http.StatusOK, out)
}
