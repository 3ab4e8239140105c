package mdapi_test

import (
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/mdapi"
)

// The vnodes buckets-api computes for these keys (lib/common.js
// getDataLocation, the interval of node-fash's ring), as docs/golden.md
// says how to regenerate them.
func TestRingGoldenVnodes(t *testing.T) {
	const upload = "0f3c2b8e-8a4f-4d1e-9b7a-5c6d7e8f9a0b"
	names := []string{"photos/cat.jpg", ".mpu-uploads/" + upload, ".mpu-parts/" + upload + "/1", "ünïcødé ☃", "a"}
	for _, tc := range []struct {
		vnodes uint64
		want   []uint64 // for names, then the bucket "mybucket"
	}{
		{1, []uint64{0, 0, 0, 0, 0, 0}},
		{2, []uint64{0, 1, 1, 1, 1, 1}},
		{3, []uint64{0, 1, 2, 2, 2, 1}},
		{7, []uint64{0, 3, 4, 6, 4, 4}},
		{1024, []uint64{145, 554, 726, 970, 719, 638}},
		{65536, []uint64{9282, 35518, 46484, 62101, 46068, 40858}},
		{1000000, []uint64{141635, 541974, 709292, 947594, 702944, 623445}},
	} {
		r, err := mdapi.NewRing(tc.vnodes)
		if err != nil {
			t.Fatal(err)
		}
		for i, name := range names {
			v, err := r.ObjectVnode(owner, bucket, name)
			if err != nil || v != tc.want[i] {
				t.Errorf("%d vnodes: object %q: vnode %d (%v), want %d", tc.vnodes, name, v, err, tc.want[i])
			}
		}
		if v, err := r.BucketVnode(owner, "mybucket"); err != nil || v != tc.want[len(names)] {
			t.Errorf("%d vnodes: bucket: vnode %d (%v), want %d", tc.vnodes, v, err, tc.want[len(names)])
		}
	}
}

func TestRingKeys(t *testing.T) {
	if got := mdapi.ObjectKey(owner, bucket, "a"); got != owner+":"+bucket+":0cc175b9c0f1b6a831c399e269772661" {
		t.Errorf("ObjectKey = %s", got)
	}
	if got := mdapi.BucketKey(owner, "b"); got != owner+":b" {
		t.Errorf("BucketKey = %s", got)
	}
	if _, err := mdapi.NewRing(0); err == nil {
		t.Error("a ring of no vnodes")
	}
	var zero mdapi.Ring
	if _, err := zero.Vnode("x"); err == nil {
		t.Error("the zero Ring placed a key")
	}
	// Every key lands in range, and the vnodes are spread.
	r, _ := mdapi.NewRing(16)
	seen := map[uint64]bool{}
	for i := range 2000 {
		v, err := r.Vnode(strings.Repeat("k", i%50) + string(rune('a'+i%26)) + string(rune(i)))
		if err != nil || v >= 16 {
			t.Fatalf("vnode %d: %v", v, err)
		}
		seen[v] = true
	}
	if len(seen) != 16 {
		t.Errorf("2000 keys fell in %d of 16 vnodes", len(seen))
	}
}

func TestVnodeMap(t *testing.T) {
	var m mdapi.VnodeMap
	if _, err := m.Ring(); err == nil {
		t.Error("ring of an empty map")
	}
	if err := m.Add(1, 0, 2, 4); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(2, 1, 3); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(2, 3); err != nil {
		t.Errorf("the same vnode on the same shard again: %v", err)
	}
	if s, ok := m.Shard(3); !ok || s != 2 {
		t.Errorf("Shard(3) = %d %v", s, ok)
	}
	if _, ok := m.Shard(9); ok {
		t.Error("Shard(9) found")
	}
	if got := m.Vnodes(1); len(got) != 3 || got[0] != 0 || got[2] != 4 {
		t.Errorf("Vnodes(1) = %v", got)
	}
	r, err := m.Ring()
	if err != nil || r.Vnodes() != 5 {
		t.Errorf("Ring() = %d vnodes, %v", r.Vnodes(), err)
	}
	err = m.Add(3, 4, 5)
	if err == nil || !strings.Contains(err.Error(), "vnode 4 on shards 1 and 3") {
		t.Errorf("a vnode on two shards: %v", err)
	}
	// 0..5 but 4's place was kept by shard 1; now add 7: a gap at 6.
	if err := m.Add(3, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Ring(); err == nil || !strings.Contains(err.Error(), "not vnodes [6]") {
		t.Errorf("Ring() of a map with a gap: %v", err)
	}
}
