package storinfo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Defaults of ClientConfig.
const (
	DefaultPageSize     = 100 // what the legacy rebalancer asks for
	MaxPageSize         = 500 // storinfo answers 400 above this
	DefaultTimeout      = 30 * time.Second
	DefaultRetryMax     = 3
	DefaultRetryWaitMin = 250 * time.Millisecond
	DefaultRetryWaitMax = 5 * time.Second
)

// maxBody bounds what is read from one response: a full page of 500 minnow
// records is well under a megabyte.
const maxBody = 32 << 20

// ErrNotFound is wrapped by Get's error when storinfo does not know the
// storage node.
var ErrNotFound = errors.New("storage node not found")

// StatusError is an answer from storinfo other than the one expected.
type StatusError struct {
	Method     string
	URL        string
	StatusCode int
	Message    string // the "message" of a restify error body, if any
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is makes a 404 match ErrNotFound.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// ClientConfig configures a Client. The zero value of every field but
// BaseURL and Domain (one of which is required) means its default.
type ClientConfig struct {
	// BaseURL is where storinfo listens, such as "http://storinfo.example.com".
	// When empty it is http://storinfo.{Domain}, as in the legacy.
	BaseURL string
	// Domain is the Manta domain (the manager's domain_name).
	Domain string
	// PageSize is the limit asked for per page: 1..500, default 100.
	PageSize int
	// FollowLink makes List fetch the next page from the Link header's
	// rel="next" target when the server sends one, instead of building the
	// next request from the last storage id received (the legacy way). Both
	// go to the same place on a real storinfo; following the header is for
	// servers behind a path-rewriting proxy that fixes up Link.
	FollowLink bool
	// Timeout bounds each HTTP attempt (default 30 s, the legacy reqwest
	// default). The caller's context bounds the whole call.
	Timeout time.Duration
	// RetryMax is how many times a request is retried after a transport
	// error, a 5xx or a 429 (default 3; negative means never).
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// retries (defaults 250 ms and 5 s).
	RetryWaitMin, RetryWaitMax time.Duration
	// HTTPClient is used when set. It is copied, not modified; Timeout
	// applies when its own Timeout is zero.
	HTTPClient *http.Client
	// Logger receives retry and failure messages (default: discarded).
	Logger *slog.Logger
}

// Client talks to storinfo, Manta's cached view of the minnow heartbeats of
// every storage node. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	pageSize int
	follow   bool
	http     *retryablehttp.Client
	log      *slog.Logger
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	raw := cfg.BaseURL
	if raw == "" {
		if cfg.Domain == "" {
			return nil, errors.New("storinfo: ClientConfig needs a BaseURL or a Domain")
		}
		raw = "http://storinfo." + cfg.Domain
	}
	base, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("storinfo: base URL %q: %w", raw, err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("storinfo: base URL %q must be http(s)://host[:port][/path]", raw)
	}
	if base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("storinfo: base URL %q must not carry a query or fragment", raw)
	}
	c := &Client{base: base, pageSize: cfg.PageSize, follow: cfg.FollowLink, log: cfg.Logger}
	switch {
	case c.pageSize == 0:
		c.pageSize = DefaultPageSize
	case c.pageSize < 1 || c.pageSize > MaxPageSize:
		return nil, fmt.Errorf("storinfo: page size %d is outside 1..%d", cfg.PageSize, MaxPageSize)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}

	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	} else {
		hc.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if hc.Timeout == 0 {
		hc.Timeout = timeout
	}
	rc := &retryablehttp.Client{
		HTTPClient:   &hc,
		RetryWaitMin: orDefault(cfg.RetryWaitMin, DefaultRetryWaitMin),
		RetryWaitMax: orDefault(cfg.RetryWaitMax, DefaultRetryWaitMax),
		RetryMax:     cfg.RetryMax,
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		Backoff:      retryablehttp.DefaultBackoff,
		// Hand the last response back when retries run out, so that the
		// error says which status storinfo kept answering.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		RequestLogHook: func(_ retryablehttp.Logger, r *http.Request, attempt int) {
			if attempt > 0 {
				c.log.Warn("retrying storinfo request", "url", r.URL.String(), "attempt", attempt)
			}
		},
	}
	switch {
	case rc.RetryMax == 0:
		rc.RetryMax = DefaultRetryMax
	case rc.RetryMax < 0:
		rc.RetryMax = 0
	}
	if rc.RetryWaitMax < rc.RetryWaitMin {
		rc.RetryWaitMax = rc.RetryWaitMin
	}
	c.http = rc
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// BaseURL returns the storinfo URL the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// CloseIdleConnections closes the connections kept open for reuse, for an
// owner that is done with the client.
func (c *Client) CloseIdleConnections() { c.http.HTTPClient.CloseIdleConnections() }

