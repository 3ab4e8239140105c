package main

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
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
)

// client talks to the manager's HTTP API.
type client struct {
	base    *url.URL
	http    *http.Client
	token   string
	timeout time.Duration
}

func newClient(manager, token string, timeout time.Duration, rt http.RoundTripper) (*client, error) {
	if !strings.Contains(manager, "://") {
		manager = "http://" + manager
	}
	u, err := url.Parse(manager)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--manager %q is not an http(s) URL", manager)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if rt == nil {
		rt = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	return &client{base: u, http: &http.Client{Transport: rt}, token: token, timeout: timeout}, nil
}

// apiError is a reply the manager sent with a status other than 2xx. Its
// message is the manager's own, which says what was wrong.
type apiError struct {
	Method string
	Path   string
	Code   int
	Body   string
}

func (e *apiError) Error() string {
	msg := strings.TrimSpace(e.Body)
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, http.StatusText(e.Code), msg)
}

// reply is a successful reply.
type reply struct {
	Body   []byte
	Header http.Header
}

// do sends a request and returns the reply body, or an *apiError for a
// reply outside 2xx.
func (c *client) do(ctx context.Context, method, path string, body any) (reply, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "rebalancer-adm/"+cmdline.Version())
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return reply{}, errInterrupted
		}
		return reply{}, fmt.Errorf("%s %s: %w", method, path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: reading the reply: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return reply{}, &apiError{Method: method, Path: path, Code: resp.StatusCode, Body: string(b)}
	}
	return reply{Body: b, Header: resp.Header}, nil
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// jobPath returns the path of a job resource.
func jobPath(id string, rest ...string) string {
	p := "/jobs/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + r
	}
	return p
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
