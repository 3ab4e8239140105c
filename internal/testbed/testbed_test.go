package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray"
)

const shark1 = "1.stor.demo.example"

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStartServesProductionNamesAndCloseLeavesNothing(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx := context.Background()
	f, err := Start(ctx, Config{Sharks: 3, Datacenters: 2, Objects: Objects{Count: 20, Seed: 7}})
	if err != nil {
		t.Fatal(err)
	}
	dir := f.Dir()

	wantNodes := []rebalancer.StorageNode{
		{Datacenter: "dc1", MantaStorageID: "1.stor.demo.example"},
		{Datacenter: "dc2", MantaStorageID: "2.stor.demo.example"},
		{Datacenter: "dc1", MantaStorageID: "3.stor.demo.example"},
	}
	if got := f.Nodes(); !slices.Equal(got, wantNodes) {
		t.Fatalf("nodes %v, want %v", got, wantNodes)
	}
	for _, n := range wantNodes {
		got, err := f.LookupShark(ctx, n.MantaStorageID)
		if err != nil || got != n {
			t.Fatalf("LookupShark(%s) = %v, %v", n, got, err)
		}
	}
	var nf *moray.SharkNotFoundError
	if _, err := f.LookupShark(ctx, "9.stor.demo.example"); !errors.As(err, &nf) {
		t.Fatalf("LookupShark of an unknown shark: %v", err)
	}

	c := f.HTTPClient()
	if code, body := get(t, c, "http://2.stor.demo.example:7878/health"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("agent health: %d %s", code, body)
	}
	if code, body := get(t, c, "http://storinfo.demo.example/storagenodes"); code != 200 || !strings.Contains(body, "3.stor.demo.example") {
		t.Fatalf("storinfo: %d %s", code, body)
	}
	// Every object is served by the sharks its metadata names, at the path
	// the agent downloads from.
	served := 0
	for rec := range f.Moray(1).Objects(moray.MantaBucket) {
		o, err := rebalancer.ParseObject(rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range o.Sharks {
			code, body := get(t, c, "http://"+s.MantaStorageID+"/"+o.Owner+"/"+o.ID)
			if code != 200 || int64(len(body)) != o.ContentLength {
				t.Fatalf("GET %s from %s: %d, %d bytes", o.Key, s, code, len(body))
			}
			served++
		}
	}
	if served != 40 {
		t.Fatalf("served %d copies, want 40", served)
	}
	for _, path := range []string{"/nobody/nothing", "/.rebalancer-tmp/x", "/a/b/c", "/a/../b"} {
		if code, _ := get(t, c, "http://1.stor.demo.example"+path); code != 404 {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	if _, err := c.Get("http://elsewhere.example.com/"); err == nil || !strings.Contains(err.Error(), "no such host in the fleet") {
		t.Fatalf("a name outside the fleet: %v", err)
	}

	f.Close()
	f.Close() // idempotent
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("fleet directory left behind: %v", err)
	}
}

func TestEngineConfigAndCloseLeaveNothing(t *testing.T) {
	testutil.CheckLeaks(t)
	f, err := Start(context.Background(), Config{Sharks: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.NewEngine(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if f.Placement() == nil {
		t.Fatal("no placement after NewEngine")
	}
	f.Close()
	if _, err := f.EngineConfig(context.Background()); !errors.Is(err, errClosed) {
		t.Fatalf("EngineConfig after Close: %v", err)
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"too many copies": {Sharks: 2, Objects: Objects{Count: 1, Copies: 3}},
		"unknown pin":     {Objects: Objects{Count: 1, Pin: "9.stor.demo.example"}},
		"full sharks":     {PercentUsed: 100},
		"no room off pin": {Sharks: 2, Objects: Objects{Count: 1, Copies: 2, Pin: shark1, PinFraction: 0.5}},
	} {
		t.Run(name, func(t *testing.T) {
			testutil.CheckLeaks(t)
			f, err := Start(context.Background(), cfg)
			if err == nil {
				f.Close()
				t.Fatal("Start succeeded")
			}
		})
	}
}

func TestSharkFaults(t *testing.T) {
	f := New(t, Config{Sharks: 2, Objects: Objects{Count: 1, Copies: 2, Seed: 3}})
	s := f.Shark("2.stor.demo.example")
	var o rebalancer.Object
	for rec := range f.Moray(1).Objects(moray.MantaBucket) {
		o, _ = rebalancer.ParseObject(rec.Value)
	}
	url := "http://2.stor.demo.example/" + o.Owner + "/" + o.ID
	c := f.HTTPClient()

	s.FailMako(500)
	if code, _ := get(t, c, url); code != 500 {
		t.Fatalf("FailMako(500): %d", code)
	}
	s.FailMako(0)
	if code, _ := get(t, c, url); code != 200 {
		t.Fatalf("healed: %d", code)
	}

	addr := s.MakoAddr()
	s.StopMako()
	if _, err := c.Get(url); err == nil {
		t.Fatal("GET from a stopped file server succeeded")
	}
	if err := s.StartMako(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, c, url); code != 200 {
		t.Fatalf("restarted file server: %d", code)
	}
	if s.MakoAddr() != addr {
		t.Logf("file server moved from %s to %s (port taken)", addr, s.MakoAddr())
	}

	agentAddr := s.AgentAddr()
	if err := s.StopAgent(); err != nil {
		t.Fatal(err)
	}
	if s.Agent() != nil || s.AgentAddr() != "" {
		t.Fatal("stopped agent still reported")
	}
	if _, err := c.Get("http://2.stor.demo.example:7878/health"); err == nil {
		t.Fatal("stopped agent answered")
	}
	if err := s.RestartAgent(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, c, "http://2.stor.demo.example:7878/health"); code != 200 {
		t.Fatalf("restarted agent: %d", code)
	}
	if s.AgentAddr() != agentAddr {
		t.Logf("agent moved from %s to %s (port taken)", agentAddr, s.AgentAddr())
	}

	if err := s.Corrupt(o.Owner, o.ID); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, c, url)
	want, _ := os.ReadFile(f.Shark(shark1).ObjectPath(o.Owner, o.ID))
	if code != 200 || len(body) != len(want) || body == string(want) {
		t.Fatalf("corrupted copy: %d, %d bytes, same content %v", code, len(body), body == string(want))
	}
	if err := s.Remove(o.Owner, o.ID); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, c, url); code != 404 {
		t.Fatalf("removed copy: %d", code)
	}
	if s.MakoRequests() != 5 {
		t.Fatalf("MakoRequests %d, want 5", s.MakoRequests())
	}
}

func TestPopulateIsDeterministicAndSpread(t *testing.T) {
	objs := Objects{Count: 300, Seed: 42, MinSize: 10, MaxSize: 100, Pin: shark1, PinFraction: 0.5}
	values := func() map[string]string {
		f := New(t, Config{Sharks: 4, Datacenters: 2, Shards: 2})
		pop, err := f.Populate(context.Background(), objs)
		if err != nil {
			t.Fatal(err)
		}
		if pop.Objects != 300 || pop.Files != 600 || pop.PerShark[shark1] != pop.Pinned {
			t.Fatalf("population %+v", pop)
		}
		if pop.Pinned < 100 || pop.Pinned > 200 {
			t.Fatalf("%d of 300 objects pinned at fraction 0.5", pop.Pinned)
		}
		out := map[string]string{}
		for _, shard := range f.ShardNumbers() {
			n := 0
			for rec := range f.Moray(shard).Objects(moray.MantaBucket) {
				n++
				out[rec.Key] = string(rec.Value)
				o, err := rebalancer.ParseObject(rec.Value)
				if err != nil {
					t.Fatal(err)
				}
				if f.ShardOf(o.Key) != shard {
					t.Fatalf("%s on shard %d, ShardOf says %d", o.Key, shard, f.ShardOf(o.Key))
				}
				if o.ContentLength < 10 || o.ContentLength > 100 || len(o.Sharks) != 2 {
					t.Fatalf("object %s: %d bytes on %v", o.Key, o.ContentLength, o.Sharks)
				}
				if o.Sharks[0].Datacenter == o.Sharks[1].Datacenter {
					t.Fatalf("object %s: both copies in %s", o.Key, o.Sharks[0].Datacenter)
				}
				var v map[string]any
				json.Unmarshal(rec.Value, &v)
				for _, field := range []string{"dirname", "name", "creator", "type", "mtime", "headers", "roles", "vnode", "etag", "contentType"} {
					if _, ok := v[field]; !ok {
						t.Fatalf("object %s has no %s", o.Key, field)
					}
				}
			}
			if n == 0 {
				t.Fatalf("shard %d has no objects", shard)
			}
		}
		return out
	}
	a, b := values(), values()
	if len(a) != 300 {
		t.Fatalf("%d distinct keys, want 300", len(a))
	}
	for k, v := range a {
		if b[k] != v {
			t.Fatalf("same seed, different object %s:\n%s\n%s", k, v, b[k])
		}
	}
}

// TestAgentsAllowOnlyFleetSources: the fleet's agents run with the source
// allow-list on, as production agents should: a task whose source is not a
// shark of the fleet's domain is refused.
func TestAgentsAllowOnlyFleetSources(t *testing.T) {
	f := New(t, Config{Sharks: 2})
	s := f.Shark(shark1)
	if got := s.Agent().Config().AllowSources; !slices.Equal(got, []string{".stor.demo.example"}) {
		t.Fatalf("agent allow-list %v", got)
	}
	task := func(source string) rebalancer.Task {
		return rebalancer.Task{ObjectID: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", Owner: "d50c4fc4-f408-492f-b8bc-a0dd7c73683f",
			MD5Sum: "1B2M2Y8AsgTpgAmY7PhCfg==", Source: rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: source}}
	}
	ctx := context.Background()
	err := f.AgentClient().PostAssignment(ctx, s.Node(), rebalancer.AssignmentPayload{
		ID: "463ec933-1d31-41f9-8e76-0db3191f6346", Tasks: []rebalancer.Task{task("1.stor.elsewhere.example")}})
	var se *agent.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusBadRequest {
		t.Fatalf("POST from outside the fleet: %v, want 400", err)
	}
	if err := f.AgentClient().PostAssignment(ctx, s.Node(), rebalancer.AssignmentPayload{
		ID: "563ec933-1d31-41f9-8e76-0db3191f6346", Tasks: []rebalancer.Task{task("2.stor.demo.example")}}); err != nil {
		t.Fatalf("POST from the fleet: %v", err)
	}
}
