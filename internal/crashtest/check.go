package crashtest

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
	"strings"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/moray"
)

// maxListed is how many problems of one check an error lists.
const maxListed = 10

// check verifies the invariants of a finished run (see the package
// documentation). Every process must be stopped.
func (r *run) check(ctx context.Context) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	d := r.last
	if d.JobStatus == nil {
		return errors.New("the job's status was never read")
	}
	if d.State != rebalancer.JobComplete || d.Error != "" {
		add("job ended %s (error %q), want Complete", d.State, d.Error)
	}
	counts := d.counts()
	var sum int64
	for _, n := range counts {
		sum += n
	}
	pinned := int64(r.pinned)
	if sum != pinned || d.Progress.Objects != pinned {
		add("counts: statuses add up to %d and progress says %d objects; %d objects listed %s", sum, d.Progress.Objects, pinned, evacuated)
	}
	if dups, total := d.Results.Duplicates, d.Results.Total; dups != 0 || total != pinned {
		add("counts: Total %d with %d duplicates, want %d and none", total, dups, pinned)
	}
	for _, st := range []rebalancer.ObjectStatus{rebalancer.ObjectUnprocessed, rebalancer.ObjectAssigned, rebalancer.ObjectPostProcessing} {
		if n := counts[st.Title()]; n != 0 {
			add("counts: %d objects left %s in a finished job", n, st.Title())
		}
	}

	index, err := r.index(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if written := r.cfg.Objects + r.v2.Objects; len(index) != written {
		add("metadata: %d objects, %d were written", len(index), written)
	}
	if r.fleet.HasBuckets() {
		r.checkV2(d, index, add)
	}
	var onEvac int64
	var wrongCopies []string
	for _, o := range index {
		if o.HasShark(evacuated) {
			onEvac++
		}
		if len(o.Sharks) != copies {
			wrongCopies = append(wrongCopies, fmt.Sprintf("%s has %d copies", o.Key, len(o.Sharks)))
		}
	}
	if len(wrongCopies) > 0 {
		add("metadata: %d objects do not have %d copies: %s", len(wrongCopies), copies, list(wrongCopies))
	}
	moved := pinned - onEvac
	if c := counts[rebalancer.ObjectComplete.Title()]; c != moved {
		add("counts: Complete %d, but the metadata of %d objects moved off %s", c, moved, evacuated)
	}
	if left := counts[rebalancer.ObjectSkipped.Title()] + counts[rebalancer.ObjectError.Title()]; left != onEvac {
		add("counts: Skipped+Error %d, but %d objects still list %s", left, onEvac, evacuated)
	}

	rep, err := r.fleet.Verify(ctx, evacuated)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	// A kill plan can keep every valid destination of an object dead past
	// the job's agent unreachable timeout on each of its attempts; the job
	// then skips the object, which stays on the evacuated shark with its
	// metadata intact, for a retry job to move. Such objects are accounted
	// for (the Skipped count is checked above), not lost.
	if gaveUp := d.skipped(rebalancer.SkipDestinationUnreachable) + d.skipped(rebalancer.SkipAgentAssignmentTimeout); gaveUp > 0 {
		if n := rep.Counts[testbed.ProblemStillOnEvacuated]; n > 0 && int64(n) <= gaveUp {
			delete(rep.Counts, testbed.ProblemStillOnEvacuated)
		}
	}
	if !rep.OK() {
		errs = append(errs, rep.Err())
	}
	errs = append(errs, r.checkFiles(ctx, r.fleet.Sharks()))
	return errors.Join(errs...)
}

// checkV2 checks the job's v2 counts against the v2 objects' metadata, and
// that it fixed the record of every upload whose parts on the shark all
// moved (Verify checks the records themselves).
func (r *run) checkV2(d jobDoc, index map[string]rebalancer.Object, add func(string, ...any)) {
	k := d.kinds()
	if k == nil || k.V2.Scanned == nil || !*k.V2.Scanned {
		add("v2: the job did not say that it looked for v2 objects: %+v", k)
		return
	}
	var onEvac int64
	for _, o := range index {
		if o.IsBucket && o.HasShark(evacuated) {
			onEvac++
		}
	}
	v2 := k.V2
	if v2.Objects != int64(r.v2.Pinned) || v2.Remaining != 0 || v2.Complete != int64(r.v2.Pinned)-onEvac || v2.Skipped+v2.Error != onEvac {
		add("v2 counts: %d objects (%d complete, %d skipped, %d error, %d remaining); %d v2 objects listed %s, %d still do",
			v2.Objects, v2.Complete, v2.Skipped, v2.Error, v2.Remaining, r.v2.Pinned, evacuated, onEvac)
	}
	fixed, left := v2.Uploads[mdapi.UploadFixed.String()], v2.Uploads[evacuate.UploadPartsLeft]
	if fixed+left != int64(r.v2.UploadsPinned) || (left > 0 && onEvac == 0) {
		add("v2 uploads: %v, but %d uploads had parts on %s and %d v2 objects are still there", v2.Uploads, r.v2.UploadsPinned, evacuated, onEvac)
	}
}

