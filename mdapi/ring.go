package mdapi

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
)

// Ring is buckets-api's metadata placement ring, the part of it that says
// which vnode holds a key. buckets-api hashes a key with MD5, reads the
// digest as a big-endian number and divides it by the ring's
// VNODE_HASH_INTERVAL, (2^128-1)/vnodes rounded down
// (TritonDataCenter/manta-buckets-api lib/common.js getDataLocation, with
// the interval of TritonDataCenter/node-fash lib/backend/in_memory.js).
//
// The rebalancer needs it only for multipart upload records, whose vnode it
// did not see at discovery (see UploadFixer): every object it moves, it
// found in its vnode. Which shard holds a vnode is a VnodeMap's to say.
type Ring struct {
	vnodes   uint64
	interval *big.Int
}

// maxDigest is the largest MD5 digest, the ring's algorithm.MAX.
var maxDigest = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// NewRing returns the ring of a placement with this many vnodes.
func NewRing(vnodes uint64) (Ring, error) {
	if vnodes == 0 {
		return Ring{}, fmt.Errorf("buckets placement ring: no vnodes")
	}
	interval := new(big.Int).Quo(maxDigest, new(big.Int).SetUint64(vnodes))
	return Ring{vnodes: vnodes, interval: interval}, nil
}

// Vnodes returns the number of vnodes of the ring (0 for the zero Ring).
func (r Ring) Vnodes() uint64 { return r.vnodes }

// Vnode returns the vnode of a placement key, as buckets-api computes it.
// For the very top of the digest space (the last 2^128 mod vnodes digests,
// a vanishing fraction) buckets-api computes a vnode one past the last,
// which it then fails to find; Vnode reports an error for those too.
func (r Ring) Vnode(tkey string) (uint64, error) {
	if r.interval == nil {
		return 0, fmt.Errorf("buckets placement ring: not initialised (NewRing)")
	}
	sum := md5.Sum([]byte(tkey))
	v := new(big.Int).Quo(new(big.Int).SetBytes(sum[:]), r.interval)
	if !v.IsUint64() || v.Uint64() >= r.vnodes {
		return 0, fmt.Errorf("buckets placement ring: key %q hashes past the last of %d vnodes", tkey, r.vnodes)
	}
	return v.Uint64(), nil
}

// ObjectKey is the placement key of an object: buckets-api places it by
// "<owner>:<bucket_id>:<md5 hex of its name>" (lib/buckets/objects/create.js,
// lib/s3-multipart.js).
func ObjectKey(owner, bucketID, name string) string {
	sum := md5.Sum([]byte(name))
	return owner + ":" + bucketID + ":" + hex.EncodeToString(sum[:])
}

// BucketKey is the placement key of a bucket's own record:
// "<owner>:<bucket name>" (lib/metadata_placement.js getBucketLocation).
func BucketKey(owner, bucketName string) string { return owner + ":" + bucketName }

// ObjectVnode returns the vnode of an object.
func (r Ring) ObjectVnode(owner, bucketID, name string) (uint64, error) {
	return r.Vnode(ObjectKey(owner, bucketID, name))
}

// BucketVnode returns the vnode of a bucket's record.
func (r Ring) BucketVnode(owner, bucketName string) (uint64, error) {
	return r.Vnode(BucketKey(owner, bucketName))
}

// VnodeMap says which buckets-mdapi shard holds each vnode, as discovery
// finds them: every vnode schema (manta_bucket_<vnode>) of every shard. Its
// zero value is empty and ready to use; it is not safe for concurrent use.
type VnodeMap struct {
	shard map[uint64]int
}

// Add records the vnodes found on shard. A vnode already recorded on
// another shard is an error naming both: which copy buckets-api uses is the
// placement ring's to say, and a guess could move the wrong one.
func (m *VnodeMap) Add(shard int, vnodes ...uint64) error {
	if m.shard == nil {
		m.shard = make(map[uint64]int, len(vnodes))
	}
	var dup []string
	for _, v := range vnodes {
		if s, ok := m.shard[v]; ok && s != shard {
			dup = append(dup, fmt.Sprintf("vnode %d on shards %d and %d", v, s, shard))
			continue
		}
		m.shard[v] = shard
	}
	if len(dup) > 0 {
		return fmt.Errorf("buckets-mdapi vnodes on two shards (a relocated vnode's old copy?): %s", strings.Join(dup, ", "))
	}
	return nil
}

// Shard returns the shard holding vnode.
func (m *VnodeMap) Shard(vnode uint64) (int, bool) {
	s, ok := m.shard[vnode]
	return s, ok
}

// Len returns the number of vnodes recorded.
func (m *VnodeMap) Len() int { return len(m.shard) }

// Vnodes returns the vnodes recorded on shard, ascending.
func (m *VnodeMap) Vnodes(shard int) []uint64 {
	var out []uint64
	for v, s := range m.shard {
		if s == shard {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// Ring returns the placement ring the map is the whole of: a ring of n
// vnodes has vnodes 0 to n-1, each on one shard, so a map with gaps means
// some shard was not listed, and no ring can be made from it.
func (m *VnodeMap) Ring() (Ring, error) {
	n := uint64(len(m.shard))
	if n == 0 {
		return Ring{}, fmt.Errorf("buckets placement ring: no vnodes found")
	}
	var missing []uint64
	for _, v := range slices.Sorted(maps.Keys(m.shard)) {
		if v >= n {
			// Some vnode below n is absent; list up to ten of them.
			for w := uint64(0); w < n && len(missing) < 10; w++ {
				if _, ok := m.shard[w]; !ok {
					missing = append(missing, w)
				}
			}
			return Ring{}, fmt.Errorf("buckets placement ring: %d vnodes found, but not vnodes %v... (a shard not listed?)", n, missing)
		}
	}
	return NewRing(n)
}