// List returns every storage node storinfo knows, paging through
// GET /storagenodes?limit=N&after_id=<last id> as the legacy rebalancer
// does: the first request sends an empty after_id, and each next one the
// last manta_storage_id received.
//
// A page is the last one when it is empty, or when it is shorter than the
// limit and carries no Link rel="next" header (the header is how storinfo
// says more remain). A full page without the header is followed by one more
// request, as the legacy does; a 404 on that request means the cursor is
// past the end, which storinfo answers when the node the cursor names
// vanished between two pages.
//
// Any other failure (a status other than 200 once retries are spent, a body
// that is not a JSON array of records, paging that does not advance) fails
// the whole List: a partial fleet would look like sharks had disappeared.
// Nodes are returned in storinfo's order, each once.
func (c *Client) List(ctx context.Context) ([]Node, error) {
	var (
		nodes  []Node
		seen   = map[string]bool{}
		cursor string
		next   = c.pageURL("")
	)
	for page := 1; ; page++ {
		batch, link, err := c.fetchPage(ctx, next)
		if err != nil {
			if cursor != "" && errors.Is(err, ErrNotFound) {
				return nodes, nil
			}
			return nil, fmt.Errorf("storinfo: list storage nodes: page %d (after %q): %w", page, cursor, err)
		}
		if len(batch) == 0 {
			return nodes, nil
		}
		added := 0
		for _, n := range batch {
			if !seen[n.MantaStorageID] {
				seen[n.MantaStorageID] = true
				nodes = append(nodes, n)
				added++
			}
		}
		if added == 0 {
			return nil, fmt.Errorf("storinfo: list storage nodes: page %d (after %q) repeats nodes already listed; paging is not advancing", page, cursor)
		}
		cursor = batch[len(batch)-1].MantaStorageID
		switch {
		case link != nil && c.follow:
			next = link
		case link != nil || len(batch) >= c.pageSize:
			next = c.pageURL(cursor)
		default:
			return nodes, nil
		}
	}
}

// pageURL is the legacy request: limit first, then after_id, which is sent
// even when empty.
func (c *Client) pageURL(after string) *url.URL {
	u := *c.base
	u.Path += "/storagenodes"
	u.RawQuery = "limit=" + strconv.Itoa(c.pageSize) + "&after_id=" + url.QueryEscape(after)
	return &u
}

func (c *Client) fetchPage(ctx context.Context, u *url.URL) ([]Node, *url.URL, error) {
	body, hdr, err := c.get(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '[' {
		return nil, nil, fmt.Errorf("GET %s: body is not a JSON array: %.60q", u, body)
	}
	var batch []Node
	if err := json.Unmarshal(body, &batch); err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	var next *url.URL
	if target, ok := nextLink(hdr.Values("Link")); ok {
		ref, err := url.Parse(target)
		if err != nil {
			return nil, nil, fmt.Errorf("GET %s: bad Link target %q: %w", u, target, err)
		}
		next = u.ResolveReference(ref)
	}
	return batch, next, nil
}

// Get returns one storage node (GET /storagenodes/{id}). An unknown id gives
// an error wrapping ErrNotFound.
func (c *Client) Get(ctx context.Context, id string) (Node, error) {
	u := *c.base
	u.Path += "/storagenodes/" + id
	u.RawPath = c.base.EscapedPath() + "/storagenodes/" + url.PathEscape(id)
	body, _, err := c.get(ctx, &u)
	if err != nil {
		return Node{}, fmt.Errorf("storinfo: storage node %s: %w", id, err)
	}
	var n Node
	if err := json.Unmarshal(body, &n); err != nil {
		return Node{}, fmt.Errorf("storinfo: storage node %s: %w", id, err)
	}
	return n, nil
}

// Flush asks storinfo to refresh its cache from Moray now (POST /flush).
func (c *Client) Flush(ctx context.Context) error {
	u := *c.base
	u.Path += "/flush"
	if _, _, err := c.do(ctx, http.MethodPost, &u, http.StatusOK, http.StatusNoContent); err != nil {
		return fmt.Errorf("storinfo: flush: %w", err)
	}
	return nil
}

func (c *Client) get(ctx context.Context, u *url.URL) ([]byte, http.Header, error) {
	return c.do(ctx, http.MethodGet, u, http.StatusOK)
}

// do runs one request with retries and returns the body of an answer whose
// status is one of ok.
func (c *Client) do(ctx context.Context, method string, u *url.URL, ok ...int) ([]byte, http.Header, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", method, u, ctx.Err())
		}
		return nil, nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: reading body: %w", method, u, err)
	}
	if len(body) > maxBody {
		return nil, nil, fmt.Errorf("%s %s: body larger than %d bytes", method, u, maxBody)
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			return body, resp.Header, nil
		}
	}
	se := &StatusError{Method: method, URL: u.String(), StatusCode: resp.StatusCode}
	var msg struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &msg) == nil {
		se.Message = msg.Message
	}
	return nil, nil, se
}

// nextLink finds the rel="next" target among Link header values (RFC 8288),
// such as `</storagenodes?after_id=9.stor&limit=100>; rel="next"`.
func nextLink(values []string) (string, bool) {
	for _, v := range values {
		for v != "" {
			v = strings.TrimLeft(v, " \t,")
			if !strings.HasPrefix(v, "<") {
				break
			}
			end := strings.IndexByte(v, '>')
			if end < 0 {
				break
			}
			target := v[1:end]
			v = v[end+1:]
			params := v
			if i := strings.IndexByte(v, ','); i >= 0 {
				params, v = v[:i], v[i+1:]
			} else {
				v = ""
			}
			for _, p := range strings.Split(params, ";") {
				name, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(name), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target, true
					}
				}
			}
		}
	}
	return "", false
}
