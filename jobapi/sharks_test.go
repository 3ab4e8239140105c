package jobapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// currentSource discovers from the fake Moray's metadata as it is now.
type currentSource struct{ f *fleet }

func (s currentSource) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	for _, o := range s.f.source.Objects {
		cur, ok := s.f.moray.Get(o.Shard, o.Key)
		if !ok || !cur.HasShark(req.Shark) {
			continue
		}
		if err := visit(cur); err != nil {
			return err
		}
	}
	return nil
}

// sharkHarness is a Server over an engine whose fleet knows sharks 1 to 6
// (6 blocklisted), discovering afresh with source (nil: currentSource).
func sharkHarness(t *testing.T, n int, source rebalancer.ObjectSource, lookupErr *atomic.Pointer[error]) *harness {
	t.Helper()
	h := &harness{t: t, fleet: newFleet(n)}
	if source == nil {
		source = currentSource{h.fleet}
	}
	var nodes []rebalancer.StorageNode
	for i := 1; i <= 6; i++ {
		nodes = append(nodes, fakes.Shark(i))
	}
	e, err := evacuate.NewEngine(evacuate.Config{
		Store:     openStore(t),
		Source:    func(evacuate.JobRecord) (rebalancer.ObjectSource, error) { return source, nil },
		Metadata:  h.moray,
		Placement: fakes.NewPlacement(fakes.Shark(3), fakes.Shark(4), fakes.Shark(5)),
		Agent:     h.agents,
		LookupShark: func(ctx context.Context, id string) (rebalancer.StorageNode, error) {
			if lookupErr != nil {
				if p := lookupErr.Load(); p != nil {
					return rebalancer.StorageNode{}, *p
				}
			}
			for _, n := range nodes {
				if n.MantaStorageID == id {
					return n, nil
				}
			}
			return rebalancer.StorageNode{}, fmt.Errorf("no shark %s: %w", id, rebalancer.ErrSharkNotFound)
		},
		Fleet:     func(context.Context) ([]rebalancer.StorageNode, error) { return nodes, nil },
		Blocklist: func() []string { return []string{"6.stor.test"} },
		Defaults:  testbed.FastJobOptions(),
		Logger:    testutil.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.engine = e
	t.Cleanup(e.Close)
	h.srv = httptest.NewServer((&Server{Engine: e, Domain: "test", Logger: testutil.Discard()}).Handler())
	t.Cleanup(h.srv.Close)
	if h.client, err = NewClient(h.srv.URL); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSharkRoutes(t *testing.T) {
	lookupErr := &atomic.Pointer[error]{}
	h := sharkHarness(t, 30, nil, lookupErr)
	ctx := context.Background()

	sharks, err := h.client.Sharks(ctx)
	if err != nil || len(sharks) != 6 {
		t.Fatalf("Sharks = %+v, %v", sharks, err)
	}
	for _, s := range sharks {
		if s.State != "in_service" || !s.Listed || s.Blocklisted != (s.MantaStorageID == "6.stor.test") || s.Datacenter != "dc1" {
			t.Errorf("shark %+v", s)
		}
	}

	// Out and in, by short name, with a reason.
	s, err := h.client.SharkOut(ctx, "4.stor", "disk failing")
	if err != nil || s.MantaStorageID != "4.stor.test" || s.State != "drained" || s.ChangedBy != "operator" || s.Reason != "disk failing" || s.Since == nil {
		t.Fatalf("SharkOut = %+v, %v", s, err)
	}
	if s, err := h.client.Shark(ctx, "4.stor.test"); err != nil || s.State != "drained" {
		t.Errorf("Shark = %+v, %v", s, err)
	}
	if s, err := h.client.SharkIn(ctx, "4.stor", ""); err != nil || s.State != "in_service" {
		t.Errorf("SharkIn = %+v, %v", s, err)
	}

	for _, tt := range []struct {
		method, path, body string
		code               int
		says               string
	}{
		{"POST", "/sharks/2.stor.tset/out", "", 404, "no storage node is named 2.stor.tset; did you mean 2.stor.test?"},
		{"GET", "/sharks/no.such.shark", "", 404, "no storage node is named no.such.shark"},
		{"GET", "/sharks/no.such.shark/check", "", 404, "no storage node is named no.such.shark"},
		{"POST", "/sharks/2.stor/out", "{", 422, "Could not parse shark request"},
		{"GET", "/sharks/2.stor/check?examples=0", "", 400, "examples must be in 1..100"},
		{"GET", "/sharks/2.stor/check?progress=1ns", "", 400, "progress must be a duration"},
		// A name with dots is taken whole: the domain is not added to it.
		{"POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"2.stor.tset"}}`, 422,
			"Could not create job: no storage node is named 2.stor.tset; did you mean 2.stor.test?"},
		{"POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"no.such.shark"}}`, 422,
			"Could not create job: no storage node is named no.such.shark"},
	} {
		code, body, _ := h.do(tt.method, tt.path, tt.body)
		if code != tt.code || !strings.Contains(body, tt.says) || strings.Count(body, tt.says) != 1 {
			t.Errorf("%s %s %s: %d %q, want %d %q", tt.method, tt.path, tt.body, code, body, tt.code, tt.says)
		}
	}
	if n := h.jobs(); n != 0 {
		t.Fatalf("refused creates stored %d jobs", n)
	}
	fail := errors.New("look up shark 2.stor.test: moray: connection refused")
	lookupErr.Store(&fail)
	if code, body, _ := h.do("POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"2.stor"}}`); code != 503 ||
		!strings.Contains(body, "connection refused") {
		t.Errorf("create while the lookup fails: %d %q", code, body)
	}
	lookupErr.Store(nil)

	// A dry run is marked in the list, and not retried.
	dry, err := h.client.CreateJob(ctx, CreateParams{FromShark: "1.stor", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	h.wait(dry)
	jobs, err := h.client.Jobs(ctx)
	if err != nil || len(jobs) != 1 || !jobs[0].DryRun {
		t.Fatalf("Jobs = %+v, %v", jobs, err)
	}
	code, body, _ := h.do("POST", "/jobs/"+dry+"/retry", "")
	if code != 409 || !strings.Contains(body, "is a dry run") || !strings.Contains(body, "rebalancer-adm job create evacuate --shark 1.stor.test --dry-run") {
		t.Errorf("retry of a dry run: %d %q", code, body)
	}
	if n := h.jobs(); n != 1 {
		t.Errorf("a refused retry stored a job: %d jobs", n)
	}

	// While a job evacuates shark 1, it cannot be put back.
	h.agents.SetSlow(true)
	id, err := h.client.CreateJob(ctx, CreateParams{FromShark: "1.stor"})
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := h.do("POST", "/sharks/1.stor/in", `{"reason":"oops"}`); code != 409 || !strings.Contains(body, id) {
		t.Errorf("shark in while evacuated: %d %q", code, body)
	}
	if s, err := h.client.Shark(ctx, "1.stor"); err != nil || s.State != "draining" || s.RunningJob != id || s.ChangedBy != "job" {
		t.Errorf("shark 1 while evacuated: %+v %v", s, err)
	}
	h.agents.SetSlow(false)
	h.wait(id)
	st, err := h.client.JobStatus(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if v := st.Verdict; v == nil || v.ObjectsLeft != 0 || v.Message != "no object the job found names 1.stor.test any more" {
		t.Errorf("verdict %+v", v)
	}

	// The check: safe once evacuated and drained.
	c, err := h.client.CheckShark(ctx, "1.stor", CheckQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Safe || c.Objects != 0 || c.Shark.State != "drained" || c.LatestJob == nil || c.LatestJob.ID != id || len(c.Next) != 1 ||
		!strings.Contains(c.Next[0], "may be retired") {
		t.Errorf("check %+v", c)
	}
	// Not so for shark 2, which holds every object's other copy.
	c, err = h.client.CheckShark(ctx, "2.stor", CheckQuery{Examples: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c.Safe || c.Objects != 30 || len(c.Groups) != 1 || c.Groups[0].Kind != "not_found" || len(c.Groups[0].Examples) != 1 ||
		!slices.ContainsFunc(c.Next, func(s string) bool {
			return strings.Contains(s, "rebalancer-adm job create evacuate --shark 2.stor.test")
		}) {
		t.Errorf("check of shark 2: %+v", c)
	}
}

// A check lasts as long as its scan, far beyond a server's timeouts, and
// shows its progress meanwhile.
func TestCheckOutlivesServerTimeouts(t *testing.T) {
	release := make(chan struct{})
	f := newFleet(1)
	h := sharkHarness(t, 0, fakes.BlockingSource{Object: f.source.Objects[0], Release: release}, nil)
	h.srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: (&Server{Engine: h.engine, Domain: "test", Logger: testutil.Discard()}).Handler(),
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := NewClient(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var lines atomic.Int32
	res, err := c.CheckShark(context.Background(), "1.stor", CheckQuery{ProgressInterval: 100 * time.Millisecond, Progress: func(p CheckProgress) {
		if p.Objects != 1 {
			t.Errorf("progress %+v", p)
		}
		if lines.Add(1) == 5 { // 500 ms: past the timeouts
			close(release)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Safe || res.Objects != 1 || lines.Load() < 5 {
		t.Errorf("check %+v after %d progress lines", res, lines.Load())
	}
}

func TestCheckAdvice(t *testing.T) {
	in, drained := evacuate.SharkStatus{Shark: "1.stor", State: evacuate.SharkInService},
		evacuate.SharkStatus{Shark: "1.stor", State: evacuate.SharkDrained}
	job := func(id string, dry bool, state rebalancer.JobState) evacuate.JobRecord {
		return evacuate.JobRecord{ID: id, State: state, Options: evacuate.Options{DryRun: dry}}
	}
	for _, tt := range []struct {
		name string
		c    evacuate.SharkCheck
		want []string
	}{
		{"safe", evacuate.SharkCheck{Shark: drained, Safe: true},
			[]string{"1.stor may be retired: no metadata names it, and no job puts copies on it."}},
		{"running", evacuate.SharkCheck{Shark: drained, Objects: 3, Running: []evacuate.JobRecord{job("j", false, rebalancer.JobRunning), job("d", true, rebalancer.JobRunning)}},
			[]string{"Job j is evacuating 1.stor: wait for it to end (rebalancer-adm job watch j), then check again."}},
		{"empty in service", evacuate.SharkCheck{Shark: in},
			[]string{"Nothing names 1.stor, but it is in service, so jobs may put copies on it: take it out first (rebalancer-adm shark out 1.stor), then check again."}},
		{"a dead source", evacuate.SharkCheck{Shark: drained, Objects: 1000, Groups: []evacuate.CheckGroup{
			{Kind: "skipped", Reason: "source_other_error", Job: "j", Objects: 990, Sources: map[string]int64{"2.stor": 900, "3.stor": 90}},
			{Kind: "skipped", Reason: "source_is_evac_shark", Job: "j", Objects: 10}}},
			[]string{"990 objects may move on a retry of job j (900 of them failed reading from 2.stor: make sure it serves its objects first): rebalancer-adm job retry j",
				"10 objects have no copy but the one on 1.stor, or their data is gone: they cannot be moved, and retiring 1.stor loses them."}},
		{"written since, excluded, and skipped", evacuate.SharkCheck{Shark: in, Objects: 7, Groups: []evacuate.CheckGroup{
			{Kind: "not_found", Objects: 3}, {Kind: "excluded", Reason: "/stor/logs/", Job: "j", Objects: 2},
			{Kind: "error", Reason: "moray_update_failed", Job: "j", Objects: 1}, {Kind: "skipped", Reason: "object_already_in_datacenter", Job: "j", Objects: 1}}},
			[]string{"5 objects no evacuation found (written since the latest evacuation's scan, or under the key prefixes it left out): evacuate 1.stor again: " +
				"rebalancer-adm job create evacuate --shark 1.stor --exclude-key-prefix none (it also retries the 1 object a retry would)",
				"1 object has a copy on every shark, or in every datacenter, that could take them: they move once there is another shark for them.",
				"1.stor is in service: take it out (rebalancer-adm shark out 1.stor) so that no job puts copies back on it."}},
		{"never evacuated", evacuate.SharkCheck{Shark: in, Objects: 4, Groups: []evacuate.CheckGroup{{Kind: "not_found", Objects: 1},
			{Kind: "dry_run", Job: "d", Objects: 3}}},
			[]string{"1.stor was never evacuated: evacuate it: rebalancer-adm job create evacuate --shark 1.stor",
				"1.stor is in service: take it out (rebalancer-adm shark out 1.stor) so that no job puts copies back on it."}},
		{"bad copies", evacuate.SharkCheck{Shark: drained, Objects: 2, Groups: []evacuate.CheckGroup{
			{Kind: "skipped", Reason: "md5_mismatch", Job: "j", Objects: 2}}},
			[]string{"2 objects have a bad or missing copy elsewhere, or malformed metadata: see rebalancer-adm job objects j --status skipped (or --status error); repair them, then retry."}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkAdvice(tt.c); !slices.Equal(got, tt.want) {
				t.Errorf("advice\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}
