package evacuate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// Fakes of the engine's collaborators, small enough to read and to make
// misbehave on purpose. The end-to-end tests with the real agent, moraytest
// and storinfotest live in e2e_test.go.

func objectValue(owner, id string, size int64, sharks ...rebalancer.StorageNode) json.RawMessage {
	b, _ := json.Marshal(map[string]any{
		"key": "/" + owner + "/stor/" + id, "owner": owner, "objectId": id, "type": "object",
		"contentLength": size, "contentMD5": "md5-" + id, "sharks": sharks, "vnode": 7,
	})
	return b
}

// fakeMoray is an in-memory MetadataStore with etags and fault hooks.
type fakeMoray struct {
	mu      sync.Mutex
	objects map[string]rebalancer.Object // by key
	writes  int
	// conflictOnce makes the first write of a key fail as if a concurrent
	// writer changed it (bumping its etag and mtime-like field).
	conflictOnce map[string]bool
	// down makes every call fail with a transient error.
	down bool
	// replaceOnce makes the first write of a key fail as if the key had
	// been rewritten meanwhile with another object: the value stored under
	// it becomes this one (its own objectId), with a new etag.
	replaceOnce map[string]json.RawMessage
	// batches counts successful ReplaceSharks calls, batchWrites the
	// objects they wrote; writes counts every object written.
	batches, batchWrites int
}

func newFakeMoray() *fakeMoray {
	return &fakeMoray{objects: map[string]rebalancer.Object{}, conflictOnce: map[string]bool{}, replaceOnce: map[string]json.RawMessage{}}
}

// interfere plays the concurrent writer of replaceOnce on key, if one is
// due, and reports whether it did.
func (m *fakeMoray) interfere(key string) bool {
	v, ok := m.replaceOnce[key]
	if !ok {
		return false
	}
	delete(m.replaceOnce, key)
	o, err := rebalancer.ParseObject(v)
	if err != nil {
		panic(err)
	}
	o.Shard, o.Etag = m.objects[key].Shard, etagOf(v)
	m.objects[key] = o
	return true
}

func etagOf(v []byte) string { return fmt.Sprintf("%08X", crc32.ChecksumIEEE(v)) }

func (m *fakeMoray) put(shard int, value json.RawMessage) rebalancer.Object {
	o, err := rebalancer.ParseObject(value)
	if err != nil {
		panic(err)
	}
	o.Shard, o.Etag = shard, etagOf(value)
	m.mu.Lock()
	m.objects[o.Key] = o
	m.mu.Unlock()
	return o
}

func (m *fakeMoray) get(key string) (rebalancer.Object, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	return o, ok
}

func (m *fakeMoray) GetObject(ctx context.Context, shard int, key string) (rebalancer.Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return rebalancer.Object{}, errors.New("moray unreachable")
	}
	o, ok := m.objects[key]
	if !ok {
		return rebalancer.Object{}, fmt.Errorf("%s: %w", key, rebalancer.ErrObjectNotFound)
	}
	return o, nil
}

func (m *fakeMoray) ReplaceShark(ctx context.Context, obj rebalancer.Object, from string, to rebalancer.StorageNode) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return "", errors.New("moray unreachable")
	}
	return m.replaceLocked(obj, from, to)
}

// ReplaceSharks is all or nothing, like Moray's batch: every etag is
// checked before anything is written.
func (m *fakeMoray) ReplaceSharks(ctx context.Context, shard int, reps []rebalancer.SharkReplacement) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errors.New("moray unreachable")
	}
	for _, r := range reps {
		if r.Object.Shard != shard {
			return nil, fmt.Errorf("object %s is on shard %d, not %d", r.Object.Key, r.Object.Shard, shard)
		}
		cur, ok := m.objects[r.Object.Key]
		if !ok {
			return nil, fmt.Errorf("%s: %w", r.Object.Key, rebalancer.ErrObjectNotFound)
		}
		if m.interfere(r.Object.Key) {
			return nil, fmt.Errorf("%s: %w", r.Object.Key, rebalancer.ErrEtagConflict)
		}
		if cur.Etag != r.Object.Etag || m.conflictOnce[r.Object.Key] {
			return nil, fmt.Errorf("%s: %w", r.Object.Key, rebalancer.ErrEtagConflict)
		}
	}
	etags := make([]string, len(reps))
	for i, r := range reps {
		etag, err := m.replaceLocked(r.Object, r.From, r.To)
		if err != nil {
			panic(err) // checked above
		}
		etags[i] = etag
	}
	m.batches++
	m.batchWrites += len(reps)
	return etags, nil
}

