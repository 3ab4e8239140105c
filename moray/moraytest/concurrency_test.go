package moraytest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// 200 RPCs in flight over 2 connections at once, while a direct writer
// changes other objects: every reply reaches its request.
func TestConcurrentRPCs(t *testing.T) {
	s, c1 := mantaServer(t)
	c2 := dial(t, s.Addr())
	const n = 200
	type pending struct {
		c      *testClient
		i      int
		method string
		w      <-chan *fast.Message
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the concurrent writer
		defer wg.Done()
		for i := range 100 {
			if _, err := s.Put("manta", fmt.Sprintf("/direct/%d", i), map[string]any{"i": i}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var ps []pending
	for i := range n {
		c := c1
		if i%2 == 1 {
			c = c2
		}
		key := fmt.Sprintf("/k/%d", i)
		switch i % 4 {
		case 0, 1:
			ps = append(ps, pending{c, i, "putObject", c.start(0, "putObject", "manta", key, map[string]any{"i": i, "type": "object"}, opts())})
		case 2:
			ps = append(ps, pending{c, i, "findObjects", c.start(0, "findObjects", "manta", "(_id>=0)", opts("limit", 5))})
		default:
			ps = append(ps, pending{c, i, "version", c.start(0, "version", opts())})
		}
	}
	for _, p := range ps {
		r := collect(t, p.w)
		if r.err != nil || r.broken {
			t.Fatalf("request %d (%s): %+v", p.i, p.method, r)
		}
		switch p.method {
		case "putObject", "version":
			if len(r.items) != 1 {
				t.Errorf("request %d (%s): %d items", p.i, p.method, len(r.items))
			}
		case "findObjects":
			if len(r.items) > 5 {
				t.Errorf("request %d: %d records over the limit", p.i, len(r.items))
			}
		}
		for _, f := range r.frames {
			if f.Method != p.method {
				t.Errorf("request %d (%s) got a %s frame", p.i, p.method, f.Method)
			}
		}
	}
	wg.Wait()
	if got := s.Len("manta"); got != n/2+100 {
		t.Errorf("%d objects, want %d", got, n/2+100)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations %q", v)
	}
}
