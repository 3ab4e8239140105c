package rebalancertest_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// Reference implementations of the four interfaces, in memory, written to
// the contracts. Each can be made to break one rule (its mutant field), so
// that suite_test.go can show every suite catches what it claims to.

type record struct {
	id    int64
	key   string
	value json.RawMessage
	etag  string
}

func etagOf(v []byte) string { return fmt.Sprintf("%08X", crc32.ChecksumIEEE(v)) }

// memSource is a rebalancer.ObjectSource over records kept in memory.
type memSource struct {
	shards []int
	rows   map[int][]record
	broken map[int]bool
	mutant string
}

func newMemSource(shards []rebalancertest.Shard, mutant string) *memSource {
	s := &memSource{rows: map[int][]record{}, broken: map[int]bool{}, mutant: mutant}
	for _, sh := range shards {
		s.shards = append(s.shards, sh.Number)
		for i, o := range sh.Objects {
			s.rows[sh.Number] = append(s.rows[sh.Number], record{id: int64(i + 1), key: o.Key, value: o.Value, etag: etagOf(o.Value)})
		}
	}
	return s
}

func (s *memSource) harness() rebalancertest.SourceHarness {
	return rebalancertest.SourceHarness{
		Source: s,
		Etag: func(shard int, key string) string {
			for _, r := range s.rows[shard] {
				if r.key == key {
					return r.etag
				}
			}
			return ""
		},
		Break: func(shard int) { s.broken[shard] = true },
	}
}

func (s *memSource) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	for _, shard := range s.shards {
		if s.broken[shard] {
			if s.mutant == "source: failure without the shard" {
				return errors.New("connection refused")
			}
			return fmt.Errorf("shard %d: connection refused", shard)
		}
		rows := s.rows[shard]
		if s.mutant == "source: descending ids" {
			rows = slices.Clone(rows)
			slices.Reverse(rows)
		}
		for _, r := range rows {
			if r.id <= req.After[shard] && s.mutant != "source: ignores After" {
				continue
			}
			if err := ctx.Err(); err != nil && s.mutant != "source: ignores cancellation" {
				return err
			}
			o, err := rebalancer.ParseObject(r.value)
			if err != nil {
				if s.mutant == "source: skips unusable records" {
					continue
				}
				return fmt.Errorf("shard %d row %d: %w", shard, r.id, err)
			}
			if !o.HasShark(req.Shark) {
				continue
			}
			if s.mutant == "source: misses the last shard's last object" && shard == s.shards[2] && r.id == int64(len(rows)) {
				continue
			}
			o.Shard, o.Key, o.ScanID, o.Etag = shard, r.key, r.id, r.etag
			if s.mutant == "source: wrong etag" {
				o.Etag = "00000000"
			}
			if err := visit(o); err != nil && s.mutant != "source: swallows visit's error" {
				return err
			}
			if s.mutant == "source: visits a doubly listed object twice" && bytes.Count(r.value, []byte(req.Shark)) == 2 {
				visit(o)
			}
		}
	}
	return nil
}

// memStore is a rebalancer.BatchMetadataStore in memory.
type memStore struct {
	mu      sync.Mutex
	records map[string]record // by shard and key, see at
	mutant  string
}

func newMemStore(shards []rebalancertest.Shard, mutant string) *memStore {
	m := &memStore{records: map[string]record{}, mutant: mutant}
	for _, s := range shards {
		for _, o := range s.Objects {
			m.records[m.at(s.Number, o.Key)] = record{key: o.Key, value: o.Value, etag: etagOf(o.Value)}
		}
	}
	return m
}

func (m *memStore) harness() rebalancertest.MetadataHarness {
	return rebalancertest.MetadataHarness{Store: m, Delete: func(shard int, key string) {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.records, m.at(shard, key))
	}}
}

func (m *memStore) at(shard int, key string) string {
	if m.mutant == "store: ignores the shard" {
		return key
	}
	return fmt.Sprint(shard, "\x00", key)
}

func (m *memStore) GetObject(ctx context.Context, shard int, key string) (rebalancer.Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[m.at(shard, key)]
	if !ok {
		if m.mutant == "store: not found is a plain error" {
			return rebalancer.Object{}, fmt.Errorf("%s: no such object", key)
		}
		return rebalancer.Object{}, fmt.Errorf("object %s on shard %d: %w", key, shard, rebalancer.ErrObjectNotFound)
	}
	o, err := rebalancer.ParseObject(r.value)
	if err != nil {
		return o, err
	}
	o.Shard, o.Key, o.Etag = shard, key, r.etag
	return o, nil
}

