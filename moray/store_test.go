package moray

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// The sample object of docs/golden.md: key order as node wrote it, a large number.
const sampleKey = "/61368287-aa5b-6c0f-f3a9-931a228215e4/stor/logs/07e023da.log"

const sampleValue = `{"contentLength":9099176,"contentMD5":"L9NrIZXTY37AYVZN9+gZ7w==","contentType":"text/plain",` +
	`"creator":"61368287-aa5b-6c0f-f3a9-931a228215e4","dirname":"/61368287-aa5b-6c0f-f3a9-931a228215e4/stor/logs",` +
	`"etag":"2e08b069-d132-c25c-920c-945e3329e450","headers":{},"key":"` + sampleKey + `","mtime":1570611723062,` +
	`"name":"07e023da.log","objectId":"2e08b069-d132-c25c-920c-945e3329e450","owner":"61368287-aa5b-6c0f-f3a9-931a228215e4",` +
	`"roles":[],"sharks":[{"datacenter":"dc0","manta_storage_id":"3.stor.example.com"},{"datacenter":"dc0","manta_storage_id":"1.stor.example.com"}],` +
	`"type":"object","vnode":23352,"big":12345678901234567890}`

// storeFixture is a MetadataStore over two shards served by one memStore
// each, recording the requests.
type storeFixture struct {
	store  *MetadataStore
	shards *Shards
	mem    map[int]*memStore
	mu     sync.Mutex
	reqs   []*request
}

func newStoreFixture(t *testing.T) *storeFixture {
	f := &storeFixture{mem: map[int]*memStore{}}
	addrs := StaticShards{}
	for _, shard := range []int{1, 2} {
		ms := newMemStore()
		f.mem[shard] = ms
		srv := newFakeServer(t, func(r *request) {
			f.mu.Lock()
			f.reqs = append(f.reqs, r)
			f.mu.Unlock()
			ms.handle(r)
		})
		addrs[shard] = srv.Addr()
	}
	f.shards = NewShards(addrs, Options{Logger: testutil.Discard()})
	t.Cleanup(func() { f.shards.Close() })
	f.store = NewMetadataStore(f.shards)
	return f
}

func (f *storeFixture) requests(method string) []*request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*request
	for _, r := range f.reqs {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

func TestMetadataStoreReplaceShark(t *testing.T) {
	testutil.CheckLeaks(t)
	f := newStoreFixture(t)
	ctx := context.Background()
	etag0 := f.mem[2].put(MantaBucket, sampleKey, json.RawMessage(sampleValue))

	obj, err := f.store.GetObject(ctx, 2, sampleKey)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Key != sampleKey || obj.Etag != etag0 || obj.Shard != 2 || obj.ScanID != 1 ||
		obj.ID != "2e08b069-d132-c25c-920c-945e3329e450" || len(obj.Sharks) != 2 || string(obj.Metadata) != sampleValue {
		t.Fatalf("GetObject = %+v", obj)
	}

	dest := rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "2.stor.example.com"}
	etag1, err := f.store.ReplaceShark(ctx, obj, "1.stor.example.com", dest)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := rebalancer.ReplaceShark(json.RawMessage(sampleValue), "1.stor.example.com", dest)
	stored := f.mem[2].get(MantaBucket, sampleKey)
	if !bytes.Equal(stored.Value, want) || etag1 != stored.Etag || etag1 == etag0 {
		t.Fatalf("stored %s (etag %s, returned %s), want %s", stored.Value, stored.Etag, etag1, want)
	}
	puts := f.requests("putObject")
	if len(puts) != 1 || !bytes.Contains(puts[0].Data, []byte(`"etag":"`+etag0+`"`)) {
		t.Fatalf("putObject requests: %d", len(puts))
	}

	// The object changed since obj was read: a conflict naming both etags.
	_, err = f.store.ReplaceShark(ctx, obj, "3.stor.example.com", dest)
	var ec *EtagConflictError
	if !errors.As(err, &ec) || ec.Expected != etag0 || ec.Actual != etag1 || !errors.Is(err, rebalancer.ErrEtagConflict) ||
		errors.Is(err, rebalancer.ErrObjectNotFound) || !strings.Contains(err.Error(), sampleKey) {
		t.Fatalf("stale ReplaceShark: %v", err)
	}

	// Deleted since: a conflict that is also "not found".
	delete(f.mem[2].objects[MantaBucket], sampleKey)
	_, err = f.store.ReplaceShark(ctx, obj, "3.stor.example.com", dest)
	if !errors.Is(err, rebalancer.ErrObjectNotFound) || !errors.Is(err, rebalancer.ErrEtagConflict) {
		t.Fatalf("ReplaceShark of a deleted object: %v", err)
	}
	_, err = f.store.GetObject(ctx, 2, sampleKey)
	if !errors.Is(err, rebalancer.ErrObjectNotFound) {
		t.Fatalf("GetObject of a deleted object: %v", err)
	}
}

