// Package fakes holds in-memory implementations of the rebalancer's root
// interfaces for the engine's tests: small enough to read, quick enough to
// run a job of thousands of objects in milliseconds, and able to misbehave
// on purpose (a metadata store that conflicts or goes down, agents that are
// busy, unreachable, slow, or that lie about what they copied). They pass
// the rebalancertest suites of their interfaces, so that a test that breaks
// one rule breaks only that one.
//
// Every method is safe for concurrent use; the knobs may be turned while a
// job runs.
package fakes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"

	"github.com/TritonDataCenter/rebalancer"
)

// Shark returns storage node n: n.stor.test, in datacenter dc1.
func Shark(n int) rebalancer.StorageNode {
	return rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: fmt.Sprintf("%d.stor.test", n)}
}

// ObjectValue returns the metadata of a v1 object of owner, keyed
// /{owner}/stor/{id}, with copies on sharks.
func ObjectValue(owner, id string, size int64, sharks ...rebalancer.StorageNode) json.RawMessage {
	b, _ := json.Marshal(map[string]any{
		"key": "/" + owner + "/stor/" + id, "owner": owner, "objectId": id, "type": "object",
		"contentLength": size, "contentMD5": "md5-" + id, "sharks": sharks, "vnode": 7,
	})
	return b
}

// etagOf is the fake's etag of a value, as Moray's: a CRC of its bytes.
func etagOf(v []byte) string { return fmt.Sprintf("%08X", crc32.ChecksumIEEE(v)) }

// place is where a record is stored: a key on a shard.
type place struct {
	shard int
	key   string
}

// Moray is a rebalancer.BatchMetadataStore in memory, with etags and
// faults.
type Moray struct {
	mu      sync.Mutex
	objects map[place]rebalancer.Object
	// conflictOnce makes the next write of a record fail as if a
	// concurrent writer touched it (same object, new etag).
	conflictOnce map[place]bool
	// replaceOnce makes the next write of a record fail as if the key had
	// been rewritten meanwhile with another object: this value.
	replaceOnce map[place]json.RawMessage
	down        bool

	writes, batches, batchWrites int
}

var _ rebalancer.BatchMetadataStore = (*Moray)(nil)

// NewMoray returns an empty store.
func NewMoray() *Moray {
	return &Moray{objects: map[place]rebalancer.Object{}, conflictOnce: map[place]bool{}, replaceOnce: map[place]json.RawMessage{}}
}

// Put stores value under its key on shard and returns the object, with its
// etag.
func (m *Moray) Put(shard int, value json.RawMessage) rebalancer.Object {
	o, err := rebalancer.ParseObject(value)
	if err != nil {
		panic(err)
	}
	o.Shard, o.Etag = shard, etagOf(value)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[place{shard, o.Key}] = o
	return o
}

// Get returns the record stored under key on shard.
func (m *Moray) Get(shard int, key string) (rebalancer.Object, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[place{shard, key}]
	return o, ok
}

// Delete deletes a record, as a client deleting the object would.
func (m *Moray) Delete(shard int, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, place{shard, key})
}

// ConflictOnce makes the next write of the record under key on shard fail
// with an etag conflict, a concurrent writer having touched the object
// (same objectId, new etag).
func (m *Moray) ConflictOnce(shard int, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.conflictOnce[place{shard, key}] = true
}

// ReplaceOnce makes the next write of the record under key on shard fail
// with an etag conflict, the key having been rewritten meanwhile with value
// (another object).
func (m *Moray) ReplaceOnce(shard int, key string, value json.RawMessage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.replaceOnce[place{shard, key}] = value
}

// SetDown makes every call fail with a transient error, or work again.
func (m *Moray) SetDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// Writes returns the number of records written, and how many of them
// were written by batches, in how many batches.
func (m *Moray) Writes() (writes, batchWrites, batches int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writes, m.batchWrites, m.batches
}

var errDown = errors.New("moray unreachable")

var errUnavailable = errors.New("no storinfo snapshot yet")

