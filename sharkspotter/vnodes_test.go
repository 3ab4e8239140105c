package sharkspotter

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/mdapi"
)

// ListVnodes lists what Discover lists before it scans, both ways, and
// fails on an unreachable shard or a vnode on two shards, naming them.
func TestListVnodes(t *testing.T) {
	forEachBucketsKind(t, func(t *testing.T, k bucketsKind) {
		f := newBucketsFixture(t, []int{1, 2, 3}, 3)
		list := func(o Options) (*mdapi.VnodeMap, error) {
			switch sc := k.scanner(f, o).(type) {
			case *BucketsPostgresScanner:
				return sc.ListVnodes(context.Background())
			case *BucketsMdapiScanner:
				return sc.ListVnodes(context.Background())
			}
			t.Fatalf("scanner %T", k.scanner(f, o))
			return nil, nil
		}
		m, err := list(f.opts(1, 2, 3))
		if err != nil {
			t.Fatal(err)
		}
		for _, shard := range f.shards() {
			if got, want := m.Vnodes(shard), f.vnodes.Vnodes(shard); !slices.Equal(got, want) {
				t.Errorf("shard %d: vnodes %v, want %v", shard, got, want)
			}
		}
		if _, err := m.Ring(); err != nil {
			t.Errorf("the map of every shard makes no ring: %v", err)
		}

		dup := f.vnodes.Vnodes(1)[0]
		if err := f.srv[2].CreateVnodes(context.Background(), dup); err != nil {
			t.Fatal(err)
		}
		k.unreachable(f, 3)
		o := f.opts(1, 2, 3)
		o.Retries = -1
		_, err = list(o)
		var se *ShardError
		if !errors.As(err, &se) {
			t.Fatalf("ListVnodes = %v, want *ShardErrors", err)
		}
		for _, want := range []string{"shard 1:", "shard 2:", "shard 3:", "also on shards"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
}
