package testbed

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/moray"
)

// ProblemKind names what Verify found wrong.
type ProblemKind string

// What Verify checks.
const (
	// ProblemBadMetadata: a value in the manta bucket that is not a valid
	// object (rebalancer.ParseObject fails).
	ProblemBadMetadata ProblemKind = "bad_metadata"
	// ProblemStillOnEvacuated: metadata still names the evacuated shark
	// although another copy and a valid destination exist.
	ProblemStillOnEvacuated ProblemKind = "still_on_evacuated"
	// ProblemDuplicateShark: a shark listed twice in one object's sharks.
	ProblemDuplicateShark ProblemKind = "duplicate_shark"
	// ProblemUnknownShark: a shark the fleet does not have.
	ProblemUnknownShark ProblemKind = "unknown_shark"
	// ProblemMissingCopy: a listed copy whose file is absent.
	ProblemMissingCopy ProblemKind = "missing_copy"
	// ProblemNotAFile: a listed copy's path is not a regular file.
	ProblemNotAFile ProblemKind = "not_a_file"
	// ProblemWrongSize: a listed copy's size differs from contentLength.
	ProblemWrongSize ProblemKind = "wrong_size"
	// ProblemBadMD5: a listed copy's MD5 differs from contentMD5.
	ProblemBadMD5 ProblemKind = "bad_md5"
	// ProblemTempFile: a partial download left in an agent's temp
	// directory.
	ProblemTempFile ProblemKind = "temp_file"
	// ProblemUploadOnEvacuated: a multipart upload's record still names
	// the evacuated shark among its preallocated sharks although none of
	// its parts is left there: new parts would go to a retired shark.
	ProblemUploadOnEvacuated ProblemKind = "upload_on_evacuated"
	// ProblemUploadPartMissing: a part of a multipart upload has no copy
	// on one of the upload's preallocated sharks, which buckets-api asks
	// to assemble the object from the part files it holds: neither in the
	// part's metadata nor on that shark's disk.
	ProblemUploadPartMissing ProblemKind = "upload_part_missing"
)

// Problem is one thing Verify found wrong.
type Problem struct {
	Kind     ProblemKind
	Shard    int
	Key      string
	ObjectID string
	Shark    string // the shark concerned, if any
	Path     string // the file concerned, if any
	Detail   string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(string(p.Kind))
	if p.Key != "" {
		fmt.Fprintf(&b, " object %s (shard %d, id %s)", p.Key, p.Shard, p.ObjectID)
	}
	if p.Shark != "" {
		fmt.Fprintf(&b, " on %s", p.Shark)
	}
	if p.Path != "" {
		fmt.Fprintf(&b, " at %s", p.Path)
	}
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	return b.String()
}

// MaxProblems is how many problems of each kind a Report lists in detail;
// Counts counts them all, and VerifyEach hands every one to its caller.
const MaxProblems = 1000

// Report is what Verify found.
type Report struct {
	Evacuated string
	Objects   int   // object records in the manta buckets
	Bytes     int64 // their contentLength, summed
	Copies    int   // copies the metadata lists, all checked
	CopiesOK  int   // of those, present with the right size and MD5
	// ByShark counts the copies metadata lists on each shark.
	ByShark map[string]int

	// Objects that still name the evacuated shark and could not have
	// moved: those are skips, not failures.
	SingleCopy    int // no other copy to copy from (source_is_evac_shark)
	NoDestination int // every valid destination already holds a copy
	// Skipped lists their keys (up to MaxProblems).
	Skipped []string

	// The buckets (v2) tier, when the fleet has one: its objects (parts of
	// multipart uploads included) and their contentLength summed, and its
	// uploads in progress (upload records), of which UploadsSkipped still
	// name the evacuated shark because some of their parts could not move.
	V2Objects      int
	V2Bytes        int64
	Uploads        int
	UploadsSkipped int

	// Unreferenced counts, per shark, the files that no metadata names:
	// the evacuated shark's old copies, or copies an agent made whose
	// metadata update did not happen. Information, not a problem.
	Unreferenced map[string]int

	Counts   map[ProblemKind]int
	Problems []Problem // the first MaxProblems of each kind, in no particular order

	each func(Problem) // VerifyEach's
}

