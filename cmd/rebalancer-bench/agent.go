package main

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
)

// agentConcurrency is the default agent's download concurrency, which the
// raw baseline uses too.
const agentConcurrency = agent.DefaultWorkers * agent.DefaultWorkersPerAssignment

// benchAgent compares the agent's copy rate with the least a copy can
// cost: the same downloads from the same local server at the same
// concurrency, hashed and thrown away. The agent does everything it does
// in production on top (assignment bookkeeping in SQLite, a temp file,
// fsync, rename, directory fsync), so the ratio is its overhead over the
// network and MD5 alone.
func benchAgent(ctx context.Context, o Options) ([]Figure, error) {
	sizes := []struct {
		name  string
		size  int
		count int
		large bool
	}{
		{"16 MiB objects", 16 << 20, pick(o.Quick, 1, 96), true},
		{"4 KiB objects", 4 << 10, pick(o.Quick, 50, 8000), false},
	}
	rounds := pick(o.Quick, 1, 3)
	var figs []Figure
	for _, sz := range sizes {
		body := make([]byte, sz.size)
		for i := range body {
			body[i] = byte(i*7 + i>>10)
		}
		sum := md5.Sum(body)
		src, err := serveBytes(body)
		if err != nil {
			return figs, err
		}
		var agentBest, rawBest, writeBest time.Duration
		for r := range rounds {
			d, err := agentCopy(ctx, o, src.addr, base64.StdEncoding.EncodeToString(sum[:]), sz.count)
			if err != nil {
				src.close()
				return figs, fmt.Errorf("%s: agent: %w", sz.name, err)
			}
			agentBest = best(agentBest, d)
			d, err = rawCopy(ctx, src.addr, sum, sz.count, "")
			if err != nil {
				src.close()
				return figs, fmt.Errorf("%s: raw: %w", sz.name, err)
			}
			rawBest = best(rawBest, d)
			d, err = rawCopy(ctx, src.addr, sum, sz.count, o.Dir)
			if err != nil {
				src.close()
				return figs, fmt.Errorf("%s: raw with writes: %w", sz.name, err)
			}
			writeBest = best(writeBest, d)
			fmt.Fprintf(o.Log, "   %s round %d: agent %s, raw %s, raw+write %s\n", sz.name, r+1,
				agentBest.Round(time.Millisecond), rawBest.Round(time.Millisecond), writeBest.Round(time.Millisecond))
		}
		src.close()
		// Large objects are measured in MB/s, small ones in objects/s:
		// what bounds each.
		unit, amount := "MB/s", float64(sz.size*sz.count)/1e6
		if !sz.large {
			unit, amount = "objects/s", float64(sz.count)
		}
		f := Figure{Name: "copy rate, " + sz.name, Unit: unit, Value: amount / agentBest.Seconds(),
			Baseline: "raw GET+MD5", Base: amount / rawBest.Seconds()}
		durable := Figure{Name: "copy rate, " + sz.name + ", vs a durable raw copy", Unit: unit, Value: f.Value,
			Baseline: "raw GET+MD5+write+fsync", Base: amount / writeBest.Seconds()}
		if sz.large {
			f.Target, durable.Target = ">= 0.85", ">= 0.85"
			f.Met, durable.Met = met(f.Ratio() >= 0.85), met(durable.Ratio() >= 0.85)
			if !*f.Met {
				f.Note = fmt.Sprintf("the gap to the hash-only baseline is writing the bytes, which a copy cannot skip (%.2f of a raw copy that writes and fsyncs too); "+
					"on this machine the copy is CPU-bound: MD5, the source server and the page cache share two cores", durable.Ratio())
			}
		} else {
			durable.Target, durable.Met = ">= 0.6", met(durable.Ratio() >= 0.6)
			durable.Note = "small objects: the agent does per object what the raw copy does (GET, MD5, create, write, fsync) plus the rename, " +
				"its share of a directory fsync and of a transaction recording a batch of task rows (group commit), and the assignment's POST and polls"
			if !*durable.Met {
				durable.Note += "; run with --profile-dir to see where the time goes"
			}
		}
		figs = append(figs, f, durable)
	}
	return figs, nil
}

// source is a loopback HTTP server answering every GET with one body, as
// mako would for any object.
type source struct {
	addr  string
	close func()
}

