package jobapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer/evacuate"
)

// The shark routes: the states of the fleet's sharks, an operator's in
// and out, and the check that tells whether a shark is safe to retire.
//
//	GET  /sharks                  every shark known, with its state
//	GET  /sharks/{shark}          one shark
//	POST /sharks/{shark}/out      {"reason":"..."}: take it out of service (drained)
//	POST /sharks/{shark}/in       {"reason":"..."}: put it back in service
//	GET  /sharks/{shark}/check    is it safe to retire? (lines of JSON: progress, then the result)

// Shark is a shark's lifecycle state (GET /sharks, GET /sharks/{shark},
// and the reply of in and out).
type Shark struct {
	MantaStorageID string `json:"manta_storage_id"`
	Datacenter     string `json:"datacenter,omitempty"`
	// State is "in_service", "draining" (a job evacuates it, or one did
	// and did not complete) or "drained" (its evacuation completed, or an
	// operator took it out). Only in service may it take copies.
	State string `json:"state"`
	// Blocklisted: the configuration's blocklist_sharks names it, which
	// keeps it out of every placement whatever its state.
	Blocklisted bool `json:"blocklisted,omitempty"`
	// Listed: storinfo or the storage records list it.
	Listed bool `json:"listed"`
	// Job is the job that set the state, when a job did; ChangedBy is
	// "job" or "operator"; Reason says why; Since is when.
	Job       string     `json:"job,omitempty"`
	ChangedBy string     `json:"changed_by,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	Since     *time.Time `json:"since,omitempty"`
	// RunningJob is the job evacuating it now.
	RunningJob string `json:"running_job,omitempty"`
}

// SharkRequest is the optional body of POST /sharks/{shark}/out and /in.
type SharkRequest struct {
	Reason string `json:"reason,omitempty"`
}

// SharkCheck is the result of GET /sharks/{shark}/check.
type SharkCheck struct {
	Shark Shark `json:"shark"`
	// Safe: no metadata names the shark, no evacuation of it runs, and it
	// is out of service. Only then may it be retired.
	Safe bool `json:"safe"`
	// Objects are the metadata records naming the shark that the scan
	// found (one per key), broken down in Groups, largest first.
	Objects int64        `json:"objects"`
	Groups  []CheckGroup `json:"groups"`
	// RunningJobs are the jobs on the shark that have not ended.
	RunningJobs []Job `json:"running_jobs"`
	// LatestJob is the latest evacuation of the shark (not a dry run).
	LatestJob *Job `json:"latest_job,omitempty"`
	// Next says what to do next, a step a line, with the commands.
	Next []string `json:"next"`
	// V2NotScanned, when set, says why the check did not look for buckets
	// (v2) objects: Safe then speaks for v1 objects only.
	V2NotScanned string    `json:"v2_not_scanned,omitempty"`
	Started      time.Time `json:"started"`
	ScanSeconds  float64   `json:"scan_seconds"`
}

// CheckGroup is objects of a check that the latest jobs recorded alike.
type CheckGroup struct {
	// Kind is "skipped" or "error" (Reason is the skip reason or error
	// kind), "not_processed" (Reason is the status a job left it in),
	// "moved" (a job moved the object, yet this key names the shark),
	// "dry_run" (only a dry run found it), "excluded" (Reason is the key
	// prefix the latest evacuation left out) or "not_found" (no job found
	// it: written since the latest evacuation's scan, or never evacuated).
	Kind   string `json:"kind"`
	Reason string `json:"reason,omitempty"`
	// Job is the job that recorded them.
	Job     string `json:"job,omitempty"`
	Objects int64  `json:"objects"`
	// Sources counts them by the shark the job last read their copy from.
	Sources  map[string]int64 `json:"sources,omitempty"`
	Examples []CheckExample   `json:"examples"`
}

// CheckExample is one object of a CheckGroup, with the cause and source
// the job recorded.
type CheckExample struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Shard  int    `json:"shard"`
	Detail string `json:"detail,omitempty"`
	Source string `json:"source,omitempty"`
}

// CheckProgress is how far a check's scan is.
type CheckProgress struct {
	Objects        int64   `json:"objects"` // records naming the shark found so far
	ElapsedSeconds float64 `json:"elapsed_seconds"`
}

// CheckLine is one line of the reply of GET /sharks/{shark}/check: a
// Progress while the scan runs, then the Result, or an Error if the scan
// failed.
type CheckLine struct {
	Progress *CheckProgress `json:"progress,omitempty"`
	Result   *SharkCheck    `json:"result,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// SharksPath is the path of the shark list.
const SharksPath = "/sharks"

// SharkPath returns the path of a shark, or of one of its sub-resources
// ("check", "in", "out").
func SharkPath(shark string, rest ...string) string {
	p := SharksPath + "/" + url.PathEscape(shark)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

func newShark(s evacuate.SharkStatus) Shark {
	out := Shark{MantaStorageID: s.Shark, Datacenter: s.Datacenter, State: string(s.State), Blocklisted: s.Blocklisted,
		Listed: s.Listed, Job: s.Job, Reason: s.Reason, RunningJob: s.Running, Since: timePtr(s.Since)}
	switch {
	case s.ByOperator:
		out.ChangedBy = "operator"
	case s.Job != "":
		out.ChangedBy = "job"
	}
	return out
}

func newJob(j evacuate.JobRecord) Job {
	return Job{ID: j.ID, Action: j.Action, State: j.State, FromShark: j.From, RetryOf: j.RetryOf, DryRun: j.Options.DryRun,
		Created: j.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z")}
}

// sharkError writes the reply of a shark route that failed.
func (s *Server) sharkError(w http.ResponseWriter, err error) {
	var unknown *evacuate.UnknownSharkError
	switch {
	case errors.As(err, &unknown):
		writeText(w, http.StatusNotFound, err.Error())
	case errors.Is(err, evacuate.ErrSharkBusy):
		writeText(w, http.StatusConflict, err.Error())
	case errors.Is(err, evacuate.ErrChecksBusy), errors.Is(err, evacuate.ErrSharkLookup):
		w.Header().Set("Retry-After", "60")
		writeText(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeText(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) listSharks(w http.ResponseWriter, r *http.Request) {
	all, err := s.Engine.Sharks(r.Context())
	if err != nil {
		s.sharkError(w, err)
		return
	}
	out := make([]Shark, len(all))
	for i, sh := range all {
		out[i] = newShark(sh)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getShark(w http.ResponseWriter, r *http.Request) {
	st, err := s.Engine.SharkStatus(r.Context(), s.qualify(r.PathValue("shark")))
	if err != nil {
		s.sharkError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, newShark(st))
}

// setShark serves POST /sharks/{shark}/in and /out.
func (s *Server) setShark(state evacuate.SharkState) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := s.readBody(w, r)
		if err != nil {
			writeText(w, http.StatusRequestEntityTooLarge, "cannot read request: "+err.Error())
			return
		}
		var req SharkRequest
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := json.Unmarshal(body, &req); err != nil {
				writeText(w, http.StatusUnprocessableEntity, `Could not parse shark request: expected {"reason":"..."}: `+err.Error())
				return
			}
		}
		shark := s.qualify(r.PathValue("shark"))
		st, err := s.Engine.SetSharkState(r.Context(), shark, state, req.Reason)
		if err != nil {
			s.sharkError(w, err)
			return
		}
		s.log().Info("shark state set", "shark", shark, "state", string(st.State), "reason", req.Reason)
		writeJSON(w, http.StatusOK, newShark(st))
	}
}

// checkShark serves GET /sharks/{shark}/check: lines of JSON, a progress
// line every ?progress= (default 2s) while the scan runs, then the result.
// A check that cannot start (unknown shark, too many checks) is refused
// with a status code; once lines have gone out, a failure is a last line
// with an error.
func (s *Server) checkShark(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := evacuate.CheckOptions{Examples: 5, ProgressInterval: 2 * time.Second}
	if v := q.Get("examples"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeText(w, http.StatusBadRequest, "examples must be in 1..100")
			return
		}
		opts.Examples = n
	}
	if v := q.Get("progress"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond || d > time.Minute {
			writeText(w, http.StatusBadRequest, "progress must be a duration in 100ms..1m, such as 5s")
			return
		}
		opts.ProgressInterval = d
	}
	shark := s.qualify(r.PathValue("shark"))
	// A scan takes as long as a discovery: far longer than a server's
	// timeouts would let the reply run (a write timeout cuts it off).
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})

	var mu sync.Mutex
	started := false
	write := func(line CheckLine) {
		mu.Lock()
		defer mu.Unlock()
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
		b, _ := json.Marshal(line)
		w.Write(append(b, '\n'))
		rc.Flush()
	}
	opts.Progress = func(p evacuate.CheckProgress) {
		write(CheckLine{Progress: &CheckProgress{Objects: p.Objects, ElapsedSeconds: round(p.Elapsed.Seconds())}})
	}
	s.log().Info("shark check started", "shark", shark)
	res, err := s.Engine.CheckShark(r.Context(), shark, opts)
	if err != nil {
		s.log().Warn("shark check failed", "shark", shark, "err", err)
		mu.Lock()
		early := !started
		mu.Unlock()
		if early {
			s.sharkError(w, err)
			return
		}
		write(CheckLine{Error: err.Error()})
		return
	}
	out := newSharkCheck(res)
	s.log().Info("shark check done", "shark", shark, "safe", out.Safe, "objects", out.Objects, "scan_ms", res.Finished.Sub(res.Started).Milliseconds())
	write(CheckLine{Result: &out})
}

func round(secs float64) float64 { return float64(int64(secs*1000)) / 1000 }

func newSharkCheck(c evacuate.SharkCheck) SharkCheck {
	out := SharkCheck{Shark: newShark(c.Shark), Safe: c.Safe, Objects: c.Objects, Groups: []CheckGroup{}, RunningJobs: []Job{},
		Started: c.Started.UTC(), ScanSeconds: round(c.Finished.Sub(c.Started).Seconds())}
	for _, g := range c.Groups {
		cg := CheckGroup{Kind: g.Kind, Reason: g.Reason, Job: g.Job, Objects: g.Objects, Sources: g.Sources, Examples: []CheckExample{}}
		for _, ex := range g.Examples {
			cg.Examples = append(cg.Examples, CheckExample(ex))
		}
		out.Groups = append(out.Groups, cg)
	}
	for _, j := range c.Running {
		out.RunningJobs = append(out.RunningJobs, newJob(j))
	}
	if c.Latest != nil {
		j := newJob(*c.Latest)
		out.LatestJob = &j
	}
	out.Next = checkAdvice(c)
	out.V2NotScanned = c.V2NotScanned
	return out
}

// Sharks lists every shark the manager knows, with its state.
func (c *Client) Sharks(ctx context.Context) ([]Shark, error) {
	var out []Shark
	if err := c.getJSON(ctx, SharksPath, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Shark reads one shark's state.
func (c *Client) Shark(ctx context.Context, shark string) (*Shark, error) {
	var out Shark
	if err := c.getJSON(ctx, SharkPath(shark), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SharkOut takes a shark out of service (drained): no job places copies
// on it until SharkIn.
func (c *Client) SharkOut(ctx context.Context, shark, reason string) (*Shark, error) {
	return c.setShark(ctx, shark, "out", reason)
}

// SharkIn puts a shark back in service.
func (c *Client) SharkIn(ctx context.Context, shark, reason string) (*Shark, error) {
	return c.setShark(ctx, shark, "in", reason)
}

func (c *Client) setShark(ctx context.Context, shark, action, reason string) (*Shark, error) {
	path := SharkPath(shark, action)
	b, err := c.do(ctx, http.MethodPost, path, SharkRequest{Reason: reason})
	if err != nil {
		return nil, err
	}
	var out Shark
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("POST %s: cannot read the reply: %w", path, err)
	}
	return &out, nil
}

// CheckQuery tunes CheckShark.
type CheckQuery struct {
	// Examples is how many objects each group lists (0: the manager's
	// default, 5).
	Examples int
	// Progress, when set, receives the scan's progress lines, every
	// ProgressInterval (0: the manager's default, 2s).
	Progress         func(CheckProgress)
	ProgressInterval time.Duration
}

// CheckPath returns the path of a shark's check.
func CheckPath(shark string, q CheckQuery) string {
	v := url.Values{}
	if q.Examples > 0 {
		v.Set("examples", strconv.Itoa(q.Examples))
	}
	if q.ProgressInterval > 0 {
		v.Set("progress", q.ProgressInterval.String())
	}
	p := SharkPath(shark, "check")
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	return p
}

// CheckShark asks whether a shark is safe to retire. It returns when the
// manager's scan ends, which takes as long as a job's discovery; ctx (and
// not the client's Timeout, which would cut most scans short) bounds it.
func (c *Client) CheckShark(ctx context.Context, shark string, q CheckQuery) (*SharkCheck, error) {
	path := CheckPath(shark, q)
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxReply)
	for sc.Scan() {
		var line CheckLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("GET %s: cannot read the reply: %w", path, err)
		}
		switch {
		case line.Error != "":
			return nil, fmt.Errorf("GET %s: the check failed: %s", path, line.Error)
		case line.Result != nil:
			return line.Result, nil
		case line.Progress != nil && q.Progress != nil:
			q.Progress(*line.Progress)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("GET %s: reading the reply: %w", path, err)
	}
	return nil, fmt.Errorf("GET %s: the reply ended before the check's result", path)
}
