package mdapi_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
)

// exampleServer starts an in-process buckets-mdapi over a fresh PostgreSQL
// database, with one object of one bucket in vnode 3.
func exampleServer(who string) (srv *mdapitest.Server, stop func()) {
	ctx := context.Background()
	dsn, drop, err := pgtest.CreateDatabase(ctx, who)
	if err != nil {
		log.Fatal(err)
	}
	srv, err = mdapitest.New(ctx, mdapitest.Options{DSN: dsn})
	if err != nil {
		log.Fatal(err)
	}
	_, err = srv.PutObject(ctx, mdapitest.Object{
		Vnode: 3, ID: "4a9e7b1c-2d3f-4e5a-8b6c-7d8e9f0a1b2c",
		Owner: "6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01", BucketID: "b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05",
		Name: "photos/cat.jpg", ContentLength: 11, ContentMD5: "XrY7u+Ae7tCTyyK7j1rNww==", ContentType: "image/jpeg",
		Sharks: []rebalancer.StorageNode{
			{Datacenter: "dc1", MantaStorageID: "1.stor.example.com"},
			{Datacenter: "dc1", MantaStorageID: "2.stor.example.com"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	return srv, func() { srv.Close(); drop() }
}

// Moving one copy of a v2 object: read it, then rewrite its sharks on the
// condition that nobody changed it since. The second update, made with the
// version read before the first, is refused.
func ExampleMetadataStore() {
	srv, stop := exampleServer("ExampleMetadataStore")
	defer stop()
	ctx := context.Background()

	// Shard 1 of the buckets-mdapi tier; in production
	// mdapi.DNSShards{Hosts: ...} finds it.
	shards := mdapi.NewShards(mdapi.StaticShards{1: srv.Addr()}, mdapi.Options{})
	defer shards.Close()
	store := mdapi.NewMetadataStore(shards)

	key := mdapi.Locator{Owner: "6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01", BucketID: "b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05",
		Name: "photos/cat.jpg", Vnode: 3}.Key()
	obj, err := store.GetObject(ctx, 1, key)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(obj.Key)
	fmt.Println("v2:", obj.IsBucket, "sharks:", obj.Sharks)

	dest := rebalancer.StorageNode{Datacenter: "dc2", MantaStorageID: "3.stor.example.com"}
	if _, err := store.ReplaceShark(ctx, obj, "1.stor.example.com", dest); err != nil {
		log.Fatal(err)
	}
	_, err = store.ReplaceShark(ctx, obj, "2.stor.example.com", dest)
	fmt.Println("stale version refused:", errors.Is(err, rebalancer.ErrEtagConflict))

	now, err := store.GetObject(ctx, 1, key)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sharks:", now.Sharks)
	// Output:
	// v2/3/6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01/b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05/photos/cat.jpg
	// v2: true sharks: [1.stor.example.com 2.stor.example.com]
	// stale version refused: true
	// sharks: [3.stor.example.com 2.stor.example.com]
}

// Listing the objects of a bucket that one vnode holds, a page at a time.
func ExampleClient_WalkObjects() {
	srv, stop := exampleServer("ExampleClient_WalkObjects")
	defer stop()
	ctx := context.Background()

	c := mdapi.NewClient(srv.Addr(), mdapi.Options{})
	defer c.Close()
	err := c.WalkObjects(ctx, "6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01", "b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05", 3, 100,
		func(r *mdapi.Record) error {
			fmt.Println(r.Name, r.ContentLength, r.Sharks)
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// photos/cat.jpg 11 [1.stor.example.com 2.stor.example.com]
}

// After the parts of a multipart upload moved off a shark, the upload's
// record must name their new shark: buckets-api sends later parts to it,
// and assembles the object there. The ring and the vnode map find the
// record; here one shard holds all 4 vnodes.
func ExampleUploadFixer() {
	srv, stop := exampleServer("ExampleUploadFixer")
	defer stop()
	ctx := context.Background()
	owner, bucket := "6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01", "b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05"
	uploadID := "0f3c2b8e-8a4f-4d1e-9b7a-5c6d7e8f9a0b"
	old := rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "1.stor.example.com"}
	other := rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "2.stor.example.com"}

	var vnodes mdapi.VnodeMap
	vnodes.Add(1, srv.Vnodes()...)
	ring, err := vnodes.Ring()
	if err != nil {
		log.Fatal(err)
	}
	// The upload's record and part 1, where buckets-api puts them.
	rv, _ := ring.ObjectVnode(owner, bucket, mdapi.UploadRecordName(uploadID))
	if _, _, err := srv.PutUpload(ctx, mdapitest.Upload{Vnode: rv, Owner: owner, BucketID: bucket, BucketName: "b", Key: "big",
		UploadID: uploadID, PreAllocatedSharks: []rebalancer.StorageNode{old, other}}); err != nil {
		log.Fatal(err)
	}
	part := mdapi.Locator{Owner: owner, BucketID: bucket, Name: mdapitest.PartName(uploadID, 1)}
	part.Vnode, _ = ring.ObjectVnode(owner, bucket, part.Name)

	shards := mdapi.NewShards(mdapi.StaticShards{1: srv.Addr()}, mdapi.Options{})
	defer shards.Close()
	fixer := &mdapi.UploadFixer{Shards: shards, Ring: ring, Vnodes: &vnodes}
	to := rebalancer.StorageNode{Datacenter: "dc2", MantaStorageID: "3.stor.example.com"}
	for range 2 {
		res, err := fixer.Fix(ctx, part, old.MantaStorageID, to)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(res.Upload.ID, res.Outcome)
	}
	rec, _ := srv.GetObject(ctx, rv, owner, bucket, mdapi.UploadRecordName(uploadID))
	fmt.Println(strings.Count(*rec.Headers["x-preallocated-sharks"], "3.stor.example.com"),
		strings.Count(*rec.Headers["x-upload-record"], "1.stor.example.com"))
	// Output:
	// 0f3c2b8e-8a4f-4d1e-9b7a-5c6d7e8f9a0b fixed
	// 0f3c2b8e-8a4f-4d1e-9b7a-5c6d7e8f9a0b already_fixed
	// 1 0
}