// Writes that could lose data are refused without a request.
func TestMetadataStoreRefuses(t *testing.T) {
	testutil.CheckLeaks(t)
	f := newStoreFixture(t)
	ctx := context.Background()
	obj, err := rebalancer.ParseObject(json.RawMessage(sampleValue))
	if err != nil {
		t.Fatal(err)
	}
	obj.Shard = 1
	dest := rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "2.stor.example.com"}
	if _, err := f.store.ReplaceShark(ctx, obj, "1.stor.example.com", dest); err == nil {
		t.Error("ReplaceShark without an etag succeeded")
	}
	obj.Etag = "314BADAF"
	if _, err := f.store.ReplaceShark(ctx, obj, "9.stor.example.com", dest); !errors.Is(err, rebalancer.ErrSharkNotListed) {
		t.Errorf("ReplaceShark of an unlisted shark: %v", err)
	}
	if _, err := f.store.ReplaceSharks(ctx, 2, []Update{{Object: obj, From: "1.stor.example.com", To: dest}}); err == nil {
		t.Error("ReplaceSharks with an object of another shard succeeded")
	}
	if n := len(f.requests("putObject")) + len(f.requests("batch")); n != 0 {
		t.Errorf("%d writes sent", n)
	}
}

func TestMetadataStoreReplaceSharks(t *testing.T) {
	testutil.CheckLeaks(t)
	f := newStoreFixture(t)
	ctx := context.Background()
	keys := []string{"/acct/stor/a", "/acct/stor/b"}
	for _, k := range keys {
		f.mem[1].put(MantaBucket, k, json.RawMessage(strings.Replace(sampleValue, sampleKey, k, 1)))
	}
	dest := rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "2.stor.example.com"}
	updates := func(from string) []Update {
		var us []Update
		for _, k := range keys {
			obj, err := f.store.GetObject(ctx, 1, k)
			if err != nil {
				t.Fatal(err)
			}
			us = append(us, Update{Object: obj, From: from, To: dest})
		}
		return us
	}
	us := updates("3.stor.example.com")
	etags, err := f.store.ReplaceSharks(ctx, 1, us)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		stored := f.mem[1].get(MantaBucket, k)
		want, _ := rebalancer.ReplaceShark(us[i].Object.Metadata, "3.stor.example.com", dest)
		if etags[i] != stored.Etag || !bytes.Equal(stored.Value, want) {
			t.Errorf("%s: etag %s stored %s", k, etags[i], stored.Value)
		}
	}
	batch := f.requests("batch")[0]
	args := batch.args(t)
	if opts := decodeOpts(args[1]); opts["etag"] != nil {
		t.Errorf("top-level batch options carry an etag: %s", args[1])
	}
	if !bytes.Contains(args[0], []byte(`"options":{"etag":"`+us[0].Object.Etag+`"}`)) {
		t.Errorf("per-op etag missing: %s", args[0])
	}

	// One stale etag: nothing is written, and the error names its key.
	us = updates("1.stor.example.com")
	f.mem[1].put(MantaBucket, keys[1], json.RawMessage(`{"changed":true}`))
	before := f.mem[1].get(MantaBucket, keys[0]).Etag
	_, err = f.store.ReplaceSharks(ctx, 1, us)
	var ec *EtagConflictError
	if !errors.As(err, &ec) || ec.Key != keys[1] || !errors.Is(err, rebalancer.ErrEtagConflict) {
		t.Fatalf("stale batch: %v", err)
	}
	if f.mem[1].get(MantaBucket, keys[0]).Etag != before {
		t.Error("a failed batch wrote the first object")
	}
}

