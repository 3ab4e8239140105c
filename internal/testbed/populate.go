package testbed

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray"
)

// Objects describes objects for Populate to write. Everything about them
// (ids, owners, content, which sharks hold them) follows from Seed and the
// object's index, so the same Objects make the same fleet every time.
type Objects struct {
	// Count is how many objects to write.
	Count int
	// MinSize and MaxSize bound each object's length in bytes, drawn
	// uniformly. Both zero mean 1 KiB to 16 KiB; a MaxSize below MinSize
	// means MinSize, so MaxSize -1 makes empty objects.
	MinSize, MaxSize int64
	// Copies is how many sharks hold each object (default 2). Copies go
	// to distinct datacenters first, as Manta places them.
	Copies int
	// Owners is how many accounts own the objects (default 3).
	Owners int
	// Seed makes the objects; populating twice with one seed writes the
	// same objects again.
	Seed uint64
	// Pin is the storage id of a shark (typically the one a test evacuates)
	// that holds a copy of about PinFraction of the objects (drawn per
	// object from Seed; Population.Pinned has the exact count); the other
	// objects keep off it. Empty: no pinning.
	Pin string
	// PinFraction is the share of objects with a copy on Pin, in (0, 1];
	// 0 means all of them.
	PinFraction float64
	// Dir is the directory under /{owner}/stor/ holding the objects
	// (default "testbed").
	Dir string
	// Progress, when set, is called after each object is written with
	// the bytes written for it (its size times its copies), from the
	// goroutines that write them: it must be safe for concurrent use.
	Progress func(bytes int64)
}

// Population is what Populate wrote.
type Population struct {
	Objects int
	Bytes   int64 // content bytes, one copy each
	Files   int   // copies written
	Pinned  int   // objects with a copy on Objects.Pin
	// PerShark counts the copies on each shark, by storage id.
	PerShark map[string]int
}

// objectValue is a v1 object's Moray value, with the fields and key order
// muskie writes (node serialises keys in insertion order; muskie's order
// happens to be alphabetical for these).
type objectValue struct {
	ContentLength int64                    `json:"contentLength"`
	ContentMD5    string                   `json:"contentMD5"`
	ContentType   string                   `json:"contentType"`
	Creator       string                   `json:"creator"`
	Dirname       string                   `json:"dirname"`
	Etag          string                   `json:"etag"`
	Headers       map[string]string        `json:"headers"`
	Key           string                   `json:"key"`
	Mtime         int64                    `json:"mtime"`
	Name          string                   `json:"name"`
	ObjectID      string                   `json:"objectId"`
	Owner         string                   `json:"owner"`
	Roles         []string                 `json:"roles"`
	Sharks        []rebalancer.StorageNode `json:"sharks"`
	Type          string                   `json:"type"`
	Vnode         int                      `json:"vnode"`
}

// vnodes is the size of the key ring objects are spread over, as
// electric-moray's ring spreads them over shards.
const vnodes = 1024

// ShardOf returns the metadata shard a key lives on in this fleet.
func (f *Fleet) ShardOf(key string) int {
	return vnodeOf(key)%len(f.morays) + 1
}

func vnodeOf(key string) int { return int(crc32.ChecksumIEEE([]byte(key)) % vnodes) }

// fill sets what o leaves unset, as Populate and PopulateBuckets take it:
// sizes of 1 to 16 KiB, two copies, owners accounts, every object on the
// pinned shark. A negative MinSize is refused.
func (o *Objects) fill(owners int) error {
	if o.MaxSize == 0 && o.MinSize == 0 {
		o.MinSize, o.MaxSize = 1<<10, 16<<10
	}
	if o.MaxSize < o.MinSize {
		o.MaxSize = o.MinSize
	}
	if o.MinSize < 0 {
		return fmt.Errorf("negative MinSize %d", o.MinSize)
	}
	if o.Copies <= 0 {
		o.Copies = 2
	}
	if o.Owners <= 0 {
		o.Owners = owners
	}
	if o.PinFraction <= 0 || o.PinFraction > 1 {
		o.PinFraction = 1
	}
	return nil
}

