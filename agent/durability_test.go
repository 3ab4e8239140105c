package agent

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// syncEvent is one fsync the agent asked for.
type syncEvent struct {
	rel        string   // relative to the root
	dir        bool     // a directory
	entries    []string // for a directory: its entries at the time
	destExists bool     // whether the task's destination existed at the time
}

// syncRecorder replaces the agent's fsync with one that records each call
// (and then syncs), or fails the call numbered failAt (from 0).
type syncRecorder struct {
	root   string
	dest   string // the destination being watched, relative to root
	failAt int

	mu     sync.Mutex
	events []syncEvent
}

var errInjected = errors.New("injected fsync failure")

func (r *syncRecorder) sync(f *os.File, rel string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	ev := syncEvent{rel: rel, dir: fi.IsDir()}
	if ev.dir {
		entries, err := os.ReadDir(filepath.Join(r.root, rel))
		if err != nil {
			return err
		}
		for _, e := range entries {
			ev.entries = append(ev.entries, e.Name())
		}
	}
	r.mu.Lock()
	_, err = os.Lstat(filepath.Join(r.root, r.dest))
	ev.destExists = err == nil
	n := len(r.events)
	r.events = append(r.events, ev)
	r.mu.Unlock()
	if n == r.failAt {
		return errInjected
	}
	return f.Sync()
}

func (r *syncRecorder) recorded() []syncEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// TestCommitSyncs: the commit of a download fsyncs, in this order, the
// temp file before it is renamed, the parent of every directory it
// creates once that directory exists, and the destination directory once
// the file is in it; an object found in place is fsynced with its
// directory before it counts. Each of these syncs is needed for a copy to
// survive a power loss, and each one failing fails the task.
func TestCommitSyncs(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	rec := &syncRecorder{root: cfg.Root, failAt: -1}
	a := startAgent(t, cfg, func(s *Server) { s.copier.tree.sync = rec.sync })
	body := content("durable", 5000)
	run := func(task rebalancer.Task) (rebalancer.Assignment, []syncEvent) {
		t.Helper()
		rec.mu.Lock()
		rec.dest, rec.events = relPath(task), nil
		rec.mu.Unlock()
		id := newID()
		a.mustPost(id, task)
		return a.waitComplete(id), rec.recorded()
	}
	check := func(t *testing.T, got, want []syncEvent) {
		t.Helper()
		ok := len(got) == len(want)
		for i := 0; ok && i < len(want); i++ {
			g, w := got[i], want[i]
			ok = g.dir == w.dir && g.destExists == w.destExists &&
				(g.rel == w.rel || (w.rel == TempDirName+"/*" && strings.HasPrefix(g.rel, TempDirName+"/"))) &&
				(len(w.entries) == 0 || slices.Contains(g.entries, w.entries[0]))
		}
		if !ok {
			t.Fatalf("fsyncs\n got %+v\nwant %+v", got, want)
		}
	}
	tmpFile := syncEvent{rel: TempDirName + "/*"}
	dir := func(rel, child string, destExists bool) syncEvent {
		return syncEvent{rel: rel, dir: true, entries: []string{child}, destExists: destExists}
	}

	t.Run("v2, every directory new", func(t *testing.T) {
		task := src.putV2(newID(), newID(), "ab"+newID()[2:], body)
		got, events := run(task)
		if got.Stats.Failed != 0 {
			t.Fatalf("%+v", got.Stats)
		}
		o, b := "v2/"+task.Owner, "v2/"+task.Owner+"/"+task.BucketID
		check(t, events, []syncEvent{
			tmpFile,
			dir(".", "v2", false),
			dir("v2", task.Owner, false),
			dir(o, task.BucketID, false),
			dir(b, "ab", false),
			dir(b+"/ab", filepath.Base(relPath(task)), true),
		})
		a.checkFile(task, body)
	})
	t.Run("v1, owner exists", func(t *testing.T) {
		first := src.put(newID(), newID(), body)
		run(first)
		task := src.put(first.Owner, newID(), body)
		_, events := run(task)
		check(t, events, []syncEvent{tmpFile, dir(task.Owner, task.ObjectID, true)})
	})
	t.Run("already in place", func(t *testing.T) {
		task := src.put(newID(), newID(), body)
		run(task)
		_, events := run(task)
		check(t, events, []syncEvent{{rel: relPath(task), destExists: true}, dir(task.Owner, task.ObjectID, true)})
		if n := src.hitCount(task); n != 1 {
			t.Fatalf("object in place downloaded again (%d requests)", n)
		}
	})

	// A failed fsync at any step fails the task; before the rename,
	// nothing is at the destination.
	for i, step := range []string{"temp file", "root", "v2", "owner", "bucket", "destination directory"} {
		t.Run("failing "+step, func(t *testing.T) {
			task := src.putV2(newID(), newID(), "cd"+newID()[2:], body)
			rec.mu.Lock()
			rec.failAt = i
			rec.mu.Unlock()
			defer func() { rec.mu.Lock(); rec.failAt = -1; rec.mu.Unlock() }()
			if i >= 1 {
				// Make the directories from "root" up to this step new.
				os.RemoveAll(filepath.Join(cfg.Root, "v2"))
			}
			got, events := run(task)
			if r := failedReasons(got); r[task.ObjectID] != rebalancer.SkipAgentFSError {
				t.Fatalf("failed tasks %v, want AgentFSError; fsyncs %+v", r, events)
			}
			if len(events) != i+1 {
				t.Fatalf("%d fsyncs after the failing one: %+v", len(events)-i-1, events)
			}
			if _, err := os.Lstat(a.dest(task)); (err == nil) != (step == "destination directory") {
				t.Fatalf("destination after a failed %s fsync: %v", step, err)
			}
			a.checkTempEmpty()
		})
	}
}