func (m *fakeMoray) replaceLocked(obj rebalancer.Object, from string, to rebalancer.StorageNode) (string, error) {
	m.interfere(obj.Key)
	cur, ok := m.objects[obj.Key]
	if !ok {
		return "", rebalancer.ErrObjectNotFound
	}
	if m.conflictOnce[obj.Key] {
		delete(m.conflictOnce, obj.Key)
		// A concurrent writer touches the object: same object, new etag.
		var v map[string]any
		json.Unmarshal(cur.Metadata, &v)
		v["mtime"] = 12345
		b, _ := json.Marshal(v)
		cur, _ = rebalancer.ParseObject(b)
		cur.Shard, cur.Etag = obj.Shard, etagOf(b)
		m.objects[obj.Key] = cur
	}
	if cur.Etag != obj.Etag {
		return "", fmt.Errorf("%s: expected %s, was %s: %w", obj.Key, obj.Etag, cur.Etag, rebalancer.ErrEtagConflict)
	}
	nv, err := rebalancer.ReplaceShark(cur.Metadata, from, to)
	if err != nil {
		return "", err
	}
	n, _ := rebalancer.ParseObject(nv)
	n.Shard, n.Etag = cur.Shard, etagOf(nv)
	m.objects[obj.Key] = n
	m.writes++
	return n.Etag, nil
}

// fakePlacement places round-robin over a fixed set of sharks, honouring the
// legacy rules, and checks that reservations balance.
type fakePlacement struct {
	mu       sync.Mutex
	sharks   []rebalancer.StorageNode
	next     int
	reserved map[string]int64
	// unavailable makes Place fail with a transient error.
	unavailable bool
}

func newFakePlacement(sharks ...rebalancer.StorageNode) *fakePlacement {
	return &fakePlacement{sharks: sharks, reserved: map[string]int64{}}
}

func (p *fakePlacement) Place(ctx context.Context, obj rebalancer.Object, from rebalancer.StorageNode, avoid []string) (rebalancer.StorageNode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.unavailable {
		return rebalancer.StorageNode{}, errors.New("no storinfo snapshot yet")
	}
	for range p.sharks {
		s := p.sharks[p.next%len(p.sharks)]
		p.next++
		if s.MantaStorageID == from.MantaStorageID || obj.HasShark(s.MantaStorageID) || contains(avoid, s.MantaStorageID) {
			continue
		}
		p.reserved[s.MantaStorageID] += obj.ContentLength
		return s, nil
	}
	return rebalancer.StorageNode{}, &rebalancer.SkipError{Reason: rebalancer.SkipObjectAlreadyOnDestShark}
}

func (p *fakePlacement) Release(dest rebalancer.StorageNode, bytes int64, copied bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reserved[dest.MantaStorageID] -= bytes
}

func (p *fakePlacement) outstanding() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, v := range p.reserved {
		n += v
	}
	return n
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// fakeAgents stands for the agents of every destination: it "copies" a task
// (records it) when the assignment is polled, unless told to misbehave.
type fakeAgents struct {
	mu      sync.Mutex
	assigns map[string]*fakeAssignment // by id
	copies  map[string]bool            // dest + "/" + object id: verified on disk
	posts   int
	// taskPosts counts, per object id, the accepted posts that carried it.
	taskPosts map[string]int
	// sizes lists the sizes of the accepted posts, in order, by destination.
	sizes map[string][]int

	// Misbehaviours.
	busyPosts   int                                           // answer 503 to this many posts
	downDest    map[string]bool                               // POST and GET fail to connect
	failTask    func(t rebalancer.Task) rebalancer.SkipReason // a non-zero reason fails the task
	lie         bool                                          // report Complete with a task silently missing
	omit        bool                                          // report Complete with a task left out of every count
	forgetAfter map[string]bool                               // answer 404 to GETs of assignments to this dest
	slow        bool                                          // never finish
}

type fakeAssignment struct {
	dest    string
	payload rebalancer.AssignmentPayload
	polls   int
}

