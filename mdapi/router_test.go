package mdapi_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/rebalancertest"
)

// A Router over Moray and buckets-mdapi keeps the MetadataStore contract
// for v1 objects, which it sends to Moray.
func TestRouterConformance(t *testing.T) {
	_, buckets := storeSetup(t)
	rebalancertest.TestMetadataStore(t, func(t *testing.T, shards []rebalancertest.Shard) rebalancertest.MetadataHarness {
		m := testbed.LoadMorayShards(t, shards)
		return rebalancertest.MetadataHarness{Store: mdapi.Router{Moray: moray.NewMetadataStore(m.Clients), Buckets: buckets}, Delete: m.Delete}
	})
}

// v1 and v2 objects with the same shard number are told apart by their
// key: each goes to its own store, batches included, and a batch mixing
// them is refused before anything is written.
func TestRouterRoutesByKind(t *testing.T) {
	ctx := ctxT(t)
	srv, buckets := storeSetup(t)
	stored := put(t, srv, 3, "photos/a.jpg")
	put(t, srv, 2, "photos/b.jpg")
	v1Key := "/" + owner + "/stor/a.jpg"
	mor := testbed.LoadMorayShards(t, []rebalancertest.Shard{{Number: 1, Objects: []rebalancertest.StoredObject{
		{Key: v1Key, Value: rebalancertest.ObjectValue(v1Key, "3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8", 10, "", stor1, stor2)},
	}}})
	r := mdapi.Router{Moray: moray.NewMetadataStore(mor.Clients), Buckets: buckets}
	dest := rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "3.stor.example.com"}

	v2, err := r.GetObject(ctx, 1, loc(3, "photos/a.jpg").Key())
	if err != nil || v2.ID != stored.ID || !v2.IsBucket {
		t.Fatalf("GetObject(v2) = %+v, %v", v2, err)
	}
	v2b, err := r.GetObject(ctx, 1, loc(2, "photos/b.jpg").Key())
	if err != nil {
		t.Fatal(err)
	}
	v1, err := r.GetObject(ctx, 1, v1Key)
	if err != nil || v1.IsBucket || v1.Key != v1Key {
		t.Fatalf("GetObject(v1) = %+v, %v", v1, err)
	}
	_, err = r.ReplaceSharks(ctx, 1, []rebalancer.SharkReplacement{{Object: v1, From: stor1.MantaStorageID, To: dest}, {Object: v2, From: stor1.MantaStorageID, To: dest}})
	if err == nil || !strings.Contains(err.Error(), "different kinds") {
		t.Fatalf("a mixed batch = %v", err)
	}
	if now, _ := r.GetObject(ctx, 1, v1Key); !now.HasShark(stor1.MantaStorageID) {
		t.Fatal("the refused batch wrote the v1 object")
	}
	if _, err := r.ReplaceSharks(ctx, 1, []rebalancer.SharkReplacement{{Object: v2, From: stor1.MantaStorageID, To: dest}, {Object: v2b, From: stor1.MantaStorageID, To: dest}}); err != nil {
		t.Fatalf("a v2 batch: %v", err)
	}
	if _, err := r.ReplaceShark(ctx, v1, stor1.MantaStorageID, dest); err != nil {
		t.Fatalf("v1 ReplaceShark: %v", err)
	}
	for _, key := range []string{v1Key, loc(3, "photos/a.jpg").Key(), loc(2, "photos/b.jpg").Key()} {
		now, err := r.GetObject(ctx, 1, key)
		if err != nil || now.HasShark(stor1.MantaStorageID) || !now.HasShark(dest.MantaStorageID) {
			t.Errorf("%s after the update: %+v, %v", key, now.Sharks, err)
		}
	}
	if n := srv.Calls("batchupdateobjects"); n != 1 {
		t.Errorf("%d batchupdateobjects, want 1", n)
	}

	// Without buckets-mdapi, v2 objects are refused by name.
	none := mdapi.Router{Moray: r.Moray}
	if _, err := none.GetObject(ctx, 1, v2.Key); !errors.Is(err, mdapi.ErrNotConfigured) || !strings.Contains(err.Error(), v2.Key) {
		t.Errorf("GetObject without buckets-mdapi = %v", err)
	}
	if _, err := none.ReplaceShark(ctx, v2, stor2.MantaStorageID, dest); !errors.Is(err, mdapi.ErrNotConfigured) {
		t.Errorf("ReplaceShark without buckets-mdapi = %v", err)
	}
	if _, err := none.ReplaceSharks(ctx, 1, []rebalancer.SharkReplacement{{Object: v2, From: stor2.MantaStorageID, To: dest}}); !errors.Is(err, mdapi.ErrNotConfigured) {
		t.Errorf("ReplaceSharks without buckets-mdapi = %v", err)
	}
}
