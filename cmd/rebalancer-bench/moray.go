package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"sync"
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
	srv, err := moraytest.New(moraytest.Options{Logger: o.Logger})
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

	c := moray.NewClient(srv.Addr(), moray.Options{Logger: o.Logger.With("component", "moray")})
	defer c.Close()
	getObject := func() error {
		_, err := c.GetObject(ctx, "manta", key)
		return err
	}
	client, err := measure(o.Quick, 0, getObject)
	if err != nil {
		return nil, fmt.Errorf("getObject: %w", err)
	}
	parallel, err := measure(o.Quick, 8, getObject)
	if err != nil {
		return nil, fmt.Errorf("getObject: %w", err)
	}
	rawOp, closeRaw, err := rawFast(srv.Addr(), key)
	if err != nil {
		return nil, err
	}
	defer closeRaw()
	raw, err := measure(o.Quick, 0, rawOp)
	if err != nil {
		return nil, fmt.Errorf("raw exchange: %w", err)
	}
	rate := func(r testing.BenchmarkResult) float64 { return float64(r.N) / r.T.Seconds() }
	fmt.Fprintf(o.Log, "   client %s, parallel %s, raw %s\n", client, parallel, raw)
	one := Figure{Name: "getObject, one at a time", Unit: "rpc/s", Value: rate(client), Baseline: "raw Fast exchange", Base: rate(raw), Target: ">= 0.85"}
	one.Met = met(one.Ratio() >= 0.85)
	allocs := Figure{Name: "getObject allocations", Unit: "allocs/rpc", Value: float64(client.AllocsPerOp()), Baseline: "raw Fast exchange",
		Base: float64(raw.AllocsPerOp()), Target: "<= 1.15",
		Note: "the whole process's, the in-process Moray's included (the same on both sides); the client's own are its pool, a record decoded, and its strings"}
	allocs.Met = met(allocs.Ratio() <= 1.15)
	return []Figure{
		one,
		allocs,
		{Name: fmt.Sprintf("getObject, %d in flight on 2 connections", 8*runtime.GOMAXPROCS(0)), Unit: "rpc/s", Value: rate(parallel), Baseline: "raw, one at a time", Base: rate(raw),
			Note: "many RPCs in flight over the client's two connections, replies matched by msgid"},
	}, nil
}

// rawFast is the floor: getObject frames written on one connection with
// no pool, ids or decoding of the record, and their replies read. The
// arguments are the client's, built once (node-moray's options, as the
// client sends them), so that the server does the same work for both.
// It returns one exchange, to be run one at a time.
func rawFast(addr, key string) (exchange func() error, closeConn func(), err error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	args := json.RawMessage(`["manta","` + key + `",{"requireOnlineReindexing":false,"req_id":"6136ea54-c669-4c98-b8b3-1b62d54c85f6",` +
		`"headers":{},"no_count":false,"sql_only":false,"noCache":true}]`)
	dec := fast.NewDecoder(nc, 0)
	var (
		buf []byte
		id  uint32
	)
	exchange = func() error {
		id++
		var err error
		buf, err = fast.AppendFrame(buf[:0], &fast.Message{Status: fast.StatusData, ID: id, Method: "getObject",
			UTS: time.Now().UnixMicro(), Data: args})
		if err != nil {
			return err
		}
		if _, err := nc.Write(buf); err != nil {
			return err
		}
		for {
			m, err := dec.Decode()
			if err != nil {
				return err
			}
			if m.Status == fast.StatusError {
				return fmt.Errorf("server error: %s", m.Data)
			}
			if m.Status != fast.StatusData {
				return nil
			}
		}
	}
	return exchange, func() { nc.Close() }, nil
}

// quickOps is how many operations a quick run measures.
const quickOps = 300

// measure runs op as testing.Benchmark does, for a second or more (on
// parallelism x GOMAXPROCS goroutines when parallelism > 0), or in a quick
// run a fixed quickOps times, and returns the time and allocations per
// operation (the whole process's).
func measure(quick bool, parallelism int, op func() error) (testing.BenchmarkResult, error) {
	var (
		mu   sync.Mutex
		fail error
	)
	failed := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if fail == nil {
			fail = err
		}
	}
	if !quick {
		res := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			if parallelism == 0 {
				for b.Loop() {
					if err := op(); err != nil {
						failed(err)
						b.SkipNow()
					}
				}
				return
			}
			b.SetParallelism(parallelism)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := op(); err != nil {
						failed(err)
						return
					}
				}
			})
		})
		return res, fail
	}
	workers := max(1, parallelism*runtime.GOMAXPROCS(0))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < quickOps; i += workers {
				if err := op(); err != nil {
					failed(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	return testing.BenchmarkResult{N: quickOps, T: elapsed,
		MemAllocs: after.Mallocs - before.Mallocs, MemBytes: after.TotalAlloc - before.TotalAlloc}, fail
}
