package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// refusingListener closes the first connections it accepts at once, so
// that requests on them fail before any response.
type refusingListener struct {
	net.Listener
	left    atomic.Int32
	refused atomic.Int32
}

func (l *refusingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.left.Add(-1) >= 0 {
			l.refused.Add(1)
			c.Close()
			continue
		}
		return c, nil
	}
}

// refusingSource serves body at every path after refusing n connections.
func refusingSource(t *testing.T, n int32, body []byte) (string, *refusingListener) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	l := &refusingListener{Listener: srv.Listener}
	l.left.Store(n)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), l
}

// TestRetrySchedule: a source that cannot be reached is tried 4 times;
// an answer, even an error status, is never retried.
func TestRetrySchedule(t *testing.T) {
	a := startAgent(t, testConfig(t))
	body := content("retry", 1000)

	t.Run("refused 3 times then served", func(t *testing.T) {
		host, l := refusingSource(t, 3, body)
		task := rebalancer.Task{ObjectID: newID(), Owner: newID(), MD5Sum: md5b64(body),
			Source: rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: host}}
		id := newID()
		a.mustPost(id, task)
		if got := a.waitComplete(id); got.Stats.Failed != 0 {
			t.Fatalf("stats %+v, want Complete(None)", got.Stats)
		}
		if n := l.refused.Load(); n != 3 {
			t.Fatalf("%d connections refused, want 3", n)
		}
		a.checkFile(task, body)
	})

	t.Run("refused forever", func(t *testing.T) {
		host, l := refusingSource(t, 1000, body)
		task := rebalancer.Task{ObjectID: newID(), Owner: newID(), MD5Sum: md5b64(body),
			Source: rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: host}}
		id := newID()
		a.mustPost(id, task)
		got := a.waitComplete(id)
		if r := failedReasons(got); r[task.ObjectID] != rebalancer.SkipSourceOtherError {
			t.Fatalf("failed tasks %v, want SourceOtherError", r)
		}
		if n := l.refused.Load(); n != 4 {
			t.Fatalf("%d attempts, want 4", n)
		}
		a.checkNoFile(task)
	})

	t.Run("nothing listening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		host := ln.Addr().String()
		ln.Close()
		task := rebalancer.Task{ObjectID: newID(), Owner: newID(), MD5Sum: md5b64(body),
			Source: rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: host}}
		id := newID()
		a.mustPost(id, task)
		if r := failedReasons(a.waitComplete(id)); r[task.ObjectID] != rebalancer.SkipSourceOtherError {
			t.Fatalf("failed tasks %v, want SourceOtherError", r)
		}
	})

	t.Run("500 not retried", func(t *testing.T) {
		src := newSource(t)
		task := src.put(newID(), newID(), body)
		src.handle(task, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
		id := newID()
		a.mustPost(id, task)
		if r := failedReasons(a.waitComplete(id)); r[task.ObjectID] != rebalancer.SkipHTTPStatus(500) {
			t.Fatalf("failed tasks %v, want HTTPStatusCode(500)", r)
		}
		if n := src.hitCount(task); n != 1 {
			t.Fatalf("source asked %d times, want 1", n)
		}
	})

	t.Run("other statuses", func(t *testing.T) {
		src := newSource(t)
		for _, code := range []int{http.StatusNoContent, http.StatusPartialContent, http.StatusForbidden, http.StatusServiceUnavailable} {
			task := src.put(newID(), newID(), body)
			src.handle(task, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code); w.Write(body) })
			id := newID()
			a.mustPost(id, task)
			if r := failedReasons(a.waitComplete(id)); r[task.ObjectID] != rebalancer.SkipHTTPStatus(uint16(code)) {
				t.Fatalf("status %d: failed tasks %v", code, r)
			}
			a.checkNoFile(task)
		}
	})
	a.checkTempEmpty()
}

