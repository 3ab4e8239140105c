package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

// Errors the client wraps, beyond the rebalancer sentinels.
var (
	// ErrUnreachable is wrapped by every error of a request that got no
	// reply from the agent (connection refused, timeout, reset).
	ErrUnreachable = errors.New("agent unreachable")
	// ErrNotComplete is wrapped by a DELETE of an assignment that is still
	// scheduled or running.
	ErrNotComplete = errors.New("assignment not complete")
)

// StatusError is an agent reply with a status the client did not expect.
// It wraps the sentinel matching the status, if any (rebalancer.ErrAgentBusy
// for 503, rebalancer.ErrAssignmentExists for 409,
// rebalancer.ErrAssignmentNotFound for 404, ErrNotComplete for a 403 on
// DELETE), so callers can use errors.Is as well as read the code.
type StatusError struct {
	Op   string // "post", "get", "delete" or "list"
	URL  string
	Code int
	Body string // the start of the reply body, for the operator
	Err  error
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("agent %s %s: %d %s", e.Op, e.URL, e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

func (e *StatusError) Unwrap() error { return e.Err }

// StatusCode returns the HTTP status of the reply.
func (e *StatusError) StatusCode() int { return e.Code }

// DefaultAgentPort is where managers find agents: the legacy manager
// hard-codes it.
const DefaultAgentPort = 7878

// DefaultBaseURL is the legacy manager's rule for finding the agent of a
// destination shark: http://{host}:7878, host being the storage id
// without any port.
func DefaultBaseURL(dest rebalancer.StorageNode) string {
	return PortBaseURL(DefaultAgentPort)(dest)
}

// PortBaseURL returns a Client.BaseURL that finds agents on port instead
// of 7878, for fleets that run them elsewhere.
func PortBaseURL(port int) func(rebalancer.StorageNode) string {
	return func(dest rebalancer.StorageNode) string {
		host := dest.MantaStorageID
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		return "http://" + net.JoinHostPort(host, strconv.Itoa(port))
	}
}

// NewHTTPClient returns an HTTP client suited to talking to agents: every
// phase of a request has a timeout, since http.DefaultClient has none.
func NewHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: 5 * time.Minute,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 2 * time.Minute, // an agent saves a large assignment before it answers
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		},
	}
}

// Client talks to rebalancer agents (this package's Server or a legacy
// agent) over HTTP. It implements rebalancer.Agent. The zero value is
// ready to use; set fields before the first call. A Client never retries a
// request: the caller owns the retry policy.
type Client struct {
	// HTTPClient makes the requests; nil means one from NewHTTPClient.
	HTTPClient *http.Client
	// BaseURL returns the base URL (no trailing slash) of the agent on
	// dest; nil means DefaultBaseURL.
	BaseURL func(dest rebalancer.StorageNode) string
	// Token, if set, is sent as a bearer token.
	Token string
	// MaxResponseBytes caps the size of a reply; default 256 MiB (the
	// failed-task list of a large assignment can be big).
	MaxResponseBytes int64

	once sync.Once
	hc   *http.Client
}

var _ rebalancer.Agent = (*Client)(nil)

func (c *Client) httpClient() *http.Client {
	c.once.Do(func() {
		c.hc = c.HTTPClient
		if c.hc == nil {
			c.hc = NewHTTPClient()
		}
	})
	return c.hc
}

func (c *Client) base(dest rebalancer.StorageNode) string {
	if c.BaseURL != nil {
		return strings.TrimSuffix(c.BaseURL(dest), "/")
	}
	return DefaultBaseURL(dest)
}

func (c *Client) maxResponse() int64 {
	if c.MaxResponseBytes > 0 {
		return c.MaxResponseBytes
	}
	return 256 << 20
}

// do sends a request and returns the response, or an error wrapping
// ErrUnreachable.
func (c *Client) do(ctx context.Context, op, method, u string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("agent %s %s: %w", op, u, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent %s %s: %w: %w", op, u, ErrUnreachable, err)
	}
	return resp, nil
}

