package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// KeyListSource keeps the rebalancer.ObjectSource contract when its list
// names every object of the shards (moraytest servers, one per shard):
// it reads each object's current metadata and visits those on the shark.
func TestKeyListSourceConformance(t *testing.T) {
	rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
		servers := map[int]*moraytest.Server{}
		addrs := moray.StaticShards{}
		var lines []string
		for _, s := range shards {
			srv := moraytest.Start(t)
			if err := srv.CreateMantaBucket(); err != nil {
				t.Fatal(err)
			}
			for _, o := range s.Objects {
				if _, err := srv.Put(moray.MantaBucket, o.Key, o.Value); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, fmt.Sprintf("%d %s", s.Number, o.Key))
			}
			servers[s.Number], addrs[s.Number] = srv, srv.Addr()
		}
		keys := filepath.Join(t.TempDir(), "keys.txt")
		if err := os.WriteFile(keys, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		clients := moray.NewShards(addrs, moray.Options{Logger: testutil.Logger(t)})
		t.Cleanup(func() { clients.Close() })
		return rebalancertest.SourceHarness{
			Source: KeyListSource{Path: keys, Metadata: moray.NewMetadataStore(clients)},
			Etag: func(shard int, key string) string {
				o, err := servers[shard].Get(moray.MantaBucket, key)
				if err != nil {
					t.Errorf("shard %d key %s: %v", shard, key, err)
				}
				return o.Etag
			},
			Break: func(shard int) { servers[shard].Offline() },
		}
	})
}
