package moray

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// Benchmarks over loopback against the fake server, which answers from
// prepared replies. BenchmarkRawFastExchange is the floor: one connection,
// one request at a time, no pool, ids, options or decoding of records. The
// client's overhead is its ns/op over the raw exchange's.

// benchReplies are the DATA items the bench server answers with: the record
// of the real getObject capture and a putObject etag.
func benchReplies(b *testing.B) (record, etag json.RawMessage) {
	_, capReply := captureFrames(b)
	m, err := fast.NewDecoder(bytesReader(capReply), 0).Decode()
	if err != nil {
		b.Fatal(err)
	}
	return m.Data, json.RawMessage(`[{"etag":"77406E25"}]`)
}

func benchServer(b *testing.B) *fakeServer {
	record, etag := benchReplies(b)
	end := json.RawMessage("[]")
	return newFakeServer(b, func(r *request) {
		var data json.RawMessage
		switch r.Method {
		case "getObject":
			data = record
		case "putObject":
			data = etag
		}
		buf, _ := fast.AppendFrame(nil, &fast.Message{Status: fast.StatusData, ID: r.ID, Method: r.Method, UTS: 1, Data: data})
		buf, _ = fast.AppendFrame(buf, &fast.Message{Status: fast.StatusEnd, ID: r.ID, Method: r.Method, UTS: 1, Data: end})
		r.Conn.sendRaw(buf)
	})
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rpc/s")
}

const benchKey = "/930896af-bf8c-48d4-885c-6573a94b1853/stor/x"

func BenchmarkGetObject(b *testing.B) {
	srv := benchServer(b)
	c := testClient(b, srv.Addr(), Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetObject(ctx, "manta", benchKey); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkPutObject(b *testing.B) {
	srv := benchServer(b)
	c := testClient(b, srv.Addr(), Options{})
	ctx := context.Background()
	value := json.RawMessage(sampleValue)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.PutObject(ctx, "manta", sampleKey, value, PutOptions{Etag: IfEtag("314BADAF")}); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkGetObjectParallel keeps many getObjects in flight over the
// default two connections.
func BenchmarkGetObjectParallel(b *testing.B) {
	srv := benchServer(b)
	c := testClient(b, srv.Addr(), Options{})
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetObject(ctx, "manta", benchKey); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b)
}

// BenchmarkRawFastExchange writes one getObject frame (the options of the
// real capture, built once) and reads its two reply frames, over and over,
// on one bare TCP connection.
func BenchmarkRawFastExchange(b *testing.B) {
	srv := benchServer(b)
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	args := json.RawMessage(`["manta","` + benchKey + `",{"requireOnlineReindexing":false,` +
		`"req_id":"6136ea54-c669-4c98-b8b3-1b62d54c85f6","headers":{},"no_count":false,"sql_only":false,"noCache":true}]`)
	dec := fast.NewDecoder(nc, 0)
	var buf []byte
	id := uint32(0)
	b.ReportAllocs()
	for b.Loop() {
		id++
		buf, err = fast.AppendFrame(buf[:0], &fast.Message{Status: fast.StatusData, ID: id, Method: "getObject",
			UTS: time.Now().UnixMicro(), Data: args})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := nc.Write(buf); err != nil {
			b.Fatal(err)
		}
		for {
			m, err := dec.Decode()
			if err != nil {
				b.Fatal(err)
			}
			if m.ID != id {
				b.Fatalf("reply for %d, want %d", m.ID, id)
			}
			if m.Status == fast.StatusEnd {
				break
			}
		}
	}
	reportRate(b)
}