// statusError reads the start of an unexpected reply and closes it.
func statusError(op, u string, resp *http.Response, sentinel error) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	return &StatusError{Op: op, URL: u, Code: resp.StatusCode, Body: strings.TrimSpace(string(b)), Err: sentinel}
}

// drain reads what is left of a small reply so that its connection can be
// reused, and closes it.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// PostAssignment posts an assignment to the agent on dest. A full agent
// (503) gives an error wrapping rebalancer.ErrAgentBusy; an agent that
// already knows the id (409), rebalancer.ErrAssignmentExists; any other
// unexpected status, a *StatusError.
func (c *Client) PostAssignment(ctx context.Context, dest rebalancer.StorageNode, a rebalancer.AssignmentPayload) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode assignment %s: %w", a.ID, err)
	}
	u := c.base(dest) + "/assignments"
	resp, err := c.do(ctx, "post", http.MethodPost, u, body)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		drain(resp)
		return nil
	case resp.StatusCode == http.StatusServiceUnavailable:
		return statusError("post", u, resp, rebalancer.ErrAgentBusy)
	case resp.StatusCode == http.StatusConflict:
		return statusError("post", u, resp, rebalancer.ErrAssignmentExists)
	}
	return statusError("post", u, resp, nil)
}

// GetAssignment reads an assignment's progress from the agent on dest. An
// unknown id gives an error wrapping rebalancer.ErrAssignmentNotFound.
func (c *Client) GetAssignment(ctx context.Context, dest rebalancer.StorageNode, id string) (rebalancer.Assignment, error) {
	var a rebalancer.Assignment
	u := c.base(dest) + "/assignments/" + url.PathEscape(id)
	resp, err := c.do(ctx, "get", http.MethodGet, u, nil)
	if err != nil {
		return a, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return a, statusError("get", u, resp, rebalancer.ErrAssignmentNotFound)
	default:
		return a, statusError("get", u, resp, nil)
	}
	defer resp.Body.Close()
	if err := decodeReply(resp, c.maxResponse(), &a); err != nil {
		return a, fmt.Errorf("agent get %s: %w", u, err)
	}
	return a, nil
}

// DeleteAssignment asks the agent on dest to forget a completed
// assignment. An unknown id gives an error wrapping
// rebalancer.ErrAssignmentNotFound; one still running, ErrNotComplete.
func (c *Client) DeleteAssignment(ctx context.Context, dest rebalancer.StorageNode, id string) error {
	u := c.base(dest) + "/assignments/" + url.PathEscape(id)
	resp, err := c.do(ctx, "delete", http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300: // 200 here and in the legacy agent, 204 in the Dropshot port
		drain(resp)
		return nil
	case resp.StatusCode == http.StatusNotFound:
		return statusError("delete", u, resp, rebalancer.ErrAssignmentNotFound)
	case resp.StatusCode == http.StatusForbidden:
		return statusError("delete", u, resp, ErrNotComplete)
	}
	return statusError("delete", u, resp, nil)
}

// ListAssignments reads one page of the assignments held by the agent on
// dest (a route legacy agents do not have). after is the Next of the
// previous page, or "" for the first; limit 0 means the agent's default.
func (c *Client) ListAssignments(ctx context.Context, dest rebalancer.StorageNode, after string, limit int) (List, error) {
	var l List
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	u := c.base(dest) + "/assignments"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	resp, err := c.do(ctx, "list", http.MethodGet, u, nil)
	if err != nil {
		return l, err
	}
	if resp.StatusCode != http.StatusOK {
		return l, statusError("list", u, resp, nil)
	}
	defer resp.Body.Close()
	if err := decodeReply(resp, c.maxResponse(), &l); err != nil {
		return l, fmt.Errorf("agent list %s: %w", u, err)
	}
	return l, nil
}

func decodeReply(resp *http.Response, limit int64, v any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("%w: read reply: %w", ErrUnreachable, err)
	}
	if int64(len(b)) > limit {
		return fmt.Errorf("reply larger than %d bytes", limit)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	return nil
}