// TestSourceTimeouts: a source that does not answer, or stops sending,
// fails the task with SourceOtherError (a network problem, not a disk
// one), and no partial file is left.
func TestSourceTimeouts(t *testing.T) {
	cfg := testConfig(t)
	cfg.DownloadTimeout = 100 * time.Millisecond
	a := startAgent(t, cfg)
	src := newSource(t)
	body := content("slow", 100000)

	headers := src.put(newID(), newID(), body)
	src.handle(headers, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	stall := src.put(newID(), newID(), body)
	src.handle(stall, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(body[:50000])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	short := src.put(newID(), newID(), body)
	src.handle(short, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(body[:50000])
	})
	id := newID()
	a.mustPost(id, headers, stall, short)
	got := failedReasons(a.waitComplete(id))
	for _, task := range []rebalancer.Task{headers, stall, short} {
		if got[task.ObjectID] != rebalancer.SkipSourceOtherError {
			t.Errorf("%s: %v, want SourceOtherError", task.ObjectID, got[task.ObjectID])
		}
		a.checkNoFile(task)
	}
	if n := src.hitCount(headers); n != 4 {
		t.Errorf("unanswered request tried %d times, want 4", n)
	}
	if n := src.hitCount(stall); n != 1 {
		t.Errorf("stalled body tried %d times, want 1", n)
	}
	a.checkTempEmpty()
}

// TestSlowSteadySource: the download timeout bounds silence, not the whole
// transfer.
func TestSlowSteadySource(t *testing.T) {
	cfg := testConfig(t)
	cfg.DownloadTimeout = 200 * time.Millisecond
	a := startAgent(t, cfg)
	src := newSource(t)
	body := content("steady", 64<<10)
	task := src.put(newID(), newID(), body)
	src.handle(task, func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(body); i += 4 << 10 {
			w.Write(body[i : i+4<<10])
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond) // 16 pieces: longer than the timeout in total
		}
	})
	id := newID()
	a.mustPost(id, task)
	if got := a.waitComplete(id); got.Stats.Failed != 0 {
		t.Fatalf("stats %+v", got.Stats)
	}
	a.checkFile(task, body)
}

// TestUnwritableDestination: filesystem errors are AgentFSError, and
// leave nothing behind.
func TestUnwritableDestination(t *testing.T) {
	src := newSource(t)
	a := startAgent(t, testConfig(t))
	body := content("fs", 1000)

	// The owner directory is a file: mkdir fails.
	blocked := src.put(newID(), newID(), body)
	ownerPath := filepath.Join(a.root, blocked.Owner)
	if err := os.WriteFile(ownerPath, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := newID()
	a.mustPost(id, blocked)
	if r := failedReasons(a.waitComplete(id)); r[blocked.ObjectID] != rebalancer.SkipAgentFSError {
		t.Fatalf("failed tasks %v, want AgentFSError", r)
	}
	if b, _ := os.ReadFile(ownerPath); string(b) != "in the way" {
		t.Fatal("file in the way was changed")
	}
	a.checkTempEmpty()

	// The temp directory is gone: no temp file can be created.
	tmp := filepath.Join(a.root, TempDirName)
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	task := src.put(newID(), newID(), body)
	id = newID()
	a.mustPost(id, task)
	if r := failedReasons(a.waitComplete(id)); r[task.ObjectID] != rebalancer.SkipAgentFSError {
		t.Fatalf("failed tasks %v, want AgentFSError", r)
	}
	a.checkNoFile(task)
	os.Remove(tmp)
	os.Mkdir(tmp, 0o755)
}

// mountTmpfs mounts a small tmpfs at dir, or skips the test where the
// machine does not allow it (it needs root in the initial namespace).
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
}

