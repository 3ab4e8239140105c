package moraytest

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func benchServer(b *testing.B) (*Server, *testClient) {
	b.Helper()
	s, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	if err := s.CreateMantaBucket(); err != nil {
		b.Fatal(err)
	}
	return s, dial(b, s.Addr())
}

// mantaValue is a realistic manta object value (about 700 bytes).
func mantaValue(i int) json.RawMessage {
	oid := fmt.Sprintf("%08x-d132-c25c-920c-945e3329e450", i)
	key := fmt.Sprintf("/%s/stor/logs/%d.log", owner, i)
	return json.RawMessage(strings.NewReplacer(objectID, oid, mantaKey, key).Replace(string(sampleValue)))
}

func seed(b *testing.B, s *Server, n int) {
	b.Helper()
	for i := range n {
		if _, err := s.Put("manta", fmt.Sprintf("/%s/stor/logs/%d.log", owner, i), mantaValue(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// One getObject round trip at a time over loopback.
func BenchmarkGetObject(b *testing.B) {
	s, c := benchServer(b)
	seed(b, s, 1)
	key := fmt.Sprintf("/%s/stor/logs/0.log", owner)
	o := opts()
	b.ReportAllocs()
	for b.Loop() {
		if r := c.call("getObject", "manta", key, o); r.err != nil || len(r.items) != 1 {
			b.Fatal(r.err)
		}
	}
}

// Many getObject requests in flight on one connection.
func BenchmarkGetObjectParallel(b *testing.B) {
	s, c := benchServer(b)
	seed(b, s, 1)
	key := fmt.Sprintf("/%s/stor/logs/0.log", owner)
	o := opts()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := c.call("getObject", "manta", key, o); r.err != nil || len(r.items) != 1 {
				b.Error(r.err)
				return
			}
		}
	})
}

// Conditional putObject round trips, each replacing the previous version.
func BenchmarkPutObject(b *testing.B) {
	s, c := benchServer(b)
	seed(b, s, 1)
	key := fmt.Sprintf("/%s/stor/logs/0.log", owner)
	values := []json.RawMessage{mantaValue(0), movedValue}
	etag := Etag(values[0])
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		items := c.ok("putObject", "manta", key, values[i%2], opts("etag", etag))
		etag = decode[struct {
			Etag string `json:"etag"`
		}](b, items[0]).Etag
	}
}

const benchObjects = 200_000

// A sharkspotter-style scan window over a bucket: the cost follows the
// window, not the bucket (compare the two sizes).
func BenchmarkFindObjectsWindow(b *testing.B) {
	for _, size := range []int{20_000, benchObjects} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			s, c := benchServer(b)
			seed(b, s, size)
			o := opts("sort", byID, "no_count", true, "limit", 1000)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				lo := (i * 1000) % size
				i++
				f := fmt.Sprintf("(&(_id>=%d)(_id<=%d)(type=object))", lo+1, lo+1000)
				if n := len(c.ok("findObjects", "manta", f, o)); n != 1000 {
					b.Fatalf("%d records", n)
				}
			}
		})
	}
}

// The same window through the sql RPC, as sharkspotter runs it.
func BenchmarkSQLWindow(b *testing.B) {
	s, c := benchServer(b)
	seed(b, s, benchObjects)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		lo := (i * 1000) % benchObjects
		i++
		stmt := fmt.Sprintf("SELECT * FROM manta WHERE _id >= %d AND _id <= %d AND type = 'object' limit 1000;", lo+1, lo+1000)
		if n := len(c.ok("sql", stmt, []any{}, map[string]any{"timeout": 10000})); n != 1000 {
			b.Fatalf("%d rows", n)
		}
	}
}

// Direct puts, reporting the heap each stored object costs.
func BenchmarkPutDirect(b *testing.B) {
	s, _ := benchServer(b)
	values := make([]json.RawMessage, 1000)
	for i := range values {
		values[i] = mantaValue(i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Put("manta", fmt.Sprintf("/%s/stor/logs/%d.log", owner, i), values[i%len(values)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-min(before.HeapAlloc, after.HeapAlloc))/float64(i), "heapB/object")
}
