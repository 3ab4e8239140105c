package cmdline

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Shutdown lets a request in progress finish, and a clean stop is no
// error.
func TestServeShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})}
	ln := listen(t)
	srvs := Serve([]*http.Server{slow, {Handler: http.NotFoundHandler()}}, []net.Listener{ln, listen(t)})

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	testutil.Receive(t, "the request", entered)
	stopped := make(chan error, 1)
	go func() { stopped <- srvs.Shutdown(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) with a request in progress", err)
	case <-srvs.Failed():
		// Both stopped taking requests: the request is still running.
	}
	close(release)
	if b := testutil.Receive(t, "the reply", got); b != "done" {
		t.Errorf("reply %q, want done", b)
	}
	if err := testutil.Receive(t, "Shutdown", stopped); err != nil {
		t.Errorf("Shutdown() = %v, want nil", err)
	}
}

// A server that fails is reported by Failed, and again by Shutdown.
func TestServeFailed(t *testing.T) {
	ln := listen(t)
	srvs := Serve([]*http.Server{{Handler: http.NotFoundHandler()}, {Handler: http.NotFoundHandler()}}, []net.Listener{listen(t), ln})
	ln.Close()
	err := testutil.Receive(t, "the failure", srvs.Failed())
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Failed() delivered %v, want the listener's error", err)
	}
	if got := srvs.Shutdown(context.Background()); !errors.Is(got, err) {
		t.Errorf("Shutdown() = %v, want %v", got, err)
	}
}
