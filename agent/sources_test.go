package agent

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// TestRedirectNotFollowed: a source answering with a redirect fails the
// task with that status; the place it points to is never asked, with the
// agent's own client or one given in Config.SourceClient (whose default is
// to follow).
func TestRedirectNotFollowed(t *testing.T) {
	for _, own := range []bool{true, false} {
		t.Run(fmt.Sprintf("own client %v", own), func(t *testing.T) {
			cfg := testConfig(t)
			if !own {
				cfg.SourceClient = &http.Client{}
			}
			a := startAgent(t, cfg)
			src, elsewhere := newSource(t), newSource(t)
			for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
				http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
				body := content("redirect", 300)
				task := src.put(newID(), newID(), body)
				target := elsewhere.put(task.Owner, task.ObjectID, body)
				src.handle(task, func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, elsewhere.srv.URL+"/"+relPath(target), code)
				})
				id := newID()
				a.mustPost(id, task)
				if r := failedReasons(a.waitComplete(id)); r[task.ObjectID] != rebalancer.SkipHTTPStatus(uint16(code)) {
					t.Fatalf("%d: failed tasks %v, want HTTPStatusCode(%d)", code, r, code)
				}
				if n := elsewhere.hitCount(target); n != 0 {
					t.Fatalf("%d: redirect followed (%d requests)", code, n)
				}
				if n := src.hitCount(task); n != 1 {
					t.Fatalf("%d: source asked %d times, want 1", code, n)
				}
				stored, _ := storedAssignment(t, a.s, id)
				if d := stored.tasks[0].detail.String; !strings.Contains(d, "not followed") {
					t.Fatalf("%d: detail %q does not say the redirect was not followed", code, d)
				}
				a.checkNoFile(task)
			}
			a.checkTempEmpty()
		})
	}
}