func (m *Moray) GetObject(ctx context.Context, shard int, key string) (rebalancer.Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return rebalancer.Object{}, errDown
	}
	o, ok := m.objects[place{shard, key}]
	if !ok {
		return rebalancer.Object{}, fmt.Errorf("shard %d key %s: %w", shard, key, rebalancer.ErrObjectNotFound)
	}
	return o, nil
}

func (m *Moray) ReplaceShark(ctx context.Context, obj rebalancer.Object, from string, to rebalancer.StorageNode) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return "", errDown
	}
	return m.replaceLocked(obj, from, to)
}

// ReplaceSharks is all or nothing, like Moray's batch: every record is
// checked before anything is written.
func (m *Moray) ReplaceSharks(ctx context.Context, shard int, reps []rebalancer.SharkReplacement) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errDown
	}
	for _, r := range reps {
		p := place{shard, r.Object.Key}
		if r.Object.Shard != shard {
			return nil, fmt.Errorf("object %s is on shard %d, not %d", r.Object.Key, r.Object.Shard, shard)
		}
		cur, ok := m.objects[p]
		if !ok {
			return nil, fmt.Errorf("shard %d key %s: %w", shard, r.Object.Key, rebalancer.ErrObjectNotFound)
		}
		if m.interfere(p) || cur.Etag != r.Object.Etag || m.conflictOnce[p] {
			return nil, fmt.Errorf("shard %d key %s: %w", shard, r.Object.Key, rebalancer.ErrEtagConflict)
		}
		if _, err := rebalancer.ReplaceShark(cur.Metadata, r.From, r.To); err != nil {
			return nil, fmt.Errorf("shard %d key %s: %w", shard, r.Object.Key, err)
		}
	}
	etags := make([]string, len(reps))
	for i, r := range reps {
		etag, err := m.replaceLocked(r.Object, r.From, r.To)
		if err != nil {
			return nil, fmt.Errorf("batch checked, then failed: %w", err) // a bug of the fake
		}
		etags[i] = etag
	}
	m.batches++
	m.batchWrites += len(reps)
	return etags, nil
}

// interfere plays the concurrent writer of ReplaceOnce, if one is due, and
// reports whether it did.
func (m *Moray) interfere(p place) bool {
	v, ok := m.replaceOnce[p]
	if !ok {
		return false
	}
	delete(m.replaceOnce, p)
	o, err := rebalancer.ParseObject(v)
	if err != nil {
		panic(err)
	}
	o.Shard, o.Etag = p.shard, etagOf(v)
	m.objects[p] = o
	return true
}

func (m *Moray) replaceLocked(obj rebalancer.Object, from string, to rebalancer.StorageNode) (string, error) {
	p := place{obj.Shard, obj.Key}
	m.interfere(p)
	cur, ok := m.objects[p]
	if !ok {
		return "", fmt.Errorf("shard %d key %s: %w", obj.Shard, obj.Key, rebalancer.ErrObjectNotFound)
	}
	if m.conflictOnce[p] {
		delete(m.conflictOnce, p)
		// A concurrent writer touches the object: same object, new etag.
		var v map[string]any
		json.Unmarshal(cur.Metadata, &v)
		v["mtime"] = 12345
		b, _ := json.Marshal(v)
		cur, _ = rebalancer.ParseObject(b)
		cur.Shard, cur.Etag = obj.Shard, etagOf(b)
		m.objects[p] = cur
	}
	if cur.Etag != obj.Etag {
		return "", fmt.Errorf("shard %d key %s: expected etag %q, was %s: %w", obj.Shard, obj.Key, obj.Etag, cur.Etag, rebalancer.ErrEtagConflict)
	}
	nv, err := rebalancer.ReplaceShark(cur.Metadata, from, to)
	if err != nil {
		return "", err
	}
	n, _ := rebalancer.ParseObject(nv)
	n.Shard, n.Etag = cur.Shard, etagOf(nv)
	m.objects[p] = n
	m.writes++
	return n.Etag, nil
}

// Placement places round-robin over a fixed set of sharks, honouring the
// legacy rules (never the evacuated shark, one holding a copy, or one to
// avoid), and keeps count of the bytes reserved and not released. It does
// not track room.
type Placement struct {
	mu          sync.Mutex
	sharks      []rebalancer.StorageNode
	next        int
	reserved    map[string]int64
	unavailable bool
}