func TestLookupShark(t *testing.T) {
	testutil.CheckLeaks(t)
	ms := newMemStore()
	ms.put(StorageBucket, "1.stor", json.RawMessage(`{"manta_storage_id":"1.stor.example.com","datacenter":"dc0","availableMB":100}`))
	ms.put(StorageBucket, "odd", json.RawMessage(`{"manta_storage_id":"we(ird)*=\\id","datacenter":"dc9"}`))
	ms.put(StorageBucket, "dup1", json.RawMessage(`{"manta_storage_id":"dup.stor","datacenter":"dc0"}`))
	ms.put(StorageBucket, "dup2", json.RawMessage(`{"manta_storage_id":"dup.stor","datacenter":"dc1"}`))
	reqs := make(chan *request, 8)
	srv := newFakeServer(t, func(r *request) { reqs <- r; ms.handle(r) })
	c := testClient(t, srv.Addr(), Options{})
	ctx := context.Background()

	n, err := LookupShark(ctx, c, "1.stor.example.com")
	if err != nil || n != (rebalancer.StorageNode{Datacenter: "dc0", MantaStorageID: "1.stor.example.com"}) {
		t.Fatalf("LookupShark = %+v, %v", n, err)
	}
	if a := (<-reqs).args(t); string(a[0]) != `"manta_storage"` || string(a[1]) != `"(manta_storage_id=1.stor.example.com)"` {
		t.Errorf("findObjects args %s", a)
	}
	n, err = LookupShark(ctx, c, `we(ird)*=\id`)
	if err != nil || n.Datacenter != "dc9" {
		t.Fatalf("LookupShark(weird) = %+v, %v", n, err)
	}
	if a := (<-reqs).args(t); string(a[1]) != `"(manta_storage_id=we\\(ird\\)\\*\\=\\\\id)"` {
		t.Errorf("escaped filter %s", a[1])
	}
	_, err = LookupShark(ctx, c, "9.stor.example.com")
	var nf *SharkNotFoundError
	if !errors.As(err, &nf) || err.Error() != "Could not find shark 9.stor.example.com" {
		t.Errorf("unknown shark: %v", err)
	}
	if _, err = LookupShark(ctx, c, "dup.stor"); err == nil || errors.As(err, &nf) {
		t.Errorf("duplicate shark: %v", err)
	}
}

func TestShards(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := newFakeServer(t, func(r *request) { r.Conn.end(r) })
	s := NewShards(StaticShards{1: srv.Addr()}, Options{Logger: testutil.Discard()})
	ctx := context.Background()
	if c1 := s.Client(1); s.Client(1) != c1 || c1 == s.Client(2) {
		t.Error("clients not cached per shard")
	}
	if err := s.Client(1).Ping(ctx); err != nil {
		t.Fatal(err)
	}
	err := s.Client(2).Ping(ctx)
	if !errors.Is(err, ErrUnknownShard) || IsTransient(err) {
		t.Errorf("unknown shard: %v", err)
	}
	s.Close()
	if err := s.Client(1).Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

type fakeSRV struct {
	srvs []*net.SRV
	err  error
	asks []string
}

func (f *fakeSRV) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	f.asks = append(f.asks, "_"+service+"._"+proto+"."+name)
	return "", f.srvs, f.err
}

func TestDNSShards(t *testing.T) {
	r := &fakeSRV{srvs: []*net.SRV{{Target: "a.example.com.", Port: 2021}, {Target: "b.example.com.", Port: 2022}}}
	d := DNSShards{Domain: "us-east.example.com", Resolver: r}
	seen := map[string]bool{}
	for range 100 {
		addr, err := d.ResolveShard(context.Background(), 3)
		if err != nil {
			t.Fatal(err)
		}
		seen[addr] = true
	}
	if len(seen) != 2 || !seen["a.example.com:2021"] || !seen["b.example.com:2022"] {
		t.Errorf("SRV answers picked: %v", seen)
	}
	if r.asks[0] != "_moray._tcp.3.moray.us-east.example.com" {
		t.Errorf("asked %s", r.asks[0])
	}
	d.Resolver = &fakeSRV{err: &net.DNSError{Err: "no such host", IsNotFound: true}}
	if addr, err := d.ResolveShard(context.Background(), 3); err != nil || addr != "3.moray.us-east.example.com:2020" {
		t.Errorf("fallback = %q, %v", addr, err)
	}
}
