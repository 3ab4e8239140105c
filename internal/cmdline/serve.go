package cmdline

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
)

// Servers are a daemon's HTTP servers (its API, its metrics), each serving
// on its own listener beside the daemon's main work.
type Servers struct {
	servers []*http.Server
	wg      sync.WaitGroup
	first   chan error // the first error a Serve returns

	mu   sync.Mutex
	errs []error // what every Serve returned
}

// Serve starts serving each of servers on the listener at the same index.
func Serve(servers []*http.Server, listeners []net.Listener) *Servers {
	s := &Servers{servers: servers, first: make(chan error, 1)}
	for i, srv := range servers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := srv.Serve(listeners[i])
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.mu.Unlock()
			select {
			case s.first <- err:
			default:
			}
		}()
	}
	return s
}

// Failed delivers the error of the first server to stop serving. Before
// Shutdown, a server stops only when it fails.
func (s *Servers) Failed() <-chan error { return s.first }

// Shutdown stops the servers from taking requests, letting those in
// progress finish while ctx lasts (a server that outlasts it is closed),
// waits until every server has stopped, and returns the first error one
// stopped with other than http.ErrServerClosed.
func (s *Servers) Shutdown(ctx context.Context) error {
	for _, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	}
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, err := range s.errs {
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	return nil
}
