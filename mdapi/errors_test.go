package mdapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// frame is one reply frame a scripted server sends.
type frame struct {
	status fast.Status
	data   string
}

// scripted is a Fast server on loopback that answers every request with
// the frames reply returns for it, for reply shapes no real server sends
// on purpose.
func scripted(t *testing.T, reply func(m *fast.Message) []frame) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				dec := fast.NewDecoder(nc, 0)
				for {
					m, err := dec.Decode()
					if err != nil {
						return
					}
					var out []byte
					for _, f := range reply(m) {
						if out, err = fast.AppendFrame(out, &fast.Message{Status: f.status, ID: m.ID, Method: m.Method, Data: json.RawMessage(f.data)}); err != nil {
							t.Errorf("scripted reply: %v", err)
							return
						}
					}
					nc.Write(out)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

const recordJSON = `{"id":"4a9e7b1c-2d3f-4e5a-8b6c-7d8e9f0a1b2c","owner":"` + owner + `","bucket_id":"` + bucket + `","name":"o",` +
	`"created":"2024-05-01T10:00:00.123456Z","modified":"2024-05-02T11:00:00Z","content_length":11,` +
	`"content_md5":"XrY7u+Ae7tCTyyK7j1rNww==","content_type":"text/plain","headers":{},` +
	`"sharks":[{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}],"properties":null}`

// The error shapes buckets-mdapi (and its clients' expectations) use, and
// malformed replies, each turned into the right typed error.
func TestErrorShapes(t *testing.T) {
	data := func(d string) []frame { return []frame{{fast.StatusData, "[" + d + "]"}, {fast.StatusEnd, "[]"}} }
	for _, tc := range []struct {
		name   string
		reply  []frame
		check  func(error) bool
		reqErr string // a substring of the error text
	}{
		{"upstream not found", data(`{"error":{"name":"ObjectNotFound","message":"requested object not found"}}`),
			func(err error) bool {
				var se *mdapi.ServerError
				return errors.Is(err, rebalancer.ErrObjectNotFound) && errors.As(err, &se) && !se.InFrame
			}, "ObjectNotFound: requested object not found"},
		{"libmanta spelling", data(`{"error":{"name":"ObjectNotFoundError","message":"gone"}}`),
			func(err error) bool { return errors.Is(err, rebalancer.ErrObjectNotFound) }, "gone"},
		{"bare error object", data(`{"name":"PostgresError","message":"db error: FATAL: terminating connection"}`),
			func(err error) bool {
				var se *mdapi.ServerError
				return errors.As(err, &se) && se.Name == "PostgresError" && mdapi.IsTransient(err)
			}, "terminating connection"},
		{"precondition", data(`{"error":{"name":"PreconditionFailedError","message":"if-match '\"x\"' didn't match etag 'y'"}}`),
			func(err error) bool {
				var pf *mdapi.PreconditionFailedError
				return errors.As(err, &pf) && errors.Is(err, rebalancer.ErrEtagConflict) && !mdapi.IsTransient(err)
			}, "didn't match"},
		{"overloaded", data(`{"error":{"name":"OverloadedError","message":"Timed out claiming a connection"}}`),
			func(err error) bool { return mdapi.IsTransient(err) && !errors.Is(err, mdapi.ErrConnection) }, "OverloadedError"},
		{"bucket not found", data(`{"error":{"name":"BucketNotFound","message":"requested bucket not found"}}`),
			func(err error) bool { var bn *mdapi.BucketNotFoundError; return errors.As(err, &bn) }, "bucket not found"},
		{"error that is not named", data(`{"error":"boom"}`),
			func(err error) bool {
				var se *mdapi.ServerError
				return errors.As(err, &se) && se.Name == "InvalidError"
			}, "malformed error object"},
		{"ERROR frame: unknown method", []frame{{fast.StatusError, `{"name":"FastError","message":"Unsupported functon: getobject"}`}},
			func(err error) bool {
				var se *mdapi.ServerError
				return errors.Is(err, mdapi.ErrUnsupported) && errors.As(err, &se) && se.InFrame
			}, "is not supported"},
		{"ERROR frame: node-fast bad_method", []frame{{fast.StatusError, `{"name":"FastError","message":"unsupported RPC method: \"getobject\"","context":{},"info":{"fastReason":"bad_method"}}`}},
			func(err error) bool { return errors.Is(err, mdapi.ErrUnsupported) }, "is not supported"},
		{"ERROR frame: undecodable payload", []frame{{fast.StatusError, `{"name":"FastError","message":"missing field ` + "`vnode`" + `"}`}},
			func(err error) bool {
				var se *mdapi.ServerError
				return errors.As(err, &se) && se.InFrame && !errors.Is(err, mdapi.ErrUnsupported) && !mdapi.IsTransient(err)
			}, "missing field"},
		{"error after a record", []frame{{fast.StatusData, "[" + recordJSON + "]"}, {fast.StatusData, `[{"error":{"name":"PostgresError","message":"late"}}]`}, {fast.StatusEnd, "[]"}},
			func(err error) bool {
				var se *mdapi.ServerError
				return errors.As(err, &se) && se.Name == "PostgresError"
			}, "late"},
		{"two records", []frame{{fast.StatusData, "[" + recordJSON + "]"}, {fast.StatusData, "[" + recordJSON + "]"}, {fast.StatusEnd, "[]"}},
			func(err error) bool { return err != nil }, "more than one item"},
		{"no record", []frame{{fast.StatusEnd, "[]"}}, func(err error) bool { return err != nil }, "no object in the reply"},
		{"record of another object", data(strings.Replace(recordJSON, `"name":"o"`, `"name":"p"`, 1)),
			func(err error) bool { return err != nil }, "got the record of"},
		{"record without sharks", data(strings.Replace(recordJSON, `"sharks":[{"datacenter":"dc1","manta_storage_id":"1.stor.example.com"}],`, ``, 1)),
			func(err error) bool { return err != nil }, "no sharks"},
		{"record with a bad id", data(strings.Replace(recordJSON, `"4a9e7b1c-2d3f-4e5a-8b6c-7d8e9f0a1b2c"`, `"x"`, 1)),
			func(err error) bool { return err != nil }, "is not a UUID"},
		{"the record", data(recordJSON), func(err error) bool { return err == nil }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := scripted(t, func(*fast.Message) []frame { return tc.reply })
			c := mdapi.NewClient(addr, mdapi.Options{RPCTimeout: 10 * time.Second})
			defer c.Close()
			_, err := c.GetObject(ctxT(t), loc(0, "o"))
			if !tc.check(err) || (tc.reqErr != "" && (err == nil || !strings.Contains(err.Error(), tc.reqErr))) {
				t.Errorf("got %v", err)
			}
			// The connection serves the next request after any of them.
			_, err2 := c.GetObject(ctxT(t), loc(0, "o"))
			if (err == nil) != (err2 == nil) {
				t.Errorf("second request: %v after %v", err2, err)
			}
		})
	}
}

