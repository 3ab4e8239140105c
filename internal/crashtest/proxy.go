package crashtest

import (
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// proxy serves the fleet's forward proxy (testbed's ProxyHandler) on a
// loopback port of its own. Each agent gets one, so that the run can tell
// when that agent is receiving an object: a response body is streaming
// through its proxy.
type proxy struct {
	srv       *http.Server
	url       string
	streaming atomic.Int64 // responses that have started sending a body and not finished
}

func startProxy(h http.Handler, log *slog.Logger) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{url: "http://" + ln.Addr().String()}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cw := &countingWriter{ResponseWriter: w, p: p}
			defer cw.done()
			h.ServeHTTP(cw, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go p.srv.Serve(ln)
	return p, nil
}

func (p *proxy) close() { p.srv.Close() }

// countingWriter counts its response in proxy.streaming from the first
// body byte until the handler returns.
type countingWriter struct {
	http.ResponseWriter
	p       *proxy
	started bool
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if !w.started && len(b) > 0 {
		w.started = true
		w.p.streaming.Add(1)
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets the reverse proxy stream bodies through.
func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *countingWriter) done() {
	if w.started {
		w.p.streaming.Add(-1)
	}
}