// Populate writes objs: each object's content on its sharks (in parallel)
// and its metadata in the manta bucket of its shard, with the shape and
// base64 MD5 muskie gives it. It returns what it wrote.
func (f *Fleet) Populate(ctx context.Context, objs Objects) (Population, error) {
	f.popMu.Lock()
	defer f.popMu.Unlock()
	if err := objs.fill(3); err != nil {
		return Population{}, fmt.Errorf("testbed: populate: %w", err)
	}
	if objs.Dir == "" {
		objs.Dir = "testbed"
	}
	var pin *Shark
	if objs.Pin != "" {
		if pin = f.byID[objs.Pin]; pin == nil {
			return Population{}, fmt.Errorf("testbed: populate: no shark %s", objs.Pin)
		}
	}
	if objs.Copies > len(f.sharks) {
		return Population{}, fmt.Errorf("testbed: populate: %d copies need as many sharks, the fleet has %d", objs.Copies, len(f.sharks))
	}
	if pin != nil && objs.PinFraction < 1 && objs.Copies > len(f.sharks)-1 {
		return Population{}, fmt.Errorf("testbed: populate: objects off %s need %d other sharks", pin.ID(), objs.Copies)
	}

	owners := make([]string, objs.Owners)
	for i := range owners {
		owners[i] = newUUID(rand.New(rand.NewPCG(objs.Seed, ^uint64(i))))
		for _, s := range f.sharks {
			if err := os.MkdirAll(filepath.Join(s.root, owners[i]), 0o755); err != nil {
				return Population{}, fmt.Errorf("testbed: populate: %w", err)
			}
		}
	}

	var (
		next   atomic.Int64
		mu     sync.Mutex
		result = Population{PerShark: map[string]int{}}
	)
	g, ctx := errgroup.WithContext(ctx)
	for range runtime.GOMAXPROCS(0) * 4 {
		g.Go(func() error {
			local := Population{PerShark: map[string]int{}}
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= objs.Count {
					break
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				var err error
				if buf, err = f.writeObject(i, &objs, owners, pin, buf, &local); err != nil {
					return err
				}
			}
			mu.Lock()
			defer mu.Unlock()
			result.Objects += local.Objects
			result.Bytes += local.Bytes
			result.Files += local.Files
			result.Pinned += local.Pinned
			for k, v := range local.PerShark {
				result.PerShark[k] += v
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Population{}, err
	}
	return result, nil
}

// writeObject makes object i and writes its copies and metadata. buf is
// reused for content between calls.
func (f *Fleet) writeObject(i int, objs *Objects, owners []string, pin *Shark, buf []byte, pop *Population) ([]byte, error) {
	rng := rand.New(rand.NewPCG(objs.Seed, uint64(i)))
	id := newUUID(rng)
	owner := owners[rng.IntN(len(owners))]
	size := objs.MinSize + rng.Int64N(objs.MaxSize-objs.MinSize+1)
	var seed [32]byte
	for k := 0; k < 4; k++ {
		binary.LittleEndian.PutUint64(seed[8*k:], rng.Uint64())
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	content := buf[:size]
	rand.NewChaCha8(seed).Read(content)
	sum := md5.Sum(content)
	pinned := pin != nil && (objs.PinFraction >= 1 || rng.Float64() < objs.PinFraction)
	holders := f.chooseSharks(rng, objs.Copies, pin, pinned)

	dir := fmt.Sprintf("/%s/stor/%s/%03d", owner, objs.Dir, i/1000)
	v := objectValue{
		ContentLength: size,
		ContentMD5:    base64.StdEncoding.EncodeToString(sum[:]),
		ContentType:   "application/octet-stream",
		Creator:       owner,
		Dirname:       dir,
		Etag:          id,
		Headers:       map[string]string{},
		Key:           dir + "/" + id,
		Mtime:         1_700_000_000_000 + int64(i),
		Name:          id,
		ObjectID:      id,
		Owner:         owner,
		Roles:         []string{},
		Type:          "object",
	}
	v.Vnode = vnodeOf(v.Key)
	for _, s := range holders {
		v.Sharks = append(v.Sharks, s.node)
		p := s.ObjectPath(owner, id)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return buf, fmt.Errorf("testbed: populate: object %s on %s: %w", id, s.ID(), err)
		}
		pop.PerShark[s.ID()]++
		pop.Files++
	}
	value, err := json.Marshal(v)
	if err != nil {
		return buf, err
	}
	shard := f.ShardOf(v.Key)
	if _, err := f.morays[shard-1].Put(moray.MantaBucket, v.Key, json.RawMessage(value)); err != nil {
		return buf, fmt.Errorf("testbed: populate: metadata of %s on shard %d: %w", v.Key, shard, err)
	}
	pop.Objects++
	pop.Bytes += size
	if pinned {
		pop.Pinned++
	}
	if objs.Progress != nil {
		objs.Progress(size * int64(len(holders)))
	}
	return buf, nil
}

// chooseSharks picks n distinct sharks, spread over datacenters first:
// pin among them when pinned, and never pin otherwise.
func (f *Fleet) chooseSharks(rng *rand.Rand, n int, pin *Shark, pinned bool) []*Shark {
	out := make([]*Shark, 0, n)
	usedDC := map[string]bool{}
	if pinned {
		out = append(out, pin)
		usedDC[pin.Datacenter()] = true
	}
	order := rng.Perm(len(f.sharks))
	taken := func(s *Shark) bool {
		for _, o := range out {
			if o == s {
				return true
			}
		}
		return false
	}
	for _, spreadDCs := range []bool{true, false} {
		for _, k := range order {
			s := f.sharks[k]
			if len(out) == n {
				break
			}
			if s == pin || taken(s) || (spreadDCs && usedDC[s.Datacenter()]) {
				continue
			}
			out = append(out, s)
			usedDC[s.Datacenter()] = true
		}
	}
	// The pinned copy is not always listed first, so that sources vary.
	if pinned && n > 1 {
		j := rng.IntN(n)
		out[0], out[j] = out[j], out[0]
	}
	return out
}

func newUUID(rng *rand.Rand) string {
	var u uuid.UUID
	binary.LittleEndian.PutUint64(u[:8], rng.Uint64())
	binary.LittleEndian.PutUint64(u[8:], rng.Uint64())
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u.String()
}