// TestDiskFullAndReadOnly uses a real small filesystem: a full disk and a
// read-only root are AgentFSError, with nothing left behind.
func TestDiskFullAndReadOnly(t *testing.T) {
	cfg := testConfig(t)
	mountTmpfs(t, cfg.Root, "1m")
	src := newSource(t)
	a := startAgent(t, cfg)

	big := src.put(newID(), newID(), content("big", 2<<20))
	id := newID()
	a.mustPost(id, big)
	if r := failedReasons(a.waitComplete(id)); r[big.ObjectID] != rebalancer.SkipAgentFSError {
		t.Fatalf("disk full: failed tasks %v, want AgentFSError", r)
	}
	a.checkNoFile(big)
	a.checkTempEmpty()

	if out, err := exec.Command("mount", "-o", "remount,ro", cfg.Root).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
	small := src.put(newID(), newID(), content("small", 100))
	id = newID()
	a.mustPost(id, small)
	if r := failedReasons(a.waitComplete(id)); r[small.ObjectID] != rebalancer.SkipAgentFSError {
		t.Fatalf("read-only: failed tasks %v, want AgentFSError", r)
	}
	a.stop()
	exec.Command("mount", "-o", "remount,rw", cfg.Root).Run()
}

// TestSameDestinationConcurrently: two assignments copying one object at
// the same time do not clobber each other.
func TestSameDestinationConcurrently(t *testing.T) {
	cfg := testConfig(t)
	cfg.Workers = 2
	a := startAgent(t, cfg)
	src := newSource(t)
	g := newGate()
	body := content("same", 300000)
	task := src.put(newID(), newID(), body)
	src.handle(task, func(w http.ResponseWriter, r *http.Request) {
		w.Write(body[:1000])
		w.(http.Flusher).Flush()
		g.wait(r.Context())
		w.Write(body[1000:])
	})
	id1, id2 := newID(), newID()
	a.mustPost(id1, task)
	a.mustPost(id2, task)
	g.arrivals(t, 2)
	g.release()
	for _, id := range []string{id1, id2} {
		if got := a.waitComplete(id); got.Stats.Failed != 0 {
			t.Fatalf("%s: %+v", id, got.Stats)
		}
	}
	a.checkFile(task, body)
	a.checkTempEmpty()
}

// TestPanicIsFailure: a task that panics is reported failed, and the rest
// of the assignment completes.
func TestPanicIsFailure(t *testing.T) {
	src := newSource(t)
	owner := newID()
	bad := src.put(owner, newID(), content("bad", 10))
	good := src.put(owner, newID(), content("good", 10))
	a := startAgent(t, testConfig(t), func(s *Server) {
		s.beforeCopy = func(_ context.Context, objectID string) {
			if objectID == bad.ObjectID {
				panic("boom")
			}
		}
	})
	id := newID()
	a.mustPost(id, bad, good)
	got := a.waitComplete(id)
	if r := failedReasons(got); len(r) != 1 || r[bad.ObjectID] != rebalancer.SkipAgentFSError {
		t.Fatalf("failed tasks %v, want only the panicking one, AgentFSError", r)
	}
	a.checkFile(good, content("good", 10))
}

// TestRecordFailures: while results cannot be written the assignment is
// never reported complete; once the database recovers it completes with
// the right results.
func TestRecordFailures(t *testing.T) {
	for _, op := range []string{"record", "complete"} {
		t.Run(op, func(t *testing.T) {
			src := newSource(t)
			var broken atomic.Bool
			broken.Store(true)
			var failures atomic.Int64
			a := startAgent(t, testConfig(t), func(s *Server) {
				s.store.fault = func(o string) error {
					if o == op && broken.Load() {
						failures.Add(1)
						return errors.New("disk I/O error")
					}
					return nil
				}
			})
			owner := newID()
			good := src.put(owner, newID(), content("ok", 10))
			missing := rebalancer.Task{ObjectID: newID(), Owner: owner, MD5Sum: "x", Source: src.node()}
			id := newID()
			a.mustPost(id, good, missing)
			// Several rounds of retries and requeues, all failing.
			testutil.Poll(t, "20 failed write attempts", func() error {
				_, got, body := a.get(id)
				if got.Stats.State.Phase == rebalancer.AssignmentComplete {
					t.Fatalf("reported complete while results cannot be recorded: %s", body)
				}
				if n := failures.Load(); n < 20 {
					return fmt.Errorf("%d so far", n)
				}
				return nil
			})
			_, got, body := a.get(id)
			if got.Stats.State.Phase == rebalancer.AssignmentComplete {
				t.Fatalf("reported complete while results cannot be recorded: %s", body)
			}
			broken.Store(false)
			got = a.waitComplete(id)
			if st := got.Stats; st.Total != 2 || st.Complete != 2 || st.Failed != 1 ||
				failedReasons(got)[missing.ObjectID] != rebalancer.SkipSourceObjectNotFound {
				t.Fatalf("stats %+v", st)
			}
			a.checkFile(good, content("ok", 10))
		})
	}
}

