package sharkspotter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// Multi over a v1 and a v2 scanner keeps the ObjectSource contract, with
// checkpoints keyed by CheckpointShard: the suite's shards 1 and 2 are
// Moray shards (read from PostgreSQL), 3 and 5 buckets-mdapi shards.
func TestMultiConformance(t *testing.T) {
	rebalancertest.TestObjectSource(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.SourceHarness {
		var v1, v2 []rebalancertest.Shard
		for _, s := range shards {
			if s.Number <= 2 {
				v1 = append(v1, s)
			} else {
				v2 = append(v2, s)
			}
		}
		f1 := newPGFixture(t, map[int]shardSpec{1: {}, 2: {}})
		for _, s := range v1 {
			for i, o := range s.Objects {
				f1.put(t, s.Number, fixtureRow{id: int64(i + 1), key: o.Key, value: string(o.Value), typ: "object"})
			}
		}
		f2 := newBucketsFixture(t, []int{3, 5}, 2)
		h := loadSuiteShards(t, f2, v2)
		visited2, etag2 := h.Visited, h.Etag
		h.Source = Multi(Part{V1, f1.scanner(1, 2)}, Part{V2, &BucketsPostgresScanner{Options: f2.opts(3, 5), DSNs: f2.dsns, Chunk: 7}})
		h.Visited = func(shard int, so rebalancertest.StoredObject) (string, json.RawMessage) {
			if shard <= 2 {
				return so.Key, so.Value
			}
			return visited2(shard, so)
		}
		h.Etag = func(shard int, key string) string {
			if shard <= 2 {
				return f1.etags[shard][key]
			}
			return etag2(shard, key)
		}
		h.Break = func(shard int) {
			if shard <= 2 {
				f1.unreachable(shard)
			} else {
				f2.dsns[shard] = "postgres://postgres@127.0.0.1:1/x?sslmode=disable"
			}
		}
		h.CheckpointKey = CheckpointShard
		return h
	})
}

// v1 shard 1 and v2 shard 1 are scanned together: their objects both say
// shard 1, told apart by kind, and their checkpoints are kept apart.
func TestMultiSharedShardNumbers(t *testing.T) {
	f1 := newPGFixture(t, map[int]shardSpec{1: {rows: 300}, 2: {rows: 100}})
	f2 := newBucketsFixture(t, []int{1, 2}, 3)
	f2.populate(120)
	src := Multi(Part{V1, f1.scanner(1, 2)}, Part{V2, &BucketsPostgresScanner{Options: f2.opts(1, 2), DSNs: f2.dsns, Chunk: 5}})

	stop := errors.New("stop")
	var all []rebalancer.Object
	after := map[int]int64{}
	for _, stopAt := range []int{30, 60, 0} {
		col := newCollector(t)
		// Ascending per checkpoint key, not per shard.
		col.lastID = nil
		last := map[int]int64{}
		col.onVisit = func(o rebalancer.Object) {
			k := CheckpointShard(o)
			if o.ScanID <= last[k] || o.ScanID <= after[k] {
				t.Errorf("%s (shard %d): ScanID %d after %d, checkpoint %d", o.Key, o.Shard, o.ScanID, last[k], after[k])
			}
			last[k] = o.ScanID
		}
		col.stopAt, col.stopErr = stopAt, stop
		err := src.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: testShark, After: maps.Clone(after)}, col.visit)
		if stopAt > 0 && err != stop || stopAt == 0 && err != nil {
			t.Fatalf("run stopping at %d: %v", stopAt, err)
		}
		for _, o := range col.objs {
			after[CheckpointShard(o)] = max(after[CheckpointShard(o)], o.ScanID)
		}
		all = append(all, col.objs...)
	}
	var v1, v2 []rebalancer.Object
	seen := map[string]bool{}
	for _, o := range all {
		k := fmt.Sprint(o.Shard, o.Key)
		if seen[k] {
			continue
		}
		seen[k] = true
		switch KindOf(o) {
		case V1:
			v1 = append(v1, o)
		case V2:
			v2 = append(v2, o)
		}
	}
	f1.check(t, v1, false)
	f2.check(t, v2)
	for _, k := range []int{1, 2, V2CheckpointOffset + 1, V2CheckpointOffset + 2} {
		if after[k] == 0 {
			t.Errorf("no checkpoint under %d: %v", k, after)
		}
	}
}