// OK reports whether Verify found no problem.
func (r Report) OK() bool { return len(r.Counts) == 0 }

// Err returns nil when the report is clean, and otherwise an error listing
// the problem counts and the first few problems.
func (r Report) Err() error {
	if r.OK() {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "fleet verification failed: %s", r.countsString())
	for i, p := range r.sortedProblems() {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... and %d more", r.total()-10)
			break
		}
		b.WriteString("\n  " + p.String())
	}
	return errors.New(b.String())
}

func (r Report) total() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

func (r Report) countsString() string {
	kinds := make([]string, 0, len(r.Counts))
	for k, n := range r.Counts {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	return strings.Join(kinds, " ")
}

func (r Report) sortedProblems() []Problem {
	ps := append([]Problem(nil), r.Problems...)
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Kind != ps[j].Kind {
			return ps[i].Kind < ps[j].Kind
		}
		if ps[i].Key != ps[j].Key {
			return ps[i].Key < ps[j].Key
		}
		return ps[i].Shark < ps[j].Shark
	})
	return ps
}

// String summarises the report in a line or two.
func (r Report) String() string {
	s := fmt.Sprintf("%d objects (%d bytes), %d/%d copies ok", r.Objects, r.Bytes, r.CopiesOK, r.Copies)
	if r.V2Objects > 0 || r.Uploads > 0 {
		s += fmt.Sprintf(", of which v2 %d objects (%d bytes), %d uploads", r.V2Objects, r.V2Bytes, r.Uploads)
	}
	if r.Evacuated != "" {
		s += fmt.Sprintf("; off %s: skipped %d (single copy %d, no destination %d)",
			r.Evacuated, r.SingleCopy+r.NoDestination, r.SingleCopy, r.NoDestination)
		if r.UploadsSkipped > 0 {
			s += fmt.Sprintf(", %d uploads with parts left there", r.UploadsSkipped)
		}
	}
	if !r.OK() {
		s += "; problems: " + r.countsString()
	}
	return s
}

func (r *Report) add(p Problem) {
	if r.Counts == nil {
		r.Counts = map[ProblemKind]int{}
	}
	r.Counts[p.Kind]++
	// Per kind, so that thousands of one kind found first cannot hide
	// the few of another found later.
	if r.Counts[p.Kind] <= MaxProblems {
		r.Problems = append(r.Problems, p)
	}
	if r.each != nil {
		r.each(p)
	}
}

// copyCheck is one listed copy to look at on disk.
type copyCheck struct {
	obj   *rebalancer.Object
	shark string
	path  string
}

// Verify checks the fleet from scratch, trusting nothing but what is in
// Moray, in the buckets tier's databases and on disk: every object record
// in every shard's manta bucket parses; no record, v1 or v2, names the
// evacuated shark ("" checks none) unless the object could not have moved
// (its only copy is there, or every valid destination already has one;
// such objects are counted, not reported); every listed copy is a regular
// file on that shark, at its v1 or v2 path, with contentLength bytes and
// the base64 MD5 contentMD5; no shark lists twice; no multipart upload's
// record names the evacuated shark unless some of its parts are still
// there, and every part has a copy on each of its upload's preallocated
// sharks; and no agent left a partial download in its temp directory.
// Call it when no job is running. The error is for a failure to verify,
// not for what was found.
func (f *Fleet) Verify(ctx context.Context, evacuated string) (Report, error) {
	return f.VerifyEach(ctx, evacuated, nil)
}

