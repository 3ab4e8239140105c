package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/TritonDataCenter/rebalancer"
)

// Pinned is a rebalancer.Placement that puts objects only on a fixed set
// of destinations (say, a rack of new storage nodes), in turn. It keeps the
// rules that protect durability: never the shark being evacuated, never a
// shark that already holds a copy of the object, never one the engine
// asks to avoid because a copy there failed.
//
// Unlike storinfo.Placement it knows nothing of free space: it suits a
// small, planned move onto empty nodes.
type Pinned struct {
	Dests []rebalancer.StorageNode

	mu   sync.Mutex
	next int
}

// Place picks the next allowed destination in turn.
func (p *Pinned) Place(_ context.Context, obj rebalancer.Object, from rebalancer.StorageNode, avoid []string) (rebalancer.StorageNode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range p.Dests {
		d := p.Dests[p.next%len(p.Dests)]
		p.next++
		if d.MantaStorageID == from.MantaStorageID || obj.HasShark(d.MantaStorageID) || contains(avoid, d.MantaStorageID) {
			continue
		}
		return d, nil
	}
	// A SkipError makes the engine skip the object with this reason
	// instead of waiting for room that will never come.
	return rebalancer.StorageNode{}, &rebalancer.SkipError{
		Reason: rebalancer.SkipObjectAlreadyOnDestShark,
		Err:    fmt.Errorf("object %s: every pinned destination already holds it or failed it", obj.ID),
	}
}

// Release is a no-op: Pinned keeps no account of space.
func (p *Pinned) Release(rebalancer.StorageNode, int64, bool) {}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
