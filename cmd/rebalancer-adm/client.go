package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// newClient returns the client of the manager's job API at --manager:
// every phase of a connection has a timeout, each request the --timeout
// given (0: none), and proxies come from the environment, as curl's do.
func newClient(manager, token string, timeout time.Duration, rt http.RoundTripper) (*jobapi.Client, error) {
	c, err := jobapi.NewClient(manager)
	if err != nil {
		return nil, fmt.Errorf("--manager %q is not an http(s) URL", manager)
	}
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
	c.HTTPClient = &http.Client{Transport: rt}
	c.Token, c.Timeout = token, timeout
	c.UserAgent = "rebalancer-adm/" + cmdline.Version()
	return c, nil
}
