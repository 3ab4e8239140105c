package testbed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
)

// MakoFault sees every request to a shark's file server before it is
// served; returning true means it answered the request itself.
type MakoFault func(w http.ResponseWriter, r *http.Request) bool

// AgentFault sees every request to a shark's agent API before the agent
// does; returning true means it answered the request itself (a 503 storm,
// a reset connection...). The agent itself is untouched, so what it did
// accept it carries out as usual.
type AgentFault func(w http.ResponseWriter, r *http.Request) bool

// Shark is one storage node of the fleet: a directory standing for its
// /manta dataset, a file server answering like mako, and a real rebalancer
// agent writing into that directory. Either server can be stopped and
// started again (on the same port when it is free) to play a failure.
type Shark struct {
	fleet   *Fleet
	node    rebalancer.StorageNode
	root    string
	dataDir string
	log     *slog.Logger

	fault      atomic.Pointer[MakoFault]
	agentFault atomic.Pointer[AgentFault]
	requests   atomic.Int64 // GETs and HEADs the file server received

	mu        sync.Mutex // serialises starts and stops
	mako      *httpServer
	makoAddr  string
	agent     *agent.Server
	agentSrv  *httpServer
	agentAddr string
	agentStop context.CancelFunc
	agentRun  chan error
}

// ID returns the shark's storage id ("1.stor.demo.example").
func (s *Shark) ID() string { return s.node.MantaStorageID }

// Node returns the shark as object metadata names it.
func (s *Shark) Node() rebalancer.StorageNode { return s.node }

// Datacenter returns the shark's datacenter ("dc1").
func (s *Shark) Datacenter() string { return s.node.Datacenter }

// Root returns the directory standing for the shark's /manta.
func (s *Shark) Root() string { return s.root }

// DataDir returns the agent's state directory.
func (s *Shark) DataDir() string { return s.dataDir }

// ObjectPath returns where a v1 object's copy lives on this shark.
func (s *Shark) ObjectPath(owner, objectID string) string {
	return filepath.Join(s.root, owner, objectID)
}

// MakoAddr returns the loopback address the file server listens on, or ""
// while it is stopped.
func (s *Shark) MakoAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mako == nil {
		return ""
	}
	return s.makoAddr
}

// AgentAddr returns the loopback address the agent listens on, or "" while
// it is stopped.
func (s *Shark) AgentAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.agentSrv == nil {
		return ""
	}
	return s.agentAddr
}

// SetAgentAddr tells the fleet that the shark's agent listens on addr
// ("127.0.0.1:port"): for an agent run outside the fleet
// (Config.ExternalAgents), restarted on a new port as often as needed.
// HTTPClient, AgentClient and ProxyHandler then reach it as
// "{storage id}:7878". AgentAddr and Agent know only the fleet's own
// agent, which takes the name back when StartAgent runs.
func (s *Shark) SetAgentAddr(addr string) {
	s.fleet.resolver.set(s.ID()+":"+AgentPort, addr)
}

// Agent returns the running agent, or nil while it is stopped.
func (s *Shark) Agent() *agent.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agent
}

// MakoRequests returns how many object requests the file server has
// received, faulted ones included.
func (s *Shark) MakoRequests() int64 { return s.requests.Load() }

// SetMakoFault installs f in front of the file server; nil removes it.
func (s *Shark) SetMakoFault(f MakoFault) {
	if f == nil {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(&f)
}

// FailMako makes the file server answer every request with status (a 500,
// a 404...); 0 heals it.
func (s *Shark) FailMako(status int) {
	if status == 0 {
		s.SetMakoFault(nil)
		return
	}
	s.SetMakoFault(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, fmt.Sprintf("testbed: injected %d", status), status)
		return true
	})
}

// SetAgentFault installs f in front of the agent's API; nil removes it. It
// stays in place across agent restarts.
func (s *Shark) SetAgentFault(f AgentFault) {
	if f == nil {
		s.agentFault.Store(nil)
		return
	}
	s.agentFault.Store(&f)
}

// agentHandler puts the agent fault, if any, in front of h.
func (s *Shark) agentHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := s.agentFault.Load(); f != nil && (*f)(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Corrupt changes the content of the shark's copy of an object without
// changing its size (the first byte is inverted; an empty file gets one
// byte), as bit rot would.
func (s *Shark) Corrupt(owner, objectID string) error {
	p := s.ObjectPath(owner, objectID)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("corrupt %s on %s: %w", objectID, s.ID(), err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 0); err != nil {
		b[0] = 0 // empty file: grows by one byte
	}
	b[0] = ^b[0]
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("corrupt %s on %s: %w", objectID, s.ID(), err)
	}
	return f.Close()
}