// TestRepostFindsFiles: files on disk are the truth. An assignment posted
// again under the same id, after the agent forgot it (deleted, or its
// state database reset), completes from the verified files already in
// place without downloading them again; a file that does not verify is
// downloaded again.
func TestRepostFindsFiles(t *testing.T) {
	src := newSource(t)
	cfg := testConfig(t)
	a := startAgent(t, cfg)
	owner := newID()
	tasks := []rebalancer.Task{
		src.put(owner, newID(), content("one", 3000)),
		src.put(owner, newID(), content("two", 70000)),
		src.putV2(owner, newID(), newID(), content("three", 100)),
	}
	id := newID()
	a.mustPost(id, tasks...)
	if got := a.waitComplete(id); got.Stats.Failed != 0 {
		t.Fatalf("%+v", got.Stats)
	}
	hits := func() []int {
		var out []int
		for _, task := range tasks {
			out = append(out, src.hitCount(task))
		}
		return out
	}
	if h := hits(); !slices.Equal(h, []int{1, 1, 1}) {
		t.Fatalf("downloads %v", h)
	}

	// Deleted by an operator, then posted again by the manager.
	if code, body := request(t, http.MethodDelete, a.url("/assignments/"+id), nil); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	a.mustPost(id, tasks...)
	if got := a.waitComplete(id); got.Stats.Failed != 0 || got.Stats.Complete != 3 {
		t.Fatalf("re-posted: %+v", got.Stats)
	}
	if h := hits(); !slices.Equal(h, []int{1, 1, 1}) {
		t.Fatalf("re-posted assignment downloaded again: %v", h)
	}
	if n := metricValue(t, a.s, "rebalancer_agent_objects_already_present_total"); n != "3" {
		t.Fatalf("objects found present: %s, want 3", n)
	}

	// The state database is lost; one file is damaged meanwhile.
	a.stop()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(cfg.DataDir, DBFileName+suffix))
	}
	if err := os.WriteFile(a.dest(tasks[1]), []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := startAgent(t, cfg)
	if code, _, _ := b.get(id); code != http.StatusNotFound {
		t.Fatalf("GET after the reset: %d, want 404", code)
	}
	b.mustPost(id, tasks...)
	if got := b.waitComplete(id); got.Stats.Failed != 0 || got.Stats.Complete != 3 {
		t.Fatalf("after the reset: %+v", got.Stats)
	}
	if h := hits(); !slices.Equal(h, []int{1, 2, 1}) {
		t.Fatalf("downloads after the reset %v, want only the damaged file again", h)
	}
	b.checkFile(tasks[1], content("two", 70000))
}

