package agent

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// The tests in this file treat the agent's peers as hostile: a manager (or
// anyone who can reach the API) posting tasks that claim results or name
// sources it should not use, sources that redirect or drip, and symbolic
// links planted in the Manta root.

// putV2 serves body for a v2 object and returns its task.
func (s *source) putV2(owner, bucketID, objectID string, body []byte) rebalancer.Task {
	t := rebalancer.Task{ObjectID: objectID, Owner: owner, BucketID: bucketID,
		ObjectNameHash: rebalancer.ObjectNameHash(objectID), MD5Sum: md5b64(body), Source: s.node()}
	s.mu.Lock()
	s.objects["/"+relPath(t)] = body
	s.mu.Unlock()
	return t
}

// linkTargets are where planted symbolic links point: outside the root and
// inside it, at a directory and at a file, and nowhere. Links into the
// root are relative (os.Root refuses absolute links by itself, so only a
// relative one tests the agent's own check); links out of it are tried
// both ways.
type linkTarget struct {
	name     string
	target   string // absolute
	relative bool
}

func linkTargets(outside, inside string) []linkTarget {
	return []linkTarget{
		{"outside dir", filepath.Join(outside, "dir"), false},
		{"outside dir, relative", filepath.Join(outside, "dir"), true},
		{"outside file", filepath.Join(outside, "file"), false},
		{"inside dir", filepath.Join(inside, "dir"), true},
		{"inside file", filepath.Join(inside, "file"), true},
		{"dangling", filepath.Join(outside, "nothing"), false},
	}
}

