package storinfo

import (
	"context"
	"fmt"

	"github.com/TritonDataCenter/rebalancer"
)

// PlaceOn places obj, which is leaving the shark from, on the storage node
// dest, by the rules and capacity accounting of Place, and reserves
// obj.ContentLength bytes there. The evacuation engine uses it for the
// parts of a multipart upload, which must all go where the first went
// (evacuate.PinnedPlacement). When dest cannot take the object it returns
// a *rebalancer.SkipError: object_already_on_dest_shark when dest holds a
// copy (or is from), object_already_in_datacenter for the datacenter rule,
// destination_unreachable when dest is in avoid, blocklisted or not
// listed by storinfo, destination_insufficient_space when it lacks room.
// Without a usable snapshot it returns Place's errors.
func (p *Placement) PlaceOn(ctx context.Context, obj rebalancer.Object, from rebalancer.StorageNode, dest string, avoid []string) (rebalancer.StorageNode, error) {
	if err := ctx.Err(); err != nil {
		return rebalancer.StorageNode{}, err
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.syncUsable(obj.ID, now); err != nil {
		return rebalancer.StorageNode{}, err
	}
	fromDC, err := p.datacenterOf(&obj, from)
	if err != nil {
		return rebalancer.StorageNode{}, err
	}
	size := max(obj.ContentLength, 0)
	skip := func(reason rebalancer.SkipReason, format string, args ...any) (rebalancer.StorageNode, error) {
		return rebalancer.StorageNode{}, &rebalancer.SkipError{Reason: reason,
			Err: fmt.Errorf("object %s (%d bytes) leaving %s cannot go to %s: %s", obj.ID, size, from.MantaStorageID, dest, fmt.Sprintf(format, args...))}
	}
	s := p.nodes[dest]
	switch {
	case s == nil:
		return skip(rebalancer.SkipDestinationUnreachable, "storinfo does not list it")
	case s.blocklisted:
		return skip(rebalancer.SkipDestinationUnreachable, "it is blocklisted")
	case s.excluded:
		return skip(rebalancer.SkipDestinationUnreachable, "it is out of service (being evacuated, or evacuated)")
	}
	switch reject(s, &obj, from.MantaStorageID, fromDC, avoid) {
	case holdsCopy:
		return skip(rebalancer.SkipObjectAlreadyOnDestShark, "it holds a copy")
	case datacenterHoldsCopy:
		return skip(rebalancer.SkipObjectAlreadyInDatacenter, "its datacenter %s holds a copy", s.sn.Datacenter)
	case avoided:
		return skip(rebalancer.SkipDestinationUnreachable, "it already failed this object, or is being evacuated")
	}
	if s.room() < size {
		return skip(rebalancer.SkipDestinationInsufficientSpace, "%d bytes of room left", max(s.room(), 0))
	}
	s.acct.reserved += size
	p.fix(s.acct.slot)
	return s.sn, nil
}
