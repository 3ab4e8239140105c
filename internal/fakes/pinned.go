package fakes

import (
	"context"
	"slices"

	"github.com/TritonDataCenter/rebalancer"
)

// PlaceOn places obj on the shark dest if Place could have chosen it (the
// engine's evacuate.PinnedPlacement, for the parts of a multipart upload),
// reserving its size there.
func (p *Placement) PlaceOn(ctx context.Context, obj rebalancer.Object, from rebalancer.StorageNode, dest string, avoid []string) (rebalancer.StorageNode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.unavailable {
		return rebalancer.StorageNode{}, errUnavailable
	}
	i := slices.IndexFunc(p.sharks, func(s rebalancer.StorageNode) bool { return s.MantaStorageID == dest })
	switch {
	case i < 0 || slices.Contains(avoid, dest):
		return rebalancer.StorageNode{}, &rebalancer.SkipError{Reason: rebalancer.SkipDestinationUnreachable}
	case dest == from.MantaStorageID || obj.HasShark(dest):
		return rebalancer.StorageNode{}, &rebalancer.SkipError{Reason: rebalancer.SkipObjectAlreadyOnDestShark}
	}
	p.reserved[dest] += obj.ContentLength
	return p.sharks[i], nil
}