// VerifyEach is Verify that also hands every problem to fn as it is found,
// however many there are, one call at a time; a caller that must account
// for each problem (is this bad copy one I corrupted on purpose?) needs
// them all, where Report.Problems holds a sample.
func (f *Fleet) VerifyEach(ctx context.Context, evacuated string, fn func(Problem)) (Report, error) {
	rep := Report{Evacuated: evacuated, ByShark: map[string]int{}, Unreferenced: map[string]int{}, each: fn}
	var evac *Shark
	if evacuated != "" {
		if evac = f.byID[evacuated]; evac == nil {
			return rep, fmt.Errorf("testbed: verify: no shark %s", evacuated)
		}
	}

	var checks []copyCheck
	referenced := map[string]bool{}
	for shard, m := range f.morays {
		for rec := range m.Objects(moray.MantaBucket) {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			var head struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(rec.Value, &head) == nil && head.Type != "" && head.Type != "object" {
				continue // directories have no copies
			}
			rep.Objects++
			o, err := rebalancer.ParseObject(rec.Value)
			if err != nil {
				rep.add(Problem{Kind: ProblemBadMetadata, Shard: shard + 1, Key: rec.Key, Detail: err.Error()})
				continue
			}
			o.Shard = shard + 1
			rep.Bytes += o.ContentLength
			checks = f.verifyObject(&rep, &o, evac, referenced, checks)
		}
	}
	checks, err := f.verifyBuckets(ctx, &rep, evac, referenced, checks)
	if err != nil {
		return rep, err
	}

	problems, err := checkCopies(ctx, checks)
	if err != nil {
		return rep, err
	}
	rep.CopiesOK = rep.Copies - len(problems)
	for _, p := range problems {
		rep.add(p)
	}

	for _, s := range f.sharks {
		tmp := filepath.Join(s.root, agent.TempDirName)
		entries, err := os.ReadDir(tmp)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("testbed: verify: %w", err)
		}
		for _, e := range entries {
			rep.add(Problem{Kind: ProblemTempFile, Shark: s.ID(), Path: filepath.Join(tmp, e.Name())})
		}
		n, err := countUnreferenced(ctx, s.root, referenced)
		if err != nil {
			return rep, fmt.Errorf("testbed: verify: shark %s: %w", s.ID(), err)
		}
		if n > 0 {
			rep.Unreferenced[s.ID()] = n
		}
	}
	return rep, nil
}

// verifyObject checks the sharks an object lists, v1 or v2, counts it as a
// skip or reports it if it still names the evacuated shark, and queues its
// copies for checkCopies.
func (f *Fleet) verifyObject(rep *Report, obj *rebalancer.Object, evac *Shark, referenced map[string]bool, checks []copyCheck) []copyCheck {
	seen := map[string]bool{}
	for _, n := range obj.Sharks {
		id := n.MantaStorageID
		if seen[id] {
			rep.add(Problem{Kind: ProblemDuplicateShark, Shard: obj.Shard, Key: obj.Key, ObjectID: obj.ID, Shark: id})
			continue
		}
		seen[id] = true
		s := f.byID[id]
		if s == nil {
			rep.add(Problem{Kind: ProblemUnknownShark, Shard: obj.Shard, Key: obj.Key, ObjectID: obj.ID, Shark: id})
			continue
		}
		p := filepath.Join(s.root, filepath.FromSlash(copyPath(obj)))
		rep.Copies++
		rep.ByShark[id]++
		referenced[p] = true
		checks = append(checks, copyCheck{obj: obj, shark: id, path: p})
	}
	if evac != nil && seen[evac.ID()] {
		switch {
		case len(seen) == 1:
			rep.SingleCopy++
			rep.skipped(obj.Key)
		case !f.hasDestination(obj, evac):
			rep.NoDestination++
			rep.skipped(obj.Key)
		default:
			rep.add(Problem{Kind: ProblemStillOnEvacuated, Shard: obj.Shard, Key: obj.Key, ObjectID: obj.ID, Shark: evac.ID()})
		}
	}
	return checks
}