func serveBytes(body []byte) (source, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return source{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	})}
	go srv.Serve(ln)
	return source{addr: ln.Addr().String(), close: func() { srv.Close() }}, nil
}

// agentCopy runs a fresh agent and has it copy n objects from src, spread
// over enough assignments to keep every worker busy, as a manager posting
// to a busy shark does. It returns the time from the first POST to the
// last assignment complete.
func agentCopy(ctx context.Context, o Options, src, md5sum string, n int) (time.Duration, error) {
	dir, err := os.MkdirTemp(o.Dir, "agent-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "manta")
	if err := os.Mkdir(root, 0o755); err != nil {
		return 0, err
	}
	s, err := agent.New(agent.Config{Root: root, DataDir: filepath.Join(dir, "data")}, o.Logger.With("component", "agent"))
	if err != nil {
		return 0, err
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	api := &http.Server{Handler: s.Handler()}
	go api.Serve(ln)
	defer api.Close()

	owner := uuid.NewString()
	assignments := make([]rebalancer.AssignmentPayload, min(n, 4*agent.DefaultWorkers))
	for i := range assignments {
		assignments[i] = rebalancer.AssignmentPayload{ID: uuid.NewString()}
	}
	for i := range n {
		a := &assignments[i%len(assignments)]
		a.Tasks = append(a.Tasks, rebalancer.Task{ObjectID: uuid.NewString(), Owner: owner, MD5Sum: md5sum,
			Source: rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: src}})
	}
	base := "http://" + ln.Addr().String()
	c := &agent.Client{BaseURL: func(rebalancer.StorageNode) string { return base }}
	dest := rebalancer.StorageNode{MantaStorageID: "bench.stor"}
	start := time.Now()
	for _, a := range assignments {
		if err := c.PostAssignment(ctx, dest, a); err != nil {
			return 0, err
		}
	}
	for _, a := range assignments {
		for {
			got, err := c.GetAssignment(ctx, dest, a.ID)
			if err != nil {
				return 0, err
			}
			if got.Stats.State.Phase == rebalancer.AssignmentComplete {
				if got.Stats.Failed != 0 {
					return 0, fmt.Errorf("assignment %s: %d tasks failed: %+v", a.ID, got.Stats.Failed, got.Stats.State.Failed[0])
				}
				break
			}
			// Polls cost the agent CPU that the copies need: a few
			// milliseconds apart, they add at most that to the time.
			if !retry.Sleep(ctx, 5*time.Millisecond) {
				return 0, ctx.Err()
			}
		}
	}
	return time.Since(start), nil
}

// rawCopy downloads n objects from src with agentConcurrency workers,
// hashing each and checking the digest. With a directory it also writes
// each object to a file there and fsyncs it, the least a copy that
// survives a power loss costs; without, it keeps nothing.
func rawCopy(ctx context.Context, src string, sum [16]byte, n int, dir string) (time.Duration, error) {
	if dir != "" {
		var err error
		if dir, err = os.MkdirTemp(dir, "raw-"); err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: agentConcurrency, DisableCompression: true}}
	defer client.CloseIdleConnections()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	fail := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if first == nil {
			first = err
		}
	}
	start := time.Now()
	for range agentConcurrency {
		wg.Go(func() {
			buf := make([]byte, 256<<10) // the agent's read size
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/%s/%d", src, "owner", i), nil)
				resp, err := client.Do(req)
				if err != nil {
					fail(err)
					return
				}
				h := md5.New()
				var w io.Writer = h
				var f *os.File
				if dir != "" {
					if f, err = os.Create(filepath.Join(dir, strconv.FormatInt(i, 10))); err != nil {
						fail(err)
						return
					}
					w = io.MultiWriter(h, f)
				}
				_, err = io.CopyBuffer(w, resp.Body, buf)
				resp.Body.Close()
				if f != nil {
					err = errors.Join(err, f.Sync(), f.Close())
				}
				if err != nil {
					fail(err)
					return
				}
				if [16]byte(h.Sum(nil)) != sum {
					fail(errors.New("bad digest"))
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), first
}

func pick[T any](quick bool, small, full T) T {
	if quick {
		return small
	}
	return full
}

// best is the shorter of two durations, 0 meaning none yet.
func best(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}