// TestSaveFailure: a POST whose save fails gets 500 and the id is not
// held: the same id can be posted again.
func TestSaveFailure(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	a := startAgent(t, testConfig(t), func(s *Server) {
		s.store.fault = func(op string) error {
			if op == "insert" && broken.Load() {
				return errors.New("database or disk is full")
			}
			return nil
		}
	})
	id := newID()
	if code, body := a.post(rebalancer.AssignmentPayload{ID: id, Tasks: []rebalancer.Task{}}); code != http.StatusInternalServerError {
		t.Fatalf("POST: %d %s, want 500", code, body)
	}
	if code, _, _ := a.get(id); code != http.StatusNotFound {
		t.Fatalf("GET after a failed save: %d, want 404", code)
	}
	broken.Store(false)
	a.mustPost(id)
	a.waitComplete(id)
}

// TestRestartResume: an agent stopped with an assignment running and one
// queued resumes both at the next start, and does not redo tasks whose
// results were recorded.
func TestRestartResume(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	cfg.Workers = 1
	cfg.WorkersPerAssignment = 1
	cfg.ShutdownGrace = time.Millisecond
	g := newGate()
	owner := newID()
	done := src.put(owner, newID(), content("done", 100))
	slow := src.put(owner, newID(), content("slow", 100000))
	later := src.put(owner, newID(), content("later", 100))
	queuedTask := src.put(owner, newID(), content("queued", 100))
	src.handle(slow, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(content("slow", 100000)[:10000])
		w.(http.Flusher).Flush()
		g.wait(r.Context())
	})

	a := startAgent(t, cfg)
	running, queued := newID(), newID()
	a.mustPost(running, done, slow, later)
	a.mustPost(queued, queuedTask)
	g.arrivals(t, 1)
	a.waitUntil(running, "one task done", func(got rebalancer.Assignment) bool { return got.Stats.Complete == 1 })
	a.stop()
	a.checkNoFile(slow)
	g.release()

	// The finished task's file is removed: if it were redone, it would
	// come back.
	if err := os.Remove(a.dest(done)); err != nil {
		t.Fatal(err)
	}
	src.handle(slow, nil)
	b := startAgent(t, cfg)
	for _, id := range []string{running, queued} {
		if got := b.waitComplete(id); got.Stats.Failed != 0 || got.Stats.Complete != got.Stats.Total {
			t.Fatalf("%s: %+v", id, got.Stats)
		}
	}
	if n := src.hitCount(done); n != 1 {
		t.Fatalf("recorded task downloaded %d times, want 1", n)
	}
	b.checkNoFile(done)
	b.checkFile(slow, content("slow", 100000))
	b.checkFile(later, content("later", 100))
	b.checkFile(queuedTask, content("queued", 100))
	b.checkTempEmpty()
}

// TestShutdownGrace: a download in flight at shutdown may finish within
// the grace period and is recorded.
func TestShutdownGrace(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	cfg.ShutdownGrace = testutil.Timeout
	g := newGate()
	body := content("grace", 1000)
	task := src.put(newID(), newID(), body)
	src.handle(task, func(w http.ResponseWriter, r *http.Request) { g.wait(r.Context()); w.Write(body) })
	a := startAgent(t, cfg)
	id := newID()
	a.mustPost(id, task)
	g.arrivals(t, 1)
	a.cancel()
	g.release()
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
	got, err := a.s.store.get(context.Background(), id)
	if err != nil || got.Stats.State.Phase != rebalancer.AssignmentComplete {
		t.Fatalf("after a graceful stop: %+v %v", got, err)
	}
	a.done <- nil // for the cleanup
	a.checkFile(task, body)
}
