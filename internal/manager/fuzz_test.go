package manager

import (
	"testing"

	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// noSnapshots is a SnapshotSource with nothing yet, enough to build a
// Placement.
type noSnapshots struct{}

func (noSnapshots) Snapshot() *storinfo.Snapshot { return nil }

// FuzzParseConfig parses arbitrary configuration files. ParseConfig must
// never panic, and a configuration it accepts must be one the manager can
// run with: it validates again, its job options and placement limits are
// accepted by the engine and the placement, its storinfo URL by the
// storinfo client, and its shard and log settings are usable. The seed
// corpus (testdata/fuzz/FuzzParseConfig) holds the legacy SAPI template
// as config-agent renders it, the README's example and the testbed's.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(templateConfig))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			if c != nil {
				t.Fatalf("ParseConfig(%q) returned a config with error %v", b, err)
			}
			return
		}
		if err := c.validate(); err != nil {
			t.Fatalf("ParseConfig(%q) accepted a config that does not validate: %v", b, err)
		}
		o := c.JobOptions()
		if err := o.Validate(); err != nil {
			t.Fatalf("ParseConfig(%q) accepted options the engine refuses: %v", b, err)
		}
		if o.AssignmentTimeout <= 0 {
			t.Fatalf("ParseConfig(%q): assignment timeout %v", b, o.AssignmentTimeout.D())
		}
		if _, err := storinfo.NewPlacement(storinfo.PlacementConfig{Tunables: c.Tunables(), Snapshots: noSnapshots{}}); err != nil {
			t.Fatalf("ParseConfig(%q) accepted placement limits the placement refuses: %v", b, err)
		}
		if _, err := storinfo.NewClient(storinfo.ClientConfig{BaseURL: c.StorinfoURL, Domain: c.DomainName}); err != nil {
			t.Fatalf("ParseConfig(%q) accepted a storinfo the client refuses: %v", b, err)
		}
		if c.SlogLevel() == "" {
			t.Fatalf("ParseConfig(%q): log level %q maps to nothing", b, c.LogLevel)
		}
		c.MinMaxShard()
		if c.shardResolver() == nil {
			t.Fatalf("ParseConfig(%q): no shard resolver", b)
		}
	})
}
