package moraytest_test

import (
	"fmt"
	"log"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
)

// A test starts the server, seeds the buckets a rebalancer reads, and
// points its Moray client at Addr. (In a test, moraytest.Start(t) does the
// first three lines and makes violations fail the test.)
func Example() {
	srv, err := moraytest.New(moraytest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	if err := srv.CreateMantaBucket(); err != nil {
		log.Fatal(err)
	}
	if err := srv.CreateStorageBucket(); err != nil {
		log.Fatal(err)
	}
	for _, id := range []string{"1.stor.example.com", "2.stor.example.com"} {
		shark := moraytest.Shark{StorageNode: rebalancer.StorageNode{Datacenter: "dc0", MantaStorageID: id}, AvailableMB: 100000}
		if err := srv.AddShark(shark); err != nil {
			log.Fatal(err)
		}
	}
	etag, err := srv.Put("manta", "/acct/stor/a.txt", map[string]any{
		"key": "/acct/stor/a.txt", "owner": "acct", "objectId": "a1", "type": "object",
		"sharks": []rebalancer.StorageNode{{Datacenter: "dc0", MantaStorageID: "1.stor.example.com"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("etag:", etag)

	// The client under test connects here: a "127.0.0.1:port" address.
	_ = srv.Addr()

	// Afterwards the test checks what the client did.
	obj, err := srv.Get("manta", "/acct/stor/a.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("_id:", obj.ID, "putObject calls:", srv.Calls("putObject"), "violations:", len(srv.Violations()))
	// Output:
	// etag: AF2B6096
	// _id: 1 putObject calls: 0 violations: 0
}

// A hook makes the server fail like a real shard under load.
func ExampleServer_SetHook() {
	srv, err := moraytest.New(moraytest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.SetHook(func(r moraytest.Request) moraytest.Action {
		if r.Method == "findObjects" {
			return moraytest.Action{Error: &fast.Error{Name: "NoDatabasePeersError", Message: "no manatee peers available"}}
		}
		return moraytest.Action{}
	})
	// Every findObjects now fails, and so do the next two conditional puts,
	// with the EtagConflictError a concurrent writer would cause.
	srv.ConflictNextPuts(2)
	fmt.Println(moraytest.EtagConflict("manta", "/acct/stor/a.txt", "314BADAF", "77406E25").Message)
	// Output:
	// manta::/acct/stor/a.txt was expected to have etag "314BADAF", but was "77406E25"
}
