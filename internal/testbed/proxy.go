package testbed

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
)

// ProxyHandler returns a forward HTTP proxy into the fleet, for processes
// that cannot be given HTTPClient: serve it on a loopback listener and
// pass its URL to rebalancer-agent --source-proxy and rebalancer-manager
// --agent-proxy. It serves requests in absolute form ("GET
// http://1.stor.demo.example/{owner}/{object}"), as HTTP clients send them
// to a proxy, by dialling the loopback address behind the name as
// HTTPClient does; loopback addresses go through as given.
//
// When the target cannot be reached or breaks off (an agent killed), the
// client's connection is closed without a reply, as a dead server looks to
// a client; a 502 instead would read as an answer from the server, which
// the manager treats differently. Requests not in absolute form get 400,
// and CONNECT 405.
func (f *Fleet) ProxyHandler() http.Handler {
	rp := &httputil.ReverseProxy{
		// The request already names its target.
		Rewrite:   func(*httputil.ProxyRequest) {},
		Transport: f.transport,
		// Stream bodies as they come, like the connection it stands for.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			f.log.Debug("proxy: no reply from the target", "url", r.URL.String(), "err", err)
			panic(http.ErrAbortHandler)
		},
		// Bodies broken off by a killed server are expected here.
		ErrorLog: slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodConnect:
			http.Error(w, "testbed proxy: CONNECT is not supported", http.StatusMethodNotAllowed)
		case r.URL.Host == "" || r.URL.Scheme != "http":
			http.Error(w, "testbed proxy: not a proxy request (want an absolute http:// URL)", http.StatusBadRequest)
		default:
			rp.ServeHTTP(w, r)
		}
	})
}

// TempDir returns the directory a fleet started without Config.Dir makes
// its own in ("" meaning the system's): /dev/shm when it is a roomy tmpfs
// and TMPDIR is unset. Callers that keep a fleet's directory (Config.Dir)
// but want the same speed make theirs here.
func TempDir() string { return memDir() }
