package agent

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

// benchConcurrency is the default agent's download concurrency
// (Workers x WorkersPerAssignment), which the raw baseline uses too.
const benchConcurrency = DefaultWorkers * DefaultWorkersPerAssignment

// BenchmarkCopy compares the agent's copy throughput with a raw baseline
// on the same local source: "agent" is POST, download, MD5, write, fsync,
// rename, fsync dir and a database record per object; "raw" is a plain GET
// and MD5 of the same bytes at the same concurrency, with no disk at all;
// "raw+fsync" adds a write and an fsync of each object to a file. The
// ratio of agent to raw MB/s is the agent's efficiency against the network
// alone; against raw+fsync, its own overhead where the disk is the limit.
func BenchmarkCopy(b *testing.B) {
	for _, size := range []int{16 << 20, 4 << 10} {
		name := fmt.Sprintf("%dKiB", size>>10)
		body := content("benchmark object", size)
		sum := md5.Sum(body)
		md5sum := base64.StdEncoding.EncodeToString(sum[:])
		src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body)
		}))
		b.Run(name+"/agent", func(b *testing.B) { benchAgent(b, src.URL, body, md5sum) })
		b.Run(name+"/raw", func(b *testing.B) { benchRaw(b, src.URL, body, md5sum, "") })
		b.Run(name+"/raw+fsync", func(b *testing.B) { benchRaw(b, src.URL, body, md5sum, b.TempDir()) })
		src.Close()
	}
}

func benchAgent(b *testing.B, srcURL string, body []byte, md5sum string) {
	base := b.TempDir()
	root := filepath.Join(base, "manta")
	os.Mkdir(root, 0o755)
	s, err := New(Config{Root: root, DataDir: filepath.Join(base, "data")}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	srv := httptest.NewServer(s.Handler())
	defer func() {
		srv.Close()
		cancel()
		<-done
		s.Close()
	}()
	host := strings.TrimPrefix(srcURL, "http://")
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	owner := newID()
	// Spread the objects over enough assignments to keep every worker
	// busy, as a manager posting to a busy shark does.
	n := b.N
	assignments := make([]rebalancer.AssignmentPayload, min(n, 4*DefaultWorkers))
	for i := range assignments {
		assignments[i] = rebalancer.AssignmentPayload{ID: newID(), Tasks: []rebalancer.Task{}}
	}
	for i := range n {
		a := &assignments[i%len(assignments)]
		a.Tasks = append(a.Tasks, rebalancer.Task{ObjectID: fmt.Sprintf("obj-%d", i), Owner: owner, MD5Sum: md5sum,
			Source: rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: host}})
	}
	c := &Client{BaseURL: func(rebalancer.StorageNode) string { return srv.URL }}
	for _, a := range assignments {
		if err := c.PostAssignment(ctx, rebalancer.StorageNode{}, a); err != nil {
			b.Fatal(err)
		}
	}
	for _, a := range assignments {
		for {
			got, err := s.store.get(ctx, a.ID)
			if err != nil {
				b.Fatal(err)
			}
			if got.Stats.State.Phase == rebalancer.AssignmentComplete {
				if got.Stats.Failed != 0 {
					b.Fatalf("failures: %+v", got.Stats.State.Failed[0])
				}
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	os.RemoveAll(filepath.Join(root, owner))
}

// benchRaw downloads and hashes; with a directory, it also writes each
// object to a file there and fsyncs it, which is the least any copy that
// survives a power loss costs.
func benchRaw(b *testing.B, srcURL string, body []byte, md5sum, dir string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency, DisableCompression: true}}
	defer client.CloseIdleConnections()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		bad  atomic.Int64
	)
	for range benchConcurrency {
		wg.Go(func() {
			buf := make([]byte, copyBufSize)
			for int(next.Add(1)) <= b.N {
				resp, err := client.Get(fmt.Sprintf("%s/owner/obj-%d", srcURL, next.Load()))
				if err != nil {
					bad.Add(1)
					return
				}
				h := md5.New()
				var w io.Writer = h
				var f *os.File
				if dir != "" {
					if f, err = os.CreateTemp(dir, "raw"); err != nil {
						b.Error(err)
						return
					}
					w = io.MultiWriter(h, f)
				}
				io.CopyBuffer(w, resp.Body, buf)
				resp.Body.Close()
				if f != nil {
					if err := f.Sync(); err != nil {
						b.Error(err)
					}
					f.Close()
					// Kept, as the agent keeps its files (the directory goes at the end).
				}
				if base64.StdEncoding.EncodeToString(h.Sum(nil)) != md5sum {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		b.Fatalf("%d bad downloads", bad.Load())
	}
}