var _ rebalancer.Placement = (*Placement)(nil)

// NewPlacement returns a placement over sharks.
func NewPlacement(sharks ...rebalancer.StorageNode) *Placement {
	return &Placement{sharks: sharks, reserved: map[string]int64{}}
}

// SetUnavailable makes Place fail with a transient error (no capacity
// information yet), or work again.
func (p *Placement) SetUnavailable(unavailable bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unavailable = unavailable
}

// Outstanding returns the bytes reserved and not released.
func (p *Placement) Outstanding() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, v := range p.reserved {
		n += v
	}
	return n
}

func (p *Placement) Place(ctx context.Context, obj rebalancer.Object, from rebalancer.StorageNode, avoid []string) (rebalancer.StorageNode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.unavailable {
		return rebalancer.StorageNode{}, errUnavailable
	}
	for range p.sharks {
		s := p.sharks[p.next%len(p.sharks)]
		p.next++
		if s.MantaStorageID == from.MantaStorageID || obj.HasShark(s.MantaStorageID) || slices.Contains(avoid, s.MantaStorageID) {
			continue
		}
		p.reserved[s.MantaStorageID] += obj.ContentLength
		return s, nil
	}
	return rebalancer.StorageNode{}, &rebalancer.SkipError{Reason: rebalancer.SkipObjectAlreadyOnDestShark}
}

func (p *Placement) Release(dest rebalancer.StorageNode, bytes int64, copied bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reserved[dest.MantaStorageID] -= bytes
}

// Agents stands for the agents of every destination: it "copies" an
// assignment's tasks (records them as copied) when the assignment is
// polled for the second time, unless told to misbehave.
type Agents struct {
	mu      sync.Mutex
	assigns map[string]*assignment // by id
	copies  map[string]bool        // dest + "/" + object id: verified on disk
	posts   int
	// taskPosts counts, per object id, the accepted posts that carried it.
	taskPosts map[string]int
	// sizes lists the sizes of the accepted posts, in order, by destination.
	sizes map[string][]int

	busyPosts   int
	down        map[string]bool
	failTask    func(t rebalancer.Task) rebalancer.SkipReason
	lie, omit   bool
	forgetAfter map[string]bool
	slow        bool
	slowAt      map[string]bool
}

var _ rebalancer.Agent = (*Agents)(nil)

type assignment struct {
	dest    string
	payload rebalancer.AssignmentPayload
	polls   int
}

// NewAgents returns agents that copy every task.
func NewAgents() *Agents {
	return &Agents{assigns: map[string]*assignment{}, copies: map[string]bool{}, down: map[string]bool{},
		forgetAfter: map[string]bool{}, slowAt: map[string]bool{}, taskPosts: map[string]int{}, sizes: map[string][]int{}}
}

// SetBusy makes the next n posts answer busy (503).
func (f *Agents) SetBusy(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busyPosts = n
}

// SetDown makes the agent of dest unreachable (POST and GET fail to
// connect), or reachable again.
func (f *Agents) SetDown(dest string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[dest] = down
}

// SetFailTask makes a task fail with the reason fail returns for it, when
// not zero, and a detail naming its source; nil copies every task.
func (f *Agents) SetFailTask(fail func(t rebalancer.Task) rebalancer.SkipReason) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failTask = fail
}

// SetLie makes the agents report each assignment complete with its first
// task silently lost: counted complete, listed neither copied nor failed
// (the legacy hazard).
func (f *Agents) SetLie(lie bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lie = lie
}

// SetOmit makes the agents report each assignment complete with its first
// task left out of every count (Total and Complete one short).
func (f *Agents) SetOmit(omit bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.omit = omit
}

// SetForget makes the agent of dest answer 404 to every GET: it lost its
// assignments.
func (f *Agents) SetForget(dest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgetAfter[dest] = true
}

// SetSlow makes the agents never finish an assignment, or finish them
// again.
func (f *Agents) SetSlow(slow bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slow = slow
}

// Posts returns the number of posts received, accepted or not.
func (f *Agents) Posts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.posts
}