// Faults injected in the in-process server: errors in both shapes, an
// outage, a slow server, a dropped connection.
func TestFaults(t *testing.T) {
	ctx := ctxT(t)
	srv, c := setup(t)
	put(t, srv, 0, "o")

	srv.FailNext("getobject", 1, mdapitest.Overloaded)
	if _, err := c.GetObject(ctx, loc(0, "o")); !mdapi.IsTransient(err) || !strings.Contains(err.Error(), "OverloadedError") {
		t.Errorf("overloaded: %v", err)
	}
	srv.FailNext("getobject", 1, mdapitest.Fault{Name: "FastError", Message: "invalid type: integer `1`, expected a string", Frame: true})
	var se *mdapi.ServerError
	if _, err := c.GetObject(ctx, loc(0, "o")); !errors.As(err, &se) || !se.InFrame {
		t.Errorf("ERROR frame: %v", err)
	}
	if _, err := c.GetObject(ctx, loc(0, "o")); err != nil {
		t.Errorf("after the faults: %v", err)
	}

	// A dropped connection fails the request in flight; the next one
	// reconnects.
	srv.SetHook(func(r mdapitest.Request) mdapitest.Action { return mdapitest.Action{Drop: true} })
	if _, err := c.GetObject(ctx, loc(0, "o")); !errors.Is(err, mdapi.ErrConnection) || !mdapi.IsTransient(err) {
		t.Errorf("dropped: %v", err)
	}
	srv.SetHook(nil)
	if _, err := c.GetObject(ctx, loc(0, "o")); err != nil {
		t.Errorf("after the drop: %v", err)
	}

	// Slower than the RPC timeout.
	slow := mdapi.NewClient(srv.Addr(), mdapi.Options{RPCTimeout: 50 * time.Millisecond})
	defer slow.Close()
	srv.SetHook(func(r mdapitest.Request) mdapitest.Action { return mdapitest.Action{Delay: 200 * time.Millisecond} })
	if _, err := slow.GetObject(ctx, loc(0, "o")); !errors.Is(err, mdapi.ErrTimeout) || !errors.Is(err, mdapi.ErrConnection) {
		t.Errorf("slow: %v", err)
	}
	srv.SetHook(nil)

	// Down, then back.
	srv.Offline()
	_, err := c.GetObject(ctx, loc(0, "o"))
	var te *mdapi.TransportError
	if !errors.As(err, &te) || !errors.Is(err, mdapi.ErrConnection) || !strings.HasPrefix(err.Error(), "buckets-mdapi ") {
		t.Errorf("offline: %v", err)
	}
	if err := srv.Online(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.GetObject(ctx, loc(0, "o"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reconnected: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // the client's redial backoff
	}

	// A cancelled context, and a closed client.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.GetObject(cctx, loc(0, "o")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	c.Close()
	if _, err := c.GetObject(ctx, loc(0, "o")); !errors.Is(err, mdapi.ErrClosed) || mdapi.IsTransient(err) {
		t.Errorf("closed: %v", err)
	}
}

func TestShards(t *testing.T) {
	ctx := ctxT(t)
	srv := mdapitest.Start(t)
	put(t, srv, 0, "o")
	shards := mdapi.NewShards(mdapi.StaticShards{1: srv.Addr()}, mdapi.Options{})
	defer shards.Close()
	if c := shards.Client(1); c != shards.Client(1) || c.Addr() != "shard 1" {
		t.Errorf("Client(1): %v", c.Addr())
	}
	if _, err := shards.Client(1).GetObject(ctx, loc(0, "o")); err != nil {
		t.Error(err)
	}
	_, err := shards.Client(2).GetObject(ctx, loc(0, "o"))
	if !errors.Is(err, mdapi.ErrUnknownShard) || mdapi.IsTransient(err) {
		t.Errorf("unknown shard: %v", err)
	}

	for _, tc := range []struct {
		host string
		want int
		ok   bool
	}{{"1.buckets-mdapi.us-east.joyent.us", 1, true}, {"12.buckets-mdapi.x", 12, true}, {"buckets-mdapi.x", 0, false},
		{"01.x", 0, false}, {"-1.x", 0, false}, {"", 0, false}} {
		n, err := mdapi.ShardNumber(tc.host)
		if n != tc.want || (err == nil) != tc.ok {
			t.Errorf("ShardNumber(%q) = %d, %v", tc.host, n, err)
		}
	}
}

// DNSShards: the SRV record when there is one, else the host on 2030.
func TestDNSShards(t *testing.T) {
	r := fakeSRV{"_buckets-mdapi._tcp.1.buckets-mdapi.example.com": {{Target: "10.0.0.7.", Port: 2031}}}
	d := mdapi.DNSShards{Hosts: map[int]string{1: "1.buckets-mdapi.example.com", 2: "2.buckets-mdapi.example.com"}, Resolver: r}
	for _, tc := range []struct {
		shard int
		want  string
		err   error
	}{{1, "10.0.0.7:2031", nil}, {2, "2.buckets-mdapi.example.com:2030", nil}, {3, "", mdapi.ErrUnknownShard}} {
		got, err := d.ResolveShard(context.Background(), tc.shard)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ResolveShard(%d) = %q, %v", tc.shard, got, err)
		}
	}
}

type fakeSRV map[string][]*net.SRV

func (f fakeSRV) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	srvs, ok := f["_"+service+"._"+proto+"."+name]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return name, srvs, nil
}