// TestCorruptStateDatabase: a state database that is not one, or whose
// pages are damaged, is moved aside at startup with its WAL and shared
// memory files, under a name with the time, and the agent starts with an
// empty one and says so in an error; one that cannot be opened for
// another reason stops the agent and stays where it is.
func TestCorruptStateDatabase(t *testing.T) {
	dbPath := func(cfg Config) string { return filepath.Join(cfg.DataDir, DBFileName) }
	asideFiles := func(t *testing.T, cfg Config) []string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(cfg.DataDir, DBFileName+".corrupt-*"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	startsFresh := func(t *testing.T, cfg Config) *testAgent {
		t.Helper()
		var logs logBuffer
		a := startAgentLog(t, cfg, logs.logger())
		recs := logs.records("ERROR", "state database is corrupt: moved it aside and started with an empty one; "+
			"the assignments it held are forgotten (managers post them again, and copies already on disk are verified, not downloaded again)")
		if len(recs) != 1 || recs[0]["path"] != dbPath(cfg) {
			t.Fatalf("no error about the corrupt database in the log:\n%s", logs.String())
		}
		id := newID()
		a.mustPost(id)
		a.waitComplete(id)
		return a
	}

	t.Run("not a database", func(t *testing.T) {
		cfg := testConfig(t)
		os.MkdirAll(cfg.DataDir, 0o755)
		files := map[string][]byte{"": bytes.Repeat([]byte("not sqlite "), 1000), "-wal": []byte("old wal"), "-shm": []byte("old shm")}
		for suffix, b := range files {
			if err := os.WriteFile(dbPath(cfg)+suffix, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		startsFresh(t, cfg)
		aside := asideFiles(t, cfg)
		if len(aside) != 3 {
			t.Fatalf("moved aside: %v, want the database, its WAL and its shm", aside)
		}
		main := aside[0] // sorted: the database sorts before its -shm and -wal
		for _, suffix := range []string{"", "-wal"} {
			if got, err := os.ReadFile(main + suffix); err != nil || !bytes.Equal(got, files[suffix]) {
				t.Fatalf("%s%s: %v, content kept: %v", main, suffix, err, bytes.Equal(got, files[suffix]))
			}
		}
		// The shared-memory file is an index SQLite rebuilds at will: it
		// is moved with the others, not necessarily as it was.
		if _, err := os.Stat(main + "-shm"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("damaged pages", func(t *testing.T) {
		cfg := testConfig(t)
		s, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			var tasks []rebalancer.Task
			for range 20 {
				tasks = append(tasks, rebalancer.Task{ObjectID: newID(), Owner: newID(), MD5Sum: "x",
					Source: rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: "1.stor.example.com"}})
			}
			if err := s.store.insert(context.Background(), newAssignment{id: newID(), tasks: tasks, state: stateScheduled}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(dbPath(cfg))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 16*4096 {
			t.Fatalf("database of %d bytes: too small to damage a page in the middle", len(b))
		}
		// Keep the header page; scribble over a few in the middle.
		for i := 8 * 4096; i < 12*4096; i++ {
			b[i] = byte(i * 31)
		}
		if err := os.WriteFile(dbPath(cfg), b, 0o644); err != nil {
			t.Fatal(err)
		}
		startsFresh(t, cfg)
		if aside := asideFiles(t, cfg); len(aside) == 0 || !strings.HasSuffix(aside[0], "Z") {
			t.Fatalf("moved aside: %v", aside)
		} else if got, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: %v, content kept: %v", aside[0], err, bytes.Equal(got, b))
		}
	})

	t.Run("cannot open", func(t *testing.T) {
		cfg := testConfig(t)
		if err := os.MkdirAll(dbPath(cfg), 0o755); err != nil {
			t.Fatal(err)
		}
		if s, err := New(cfg, nil); err == nil {
			s.Close()
			t.Fatal("New with a directory as its database succeeded")
		}
		if fi, err := os.Stat(dbPath(cfg)); err != nil || !fi.IsDir() {
			t.Fatalf("database path disturbed: %v", err)
		}
		if aside := asideFiles(t, cfg); len(aside) != 0 {
			t.Fatalf("moved aside: %v", aside)
		}
	})
}