// PostSizes returns, by destination, the number of tasks of each accepted
// post, in the order they were accepted.
func (f *Agents) PostSizes() map[string][]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string][]int, len(f.sizes))
	for d, s := range f.sizes {
		out[d] = slices.Clone(s)
	}
	return out
}

// TaskPosts returns the number of accepted posts that carried the object.
func (f *Agents) TaskPosts(objectID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.taskPosts[objectID]
}

// SetSlowAt makes the agent of dest never finish an assignment, or finish
// them again.
func (f *Agents) SetSlowAt(dest string, slow bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slowAt[dest] = slow
}

// LeastPolled returns the fewest times any assignment the agent of dest
// holds has been polled, or -1 when it holds none. With SetSlowAt it
// serves tests as a clock: every assignment polled n more times means n
// more rounds of the engine's poller.
func (f *Agents) LeastPolled(dest string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	least := -1
	for _, a := range f.assigns {
		if a.dest == dest && (least < 0 || a.polls < least) {
			least = a.polls
		}
	}
	return least
}

// Copied reports whether the agent of dest copied the object.
func (f *Agents) Copied(dest, objectID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.copies[dest+"/"+objectID]
}

// statusError is an agent's reply with an HTTP status, as the agent
// client reports one.
type statusError int

func (e statusError) Error() string   { return fmt.Sprintf("agent answered %d", int(e)) }
func (e statusError) StatusCode() int { return int(e) }

func (f *Agents) PostAssignment(ctx context.Context, dest rebalancer.StorageNode, a rebalancer.AssignmentPayload) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.posts++
	if f.down[dest.MantaStorageID] {
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
			return statusError(400)
		}
	}
	f.assigns[a.ID] = &assignment{dest: dest.MantaStorageID, payload: p}
	f.sizes[dest.MantaStorageID] = append(f.sizes[dest.MantaStorageID], len(p.Tasks))
	for _, t := range p.Tasks {
		f.taskPosts[t.ObjectID]++
	}
	return nil
}

func (f *Agents) GetAssignment(ctx context.Context, dest rebalancer.StorageNode, id string) (rebalancer.Assignment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[dest.MantaStorageID] {
		return rebalancer.Assignment{}, errors.New("connection refused")
	}
	a, ok := f.assigns[id]
	if !ok || f.forgetAfter[dest.MantaStorageID] {
		return rebalancer.Assignment{}, fmt.Errorf("get %s: %w", id, rebalancer.ErrAssignmentNotFound)
	}
	a.polls++
	total := len(a.payload.Tasks)
	if f.slow || f.slowAt[a.dest] || a.polls < 2 {
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
				// A Go agent's detail names what failed.
				t.Status, t.Detail = rebalancer.TaskFailedWith(r), fmt.Sprintf("copy from %s: %s", t.Source.MantaStorageID, r)
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

func (f *Agents) DeleteAssignment(ctx context.Context, dest rebalancer.StorageNode, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.assigns, id)
	return nil
}

// Source discovers a fixed list of objects, in order, optionally failing
// part way. Set its fields before the first Discover.
type Source struct {
	Objects []rebalancer.Object
	// FailAt, when positive, makes Discover fail, naming the object's
	// shard, on reaching Objects[FailAt].
	FailAt int
}

var _ rebalancer.ObjectSource = (*Source)(nil)

func (s *Source) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	for i, o := range s.Objects {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.FailAt > 0 && i == s.FailAt {
			return fmt.Errorf("shard %d: connection reset", o.Shard)
		}
		if req.After != nil && o.ScanID <= req.After[o.Shard] {
			continue
		}
		if !o.HasShark(req.Shark) {
			continue
		}
		if err := visit(o); err != nil {
			return err
		}
	}
	return nil
}

// BlockingSource finds one object, then waits until Release is closed (or
// the context ends): a scan that lasts as long as a test wants.
type BlockingSource struct {
	Object  rebalancer.Object
	Release chan struct{}
}

var _ rebalancer.ObjectSource = BlockingSource{}

func (s BlockingSource) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	if err := visit(s.Object); err != nil {
		return err
	}
	select {
	case <-s.Release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
