package evacuate

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
)

// Verdict is what a job that ended says of its shark: how many of the
// objects it found still name it ("is the shark empty?"). It is the job's
// own account; Engine.CheckShark scans afresh.
type Verdict struct {
	Shark string
	// ObjectsLeft are the objects the job found whose metadata still names
	// the shark: every one it did not move, but those deleted since.
	ObjectsLeft int64
	// DiscoveryDone is false when the job ended before it found every
	// object (it failed or was stopped while discovering): objects it did
	// not find are not counted.
	DiscoveryDone bool
	// ExcludedKeyPrefixes are those the job left out: objects under them
	// were never looked for, and are not counted.
	ExcludedKeyPrefixes []string
	// DryRun: nothing was moved.
	DryRun bool
}

// verdict is a job's Verdict from its counters.
func verdict(j JobRecord, counts []Count) Verdict {
	v := Verdict{Shark: j.From.MantaStorageID, DiscoveryDone: j.DiscoveryDone, ExcludedKeyPrefixes: j.Options.Exclusions(),
		DryRun: j.Options.DryRun}
	for _, c := range counts {
		switch c.Status {
		case rebalancer.ObjectComplete.String():
		case rebalancer.ObjectError.String():
			if !deleted(c.Reason) {
				v.ObjectsLeft += c.N
			}
		default:
			v.ObjectsLeft += c.N
		}
	}
	return v
}

// deleted reports whether an error kind says the object is gone.
func deleted(kind string) bool {
	return kind == rebalancer.ErrorMorayObjectNotFound.String() || kind == rebalancer.ErrorMdapiObjectNotFound.String()
}

// String says it in a sentence.
func (v Verdict) String() string {
	var b strings.Builder
	switch {
	case v.DryRun:
		fmt.Fprintf(&b, "a dry run moves nothing: %s objects found name %s", commas(v.ObjectsLeft), v.Shark)
	case v.ObjectsLeft == 0:
		fmt.Fprintf(&b, "no object the job found names %s any more", v.Shark)
	case v.ObjectsLeft == 1:
		fmt.Fprintf(&b, "1 object the job found still names %s", v.Shark)
	default:
		fmt.Fprintf(&b, "%s objects the job found still name %s", commas(v.ObjectsLeft), v.Shark)
	}
	if !v.DiscoveryDone {
		b.WriteString("; the job ended before it found every object")
	}
	if len(v.ExcludedKeyPrefixes) > 0 {
		fmt.Fprintf(&b, "; objects under the excluded key prefixes (%s) were not looked for", strings.Join(v.ExcludedKeyPrefixes, ", "))
	}
	return b.String()
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Remedy is what it takes to move an object that a job skipped, or left in
// error, for a reason.
type Remedy int

// The remedies, from the most hopeful.
const (
	// RemedyRetry: a retry job may move it, once what failed works again
	// (a source or an agent back, an etag race lost, room freed).
	RemedyRetry Remedy = iota + 1
	// RemedyFleet: no destination suits it (every shark, or every other
	// datacenter, holds a copy already): it needs another shark.
	RemedyFleet
	// RemedyRepair: the copy to read from is bad or missing, or the
	// metadata is malformed: someone must repair it first.
	RemedyRepair
	// RemedyNone: it cannot be moved: its only copy is on the evacuated
	// shark, or its data is gone.
	RemedyNone
	// RemedyGone: it was deleted; nothing names the shark any more.
	RemedyGone
)

// RemedyFor returns the remedy for an object in status (skipped or error)
// for reason (a skip reason or error kind, in database spelling).
func RemedyFor(status rebalancer.ObjectStatus, reason string) Remedy {
	if status == rebalancer.ObjectError {
		kind, err := rebalancer.ParseObjectErrorKind(reason)
		if err != nil {
			return RemedyRepair
		}
		switch kind {
		case rebalancer.ErrorMorayObjectNotFound, rebalancer.ErrorMdapiObjectNotFound:
			return RemedyGone
		case rebalancer.ErrorMorayUpdateFailed, rebalancer.ErrorMdapiUpdateFailed, rebalancer.ErrorMetadataUpdateFailed,
			rebalancer.ErrorMorayEtagMismatch, rebalancer.ErrorMdapiEtagMismatch, rebalancer.ErrorInternal, rebalancer.ErrorBadMorayClient:
			return RemedyRetry
		}
		return RemedyRepair // malformed metadata
	}
	r, err := rebalancer.ParseSkipReason(reason)
	if err != nil {
		return RemedyRepair
	}
	switch r {
	case rebalancer.SkipSourceIsEvacShark, rebalancer.SkipMPUPartNoData:
		return RemedyNone
	case rebalancer.SkipObjectAlreadyOnDestShark, rebalancer.SkipObjectAlreadyInDatacenter:
		return RemedyFleet
	case rebalancer.SkipMD5Mismatch, rebalancer.SkipSourceObjectNotFound:
		return RemedyRepair
	}
	return RemedyRetry
}

// SourceCount is the number of a job's objects skipped, or in error, for a
// reason after reading from a source shark ("": no copy was read, or the
// failure was not the copy's, or the job is older than these counts).
type SourceCount struct {
	Source string
	Status string // "skipped" or "error"
	Reason string
	N      int64
}

// sortSourceCounts orders counts largest first, then by source and reason.
func sortSourceCounts(cs []SourceCount) {
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.N != b.N {
			return a.N > b.N
		}
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.Status+a.Reason < b.Status+b.Reason
	})
}
