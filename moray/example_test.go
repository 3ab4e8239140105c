package moray_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/filter"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
)

// The examples talk to an in-process Moray (package moraytest) holding five
// objects, /acct/stor/a.log to /acct/stor/e.log, each with copies on
// 1.stor.example.com and 3.stor.example.com. Against a real shard, the
// address is the shard's Moray, e.g. "1.moray.us-east.example.com:2020",
// or moray.NewShards(moray.DNSShards{...}, ...) finds it.

func ExampleClient_GetObject() {
	srv := startMoray()
	defer srv.Close()
	c := moray.NewClient(srv.Addr(), moray.Options{})
	defer c.Close()

	for _, key := range []string{"/acct/stor/a.log", "/acct/stor/nosuch.log"} {
		rec, err := c.GetObject(context.TODO(), "manta", key)
		var nf *moray.ObjectNotFoundError
		switch {
		case errors.As(err, &nf):
			fmt.Println("no such object:", nf.Key)
			continue
		case err != nil:
			log.Fatal(err)
		}
		// rec.Value is the stored JSON, untouched; rec.Etag conditions an update.
		fmt.Println(rec.Key, rec.Etag, len(rec.Value), "bytes")
	}
	// Output:
	// /acct/stor/a.log AA66C5C3 308 bytes
	// no such object: /acct/stor/nosuch.log
}

// A read-modify-write loop: the write succeeds only if nobody changed the
// object since it was read; on a conflict, read again and redo the change.
func ExampleClient_PutObject() {
	srv := startMoray()
	defer srv.Close()
	// The first conditional write fails as if another writer had got there
	// first.
	srv.ConflictNextPuts(1)
	c := moray.NewClient(srv.Addr(), moray.Options{})
	defer c.Close()
	ctx := context.TODO()

	for attempt := 0; attempt < 3; attempt++ {
		rec, err := c.GetObject(ctx, "manta", "/acct/stor/a.log")
		if err != nil {
			log.Fatal(err)
		}
		value, err := rebalancer.ReplaceShark(rec.Value, "1.stor.example.com",
			rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "2.stor.example.com"})
		if err != nil {
			log.Fatal(err)
		}
		etag, err := c.PutObject(ctx, "manta", rec.Key, value, moray.PutOptions{Etag: moray.IfEtag(rec.Etag)})
		var conflict *moray.EtagConflictError
		switch {
		case errors.As(err, &conflict) && conflict.Missing():
			fmt.Println("deleted meanwhile")
			return
		case errors.As(err, &conflict):
			fmt.Println("changed since it was read; retrying")
			continue
		case moray.IsTransient(err):
			time.Sleep(time.Second) // the server or network failed: worth another go
			continue
		case err != nil:
			log.Fatal(err)
		}
		fmt.Println("new etag", etag)
		return
	}
	// Output:
	// changed since it was read; retrying
	// new etag FBEB79BA
}

// Scanning with FindObjects: records arrive one at a time; paging on _id
// keeps each request small and the order deterministic.
func ExampleClient_FindObjects() {
	srv := startMoray()
	defer srv.Close()
	c := moray.NewClient(srv.Addr(), moray.Options{})
	defer c.Close()
	ctx := context.TODO()

	const owner, page = "acct", 2 // pages of 1000 are more usual
	var after int64
	for {
		n := 0
		f := fmt.Sprintf("(&(owner=%s)(_id>=%d))", filter.Escape(owner), after+1)
		err := c.FindObjects(ctx, "manta", f, moray.FindOptions{
			Limit: page, NoCount: true, Sort: []moray.Sort{{Attribute: "_id"}},
		}, func(r *moray.Record) error {
			n++
			after = r.ID
			fmt.Println(r.ID, r.Key)
			return nil
		})
		if err != nil {
			log.Fatal(err) // the records seen so far are not the whole answer
		}
		if n < page {
			return
		}
	}
	// Output:
	// 1 /acct/stor/a.log
	// 2 /acct/stor/b.log
	// 3 /acct/stor/c.log
	// 4 /acct/stor/d.log
	// 5 /acct/stor/e.log
}