func TestMultiErrors(t *testing.T) {
	f1 := newPGFixture(t, map[int]shardSpec{1: {rows: 200}, 2: {rows: 200}})
	f2 := newBucketsFixture(t, []int{1}, 2)
	f2.populate(60)
	v2 := &BucketsPostgresScanner{Options: f2.opts(1), DSNs: f2.dsns}
	req := rebalancer.DiscoverRequest{Shark: testShark}

	// Both parts fail: both errors, each saying its kind and shard.
	f1.unreachable(2)
	dsn := f2.dsns[1]
	f2.dsns[1] = "postgres://postgres@127.0.0.1:1/x?sslmode=disable"
	o := f1.opts(1, 2)
	o.Retries = -1
	col := newCollector(t)
	col.lastID = nil
	err := Multi(Part{V1, f1.newScanner(o)}, Part{V2, v2}).Discover(context.Background(), req, col.visit)
	for _, want := range []string{"v1 (Moray) discovery: ", "v2 (buckets-mdapi) discovery: ", "shard 2:", "shard 1:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	var se *ShardError
	if !errors.As(err, &se) {
		t.Errorf("no ShardError in %v", err)
	}
	if len(col.objs) != len(f1.want(false)[1]) {
		t.Errorf("%d objects visited, want shard 1's %d", len(col.objs), len(f1.want(false)[1]))
	}

	// visit's error stops both parts, and is what Discover returns.
	f2.dsns[1] = dsn
	stop := errors.New("enough")
	col = newCollector(t)
	col.lastID = nil
	col.stopAt, col.stopErr = 10, stop
	err = Multi(Part{V1, f1.scanner(1)}, Part{V2, v2}).Discover(context.Background(), req, col.visit)
	if err != stop || len(col.objs) != 10 {
		t.Errorf("visit's error: %v after %d visits", err, len(col.objs))
	}

	// A cancelled context: its error, and no visit after it.
	ctx, cancel := context.WithCancel(context.Background())
	col = newCollector(t)
	col.lastID = nil
	col.onVisit = func(rebalancer.Object) {
		if len(col.objs) == 5 {
			cancel()
		}
	}
	err = Multi(Part{V1, f1.scanner(1)}, Part{V2, v2}).Discover(ctx, req, col.visit)
	if !errors.Is(err, context.Canceled) || len(col.objs) != 5 {
		t.Errorf("cancelled: %v after %d visits", err, len(col.objs))
	}

	// A part of the wrong kind.
	err = Multi(Part{V2, f1.scanner(1)}).Discover(context.Background(), req, func(rebalancer.Object) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "a v2 (buckets-mdapi) source found object /") {
		t.Errorf("v1 objects from a V2 part: %v", err)
	}
	for _, parts := range [][]Part{{{Source: v2}}, {{Kind: V1}}} {
		if err := Multi(parts...).Discover(context.Background(), req, col.visit); err == nil {
			t.Errorf("Multi(%+v) accepted", parts)
		}
	}
}

func TestCheckpointShard(t *testing.T) {
	v1 := rebalancer.Object{Key: "/" + v2Owner + "/stor/a", Shard: 3}
	v2 := rebalancer.Object{Key: mdapi.Locator{Owner: v2Owner, BucketID: v2Owner2, Name: "a", Vnode: 4}.Key(), Shard: 3}
	if CheckpointShard(v1) != 3 || CheckpointShard(v2) != V2CheckpointOffset+3 || KindOf(v1) != V1 || KindOf(v2) != V2 {
		t.Errorf("v1 %d %v, v2 %d %v", CheckpointShard(v1), KindOf(v1), CheckpointShard(v2), KindOf(v2))
	}
}