func (m *memStore) ReplaceShark(ctx context.Context, obj rebalancer.Object, from string, to rebalancer.StorageNode) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(obj, from); err != nil {
		return "", err
	}
	return m.write(obj, from, to), nil
}

func (m *memStore) check(obj rebalancer.Object, from string) error {
	r, ok := m.records[m.at(obj.Shard, obj.Key)]
	switch {
	case m.mutant == "store: unconditional writes":
	case !ok:
		return fmt.Errorf("object %s on shard %d: %w", obj.Key, obj.Shard, rebalancer.ErrObjectNotFound)
	case r.etag != obj.Etag:
		return fmt.Errorf("object %s on shard %d: etag %s, not %s: %w", obj.Key, obj.Shard, r.etag, obj.Etag, rebalancer.ErrEtagConflict)
	}
	if _, err := rebalancer.ReplaceShark(obj.Metadata, from, rebalancer.StorageNode{}); err != nil && m.mutant != "store: replaces unlisted sharks" {
		return fmt.Errorf("object %s: %w", obj.Key, err)
	}
	return nil
}

func (m *memStore) write(obj rebalancer.Object, from string, to rebalancer.StorageNode) string {
	value, err := rebalancer.ReplaceShark(obj.Metadata, from, to)
	if err != nil {
		value = obj.Metadata
	}
	if m.mutant == "store: reformats the value" {
		var v map[string]any
		json.Unmarshal(value, &v)
		value, _ = json.Marshal(v)
	}
	r := record{key: obj.Key, value: value, etag: etagOf(value)}
	m.records[m.at(obj.Shard, obj.Key)] = r
	return r.etag
}

func (m *memStore) ReplaceSharks(ctx context.Context, shard int, reps []rebalancer.SharkReplacement) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	etags := make([]string, len(reps))
	for i, r := range reps {
		if err := m.check(r.Object, r.From); err != nil {
			return nil, err
		}
		if m.mutant == "store: batches write as they go" {
			etags[i] = m.write(r.Object, r.From, r.To)
		}
	}
	if m.mutant != "store: batches write as they go" {
		for i, r := range reps {
			etags[i] = m.write(r.Object, r.From, r.To)
		}
	}
	return etags, nil
}

// memPlacement places on the roomiest allowed destination.
type memPlacement struct {
	mu     sync.Mutex
	fleet  []rebalancertest.Destination
	used   map[string]int64
	mutant string
}

func newMemPlacement(fleet []rebalancertest.Destination, mutant string) rebalancertest.PlacementHarness {
	return rebalancertest.PlacementHarness{Placement: &memPlacement{fleet: fleet, used: map[string]int64{}, mutant: mutant}, TracksSpace: true}
}

func (p *memPlacement) Place(ctx context.Context, obj rebalancer.Object, from rebalancer.StorageNode, avoid []string) (rebalancer.StorageNode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *rebalancertest.Destination
	for i := range p.fleet {
		d := &p.fleet[i]
		id := d.Node.MantaStorageID
		switch {
		case id == from.MantaStorageID && p.mutant != "placement: picks the evacuated shark":
		case obj.HasShark(id) && p.mutant != "placement: picks holders" && id != from.MantaStorageID:
		case slices.Contains(avoid, id) && p.mutant != "placement: ignores avoid":
		case d.RoomBytes-p.used[id] < obj.ContentLength && p.mutant != "placement: overfills":
		default:
			if best == nil || d.RoomBytes-p.used[id] > best.RoomBytes-p.used[best.Node.MantaStorageID] {
				best = d
			}
		}
	}
	if best == nil {
		if p.mutant == "placement: plain error when nothing fits" {
			return rebalancer.StorageNode{}, errors.New("nowhere to go")
		}
		return rebalancer.StorageNode{}, &rebalancer.SkipError{Reason: rebalancer.SkipObjectAlreadyOnDestShark}
	}
	p.used[best.Node.MantaStorageID] += obj.ContentLength
	node := best.Node
	if p.mutant == "placement: loses the datacenter" {
		node.Datacenter = ""
	}
	return node, nil
}

func (p *memPlacement) Release(dest rebalancer.StorageNode, bytes int64, copied bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mutant == "placement: keeps released room" {
		return
	}
	p.used[dest.MantaStorageID] -= min(bytes, p.used[dest.MantaStorageID])
}