func (r *Report) skipped(key string) {
	if len(r.Skipped) < MaxProblems {
		r.Skipped = append(r.Skipped, key)
	}
}

// hasDestination reports whether some shark could take a copy of o leaving
// evac under the legacy rules: not already holding one, and in evac's
// datacenter or in a datacenter holding no copy.
func (f *Fleet) hasDestination(o *rebalancer.Object, evac *Shark) bool {
	dcHasCopy := map[string]bool{}
	for _, n := range o.Sharks {
		dcHasCopy[n.Datacenter] = true
	}
	for _, s := range f.sharks {
		if s == evac || o.HasShark(s.ID()) {
			continue
		}
		if s.Datacenter() == evac.Datacenter() || !dcHasCopy[s.Datacenter()] {
			return true
		}
	}
	return false
}

// copyPath is where a copy of o lives under a shark's root, as the agent
// computes it.
func copyPath(o *rebalancer.Object) string {
	if t := o.Task(rebalancer.StorageNode{}); t.IsV2() && len(t.ObjectID) >= 2 {
		return "v2/" + t.Owner + "/" + t.BucketID + "/" + t.ObjectID[:2] + "/" + t.ObjectID + "," + t.ObjectNameHash
	}
	return o.Owner + "/" + o.ID
}

// checkCopies reads every listed copy, in parallel, and returns what is
// wrong with them.
func checkCopies(ctx context.Context, checks []copyCheck) ([]Problem, error) {
	var (
		mu       sync.Mutex
		problems []Problem
	)
	work := make(chan copyCheck)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(work)
		for _, c := range checks {
			select {
			case work <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for range runtime.GOMAXPROCS(0) * 2 {
		g.Go(func() error {
			buf := make([]byte, 64<<10)
			for c := range work {
				p, err := checkCopy(c, buf)
				if err != nil {
					return err
				}
				if p != nil {
					mu.Lock()
					problems = append(problems, *p)
					mu.Unlock()
				}
			}
			return nil
		})
	}
	return problems, g.Wait()
}

func checkCopy(c copyCheck, buf []byte) (*Problem, error) {
	o := c.obj
	problem := func(kind ProblemKind, format string, args ...any) (*Problem, error) {
		return &Problem{Kind: kind, Shard: o.Shard, Key: o.Key, ObjectID: o.ID, Shark: c.shark, Path: c.path,
			Detail: fmt.Sprintf(format, args...)}, nil
	}
	fi, err := os.Lstat(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return problem(ProblemMissingCopy, "no such file")
	}
	if err != nil {
		return nil, fmt.Errorf("testbed: verify %s: %w", c.path, err)
	}
	if !fi.Mode().IsRegular() {
		return problem(ProblemNotAFile, "mode %s", fi.Mode())
	}
	if fi.Size() != o.ContentLength {
		return problem(ProblemWrongSize, "%d bytes, contentLength %d", fi.Size(), o.ContentLength)
	}
	file, err := os.Open(c.path)
	if err != nil {
		return nil, fmt.Errorf("testbed: verify %s: %w", c.path, err)
	}
	defer file.Close()
	h := md5.New()
	if _, err := io.CopyBuffer(h, file, buf); err != nil {
		return nil, fmt.Errorf("testbed: verify %s: %w", c.path, err)
	}
	if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != o.ContentMD5 {
		return problem(ProblemBadMD5, "MD5 %s, contentMD5 %s", got, o.ContentMD5)
	}
	return nil, nil
}

// countUnreferenced counts the regular files under root, outside the
// agent's temp directory, that are not in referenced.
func countUnreferenced(ctx context.Context, root string, referenced map[string]bool) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == agent.TempDirName && filepath.Dir(p) == root {
				return filepath.SkipDir
			}
			return ctx.Err()
		}
		if !referenced[p] {
			n++
		}
		return nil
	})
	return n, err
}