func TestAllowSourcesParse(t *testing.T) {
	for _, bad := range [][]string{{""}, {"."}, {".stor.example.com:80"}, {"a/b"}, {"http://a.example.com"},
		{"host:0"}, {"host:99999"}, {".ok.example.com", "not ok"}} {
		if _, err := parseAllowSources(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
		cfg := testConfig(t)
		cfg.AllowSources = bad
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate accepted %q", bad)
		}
		if s, err := New(cfg, nil); err == nil {
			s.Close()
			t.Errorf("New accepted %q", bad)
		}
	}
	list, err := parseAllowSources([]string{".STOR.us-east.joyent.us", "127.0.0.1:8080", "Shark.Example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   string
		want bool
	}{
		{"1.stor.us-east.joyent.us", true},
		{"1.STOR.US-EAST.JOYENT.US", true},
		{"a.b.stor.us-east.joyent.us", true},
		{"stor.us-east.joyent.us", false},  // the suffix is ".stor...": a host under it, not the domain itself
		{".stor.us-east.joyent.us", false}, // nothing before the suffix
		{"1.stor.us-east.joyent.us:80", false},
		{"1.stor.us-east.joyent.us.evil.example", false},
		{"1.notstor.us-east.joyent.us", false},
		{"127.0.0.1:8080", true},
		{"127.0.0.1", false},
		{"127.0.0.1:8081", false},
		{"shark.example.com", true},
		{"shark.example.com:80", false},
	} {
		if got := list.allows(c.id); got != c.want {
			t.Errorf("allows(%q) = %v, want %v", c.id, got, c.want)
		}
	}
	var none *allowList
	if !none.allows("anything.example.com:1") {
		t.Error("no allow-list must allow every source")
	}
}

// TestAllowSources: with an allow-list, a POST naming another source is
// refused with 400 and stores nothing; allowed sources are copied; and a
// task already stored whose source is not allowed (the list changed since)
// fails without the source being asked.
func TestAllowSources(t *testing.T) {
	src, other := newSource(t), newSource(t)
	cfg := testConfig(t)
	cfg.AllowSources = []string{".stor.example.com", src.host()}
	a := startAgent(t, cfg)
	body := content("allowed", 100)

	bad := other.put(newID(), newID(), body)
	good := src.put(newID(), newID(), body)
	id := newID()
	code, reply := a.post(rebalancer.AssignmentPayload{ID: id, Tasks: []rebalancer.Task{good, bad}})
	if code != http.StatusBadRequest || !strings.Contains(reply, "task 1") || !strings.Contains(reply, other.host()) ||
		!strings.Contains(reply, "allowed sources") {
		t.Fatalf("POST with a source not allowed: %d %q", code, reply)
	}
	if code, _, _ := a.get(id); code != http.StatusNotFound {
		t.Fatalf("refused assignment stored: GET %d", code)
	}
	if other.hitCount(bad) != 0 {
		t.Fatal("source not allowed was asked")
	}

	a.mustPost(id, good)
	if got := a.waitComplete(id); got.Stats.Failed != 0 {
		t.Fatalf("allowed source: %+v", got.Stats)
	}
	a.checkFile(good, body)

	if out := a.s.copier.copy(context.Background(), bad); out.status != rebalancer.TaskFailedWith(rebalancer.SkipAssignmentError) ||
		!strings.Contains(out.err.Error(), "allowed sources") {
		t.Fatalf("stored task from a source not allowed: %v %v", out.status, out.err)
	}
	if other.hitCount(bad) != 0 {
		t.Fatal("source not allowed was asked")
	}
}

// dripSource serves n bytes of body, piece bytes every interval, until
// the client goes away.
func dripSource(src *source, task rebalancer.Task, body []byte, piece int, interval time.Duration) {
	src.handle(task, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		t := time.NewTicker(interval)
		defer t.Stop()
		for i := 0; i < len(body); i += piece {
			if _, err := w.Write(body[i:min(i+piece, len(body))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
			}
		}
	})
}

// TestMinSourceRate: a source that keeps sending, but too slowly, fails
// the download with SourceOtherError (not retried, nothing left behind),
// although it never goes silent for the download timeout; a source well
// above the rate completes.
func TestMinSourceRate(t *testing.T) {
	src := newSource(t) // closed after the agent stops
	cfg := testConfig(t)
	cfg.DownloadTimeout = testutil.Timeout // silence alone never ends these downloads
	cfg.MinSourceRate = 64 << 10
	cfg.MinSourceRateWindow = 100 * time.Millisecond
	a := startAgent(t, cfg)

	// 100 bytes every 10ms is at most 10 KB/s: 10 MB would take 1,000 s.
	slow := src.put(newID(), newID(), content("drip", 10<<20))
	dripSource(src, slow, content("drip", 10<<20), 100, 10*time.Millisecond)
	id := newID()
	a.mustPost(id, slow)
	if r := failedReasons(a.waitComplete(id)); r[slow.ObjectID] != rebalancer.SkipSourceOtherError {
		t.Fatalf("failed tasks %v, want SourceOtherError", r)
	}
	stored, _ := storedAssignment(t, a.s, id)
	if d := stored.tasks[0].detail.String; !strings.Contains(d, "minimum rate") {
		t.Fatalf("detail %q does not name the minimum rate", d)
	}
	if n := src.hitCount(slow); n != 1 {
		t.Fatalf("slow source asked %d times, want 1", n)
	}
	a.checkNoFile(slow)
	a.checkTempEmpty()
}

func TestMinSourceRateSteady(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	cfg.MinSourceRate = 1 << 10
	cfg.MinSourceRateWindow = 50 * time.Millisecond
	a := startAgent(t, cfg)
	// 4 KiB every 5ms, about 800 KiB/s: hundreds of times the minimum,
	// over many windows.
	body := content("steady", 256<<10)
	task := src.put(newID(), newID(), body)
	dripSource(src, task, body, 4<<10, 5*time.Millisecond)
	id := newID()
	a.mustPost(id, task)
	if got := a.waitComplete(id); got.Stats.Failed != 0 {
		t.Fatalf("steady source: %+v %v", got.Stats, failedReasons(got))
	}
	a.checkFile(task, body)
}
