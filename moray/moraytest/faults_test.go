package moraytest

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

func TestHookError(t *testing.T) {
	s, c := mantaServer(t)
	var mu sync.Mutex
	var seen []Request
	s.SetHook(func(r Request) Action {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		if r.Method == "putObject" {
			return Action{Error: &fast.Error{Name: "NoDatabasePeersError", Message: "no manatee peers available",
				Context: json.RawMessage(`{"name":"X","message":"y"}`)}}
		}
		return Action{}
	})
	e := c.fails("putObject", "manta", "/k", map[string]any{"a": 1.0}, opts())
	wantError(t, e, "NoDatabasePeersError", "no manatee peers available")
	if string(e.Context) != `{"name":"X","message":"y"}` || string(e.Info) != "{}" {
		t.Errorf("context %s info %s", e.Context, e.Info)
	}
	if s.Len("manta") != 0 {
		t.Error("the failed put was applied")
	}
	c.ok("ping", opts())
	s.SetHook(nil)
	c.ok("putObject", "manta", "/k", map[string]any{"a": 1}, opts())

	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0].Method != "putObject" || seen[0].Conn != 1 || seen[0].MsgID != 1 || len(seen[0].Args) != 4 ||
		string(seen[0].Args[2]) != `{"a":1}` || string(seen[0].Args[1]) != `"/k"` {
		t.Errorf("hook saw %+v", seen)
	}
}

// Requests on one connection run concurrently: a held request does not
// hold up the others, and replies interleave.
func TestInterleavedReplies(t *testing.T) {
	s, c := mantaServer(t)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before Close, which waits for the hook
	s.SetHook(func(r Request) Action {
		if r.Method == "version" {
			<-release
		}
		return Action{}
	})
	held := c.start(0, "version", opts())
	c.ok("ping", opts())
	c.ok("putObject", "manta", "/k", map[string]any{}, opts())
	select {
	case m := <-held:
		t.Fatalf("held request answered early: %+v", m)
	default:
	}
	unblock()
	if r := collect(t, held); r.err != nil || len(r.items) != 1 {
		t.Errorf("held request: %+v", r)
	}

	// Action.Delay holds a request the same way.
	s.SetHook(func(r Request) Action { return Action{Delay: time.Millisecond} })
	c.ok("version", opts())
}

func TestDrop(t *testing.T) {
	s, c := mantaServer(t)
	other := dial(t, s.Addr())
	s.SetHook(func(r Request) Action { return Action{Drop: r.Method == "getObject"} })
	r := c.call("getObject", "manta", "/k", opts())
	if !r.broken || len(r.frames) != 0 {
		t.Errorf("dropped request: %+v", r)
	}
	if err := c.waitClosed(); !errors.Is(err, io.EOF) {
		t.Errorf("connection ended with %v, want EOF between frames", err)
	}
	other.ok("ping", opts())
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations %q", v)
	}
}

func TestFailNext(t *testing.T) {
	s, c := mantaServer(t)
	s.FailNext("putObject", 2, &fast.Error{Name: "QueryTimeoutError", Message: "query timeout: x"})
	for range 2 {
		wantError(t, c.fails("putObject", "manta", "/k", map[string]any{}, opts()), "QueryTimeoutError", "query timeout: x")
	}
	c.ok("putObject", "manta", "/k", map[string]any{}, opts())
	if s.Calls("putObject") != 3 {
		t.Errorf("calls %v", s.CallCounts())
	}
	s.ResetCalls()
	if len(s.CallCounts()) != 0 {
		t.Errorf("after reset: %v", s.CallCounts())
	}
}

