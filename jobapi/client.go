package jobapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

// Client talks to a rebalancer manager's job API: this package's Server,
// or a legacy manager, whose replies decode with the fields it does not
// send left zero. Build it with NewClient and set its fields before the
// first call. A Client never retries a request.
type Client struct {
	// Token, when set, is sent as "Authorization: Bearer <Token>": the
	// manager's api_token.
	Token string
	// HTTPClient makes the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Timeout bounds each request, reading its reply included (0: no
	// bound). A large job's status can take minutes on a legacy manager.
	Timeout time.Duration
	// UserAgent is sent with every request (default "rebalancer-jobapi").
	UserAgent string

	base string // scheme://host[/path], without a trailing slash
}

// maxReply bounds a reply body: the object lists of a page of 10,000 are
// far below it.
const maxReply = 256 << 20

// NewClient returns a client of the manager at base: an http:// or
// https:// URL, or a host[:port], taken as http://.
func NewClient(base string) (*Client, error) {
	s := base
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("manager URL %q is not an http(s) URL", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u.String()}, nil
}

// Error is a reply of the manager with a status other than 2xx. Body is
// the manager's message, which says what was wrong.
type Error struct {
	Method string
	Path   string
	Code   int
	Body   string
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Body)
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, http.StatusText(e.Code), msg)
}

// StatusCode returns the HTTP status of the reply.
func (e *Error) StatusCode() int { return e.Code }

// ErrMetricsPort is the error of a request answered with Prometheus
// metrics: the client was given the manager's metrics port (or an
// agent's), which answers any path with them.
var ErrMetricsPort = errors.New("the reply is Prometheus metrics, not the job API's: this is a metrics port " +
	"(metrics_port, 8878), not the manager's job API (listen_port, 80 by default)")

// JobsPath is the path of the job list.
const JobsPath = "/jobs"

// JobPath returns the path of a job, or of one of its sub-resources
// ("retry", "objects").
func JobPath(id string, rest ...string) string {
	p := JobsPath + "/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// ObjectQuery selects a page of a job's objects.
type ObjectQuery struct {
	Status rebalancer.ObjectStatus
	// Limit is the page's size, 1..10000 (0: the manager's default, 100).
	Limit int
	// After is the Seq of the last object of the previous page (0: the
	// first page).
	After int64
}

// ObjectsPath returns the path of a page of a job's objects.
func ObjectsPath(id string, q ObjectQuery) string {
	v := url.Values{"status": {q.Status.String()}}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	return JobPath(id, "objects") + "?" + v.Encode()
}

// Jobs lists every job, oldest first.
func (c *Client) Jobs(ctx context.Context) ([]Job, error) {
	var jobs []Job
	if err := c.getJSON(ctx, JobsPath, &jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// JobStatus reads a job's status.
func (c *Client) JobStatus(ctx context.Context, id string) (*JobStatus, error) {
	b, err := c.Get(ctx, JobPath(id))
	if err != nil {
		return nil, err
	}
	return ParseJobStatus(b)
}

// Objects reads a page of a job's objects.
func (c *Client) Objects(ctx context.Context, id string, q ObjectQuery) ([]Object, error) {
	var objs []Object
	if err := c.getJSON(ctx, ObjectsPath(id, q), &objs); err != nil {
		return nil, err
	}
	return objs, nil
}

// Health returns nil when the manager can record progress, and otherwise
// an *Error whose Body says what is wrong with its job store.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.Get(ctx, "/health")
	return err
}

// CreateJob creates an evacuation job, which starts at once, and returns
// its id.
func (c *Client) CreateJob(ctx context.Context, p CreateParams) (string, error) {
	b, err := c.do(ctx, http.MethodPost, JobsPath, CreateRequest{Action: "evacuate", Params: &p})
	if err != nil {
		return "", err
	}
	return createdID(b), nil
}

// RetryJob creates a job over the objects of job id that did not
// complete, which starts at once, and returns its id.
func (c *Client) RetryJob(ctx context.Context, id string) (string, error) {
	b, err := c.do(ctx, http.MethodPost, JobPath(id, "retry"), nil)
	if err != nil {
		return "", err
	}
	return createdID(b), nil
}

// SetMetadataThreads changes a running job's metadata update concurrency
// (1..250).
func (c *Client) SetMetadataThreads(ctx context.Context, id string, n int) error {
	n64 := int64(n)
	_, err := c.do(ctx, http.MethodPut, JobPath(id), UpdateRequest{Action: "set_metadata_threads", Params: &n64})
	return err
}

// StopJob stops a job once the copies in flight are done.
func (c *Client) StopJob(ctx context.Context, id string) error { return c.control(ctx, id, "stop") }

// PauseJob pauses a job: nothing new starts until ResumeJob.
func (c *Client) PauseJob(ctx context.Context, id string) error { return c.control(ctx, id, "pause") }

// ResumeJob resumes a paused job.
func (c *Client) ResumeJob(ctx context.Context, id string) error {
	return c.control(ctx, id, "resume")
}

func (c *Client) control(ctx context.Context, id, action string) error {
	_, err := c.do(ctx, http.MethodPost, JobPath(id, action), nil)
	return err
}

// Get returns the body of the reply to GET path as the manager sent it,
// for callers that pass the API's JSON on unchanged (rebalancer-adm
// --json), or an *Error for a reply outside 2xx.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, path, nil)
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	b, err := c.Get(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: cannot read the reply: %w", path, err)
	}
	return nil
}

// do sends a request with body, when not nil, encoded as JSON, and
// returns the reply body, or an *Error for a reply outside 2xx. Errors of
// requests that got no reply name the method and path; when ctx ends, they
// wrap its error.
func (c *Client) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the reply: %w", method, path, err)
	}
	if bytes.HasPrefix(b, []byte("# HELP ")) || bytes.HasPrefix(b, []byte("# TYPE ")) {
		// Prometheus text: the manager's metrics port, not its API.
		return nil, fmt.Errorf("%s %s: %w", method, path, ErrMetricsPort)
	}
	return b, nil
}

// send sends a request as do does and returns a 2xx reply, whose body the
// caller reads and closes, or an *Error for any other reply.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "rebalancer-jobapi"
	}
	req.Header.Set("User-Agent", ua)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The *url.Error's message would repeat the method and URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
		if err != nil {
			return nil, fmt.Errorf("%s %s: reading the reply: %w", method, path, err)
		}
		return nil, &Error{Method: method, Path: path, Code: resp.StatusCode, Body: string(b)}
	}
	return resp, nil
}

// createdID reads the body of create and retry: the new job's id and a
// newline, raw (the legacy) or JSON-quoted (what some ports send).
func createdID(b []byte) string {
	s := strings.TrimSpace(string(b))
	var quoted string
	if json.Unmarshal([]byte(s), &quoted) == nil {
		return quoted
	}
	return s
}
