package moray

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

func record(key string, i int) map[string]any {
	return map[string]any{"bucket": "b", "key": key, "value": map[string]any{"i": i, "key": key},
		"_id": i, "_etag": fmt.Sprintf("%08X", i), "_mtime": 1, "_txn_snap": nil, "_count": 3}
}

// 200 concurrent RPCs over 2 connections; the server answers only once all
// have arrived, in shuffled order, with the DATA frames of different
// requests interleaved. Every caller must get exactly its own replies.
func TestConcurrentInterleaved(t *testing.T) {
	testutil.CheckLeaks(t)
	const n = 200
	const perFind = 3
	arrived := make(chan *request, n)
	srv := newFakeServer(t, func(r *request) { arrived <- r })
	srv.spawn(func() {
		var reqs []*request
		for len(reqs) < n {
			select {
			case r := <-arrived:
				reqs = append(reqs, r)
			case <-time.After(30 * time.Second):
				t.Errorf("only %d of %d requests arrived", len(reqs), n)
				return
			}
		}
		rand.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
		// Round robin: one DATA of each request in turn, then the ENDs in
		// another order.
		for k := range perFind {
			for _, r := range reqs {
				key := unquote(r.args(t)[1])
				if r.Method == "findObjects" || k == 0 {
					r.Conn.data(r, record(key, k))
				}
			}
		}
		rand.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
		for _, r := range reqs {
			r.Conn.end(r)
		}
	})
	c := testClient(t, srv.Addr(), Options{Conns: 2})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "/k/" + strconv.Itoa(i)
			if i%2 == 0 {
				rec, err := c.GetObject(ctx, "b", key)
				if err != nil {
					errs <- err
				} else if rec.Key != key || rec.ID != 0 {
					errs <- fmt.Errorf("getObject %s got %s/%d", key, rec.Key, rec.ID)
				}
				return
			}
			// findObjects' filter argument carries the key, as getObject's
			// key does, so the server can label the records.
			var got []int64
			err := c.FindObjects(ctx, "b", key, FindOptions{}, func(r *Record) error {
				if r.Key != key {
					return fmt.Errorf("findObjects %s got a record of %s", key, r.Key)
				}
				got = append(got, r.ID)
				return nil
			})
			if err == nil && fmt.Sprint(got) != "[0 1 2]" {
				err = fmt.Errorf("findObjects %s got records %v", key, got)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if srv.Conns() != 2 {
		t.Errorf("server saw %d connections, want 2", srv.Conns())
	}
}

// The server dies in the middle of a findObjects reply frame: the scan fails
// with a transport error after the records that did arrive, and the next
// RPC reconnects.
func TestServerKilledMidStream(t *testing.T) {
	testutil.CheckLeaks(t)
	var once sync.Once
	srv := newFakeServer(t, func(r *request) {
		if r.Method == "ping" {
			r.Conn.end(r)
			return
		}
		once.Do(func() {
			r.Conn.data(r, record("/a", 0))
			r.Conn.data(r, record("/a", 1))
			f, _ := fast.AppendFrame(nil, &fast.Message{Status: fast.StatusData, ID: r.ID, Method: r.Method, Data: mustArray(record("/a", 2))})
			r.Conn.sendRaw(f[:len(f)/2])
			r.Conn.nc.Close()
		})
	})
	c := testClient(t, srv.Addr(), Options{Conns: 1})
	var seen int
	err := c.FindObjects(context.Background(), "b", "(x=1)", FindOptions{}, func(*Record) error { seen++; return nil })
	if !errors.Is(err, ErrConnection) || !errors.Is(err, io.ErrUnexpectedEOF) || !IsTransient(err) {
		t.Fatalf("err = %v, want a transport error (unexpected EOF)", err)
	}
	if seen != 2 {
		t.Errorf("callback saw %d records, want 2", seen)
	}
	testutil.Eventually(t, "a new connection", func() bool { return c.Ping(context.Background()) == nil })
	if srv.Conns() != 2 {
		t.Errorf("server saw %d connections, want 2", srv.Conns())
	}
}

// An ERROR after some DATA fails the scan with the server's error.
func TestErrorAfterData(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := newFakeServer(t, func(r *request) {
		r.Conn.data(r, record("/a", 0))
		r.Conn.data(r, record("/a", 1))
		r.Conn.fail(r, "QueryTimeoutError", "query timed out", nil)
	})
	c := testClient(t, srv.Addr(), Options{})
	var seen int
	err := c.FindObjects(context.Background(), "b", "(x=1)", FindOptions{}, func(*Record) error { seen++; return nil })
	var se *ServerError
	if !errors.As(err, &se) || se.Name() != "QueryTimeoutError" || seen != 2 {
		t.Fatalf("err = %v after %d records", err, seen)
	}
	if !IsTransient(err) || errors.Is(err, ErrConnection) {
		t.Errorf("QueryTimeoutError: transient %v, connection %v", IsTransient(err), errors.Is(err, ErrConnection))
	}
}

// Cancelling mid-stream returns at once with the context's error; the
// connection carries on, and the abandoned request's late replies are
// dropped.
func TestCancelMidStream(t *testing.T) {
	testutil.CheckLeaks(t)
	release := make(chan struct{})
	var logs logRecorder
	srv := newFakeServer(t, func(r *request) {
		switch r.Method {
		case "ping":
			r.Conn.end(r)
		case "findObjects":
			r.Conn.data(r, record("/a", 0))
			r.Conn.srv.spawn(func() {
				<-release
				r.Conn.data(r, record("/a", 1))
				r.Conn.end(r)
			})
		}
	})
	c := testClient(t, srv.Addr(), Options{Conns: 1, Logger: slog.New(&logs)})
	ctx, cancel := context.WithCancel(context.Background())
	var seen int
	err := c.FindObjects(ctx, "b", "(x=1)", FindOptions{}, func(*Record) error {
		seen++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || seen != 1 || IsTransient(err) {
		t.Fatalf("err = %v after %d records, want context.Canceled after 1", err, seen)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(release)
	testutil.Eventually(t, "the late replies to be dropped", func() bool { return logs.count("abandoned") == 2 })
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if srv.Conns() != 1 || logs.count("unknown") != 0 || logs.count("connection lost") != 0 {
		t.Errorf("connections %d, logs %q", srv.Conns(), logs.msgs)
	}
}

// A context cancelled while a large request is being written does not cut
// the frame: the server receives it whole, and the connection stays usable.
func TestCancelDuringWrite(t *testing.T) {
	testutil.CheckLeaks(t)
	headerSeen := make(chan struct{}, 1)
	resume := make(chan struct{})
	var gated sync.Once
	srv := newFakeServer(t, func(r *request) {
		if r.Method == "putObject" {
			r.Conn.reply(r, map[string]string{"etag": "AAAAAAAA"}) // late: nobody listens
			return
		}
		r.Conn.end(r)
	}, func(s *fakeServer) {
		s.readBuffer = 32 << 10
		s.gate = func(header []byte) {
			if header[2] != byte(fast.StatusData) || binary.BigEndian.Uint32(header[11:]) < 1<<20 {
				return // not the big put
			}
			gated.Do(func() {
				headerSeen <- struct{}{}
				<-resume
			})
		}
	})
	var logs logRecorder
	c := testClient(t, srv.Addr(), Options{Conns: 1, Logger: slog.New(&logs)})
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Small socket buffers and a larger request, so that the Write is still
	// going on when the server stops reading after the header.
	if err := c.testConn(0).nc.(*net.TCPConn).SetWriteBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	value := json.RawMessage(`{"pad":"` + strings.Repeat("a", 2<<20) + `"}`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.PutObject(ctx, "b", "/big", value, PutOptions{})
		done <- err
	}()
	<-headerSeen
	// The server holds the frame after its header, so the write is in
	// progress: the connection's write semaphore is taken.
	if cn := c.testConn(0); cn == nil || len(cn.wsem) != 1 {
		t.Fatal("the request was written before the cancel: make it larger than the socket buffers")
	}
	cancel()
	close(resume)
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("PutObject = %v, want context.Canceled", err)
	}
	// The fake server reports a cut frame as a test error; the ping shows
	// the stream is still in step.
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the late put reply to be dropped", func() bool { return logs.count("abandoned") == 2 })
}

// Message ids wrap from 0x7FFFFFFF to 1 and skip ids still in use.
func TestMsgIDWrap(t *testing.T) {
	testutil.CheckLeaks(t)
	var mu sync.Mutex
	var ids []uint32
	hold := make(chan struct{})
	srv := newFakeServer(t, func(r *request) {
		mu.Lock()
		ids = append(ids, r.ID)
		first := len(ids) == 1
		mu.Unlock()
		if first {
			r.Conn.srv.spawn(func() { <-hold; r.Conn.end(r) })
			return
		}
		r.Conn.end(r)
	})
	c := testClient(t, srv.Addr(), Options{Conns: 1})
	ctx := context.Background()
	held := make(chan error, 1)
	go func() { held <- c.Ping(ctx) }() // id 1, held by the server
	testutil.Eventually(t, "the first ping", func() bool { mu.Lock(); defer mu.Unlock(); return len(ids) == 1 })
	cn := c.testConn(0)
	cn.mu.Lock()
	cn.next = fast.MaxMsgID - 1
	cn.mu.Unlock()
	for range 3 {
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(hold)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := fmt.Sprint(ids), fmt.Sprint([]uint32{1, fast.MaxMsgID - 1, fast.MaxMsgID, 2, 3}); got != want {
		t.Errorf("message ids %s, want %s", got, want)
	}
}

// After the server restarts on the same address, RPCs fail with transient
// errors until the client has reconnected, then succeed.
func TestReconnectAfterRestart(t *testing.T) {
	testutil.CheckLeaks(t)
	handler := func(r *request) { r.Conn.end(r) }
	srv := newFakeServer(t, handler)
	addr := srv.Addr()
	c := testClient(t, addr, Options{Conns: 2, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	testutil.Eventually(t, "a failure while the server is down", func() bool {
		err := c.Ping(ctx)
		if err != nil && !IsTransient(err) {
			t.Fatalf("ping while down: %v is not transient", err)
		}
		return err != nil
	})
	srv2 := newFakeServerAt(t, addr, handler)
	testutil.Eventually(t, "a ping after the restart", func() bool { return c.Ping(ctx) == nil })
	if srv2.Conns() == 0 {
		t.Error("no connection to the restarted server")
	}
}

// A refused dial is a transient error; during the backoff that follows,
// RPCs fail at once rather than redial.
func TestDialRefused(t *testing.T) {
	testutil.CheckLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := testClient(t, addr, Options{Conns: 1, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	err = c.Ping(context.Background())
	var te *TransportError
	if !errors.As(err, &te) || te.Method != "dial" || !IsTransient(err) {
		t.Fatalf("err = %v, want a transient dial error", err)
	}
	err = c.Ping(context.Background())
	if !errors.Is(err, ErrConnection) || !errors.Is(err, te.Err) {
		t.Fatalf("second ping = %v, want the backoff error wrapping %v", err, te.Err)
	}
}

// No reply within RPCTimeout: ErrTimeout, a transient transport error; the
// connection stays up.
func TestRPCTimeout(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := newFakeServer(t, func(r *request) {
		if r.Method == "ping" {
			r.Conn.end(r)
		}
	})
	c := testClient(t, srv.Addr(), Options{Conns: 1, RPCTimeout: 50 * time.Millisecond})
	_, err := c.GetObject(context.Background(), "b", "/k")
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrConnection) || !IsTransient(err) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if err := c.Ping(context.Background()); err != nil || srv.Conns() != 1 {
		t.Fatalf("ping after a timeout: %v, %d connections", err, srv.Conns())
	}
}

// Close fails RPCs in flight with ErrClosed, refuses new ones, and stops
// every goroutine (leakCheck).
func TestClose(t *testing.T) {
	testutil.CheckLeaks(t)
	arrived := make(chan struct{}, 1)
	srv := newFakeServer(t, func(r *request) {
		if r.Method == "ping" {
			r.Conn.end(r)
			return
		}
		arrived <- struct{}{} // and never answer
	})
	c := NewClient(srv.Addr(), Options{Logger: testutil.Discard()})
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- c.FindObjects(ctx, "b", "(x=1)", FindOptions{}, func(*Record) error { return nil })
	}()
	<-arrived
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) || IsTransient(err) {
		t.Errorf("in-flight RPC = %v, want ErrClosed", err)
	}
	if err := c.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("RPC after Close = %v, want ErrClosed", err)
	}
	c.Close() // twice is fine
}

// A reply for a message id nobody asked about is logged and dropped; a
// malformed frame breaks the connection, failing what is in flight with a
// protocol error, and the next RPC reconnects.
func TestUnknownIDAndProtocolError(t *testing.T) {
	testutil.CheckLeaks(t)
	var logs logRecorder
	var calls int
	var mu sync.Mutex
	srv := newFakeServer(t, func(r *request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		switch n {
		case 1:
			r.Conn.send(&fast.Message{Status: fast.StatusEnd, ID: 999, Method: "ping", Data: json.RawMessage("[]")})
			r.Conn.end(r)
		case 2:
			f, _ := fast.AppendFrame(nil, &fast.Message{Status: fast.StatusEnd, ID: r.ID, Method: "ping", Data: json.RawMessage("[]")})
			f[10] ^= 0xFF // bad CRC
			r.Conn.sendRaw(f)
		default:
			r.Conn.end(r)
		}
	})
	c := testClient(t, srv.Addr(), Options{Conns: 1, Logger: slog.New(&logs)})
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if logs.count("unknown message id") != 1 {
		t.Errorf("logs %q", logs.msgs)
	}
	err := c.Ping(ctx)
	var pe *fast.ProtocolError
	if !errors.As(err, &pe) || !errors.Is(err, ErrConnection) {
		t.Fatalf("err = %v, want a protocol error", err)
	}
	testutil.Eventually(t, "a new connection", func() bool { return c.Ping(ctx) == nil })
}

// Server errors become typed errors callers can branch on.
func TestTypedErrors(t *testing.T) {
	testutil.CheckLeaks(t)
	type reply struct {
		name, message string
		context       any
	}
	replies := map[string]reply{
		"getObject": {"ObjectNotFoundError", "manta::/k does not exist", nil},
		"getBucket": {"BucketNotFoundError", "nosuch does not exist", nil},
		"delObject": {"NoDatabasePeersError", "no database peers", map[string]string{"name": "x", "message": "y"}},
		"putObject": {"EtagConflictError", `manta::/k was expected to have etag "null", but was "314BADAF"`,
			map[string]string{"bucket": "manta", "key": "/k", "expected": "null", "actual": "314BADAF"}},
		"batch": {"EtagConflictError", `manta::/gone was expected to have etag "314BADAF", but was "null"`, nil},
		"sql":   {"error", `column "_idx" does not exist`, nil},
	}
	srv := newFakeServer(t, func(r *request) {
		rp := replies[r.Method]
		r.Conn.fail(r, rp.name, rp.message, rp.context)
	})
	c := testClient(t, srv.Addr(), Options{})
	ctx := context.Background()

	_, err := c.GetObject(ctx, "manta", "/k")
	var onf *ObjectNotFoundError
	if !errors.As(err, &onf) || onf.Bucket != "manta" || onf.Key != "/k" || !errors.Is(err, rebalancer.ErrObjectNotFound) || IsTransient(err) {
		t.Errorf("getObject: %v", err)
	}
	_, err = c.GetBucket(ctx, "nosuch")
	var bnf *BucketNotFoundError
	if !errors.As(err, &bnf) || bnf.Bucket != "nosuch" {
		t.Errorf("getBucket: %v", err)
	}
	err = c.DeleteObject(ctx, "manta", "/k", DeleteOptions{})
	var se *ServerError
	if !errors.As(err, &se) || se.Name() != "NoDatabasePeersError" || !IsTransient(err) || errors.Is(err, ErrConnection) {
		t.Errorf("delObject: %v", err)
	}
	_, err = c.PutObject(ctx, "manta", "/k", json.RawMessage(`{}`), PutOptions{Etag: IfAbsent()})
	var ec *EtagConflictError
	if !errors.As(err, &ec) || ec.Expected != "" || ec.Actual != "314BADAF" || ec.Missing() || errors.Is(err, rebalancer.ErrObjectNotFound) {
		t.Errorf("putObject: %v (%+v)", err, ec)
	}
	// Without a context, the message is parsed; "null" actual means gone.
	_, err = c.Batch(ctx, []BatchOp{{Bucket: "manta", Key: "/gone", Value: json.RawMessage(`{}`), Etag: IfEtag("314BADAF")}})
	if !errors.As(err, &ec) || ec.Key != "/gone" || ec.Expected != "314BADAF" || !ec.Missing() ||
		!errors.Is(err, rebalancer.ErrObjectNotFound) || !errors.Is(err, rebalancer.ErrEtagConflict) {
		t.Errorf("batch: %v (%+v)", err, ec)
	}
	err = c.SQL(ctx, "SELECT MAX(_idx) FROM manta;", nil, SQLOptions{}, func(map[string]json.RawMessage) error { return nil })
	if !errors.As(err, &se) || se.Name() != "error" || IsTransient(err) {
		t.Errorf("sql: %v", err)
	}
}

// RPCTimeout bounds the wait for the server, not the caller's callback.
func TestRPCTimeoutExcludesCallback(t *testing.T) {
	testutil.CheckLeaks(t)
	srv := newFakeServer(t, func(r *request) { r.Conn.reply(r, record("/a", 0), record("/a", 1)) })
	c := testClient(t, srv.Addr(), Options{RPCTimeout: 30 * time.Millisecond})
	var seen int
	err := c.FindObjects(context.Background(), "b", "(x=1)", FindOptions{}, func(*Record) error {
		seen++
		time.Sleep(150 * time.Millisecond) // five timeouts' worth, while the reply waits
		return nil
	})
	if err != nil || seen != 2 {
		t.Fatalf("err = %v after %d records", err, seen)
	}
}

// Calls are reused once they got their last reply: after RPCs that timed
// out or were cancelled (whose late replies then arrive), every RPC still
// gets exactly its own reply.
func TestCallReuse(t *testing.T) {
	testutil.CheckLeaks(t)
	held := make(chan *request, 4)
	srv := newFakeServer(t, func(r *request) {
		key := unquote(r.args(t)[1])
		if strings.HasPrefix(key, "/slow") {
			held <- r
			return
		}
		r.Conn.data(r, record(key, 0))
		r.Conn.end(r)
	})
	c := testClient(t, srv.Addr(), Options{Conns: 1, RPCTimeout: 50 * time.Millisecond})
	check := func(round int) {
		t.Helper()
		for i := range 50 {
			key := fmt.Sprintf("/k/%d/%d", round, i)
			rec, err := c.GetObject(context.Background(), "b", key)
			if err != nil || rec.Key != key {
				t.Fatalf("getObject %s: %+v, %v", key, rec, err)
			}
		}
	}
	check(0)
	if _, err := c.GetObject(context.Background(), "b", "/slow/timeout"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("slow getObject: %v, want ErrTimeout", err)
	}
	timedOut := testutil.Receive(t, "the first slow request", held)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.GetObject(ctx, "b", "/slow/cancel")
		done <- err
	}()
	cancelled := testutil.Receive(t, "the second slow request", held)
	cancel()
	if err := testutil.Receive(t, "the cancelled getObject", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled getObject: %v", err)
	}
	check(1)
	// The late replies are dropped, and what follows is not disturbed.
	for _, r := range []*request{timedOut, cancelled} {
		r.Conn.data(r, record("/late", 0))
		r.Conn.end(r)
	}
	check(2)
	if srv.Conns() != 1 {
		t.Fatalf("%d connections, want 1", srv.Conns())
	}
}