// Remove deletes the shark's copy of an object.
func (s *Shark) Remove(owner, objectID string) error {
	if err := os.Remove(s.ObjectPath(owner, objectID)); err != nil {
		return fmt.Errorf("remove %s from %s: %w", objectID, s.ID(), err)
	}
	return nil
}

// httpServer is one listening http.Server and the goroutine serving it.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// listen listens on addr if it is free (a restart keeps its port, as a real
// service would), else on a fresh loopback port: the fleet's dialer follows
// the move, so clients are none the wiser.
func listen(addr string) (net.Listener, error) {
	if addr != "" {
		// A port just closed may linger briefly; try a few times.
		for range 20 {
			ln, err := net.Listen("tcp", addr)
			if err == nil {
				return ln, nil
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

func serve(ln net.Listener, h http.Handler, log *slog.Logger) *httpServer {
	s := &httpServer{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s
}

// stop closes the listener and every connection, as a crashing process
// would, and waits for the serving goroutine.
func (s *httpServer) stop() {
	s.srv.Close()
	<-s.done
}

// StartMako starts the file server (a no-op if it runs).
func (s *Shark) StartMako() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mako != nil {
		return nil
	}
	if s.fleet.isClosed() {
		return errClosed
	}
	ln, err := listen(s.makoAddr)
	if err != nil {
		return fmt.Errorf("shark %s: file server: %w", s.ID(), err)
	}
	s.makoAddr = ln.Addr().String()
	s.fleet.resolver.set(s.ID()+":"+MakoPort, s.makoAddr)
	s.mako = serve(ln, http.HandlerFunc(s.serveMako), s.log)
	return nil
}

// StopMako stops the file server: connections are refused until StartMako.
func (s *Shark) StopMako() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mako != nil {
		s.mako.stop()
		s.mako = nil
	}
}

// serveMako answers GET and HEAD for the paths the agent downloads, as
// mako's nginx does from /manta:
//
//	/{owner}/{objectId}
//	/v2/{owner}/{bucketId}/{objectId[0:2]}/{objectId},{nameHash}
//
// Nothing else under the root is served: no directory listings and no
// dot-named component (the agent's temp directory).
func (s *Shark) serveMako(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if f := s.fault.Load(); f != nil && (*f)(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	ok := len(parts) == 2 || (len(parts) == 5 && parts[0] == "v2")
	for _, p := range parts {
		if p == "" || strings.HasPrefix(p, ".") {
			ok = false
		}
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(filepath.Join(append([]string{s.root}, parts...)...))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// StartAgent starts the agent over the shark's root and data directory,
// resuming whatever a previous run left unfinished (a no-op if it runs).
func (s *Shark) StartAgent() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.agentSrv != nil {
		return nil
	}
	if s.fleet.isClosed() {
		return errClosed
	}
	cfg := s.fleet.agentConfig(s)
	a, err := agent.New(cfg, s.log.With("component", "agent"))
	if err != nil {
		return fmt.Errorf("shark %s: agent: %w", s.ID(), err)
	}
	ln, err := listen(s.agentAddr)
	if err != nil {
		a.Close()
		return fmt.Errorf("shark %s: agent: %w", s.ID(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := make(chan error, 1)
	go func() { run <- a.Run(ctx) }()
	s.agent, s.agentStop, s.agentRun = a, cancel, run
	s.agentAddr = ln.Addr().String()
	s.fleet.resolver.set(s.ID()+":"+AgentPort, s.agentAddr)
	s.agentSrv = serve(ln, s.agentHandler(a.Handler()), s.log)
	return nil
}

// StopAgent stops the agent as a killed process would look to its clients:
// the API goes away at once (connections reset, then refused), downloads
// in flight get the agent's ShutdownGrace, and the rest stay pending in its
// database for the next StartAgent.
func (s *Shark) StopAgent() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.agentSrv == nil {
		return nil
	}
	s.agentSrv.stop()
	s.agentStop()
	err := <-s.agentRun
	if cerr := s.agent.Close(); err == nil {
		err = cerr
	}
	s.agentSrv, s.agent, s.agentStop, s.agentRun = nil, nil, nil, nil
	if err != nil {
		return fmt.Errorf("shark %s: agent: %w", s.ID(), err)
	}
	return nil
}

// RestartAgent stops and starts the agent.
func (s *Shark) RestartAgent() error {
	if err := s.StopAgent(); err != nil {
		return err
	}
	return s.StartAgent()
}

func (s *Shark) stop() error {
	s.StopMako()
	return s.StopAgent()
}
