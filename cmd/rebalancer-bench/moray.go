package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
)

// benchMoray compares the Moray client's getObject with the least a
// getObject can cost: one bare TCP connection to the same in-process
// Moray, a frame built from prepared arguments written, the reply frames
// read and decoded, one request at a time. Both ask for the same object,
// so the server's share is the same on both sides; allocations are the
// whole process's (server included) per RPC.
func benchMoray(ctx context.Context, o Options) ([]Figure, error) {
	srv, err := moraytest.New(moraytest.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	if err := srv.CreateMantaBucket(); err != nil {
		return nil, err
	}
	const key = "/930896af-bf8c-48d4-885c-6573a94b1853/stor/bench"
	value := map[string]any{"contentLength": 4096, "contentMD5": "L9NrIZXTY37AYVZN9+gZ7w==", "key": key,
		"objectId": "0b0ea4a5-5a73-4a1a-b0e4-8b5cb8b0d5a9", "owner": "930896af-bf8c-48d4-885c-6573a94b1853", "type": "object",
		"sharks": []map[string]string{{"datacenter": "dc1", "manta_storage_id": "1.stor.demo.example"}}}
	if _, err := srv.Put("manta", key, value); err != nil {
		return nil, err
	}

	c := moray.NewClient(srv.Addr(), moray.Options{Logger: slog.New(slog.DiscardHandler)})
	defer c.Close()
	var rpcErr error
	client := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.GetObject(ctx, "manta", key); err != nil {
				rpcErr = err
				b.SkipNow()
			}
		}
	})
	parallel := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.GetObject(ctx, "manta", key); err != nil {
					rpcErr = err
					return
				}
			}
		})
	})
	raw, err := rawFast(srv.Addr(), key)
	if err != nil {
		return nil, err
	}
	if rpcErr != nil {
		return nil, fmt.Errorf("getObject: %w", rpcErr)
	}
	rate := func(r testing.BenchmarkResult) float64 { return float64(r.N) / r.T.Seconds() }
	fmt.Fprintf(o.Log, "   client %s, parallel %s, raw %s\n", client, parallel, raw)
	return []Figure{
		{Name: "getObject, one at a time", Unit: "rpc/s", Value: rate(client), Baseline: "raw Fast exchange", Base: rate(raw)},
		{Name: "getObject allocations", Unit: "allocs/rpc", Value: float64(client.AllocsPerOp()), Baseline: "raw Fast exchange", Base: float64(raw.AllocsPerOp())},
		{Name: fmt.Sprintf("getObject, %d in flight on 2 connections", 8*runtime.GOMAXPROCS(0)), Unit: "rpc/s", Value: rate(parallel), Baseline: "raw, one at a time", Base: rate(raw),
			Note: "many RPCs in flight over the client's two connections, replies matched by msgid"},
	}, nil
}

// rawFast is the floor: getObject frames written on one connection with
// no pool, ids, options or decoding of the record, and their replies read.
func rawFast(addr, key string) (testing.BenchmarkResult, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return testing.BenchmarkResult{}, err
	}
	defer nc.Close()
	args := json.RawMessage(`["manta","` + key + `",{"req_id":"6136ea54-c669-4c98-b8b3-1b62d54c85f6","headers":{},"noCache":true}]`)
	dec := fast.NewDecoder(nc, 0)
	var (
		buf  []byte
		id   uint32
		fail error
	)
	res := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			id++
			buf, err = fast.AppendFrame(buf[:0], &fast.Message{Status: fast.StatusData, ID: id, Method: "getObject",
				UTS: time.Now().UnixMicro(), Data: args})
			if err == nil {
				_, err = nc.Write(buf)
			}
			for err == nil {
				var m *fast.Message
				if m, err = dec.Decode(); err != nil {
					break
				}
				if m.Status == fast.StatusError {
					err = fmt.Errorf("server error: %s", m.Data)
				}
				if m.Status != fast.StatusData {
					break
				}
			}
			if err != nil {
				fail = err
				b.SkipNow()
			}
		}
	})
	return res, fail
}