// memAgent copies between maps: sources serve objects, the destination
// keeps copies. Downloads wait while the agent is stalled.
type memAgent struct {
	mu          sync.Mutex
	served      map[string][]byte // owner/id
	copies      map[string][]byte
	assignments map[string]*rebalancer.Assignment
	stall       chan struct{} // while open, downloads wait
	capacity    int
	wg          sync.WaitGroup
	mutant      string
}

var memSourceNode = rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "2.stor.rebalancertest.example"}

func newMemAgent(t *testing.T, mutant string) rebalancertest.AgentHarness {
	a := &memAgent{served: map[string][]byte{}, copies: map[string][]byte{}, assignments: map[string]*rebalancer.Assignment{},
		capacity: 3, mutant: mutant}
	t.Cleanup(a.wg.Wait)
	return rebalancertest.AgentHarness{
		Agent: a, Dest: rebalancertest.SharkNode(3), Capacity: a.capacity,
		Serve: func(owner, id string, body []byte) rebalancer.StorageNode {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.served[owner+"/"+id] = body
			return memSourceNode
		},
		Copy: func(owner, id string) ([]byte, error) {
			a.mu.Lock()
			defer a.mu.Unlock()
			b, ok := a.copies[owner+"/"+id]
			if !ok {
				return nil, errors.New("no such copy")
			}
			return b, nil
		},
		Stall: func() func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			stall := make(chan struct{})
			a.stall = stall
			return func() { close(stall) }
		},
	}
}

func (a *memAgent) PostAssignment(ctx context.Context, dest rebalancer.StorageNode, p rebalancer.AssignmentPayload) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.assignments[p.ID]; ok && a.mutant != "agent: accepts known ids" {
		return fmt.Errorf("assignment %s: %w", p.ID, rebalancer.ErrAssignmentExists)
	}
	busy := 0
	for _, as := range a.assignments {
		if as.Stats.State.Phase != rebalancer.AssignmentComplete {
			busy++
		}
	}
	if busy >= a.capacity && a.mutant != "agent: never busy" {
		return fmt.Errorf("assignment %s: %w", p.ID, rebalancer.ErrAgentBusy)
	}
	total := len(p.Tasks)
	if a.mutant == "agent: drops a task" && total > 1 {
		total--
	}
	as := &rebalancer.Assignment{UUID: p.ID, Stats: rebalancer.AssignmentStats{
		State: rebalancer.AssignmentState{Phase: rebalancer.AssignmentRunning}, Total: total}}
	a.assignments[p.ID] = as
	tasks := slices.Clone(p.Tasks[:total])
	stall := a.stall
	a.wg.Go(func() { a.run(as, tasks, stall) })
	return nil
}

func (a *memAgent) run(as *rebalancer.Assignment, tasks []rebalancer.Task, stall chan struct{}) {
	if stall != nil {
		<-stall
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range tasks {
		body, ok := a.served[t.Owner+"/"+t.ObjectID]
		sum := md5.Sum(body)
		switch {
		case !ok && a.mutant != "agent: missing objects complete":
			t.Status = rebalancer.TaskFailedWith(rebalancer.SkipSourceObjectNotFound)
		case base64.StdEncoding.EncodeToString(sum[:]) != t.MD5Sum && ok:
			t.Status = rebalancer.TaskFailedWith(rebalancer.SkipMD5Mismatch)
		default:
			a.copies[t.Owner+"/"+t.ObjectID] = body
			as.Stats.Complete++
			continue
		}
		as.Stats.Complete++
		as.Stats.Failed++
		as.Stats.State.Failed = append(as.Stats.State.Failed, t)
	}
	as.Stats.State.Phase = rebalancer.AssignmentComplete
}

func (a *memAgent) GetAssignment(ctx context.Context, dest rebalancer.StorageNode, id string) (rebalancer.Assignment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	as, ok := a.assignments[id]
	if !ok {
		return rebalancer.Assignment{}, fmt.Errorf("assignment %s: %w", id, rebalancer.ErrAssignmentNotFound)
	}
	out := *as
	out.Stats.State.Failed = slices.Clone(as.Stats.State.Failed)
	return out, nil
}

func (a *memAgent) DeleteAssignment(ctx context.Context, dest rebalancer.StorageNode, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mutant != "agent: delete keeps the assignment" {
		delete(a.assignments, id)
	}
	return nil
}
