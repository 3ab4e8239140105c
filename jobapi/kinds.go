package jobapi

import (
	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
)

// Kinds is a job's objects by kind: v1 objects, whose metadata is in Moray,
// and v2 (buckets) objects, whose metadata is in buckets-mdapi.
type Kinds struct {
	V1 KindCounts `json:"v1"`
	V2 V2Counts   `json:"v2"`
}

// KindCounts are the counts of one kind of objects: found (Objects), by
// final status, still in progress (Remaining), and the bytes moved.
type KindCounts struct {
	Objects       int64 `json:"objects"`
	Complete      int64 `json:"complete"`
	Skipped       int64 `json:"skipped"`
	Error         int64 `json:"error"`
	Remaining     int64 `json:"remaining"`
	BytesComplete int64 `json:"bytes_complete"`
}

// V2Counts are the counts of v2 objects, whether the job looked for them,
// and what became of the records of the multipart uploads whose parts it
// moved.
type V2Counts struct {
	KindCounts
	// Scanned says whether the job's discovery looked for v2 objects (null
	// until its discovery starts). When it did not, NotScanned says why,
	// and the shark may hold v2 objects the job did not even count.
	Scanned    *bool  `json:"scanned"`
	NotScanned string `json:"not_scanned,omitempty"`
	// Uploads counts upload records by outcome: fixed (now naming the
	// parts' new shark), already_fixed, finished (no record: the upload
	// was completed or aborted), not_listed, parts_left (some parts did not
	// move: the record still names the shark, which holds them), failed,
	// pending (not yet looked at: the job has not ended).
	Uploads map[string]int64 `json:"uploads,omitempty"`
}

// newKinds is a status's Kinds, or nil for a job that has not recorded
// whether it looks for v2 objects (its discovery has not started, or a
// legacy or older job).
func newKinds(s evacuate.Status) *Kinds {
	b := s.Buckets
	if !b.Known && len(b.Counts) == 0 {
		return nil
	}
	k := &Kinds{}
	add := func(kc *KindCounts, c evacuate.Count, sign int64) {
		kc.Objects += sign * c.N
		switch c.Status {
		case rebalancer.ObjectComplete.String():
			kc.Complete += sign * c.N
			kc.BytesComplete += sign * c.Bytes
		case rebalancer.ObjectSkipped.String():
			kc.Skipped += sign * c.N
		case rebalancer.ObjectError.String():
			kc.Error += sign * c.N
		default:
			kc.Remaining += sign * c.N
		}
	}
	for _, c := range s.Counts {
		add(&k.V1, c, 1)
	}
	for _, c := range b.Counts {
		add(&k.V1, c, -1)
		add(&k.V2.KindCounts, c, 1)
	}
	if b.Known {
		scanned := b.Scanned
		k.V2.Scanned = &scanned
		k.V2.NotScanned = b.NotScanned
	}
	k.V2.Uploads = b.Uploads
	return k
}
