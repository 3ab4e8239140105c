package testbed

import (
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// MorayShards are the metadata shards of a rebalancertest fixture, each
// served by its own moraytest server with the manta bucket: the backend of
// the conformance suites for whatever reads or writes Moray.
type MorayShards struct {
	Servers map[int]*moraytest.Server
	Clients *moray.Shards // closed by t's cleanup
	Numbers []int         // the shard numbers, in the fixture's order
}

// LoadMorayShards starts a server per shard and stores the shard's
// records in its manta bucket, in order.
func LoadMorayShards(t *testing.T, shards []rebalancertest.Shard) *MorayShards {
	t.Helper()
	m := &MorayShards{Servers: map[int]*moraytest.Server{}}
	addrs := moray.StaticShards{}
	for _, s := range shards {
		srv := moraytest.Start(t)
		if err := srv.CreateMantaBucket(); err != nil {
			t.Fatal(err)
		}
		for _, o := range s.Objects {
			if _, err := srv.Put(moray.MantaBucket, o.Key, o.Value); err != nil {
				t.Fatal(err)
			}
		}
		m.Servers[s.Number], addrs[s.Number] = srv, srv.Addr()
		m.Numbers = append(m.Numbers, s.Number)
	}
	m.Clients = moray.NewShards(addrs, moray.Options{Logger: testutil.Logger(t)})
	t.Cleanup(func() { m.Clients.Close() })
	return m
}

// Etag returns the etag of key on shard, or "" when there is none.
func (m *MorayShards) Etag(shard int, key string) string {
	o, err := m.Servers[shard].Get(moray.MantaBucket, key)
	if err != nil {
		return ""
	}
	return o.Etag
}

// Break takes shard offline.
func (m *MorayShards) Break(shard int) { m.Servers[shard].Offline() }

// Delete deletes key on shard, as another client would.
func (m *MorayShards) Delete(shard int, key string) { m.Servers[shard].Delete(moray.MantaBucket, key) }