// index reads every object's metadata from every shard, v1 and v2, keyed
// by the path of its copies under a shark's root ("{owner}/{object id}",
// or testbed.V2Path).
func (r *run) index(ctx context.Context) (map[string]rebalancer.Object, error) {
	out := map[string]rebalancer.Object{}
	for _, n := range r.fleet.ShardNumbers() {
		for rec := range r.fleet.Moray(n).Objects(moray.MantaBucket) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			var head struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(rec.Value, &head) == nil && head.Type != "object" {
				continue
			}
			o, err := rebalancer.ParseObject(rec.Value)
			if err != nil {
				return nil, fmt.Errorf("metadata of %s on shard %d: %w", rec.Key, n, err)
			}
			out[o.Owner+"/"+o.ID] = o
		}
	}
	for i, srv := range r.fleet.Mdapis() {
		rows, err := srv.Objects(ctx)
		if err != nil {
			return nil, fmt.Errorf("v2 metadata on buckets shard %d: %w", i+1, err)
		}
		for _, row := range rows {
			if strings.HasPrefix(row.Name, ".mpu-uploads/") {
				continue // an upload record: no content
			}
			loc := mdapi.Locator{Owner: row.Owner, BucketID: row.BucketID, Name: row.Name, Vnode: row.Vnode}
			out[testbed.V2Path(row.Owner, row.BucketID, row.ID, row.Name)] = rebalancer.Object{ID: row.ID, Key: loc.Key(),
				Owner: row.Owner, Shard: i + 1, ContentLength: row.ContentLength, ContentMD5: row.ContentMD5, Sharks: row.Sharks,
				BucketID: row.BucketID, IsBucket: true, Name: row.Name}
		}
	}
	return out, nil
}

// checkFiles reads every file on the sharks, the agents' temp directories
// aside (partial downloads belong there; Verify checks that they are gone
// in the end): each must be at the final path of an object and hold
// exactly its content, referenced by metadata or not. It is safe while
// agents run, since they only ever rename whole files into final paths.
func (r *run) checkFiles(ctx context.Context, sharks []*testbed.Shark) error {
	var problems []string
	files := 0
	for _, s := range sharks {
		root := s.Root()
		err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if de.IsDir() {
				if rel == agent.TempDirName {
					return filepath.SkipDir
				}
				return nil
			}
			files++
			if !de.Type().IsRegular() {
				problems = append(problems, fmt.Sprintf("%s on %s: not a regular file (%s)", rel, s.ID(), de.Type()))
				return nil
			}
			o, ok := r.content[filepath.ToSlash(rel)]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s on %s: no object has this path", rel, s.ID()))
				return nil
			}
			if msg := checkContent(p, o); msg != "" {
				problems = append(problems, fmt.Sprintf("%s on %s: %s", rel, s.ID(), msg))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("files of %s: %w", s.ID(), err)
		}
	}
	if files == 0 {
		return errors.New("files: no file on any shark")
	}
	if len(problems) > 0 {
		return fmt.Errorf("files: %d of %d files on the sharks are not whole copies at final paths: %s", len(problems), files, list(problems))
	}
	return nil
}

// checkContent returns what is wrong with the file at p as a copy of o.
func checkContent(p string, o rebalancer.Object) string {
	f, err := os.Open(p)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err.Error()
	}
	if n != o.ContentLength {
		return fmt.Sprintf("%d bytes, the object has %d (a partial file at a final path)", n, o.ContentLength)
	}
	if sum := base64.StdEncoding.EncodeToString(h.Sum(nil)); sum != o.ContentMD5 {
		return fmt.Sprintf("MD5 %s, the object's is %s", sum, o.ContentMD5)
	}
	return ""
}

func list(items []string) string {
	if len(items) > maxListed {
		return "\n  " + strings.Join(items[:maxListed], "\n  ") + fmt.Sprintf("\n  ... and %d more", len(items)-maxListed)
	}
	return "\n  " + strings.Join(items, "\n  ")
}