func TestConflictNextPuts(t *testing.T) {
	s, c := mantaServer(t)
	etag, err := s.Put("manta", "/k", map[string]any{"v": 1})
	if err != nil {
		t.Fatal(err)
	}
	s.ConflictNextPuts(2)
	// Unconditional puts are not affected and do not use up the count.
	c.ok("putObject", "manta", "/other", map[string]any{}, opts())
	e := c.fails("putObject", "manta", "/k", map[string]any{"v": 2}, opts("etag", etag))
	wantError(t, e, "EtagConflictError", `manta::/k was expected to have etag "`+etag+`", but was "`+etag+`"`)
	// A batch fails whole.
	put := map[string]any{"bucket": "manta", "key": "/k", "value": map[string]any{"v": 3}, "options": map[string]any{"etag": etag}}
	plain := map[string]any{"bucket": "manta", "key": "/new", "value": map[string]any{}}
	wantError(t, c.fails("batch", []any{plain, put}, opts()), "EtagConflictError", "")
	if s.Len("manta") != 2 {
		t.Error("part of the failed batch was applied")
	}
	// The client re-reads and retries: it works now.
	c.ok("putObject", "manta", "/k", map[string]any{"v": 2}, opts("etag", etag))
}

func TestConflictStorm(t *testing.T) {
	s, c := mantaServer(t)
	stop := s.ConflictStorm(func(bucket, key string) bool { return bucket == "manta" && strings.HasPrefix(key, "/hot/") })
	for range 3 {
		wantError(t, c.fails("putObject", "manta", "/hot/a", map[string]any{}, opts("etag", nil)), "EtagConflictError",
			`manta::/hot/a was expected to have etag "null", but was "null"`)
	}
	c.ok("putObject", "manta", "/cold/a", map[string]any{}, opts("etag", nil))
	c.ok("putObject", "manta", "/hot/a", map[string]any{}, opts()) // unconditional
	stop()
	stop() // idempotent
	c.ok("putObject", "manta", "/hot/b", map[string]any{}, opts("etag", nil))
}

func TestOfflineOnline(t *testing.T) {
	s, c := mantaServer(t)
	addr := s.Addr()
	c.ok("putObject", "manta", "/k", map[string]any{}, opts())
	if err := s.Online(); err != nil { // already online: no-op
		t.Fatal(err)
	}

	s.Offline()
	if err := c.waitClosed(); !errors.Is(err, io.EOF) {
		t.Errorf("open connection ended with %v, want EOF", err)
	}
	if nc, err := net.Dial("tcp", addr); err == nil {
		nc.Close()
		t.Fatal("dial succeeded while offline")
	}
	testutil.Eventually(t, "connections to close", func() bool { return s.Conns() == 0 })

	if err := s.Online(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Errorf("address changed from %s to %s", addr, s.Addr())
	}
	c2 := dial(t, addr)
	if recs := c2.ok("getObject", "manta", "/k", opts()); len(recs) != 1 {
		t.Errorf("data lost across Offline: %s", recs)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations %q", v)
	}
}

func TestDropConnections(t *testing.T) {
	s, c := mantaServer(t)
	c.ok("ping", opts())
	s.DropConnections()
	if err := c.waitClosed(); !errors.Is(err, io.EOF) {
		t.Errorf("connection ended with %v, want EOF", err)
	}
	dial(t, s.Addr()).ok("ping", opts())
}

// Close stops everything the server started, even with requests in
// flight and clients still connected.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	testutil.CheckLeaks(t)
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateMantaBucket(); err != nil {
		t.Fatal(err)
	}
	s.SetHook(func(r Request) Action {
		if r.Method == "version" {
			return Action{Delay: time.Hour}
		}
		return Action{}
	})
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i := range 5 {
		nc.Write(frame(t, uint32(i+1), "version", `[{}]`))
	}
	nc.Write(frame(t, 9, "ping", `[{}]`))
	testutil.Eventually(t, "requests to arrive", func() bool { return s.Calls("version") == 5 && s.Calls("ping") == 1 })

	s.Close()
	s.Close()
	if err := s.Online(); err == nil {
		t.Error("Online after Close succeeded")
	}
}
