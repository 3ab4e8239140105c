package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray"
)

// ScanSource is a test helper, not the product's discovery: a
// rebalancer.ObjectSource that pages through each shard's manta bucket with
// findObjects in ascending _id order and keeps the objects naming the shark.
// It resumes after DiscoverRequest.After and sets Shard, Etag and ScanID,
// so the engine's checkpointing works over it. Package sharkspotter is the
// real thing; Config.Source plugs it in instead.
type ScanSource struct {
	Shards   moray.ShardClients
	Numbers  []int // the shards to scan, in order
	PageSize int   // records per findObjects (default 500)
}

// ScanSource returns a ScanSource over the fleet's shards.
func (f *Fleet) ScanSource() *ScanSource {
	return &ScanSource{Shards: f.shards, Numbers: f.ShardNumbers()}
}

// Discover implements rebalancer.ObjectSource.
func (s *ScanSource) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	page := s.PageSize
	if page <= 0 {
		page = 500
	}
	quoted, _ := json.Marshal(req.Shark)
	for _, shard := range s.Numbers {
		c := s.Shards.Client(shard)
		after := req.After[shard]
		for {
			n := 0
			filter := fmt.Sprintf("(&(type=object)(_id>=%d))", after+1)
			err := c.FindObjects(ctx, moray.MantaBucket, filter, moray.FindOptions{
				Limit: page, NoCount: true, Sort: []moray.Sort{{Attribute: "_id"}},
			}, func(r *moray.Record) error {
				n++
				after = r.ID
				o, err := rebalancer.ParseObject(r.Value)
				if err != nil {
					// Hand the engine what can be salvaged, so that it
					// records the object as an error rather than missing it.
					if !bytes.Contains(r.Value, quoted) {
						return nil
					}
					var ids struct {
						ID string `json:"objectId"`
					}
					json.Unmarshal(r.Value, &ids)
					if ids.ID == "" {
						return fmt.Errorf("shard %d: object %s: %w", shard, r.Key, err)
					}
					o = rebalancer.Object{ID: ids.ID, Key: r.Key, Metadata: r.Value}
				} else if !o.HasShark(req.Shark) {
					return nil
				}
				o.Shard, o.Etag, o.ScanID = shard, r.Etag, r.ID
				return visit(o)
			})
			if err != nil {
				return fmt.Errorf("scan shard %d: %w", shard, err)
			}
			if n < page {
				break
			}
		}
	}
	return nil
}