// SQL streams raw rows: BIGINT columns come as strings, _value as a string
// holding the object's JSON.
func ExampleClient_SQL() {
	srv := startMoray()
	defer srv.Close()
	c := moray.NewClient(srv.Addr(), moray.Options{})
	defer c.Close()

	err := c.SQL(context.TODO(),
		"SELECT * FROM manta WHERE _id >= $1 AND _id <= $2 AND type = 'object'", []any{2, 3},
		moray.SQLOptions{Timeout: 10 * time.Second},
		func(row map[string]json.RawMessage) error {
			var id, value string
			if err := json.Unmarshal(row["_id"], &id); err != nil {
				return err // stops the scan; SQL returns this error
			}
			if err := json.Unmarshal(row["_value"], &value); err != nil {
				return err
			}
			obj, err := rebalancer.ParseObject(json.RawMessage(value))
			if err != nil {
				return err
			}
			fmt.Println(id, obj.Key, len(obj.Sharks), "copies")
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// 2 /acct/stor/b.log 2 copies
	// 3 /acct/stor/c.log 2 copies
}

// The rebalancer's metadata update: read, then replace one shark,
// conditionally on the etag read. Shard 1 holds the storage nodes' records
// (manta_storage), as in Manta; here one server plays both shards.
func ExampleMetadataStore() {
	srv := startMoray()
	defer srv.Close()
	shards := moray.NewShards(moray.StaticShards{1: srv.Addr(), 2: srv.Addr()}, moray.Options{})
	defer shards.Close()
	store := moray.NewMetadataStore(shards)
	ctx := context.TODO()

	obj, err := store.GetObject(ctx, 2, "/acct/stor/a.log")
	if err != nil {
		log.Fatal(err)
	}
	dest, err := moray.LookupShark(ctx, shards.Client(1), "2.stor.example.com")
	if err != nil {
		log.Fatal(err)
	}
	etag, err := store.ReplaceShark(ctx, obj, "1.stor.example.com", dest)
	if errors.Is(err, rebalancer.ErrEtagConflict) {
		fmt.Println("object changed since it was read; read it again")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("updated, new etag", etag)
	obj, err = store.GetObject(ctx, 2, "/acct/stor/a.log")
	if err != nil {
		log.Fatal(err)
	}
	for _, sh := range obj.Sharks {
		fmt.Println(sh.MantaStorageID, sh.Datacenter)
	}
	// Output:
	// updated, new etag FBEB79BA
	// 2.stor.example.com dc1
	// 3.stor.example.com dc0
}

// startMoray starts the examples' Moray.
func startMoray() *moraytest.Server {
	srv, err := moraytest.New(moraytest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.CreateMantaBucket(); err != nil {
		log.Fatal(err)
	}
	if err := srv.CreateStorageBucket(); err != nil {
		log.Fatal(err)
	}
	for i, dc := range []string{"dc0", "dc1", "dc0"} {
		id := fmt.Sprintf("%d.stor.example.com", i+1)
		shark := moraytest.Shark{StorageNode: rebalancer.StorageNode{Datacenter: dc, MantaStorageID: id}, AvailableMB: 100000}
		if err := srv.AddShark(shark); err != nil {
			log.Fatal(err)
		}
	}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		key := "/acct/stor/" + name + ".log"
		_, err := srv.Put("manta", key, map[string]any{
			"key": key, "owner": "acct", "objectId": name + "0b1d5e", "type": "object", "contentLength": 12,
			"contentMD5": "sQqNsWTgdUEFt6mb5y4/5Q==", "dirname": "/acct/stor", "name": name + ".log",
			"sharks": []rebalancer.StorageNode{
				{Datacenter: "dc0", MantaStorageID: "1.stor.example.com"},
				{Datacenter: "dc0", MantaStorageID: "3.stor.example.com"},
			},
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	return srv
}
