package fakes_test

import (
	"crypto/md5"
	"encoding/base64"
	"errors"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// The fakes keep the contracts of their interfaces, so that an engine test
// that makes one misbehave tests that misbehaviour alone.
func TestConformance(t *testing.T) {
	t.Run("Source", func(t *testing.T) {
		rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
			m := fakes.NewMoray()
			src := &fakes.Source{}
			for _, s := range shards {
				for i, rec := range s.Objects {
					if rec.Malformed {
						t.Skip("the fake source holds parsed objects only")
					}
					o := m.Put(s.Number, rec.Value)
					o.ScanID = int64(i + 1)
					src.Objects = append(src.Objects, o)
				}
			}
			return rebalancertest.SourceHarness{Source: src, Etag: func(shard int, key string) string {
				o, _ := m.Get(shard, key)
				return o.Etag
			}}
		})
	})
	t.Run("Moray", func(t *testing.T) {
		rebalancertest.TestMetadataStore(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.MetadataHarness {
			m := fakes.NewMoray()
			for _, s := range shards {
				for _, rec := range s.Objects {
					m.Put(s.Number, rec.Value)
				}
			}
			return rebalancertest.MetadataHarness{Store: m, Delete: m.Delete}
		})
	})
	t.Run("Placement", func(t *testing.T) {
		rebalancertest.TestPlacement(t, func(t *testing.T, fleet []rebalancertest.Destination) rebalancertest.PlacementHarness {
			var nodes []rebalancer.StorageNode
			for _, d := range fleet {
				nodes = append(nodes, d.Node)
			}
			return rebalancertest.PlacementHarness{Placement: fakes.NewPlacement(nodes...)}
		})
	})
	t.Run("Agents", func(t *testing.T) {
		rebalancertest.TestAgent(t, func(t *testing.T) rebalancertest.AgentHarness {
			return newAgentHarness()
		})
	})
}

// newAgentHarness gives the fake agents a source shark: a task fails as a
// real agent's would when the source has no such object or its bytes do
// not match the task's MD5, and a copied task's bytes are the source's.
func newAgentHarness() rebalancertest.AgentHarness {
	var mu sync.Mutex
	served := map[string][]byte{} // owner/objectId -> body
	source, dest := fakes.Shark(9), fakes.Shark(3)
	agents := fakes.NewAgents()
	agents.SetFailTask(func(t rebalancer.Task) rebalancer.SkipReason {
		mu.Lock()
		defer mu.Unlock()
		body, ok := served[t.Owner+"/"+t.ObjectID]
		switch {
		case !ok:
			return rebalancer.SkipSourceObjectNotFound
		case md5sum(body) != t.MD5Sum:
			return rebalancer.SkipMD5Mismatch
		}
		return 0
	})
	return rebalancertest.AgentHarness{
		Agent: agents,
		Dest:  dest,
		Serve: func(owner, objectID string, body []byte) rebalancer.StorageNode {
			mu.Lock()
			defer mu.Unlock()
			served[owner+"/"+objectID] = body
			return source
		},
		Copy: func(owner, objectID string) ([]byte, error) {
			if !agents.Copied(dest.MantaStorageID, objectID) {
				return nil, errors.New("not copied")
			}
			mu.Lock()
			defer mu.Unlock()
			return served[owner+"/"+objectID], nil
		},
	}
}

func md5sum(b []byte) string {
	sum := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}