func newFakeAgents() *fakeAgents {
	return &fakeAgents{assigns: map[string]*fakeAssignment{}, copies: map[string]bool{}, downDest: map[string]bool{},
		forgetAfter: map[string]bool{}, taskPosts: map[string]int{}, sizes: map[string][]int{}}
}

type statusErr int

func (e statusErr) Error() string   { return fmt.Sprintf("agent answered %d", int(e)) }
func (e statusErr) StatusCode() int { return int(e) }

func (f *fakeAgents) PostAssignment(ctx context.Context, dest rebalancer.StorageNode, a rebalancer.AssignmentPayload) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.posts++
	if f.downDest[dest.MantaStorageID] {
		return errors.New("connection refused")
	}
	if f.busyPosts > 0 {
		f.busyPosts--
		return fmt.Errorf("post: %w", rebalancer.ErrAgentBusy)
	}
	if _, ok := f.assigns[a.ID]; ok {
		return fmt.Errorf("post: %w", rebalancer.ErrAssignmentExists)
	}
	// Round-trip through the wire format, as a real agent would.
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	var p rebalancer.AssignmentPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	for _, t := range p.Tasks {
		if t.Source.MantaStorageID == dest.MantaStorageID {
			return statusErr(400)
		}
	}
	f.assigns[a.ID] = &fakeAssignment{dest: dest.MantaStorageID, payload: p}
	f.sizes[dest.MantaStorageID] = append(f.sizes[dest.MantaStorageID], len(p.Tasks))
	for _, t := range p.Tasks {
		f.taskPosts[t.ObjectID]++
	}
	return nil
}

func (f *fakeAgents) GetAssignment(ctx context.Context, dest rebalancer.StorageNode, id string) (rebalancer.Assignment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.downDest[dest.MantaStorageID] {
		return rebalancer.Assignment{}, errors.New("connection refused")
	}
	a, ok := f.assigns[id]
	if !ok || f.forgetAfter[dest.MantaStorageID] {
		return rebalancer.Assignment{}, fmt.Errorf("get %s: %w", id, rebalancer.ErrAssignmentNotFound)
	}
	a.polls++
	total := len(a.payload.Tasks)
	if f.slow || a.polls < 2 {
		return rebalancer.Assignment{UUID: id, Stats: rebalancer.AssignmentStats{State: rebalancer.AssignmentState{Phase: rebalancer.AssignmentRunning}, Total: total}}, nil
	}
	var failed []rebalancer.Task
	complete := 0
	for i, t := range a.payload.Tasks {
		if f.lie && i == 0 {
			continue // lost without a trace: the legacy hazard
		}
		if f.omit && i == 0 {
			total-- // dropped from the assignment altogether
			continue
		}
		complete++
		if f.failTask != nil {
			if r := f.failTask(t); r != 0 {
				t.Status = rebalancer.TaskFailedWith(r)
				failed = append(failed, t)
				continue
			}
		}
		f.copies[a.dest+"/"+t.ObjectID] = true
	}
	return rebalancer.Assignment{UUID: id, Stats: rebalancer.AssignmentStats{
		State:  rebalancer.AssignmentState{Phase: rebalancer.AssignmentComplete, Failed: failed},
		Failed: len(failed), Complete: complete, Total: total,
	}}, nil
}

func (f *fakeAgents) DeleteAssignment(ctx context.Context, dest rebalancer.StorageNode, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.assigns, id)
	return nil
}

func (f *fakeAgents) copied(dest, id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.copies[dest+"/"+id]
}

// sliceSource discovers a fixed list of objects, optionally failing after
// some of them.
type sliceSource struct {
	objs    []rebalancer.Object
	failAt  int // 0: never
	visited int
}

func (s *sliceSource) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	for i, o := range s.objs {
		if s.failAt > 0 && i == s.failAt {
			return fmt.Errorf("shard %d: connection reset", o.Shard)
		}
		if req.After != nil && o.ScanID <= req.After[o.Shard] {
			continue
		}
		if !o.HasShark(req.Shark) {
			continue
		}
		s.visited++
		if err := visit(o); err != nil {
			return err
		}
	}
	return nil
}

func shark(n int) rebalancer.StorageNode {
	return rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: fmt.Sprintf("%d.stor.test", n)}
}

var _ = strings.Contains
var _ testing.TB

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
