package mdapi_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
)

// Every test here needs PostgreSQL, through mdapitest. Tests skip loudly
// without one (pgtest.NewDatabase); Examples cannot skip, so they are left
// out instead, as loudly, unless CI requires them.
func TestMain(m *testing.M) {
	flag.Parse()
	if fuzzing() {
		// Fuzz targets need no database, and every fuzz worker process
		// would otherwise start a PostgreSQL of its own.
		os.Exit(m.Run())
	}
	if err := pgtest.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "PostgreSQL unavailable under CI=true:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "!!! PostgreSQL unavailable, the mdapi Examples NOT RUN: %v (set %s or install PostgreSQL)\n", err, pgtest.EnvURL)
		_ = flag.Set("test.skip", "^Example")
	}
	pgtest.Main(m)
}

func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// Fixed ids keep failures readable.
const (
	owner  = "6e3c1f0e-7b5e-4b0c-9a51-2f6a3d1c9e01"
	owner2 = "0c0ffee0-0000-4000-8000-000000000002"
	bucket = "b0c4e7a2-31f5-4d6e-8a90-7c1d2e3f4a05"
)

var (
	stor1 = rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "1.stor.example.com"}
	stor2 = rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "2.stor.example.com"}
	stor3 = rebalancer.StorageNode{Datacenter: "dc2", MantaStorageID: "3.stor.example.com"}
	stor4 = rebalancer.StorageNode{Datacenter: "dc2", MantaStorageID: "4.stor.example.com"}
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// setup starts a server and a client for it.
func setup(t *testing.T, opts ...mdapitest.Options) (*mdapitest.Server, *mdapi.Client) {
	t.Helper()
	srv := mdapitest.Start(t, opts...)
	c := mdapi.NewClient(srv.Addr(), mdapi.Options{RPCTimeout: 20 * time.Second, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return srv, c
}

func str(s string) *string { return &s }

// put stores an object with two copies and some headers and properties.
func put(t *testing.T, srv *mdapitest.Server, vnode uint64, name string, sharks ...rebalancer.StorageNode) mdapitest.Object {
	t.Helper()
	if sharks == nil {
		sharks = []rebalancer.StorageNode{stor1, stor2}
	}
	o, err := srv.PutObject(ctxT(t), mdapitest.Object{
		Vnode: vnode, Owner: owner, BucketID: bucket, Name: name,
		ContentLength: 11, ContentMD5: "XrY7u+Ae7tCTyyK7j1rNww==", ContentType: "text/plain",
		Headers:    map[string]*string{"m-color": str("blue"), "x-null": nil, "content-disposition": str(`attachment; filename="a b.txt"`)},
		Sharks:     sharks,
		Properties: []byte(`{"roles": ["r1", "r2"], "tags": {"env": "prod", "n": 7}}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func loc(vnode uint64, name string) mdapi.Locator {
	return mdapi.Locator{Owner: owner, BucketID: bucket, Name: name, Vnode: vnode}
}
