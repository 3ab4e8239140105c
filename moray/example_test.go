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
)

// These examples need a Moray to talk to, so they are compiled but not run;
// the package's tests exercise the same calls against a scripted server.

func ExampleClient_GetObject() {
	c := moray.NewClient("1.moray.example.com:2020", moray.Options{})
	defer c.Close()

	rec, err := c.GetObject(context.TODO(), "manta", "/acct/stor/a.log")
	var nf *moray.ObjectNotFoundError
	switch {
	case errors.As(err, &nf):
		fmt.Println("no such object:", nf.Key)
		return
	case err != nil:
		log.Fatal(err)
	}
	// rec.Value is the stored JSON, untouched; rec.Etag conditions an update.
	fmt.Println(rec.Key, rec.Etag, len(rec.Value))
}

// A read-modify-write loop: the write succeeds only if nobody changed the
// object since it was read; on a conflict, read again and redo the change.
func ExampleClient_PutObject() {
	c := moray.NewClient("1.moray.example.com:2020", moray.Options{})
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
			fmt.Printf("changed meanwhile (etag %s, not %s); retrying\n", conflict.Actual, conflict.Expected)
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
}

// Scanning with FindObjects: records arrive one at a time; paging on _id
// keeps each request small and the order deterministic.
func ExampleClient_FindObjects() {
	c := moray.NewClient("1.moray.example.com:2020", moray.Options{})
	defer c.Close()
	ctx := context.TODO()

	owner := "61368287-aa5b-6c0f-f3a9-931a228215e4"
	var after int64
	for {
		n := 0
		f := fmt.Sprintf("(&(owner=%s)(_id>=%d))", filter.Escape(owner), after+1)
		err := c.FindObjects(ctx, "manta", f, moray.FindOptions{
			Limit: 1000, NoCount: true, Sort: []moray.Sort{{Attribute: "_id"}},
		}, func(r *moray.Record) error {
			n++
			after = r.ID
			fmt.Println(r.Key)
			return nil
		})
		if err != nil {
			log.Fatal(err) // the records seen so far are not the whole answer
		}
		if n < 1000 {
			return
		}
	}
}

// SQL streams raw rows: BIGINT columns come as strings, _value as a string
// holding the object's JSON.
func ExampleClient_SQL() {
	c := moray.NewClient("1.moray.example.com:2020", moray.Options{})
	defer c.Close()

	err := c.SQL(context.TODO(),
		"SELECT * FROM manta WHERE _id >= $1 AND _id <= $2 AND type = 'object'", []any{1, 1000},
		moray.SQLOptions{Timeout: 10 * time.Second},
		func(row map[string]json.RawMessage) error {
			var value string
			if err := json.Unmarshal(row["_value"], &value); err != nil {
				return err // stops the scan; SQL returns this error
			}
			obj, err := rebalancer.ParseObject(json.RawMessage(value))
			if err != nil {
				return err
			}
			fmt.Println(obj.Key, len(obj.Sharks))
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}
}

// The rebalancer's metadata update: read, then replace one shark,
// conditionally on the etag read.
func ExampleMetadataStore() {
	shards := moray.NewShards(moray.DNSShards{Domain: "us-east.example.com"}, moray.Options{})
	defer shards.Close()
	store := moray.NewMetadataStore(shards)
	ctx := context.TODO()

	obj, err := store.GetObject(ctx, 2, "/acct/stor/a.log")
	if err != nil {
		log.Fatal(err)
	}
	dest, err := moray.LookupShark(ctx, shards.Client(1), "2.stor.us-east.example.com")
	if err != nil {
		log.Fatal(err)
	}
	etag, err := store.ReplaceShark(ctx, obj, "1.stor.us-east.example.com", dest)
	if errors.Is(err, rebalancer.ErrEtagConflict) {
		fmt.Println("object changed since it was read; read it again")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("updated, new etag", etag)
}