// plant makes link a symbolic link to target (relative to link's
// directory when relative).
func plant(t *testing.T, link string, lt linkTarget) string {
	t.Helper()
	target := lt.target
	if lt.relative {
		var err error
		if target, err = filepath.Rel(filepath.Dir(link), lt.target); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return target
}

// linkFixture makes the targets of planted links: outside the root, and in
// a directory inside it that no task writes to.
func linkFixture(t *testing.T, root string) (outside, inside string) {
	t.Helper()
	outside = t.TempDir()
	inside = filepath.Join(root, "inside")
	for _, d := range []string{outside, inside} {
		if err := os.MkdirAll(filepath.Join(d, "dir"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "dir", "keep"), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "file"), []byte("a file"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return outside, inside
}

// TestSymlinkAtEveryComponent plants a symbolic link at each component of
// the paths the agent writes, v1 and v2, pointing out of the root and into
// it, at a directory, at a file and nowhere. Every such task must fail
// with AgentFSError before the source is asked for anything, the link and
// what it points to must be left as they were, nothing may appear outside
// the root, and the agent must log the link's path as an error.
func TestSymlinkAtEveryComponent(t *testing.T) {
	src := newSource(t)
	var logs logBuffer
	cfg := testConfig(t)
	a := startAgentLog(t, cfg, logs.logger())
	outside, inside := linkFixture(t, cfg.Root)
	body := content("symlink", 1000)

	components := []struct {
		name string
		task func() rebalancer.Task
		at   func(rebalancer.Task) string // the path to replace with a link, relative to the root
	}{
		{"v1 owner dir", func() rebalancer.Task { return src.put(newID(), newID(), body) },
			func(t rebalancer.Task) string { return t.Owner }},
		{"v1 file", func() rebalancer.Task { return src.put(newID(), newID(), body) },
			func(t rebalancer.Task) string { return relPath(t) }},
		{"v2 dir", func() rebalancer.Task { return src.putV2(newID(), newID(), newID(), body) },
			func(rebalancer.Task) string { return "v2" }},
		{"v2 owner dir", func() rebalancer.Task { return src.putV2(newID(), newID(), newID(), body) },
			func(t rebalancer.Task) string { return "v2/" + t.Owner }},
		{"v2 bucket dir", func() rebalancer.Task { return src.putV2(newID(), newID(), newID(), body) },
			func(t rebalancer.Task) string { return "v2/" + t.Owner + "/" + t.BucketID }},
		{"v2 prefix dir", func() rebalancer.Task { return src.putV2(newID(), newID(), newID(), body) },
			func(t rebalancer.Task) string { return filepath.Dir(relPath(t)) }},
		{"v2 file", func() rebalancer.Task { return src.putV2(newID(), newID(), newID(), body) },
			func(t rebalancer.Task) string { return relPath(t) }},
	}
	for _, c := range components {
		for _, lt := range linkTargets(outside, inside) {
			t.Run(c.name+"/"+lt.name, func(t *testing.T) {
				task := c.task()
				link := filepath.Join(cfg.Root, c.at(task))
				outsideBefore, insideBefore := treeSnapshot(t, outside), treeSnapshot(t, inside)
				target := plant(t, link, lt)
				defer os.Remove(link)

				id := newID()
				a.mustPost(id, task)
				got := a.waitComplete(id)
				if r := failedReasons(got); len(r) != 1 || r[task.ObjectID] != rebalancer.SkipAgentFSError {
					t.Fatalf("failed tasks %v, want AgentFSError", r)
				}
				if n := src.hitCount(task); n != 0 {
					t.Errorf("source asked %d times: a task crossing a link must fail before downloading", n)
				}
				if now, err := os.Readlink(link); err != nil || now != target {
					t.Errorf("link changed: %q %v, want %q", now, err, target)
				}
				if after := treeSnapshot(t, outside); !maps.Equal(after, outsideBefore) {
					t.Errorf("outside the root changed:\n before %v\n after  %v", outsideBefore, after)
				}
				if after := treeSnapshot(t, inside); !maps.Equal(after, insideBefore) {
					t.Errorf("the link's target inside the root changed:\n before %v\n after  %v", insideBefore, after)
				}
				logged := false
				for _, rec := range logs.records("ERROR", "refusing to write through a symbolic link") {
					logged = logged || rec["path"] == link
				}
				if !logged {
					t.Errorf("no error logged with path %s:\n%s", link, logs.String())
				}
				a.checkTempEmpty()
			})
		}
	}

	// With every link gone, the same kinds of tasks go through.
	v1, v2 := src.put(newID(), newID(), body), src.putV2(newID(), newID(), newID(), body)
	id := newID()
	a.mustPost(id, v1, v2)
	if got := a.waitComplete(id); got.Stats.Failed != 0 {
		t.Fatalf("without links: %+v", got.Stats)
	}
	a.checkFile(v1, body)
	a.checkFile(v2, body)
}

// TestSymlinkTempDir: a temp directory that is a symbolic link stops the
// agent from starting. One swapped for a link while the agent runs changes
// nothing: temp files are created, and renamed into place, through the
// directory the agent opened at startup, never by its name.
func TestSymlinkTempDir(t *testing.T) {
	t.Run("at startup", func(t *testing.T) {
		for i := range linkTargets("", "") {
			cfg := testConfig(t)
			outside, inside := linkFixture(t, cfg.Root)
			lt := linkTargets(outside, inside)[i]
			t.Run(lt.name, func(t *testing.T) {
				before := treeSnapshot(t, outside)
				plant(t, filepath.Join(cfg.Root, TempDirName), lt)
				if s, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "symbolic link") {
					if s != nil {
						s.Close()
					}
					t.Fatalf("New with a linked temp directory: %v", err)
				}
				if after := treeSnapshot(t, outside); !maps.Equal(after, before) {
					t.Fatalf("outside the root changed:\n before %v\n after  %v", before, after)
				}
			})
		}
	})

	t.Run("while running", func(t *testing.T) {
		src := newSource(t)
		cfg := testConfig(t)
		a := startAgent(t, cfg)
		outside, inside := linkFixture(t, cfg.Root)
		tmp := filepath.Join(cfg.Root, TempDirName)
		moved := filepath.Join(cfg.Root, "moved-tmp")
		if err := os.Rename(tmp, moved); err != nil {
			t.Fatal(err)
		}
		for _, lt := range []linkTarget{
			{"outside dir", filepath.Join(outside, "dir"), false},
			{"inside dir", filepath.Join(inside, "dir"), true},
		} {
			t.Run(lt.name, func(t *testing.T) {
				outsideBefore, insideBefore := treeSnapshot(t, outside), treeSnapshot(t, inside)
				plant(t, tmp, lt)
				defer os.Remove(tmp)
				task := src.put(newID(), newID(), content("tmp", 500))
				id := newID()
				a.mustPost(id, task)
				if got := a.waitComplete(id); got.Stats.Failed != 0 {
					t.Fatalf("stats %+v, failed %v", got.Stats, failedReasons(got))
				}
				a.checkFile(task, content("tmp", 500))
				if after := treeSnapshot(t, outside); !maps.Equal(after, outsideBefore) {
					t.Errorf("outside the root changed:\n before %v\n after  %v", outsideBefore, after)
				}
				if after := treeSnapshot(t, inside); !maps.Equal(after, insideBefore) {
					t.Errorf("inside target changed:\n before %v\n after  %v", insideBefore, after)
				}
				// The temp file went through the directory the agent
				// opened at startup, and was renamed from there.
				if entries, err := os.ReadDir(moved); err != nil || len(entries) != 0 {
					t.Errorf("temp directory: %v, %d entries left", err, len(entries))
				}
			})
		}
	})
}

// TestRootConfinement: past the request validation, paths that leave the
// root by "..", by an absolute name or by an empty component are refused
// by the file layer itself, and nothing is created outside.
func TestRootConfinement(t *testing.T) {
	cfg := testConfig(t)
	a := startAgent(t, cfg)
	parent := filepath.Dir(cfg.Root)
	names := func() []string {
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	before := names()
	tr := a.s.copier.tree
	for _, rel := range []string{"..", "../escape", "a/../../escape", "/tmp", "", "a//b", "a/./../../escape"} {
		if d, err := tr.openDir(rel, true); err == nil {
			d.Close()
			t.Errorf("openDir(%q) succeeded", rel)
		}
	}
	for _, owner := range []string{"..", "../x", "/etc", "."} {
		task := rebalancer.Task{ObjectID: newID(), Owner: owner, MD5Sum: "x",
			Source: rebalancer.StorageNode{MantaStorageID: "127.0.0.1:1"}}
		if out := a.s.copier.copy(context.Background(), task); out.status != rebalancer.TaskFailedWith(rebalancer.SkipAssignmentError) {
			t.Errorf("owner %q: %v %v, want AssignmentError", owner, out.status, out.err)
		}
	}
	if after := names(); !slices.Equal(before, after) {
		t.Fatalf("entries beside the root changed: %v, then %v", before, after)
	}
}

// TestPostedStatusIgnored: whatever status a posted task claims, in either
// payload shape, the agent starts it pending and reports what it did:
// the source is asked, the file written, and a task claimed complete whose
// source has no such object is reported failed.
func TestPostedStatusIgnored(t *testing.T) {
	src := newSource(t)
	g := newGate()
	t.Cleanup(g.release)
	a := startAgent(t, testConfig(t), func(s *Server) {
		s.beforeCopy = func(ctx context.Context, _ string) { g.wait(ctx) }
	})
	taskJSON := func(task rebalancer.Task, status string) string {
		return fmt.Sprintf(`{"object_id":%q,"owner":%q,"md5sum":%q,"source":{"datacenter":"dc","manta_storage_id":%q},"status":%s}`,
			task.ObjectID, task.Owner, task.MD5Sum, task.Source.MantaStorageID, status)
	}
	statuses := []string{`"Complete"`, `{"Failed":"MD5Mismatch"}`, `{"Failed":{"HTTPStatusCode":500}}`,
		`{"state":"Complete"}`, `{"state":"Failed","reason":"AgentFSError"}`}
	type posted struct {
		id            string
		real, missing rebalancer.Task
		body          []byte
	}
	var all []posted
	for _, shape := range []string{`{"id":"%s","tasks":[%s,%s]}`, `["%s",[%s,%s]]`} {
		for _, st := range statuses {
			p := posted{id: newID(), body: content(st, 700)}
			p.real = src.put(newID(), newID(), p.body)
			p.missing = rebalancer.Task{ObjectID: newID(), Owner: newID(), MD5Sum: md5b64(p.body), Source: src.node()}
			code, reply := a.post(fmt.Sprintf(shape, p.id, taskJSON(p.real, st), taskJSON(p.missing, st)))
			if code != http.StatusOK {
				t.Fatalf("POST with status %s: %d %s", st, code, reply)
			}
			// Before anything ran: nothing counted.
			if _, got, _ := a.get(p.id); got.Stats.Complete != 0 || got.Stats.Failed != 0 ||
				got.Stats.State.Phase == rebalancer.AssignmentComplete {
				t.Fatalf("status %s: stats %+v before any copy", st, got.Stats)
			}
			stored, _ := storedAssignment(t, a.s, p.id)
			for _, task := range stored.tasks {
				if task.state != taskPending {
					t.Fatalf("status %s: task stored %+v, want pending", st, task)
				}
			}
			all = append(all, p)
		}
	}
	g.release()
	for _, p := range all {
		got := a.waitComplete(p.id)
		if st := got.Stats; st.Total != 2 || st.Complete != 2 || st.Failed != 1 ||
			failedReasons(got)[p.missing.ObjectID] != rebalancer.SkipSourceObjectNotFound {
			t.Fatalf("%s: stats %+v, failed %v", p.id, st, failedReasons(got))
		}
		if n := src.hitCount(p.real); n != 1 {
			t.Fatalf("%s: source asked %d times, want 1", p.id, n)
		}
		a.checkFile(p.real, p.body)
	}
}

// TestLegacyImportSymlink: a legacy state directory that is a symbolic link
// is not imported from, and nothing behind it is moved or changed.
func TestLegacyImportSymlink(t *testing.T) {
	cfg := testConfig(t)
	outside := t.TempDir()
	id := newID()
	writeLegacyFile(t, filepath.Join(outside, id), []rebalancer.Task{{ObjectID: newID(), Owner: newID(), MD5Sum: "x",
		Source: rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: "1.stor.example.com"}}},
		`{"state":"Scheduled","failed":0,"complete":0,"total":1}`)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"scheduled", "completed", "temp"} {
		if err := os.Symlink(outside, filepath.Join(cfg.DataDir, sub)); err != nil {
			t.Fatal(err)
		}
	}
	before := treeSnapshot(t, outside)
	var logs logBuffer
	a := startAgentLog(t, cfg, logs.logger())
	if code, _, _ := a.get(id); code != http.StatusNotFound {
		t.Fatalf("assignment behind a link imported: GET %d", code)
	}
	if after := treeSnapshot(t, outside); !maps.Equal(after, before) {
		t.Fatalf("files behind the link changed:\n before %v\n after  %v", before, after)
	}
	if n := len(logs.records("ERROR", "legacy state directory is not a directory (a symbolic link?); not importing from it")); n != 2 {
		t.Fatalf("%d errors about the linked directories, want 2:\n%s", n, logs.String())
	}
}
