package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/jobapi"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
)

// writerMark is what the simulated concurrent writer adds to an object's
// metadata; the verdict checks it survived the rebalancer's update.
const writerMark = `"demo_concurrent_writer":"changed",`

// injectFaults sets up the faults the flags ask for, choosing objects that
// are on the evacuated shark.
func (d *demo) injectFaults(ctx context.Context) error {
	if d.DeadSource == "" && d.Corrupt == 0 && d.EtagConflicts == 0 {
		return nil
	}
	var objs []rebalancer.Object
	err := d.fleet.ScanSource().Discover(ctx, rebalancer.DiscoverRequest{Shark: d.Evacuate}, func(o rebalancer.Object) error {
		objs = append(objs, o)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list the objects on %s: %w", d.Evacuate, err)
	}
	if d.DeadSource != "" {
		// v2 objects too: their copies are served by the same file server.
		all := slices.Clone(objs)
		if d.fleet.HasBuckets() {
			err := d.fleet.BucketsSource().Discover(ctx, rebalancer.DiscoverRequest{Shark: d.Evacuate}, func(o rebalancer.Object) error {
				all = append(all, o)
				return nil
			})
			if err != nil {
				return fmt.Errorf("list the v2 objects on %s: %w", d.Evacuate, err)
			}
		}
		d.fleet.Shark(d.DeadSource).StopMako()
		d.onDead = map[string]bool{}
		for _, o := range all {
			if o.HasShark(d.DeadSource) {
				d.onDead[o.ID] = true
			}
		}
		d.say("Fault: the file server of %s is down; %s of the objects to move have a copy there.", d.DeadSource, humanize.Comma(int64(len(d.onDead))))
	}
	// Sources of the remaining faults: v1 objects whose other copies are
	// all on live sharks, each object used by one fault only.
	var usable []rebalancer.Object
	for _, o := range objs {
		if len(o.Sharks) > 1 && (d.DeadSource == "" || !o.HasShark(d.DeadSource)) {
			usable = append(usable, o)
		}
	}
	if d.Corrupt+d.EtagConflicts > len(usable) {
		return fmt.Errorf("--corrupt %d and --etag-conflicts %d need that many objects with a live source; there are %d", d.Corrupt, d.EtagConflicts, len(usable))
	}
	d.corrupted = map[string]string{}
	for _, o := range usable[:d.Corrupt] {
		for _, n := range o.Sharks {
			if n.MantaStorageID != d.Evacuate {
				if err := d.fleet.Shark(n.MantaStorageID).Corrupt(o.Owner, o.ID); err != nil {
					return err
				}
				d.corrupted[o.ID] = n.MantaStorageID
				break
			}
		}
	}
	if d.Corrupt > 0 {
		d.say("Fault: %d source copies corrupted (one byte flipped, size unchanged).", d.Corrupt)
	}
	if d.EtagConflicts > 0 {
		d.writer = newConcurrentWriter(d.fleet, usable[d.Corrupt:d.Corrupt+d.EtagConflicts])
		d.say("Fault: another writer will change %d objects just as the job updates their metadata.", d.EtagConflicts)
	}
	return nil
}

// concurrentWriter changes an object's metadata the moment the rebalancer
// sends its conditional update, so that the update meets a real etag
// conflict, as when a user changes an object during an evacuation.
type concurrentWriter struct {
	fleet   *testbed.Fleet
	mu      sync.Mutex
	targets map[string]int // key -> shard
	fired   map[string]bool
}

func newConcurrentWriter(f *testbed.Fleet, objs []rebalancer.Object) *concurrentWriter {
	w := &concurrentWriter{fleet: f, targets: map[string]int{}, fired: map[string]bool{}}
	for _, o := range objs {
		w.targets[o.Key] = o.Shard
	}
	for _, n := range f.ShardNumbers() {
		srv := f.Moray(n)
		srv.SetHook(func(r moraytest.Request) moraytest.Action {
			for _, key := range conditionalPuts(r) {
				w.change(srv, key)
			}
			return moraytest.Action{}
		})
	}
	return w
}

// conditionalPuts returns the manta keys a putObject or batch request
// writes with an etag condition.
func conditionalPuts(r moraytest.Request) []string {
	type put struct {
		Bucket    string `json:"bucket"`
		Key       string `json:"key"`
		Operation string `json:"operation"`
		Options   struct {
			Etag *string `json:"etag"`
		} `json:"options"`
	}
	var puts []put
	switch {
	case r.Method == "batch" && len(r.Args) > 0:
		json.Unmarshal(r.Args[0], &puts)
	case r.Method == "putObject" && len(r.Args) >= 4:
		var p put
		if json.Unmarshal(r.Args[0], &p.Bucket) == nil && json.Unmarshal(r.Args[1], &p.Key) == nil &&
			json.Unmarshal(r.Args[3], &p.Options) == nil {
			puts = append(puts, p)
		}
	}
	var keys []string
	for _, p := range puts {
		if p.Bucket == "manta" && p.Options.Etag != nil && (p.Operation == "" || p.Operation == "put") {
			keys = append(keys, p.Key)
		}
	}
	return keys
}

// change rewrites a target object once, adding writerMark to its value.
func (w *concurrentWriter) change(srv *moraytest.Server, key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.targets[key]; !ok || w.fired[key] {
		return
	}
	cur, err := srv.Get("manta", key)
	if err != nil || !bytes.HasPrefix(cur.Value, []byte("{")) {
		return
	}
	next := append([]byte("{"+writerMark), cur.Value[1:]...)
	if _, err := srv.Put("manta", key, json.RawMessage(next)); err == nil {
		w.fired[key] = true
	}
}

func (w *concurrentWriter) firedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.fired)
}

// printJob summarises the job as the manager recorded it.
func (d *demo) printJob(st evacuate.Status, elapsed time.Duration) {
	complete, bytesMoved := st.Total(rebalancer.ObjectComplete)
	skipped, _ := st.Total(rebalancer.ObjectSkipped)
	failed, _ := st.Total(rebalancer.ObjectError)
	secs := elapsed.Seconds()
	d.say("Job %s ended %s in %s.", st.Job.ID, st.Job.State, elapsed.Round(time.Millisecond))
	d.say("  moved:      %s objects, %s (%s objects/s, %s/s)", humanize.Comma(complete), humanize.IBytes(uint64(bytesMoved)),
		humanize.Comma(int64(float64(complete)/secs)), humanize.IBytes(uint64(float64(bytesMoved)/secs)))
	d.say("  skipped:    %s%s", humanize.Comma(skipped), breakdown(st, rebalancer.ObjectSkipped))
	d.say("  errors:     %s%s", humanize.Comma(failed), breakdown(st, rebalancer.ObjectError))
	d.say("  duplicates: %s", humanize.Comma(st.Duplicates))
	b := st.Buckets
	switch {
	case b.Scanned:
		v2, v2Bytes := v2Total(st, rebalancer.ObjectComplete)
		d.say("  of the moved: v1 %s (%s), v2 %s (%s)", humanize.Comma(complete-v2), humanize.IBytes(uint64(bytesMoved-v2Bytes)),
			humanize.Comma(v2), humanize.IBytes(uint64(v2Bytes)))
		d.say("  multipart upload records: %s", uploadOutcomes(b.Uploads))
	case b.Known:
		d.say("  v2 objects: not scanned (%s)", b.NotScanned)
	}
	if st.Job.Error != "" {
		d.say("  job error:  %s", st.Job.Error)
	}
}

// v2Total is Status.Total of the job's v2 objects alone.
func v2Total(st evacuate.Status, status rebalancer.ObjectStatus) (n, bytes int64) {
	for _, c := range st.Buckets.Counts {
		if c.Status == status.String() {
			n += c.N
			bytes += c.Bytes
		}
	}
	return n, bytes
}

// uploadOutcomes is "N fixed, M parts_left", or "none".
func uploadOutcomes(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %s", humanize.Comma(m[k]), k))
	}
	if len(parts) == 0 {
		return "none had parts moved"
	}
	return strings.Join(parts, ", ")
}

func breakdown(st evacuate.Status, status rebalancer.ObjectStatus) string {
	var parts []string
	for _, c := range st.Counts {
		if c.Status == status.String() && c.N > 0 {
			parts = append(parts, fmt.Sprintf("%s: %s", c.Reason, humanize.Comma(c.N)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	slices.Sort(parts)
	return " (" + strings.Join(parts, ", ") + ")"
}

// outcome is what the job reports about an object it did not move.
type outcome struct {
	status, reason, detail string
}

// objectsPage is the most GET /jobs/{id}/objects returns at once.
const objectsPage = 10000

// notMoved lists the objects the job skipped or left in error, through
// the API (GET /jobs/{id}/objects), as rebalancer-adm job objects does.
func (d *demo) notMoved(ctx context.Context, id string) (map[string]outcome, error) {
	out := map[string]outcome{}
	for _, status := range []rebalancer.ObjectStatus{rebalancer.ObjectSkipped, rebalancer.ObjectError} {
		for after := int64(0); ; {
			page, err := d.jobs.Objects(ctx, id, jobapi.ObjectQuery{Status: status, Limit: objectsPage, After: after})
			if err != nil {
				return nil, err
			}
			for _, o := range page {
				out[o.ID] = outcome{status: status.String(), reason: o.SkippedReason + o.Error, detail: o.Detail}
				after = o.Seq
			}
			if len(page) < objectsPage {
				break
			}
		}
	}
	return out, nil
}

// problems sorts every problem Verify finds, however many: counts are
// exact, samples are a few examples each.
type problems struct {
	// Objects whose metadata still names the evacuated shark, which the
	// job reports not moved (fine), or moved (a lie: a failure).
	stillReported, stillUnreported tally
	// Bad MD5s on the copies the demo corrupted on purpose, by object id,
	// and every other problem.
	corruptFound map[string]bool
	other        tally
}

// tally counts and keeps a few examples.
type tally struct {
	n      int
	sample []string
}

const sampleSize = 3

func (t *tally) add(example string) {
	t.n++
	if len(t.sample) < sampleSize {
		t.sample = append(t.sample, example)
	}
}

// String is ": example; example; example; and N more", or "".
func (t tally) String() string {
	if t.n == 0 {
		return ""
	}
	s := ": " + strings.Join(t.sample, "; ")
	if t.n > len(t.sample) {
		s += fmt.Sprintf("; and %s more", humanize.Comma(int64(t.n-len(t.sample))))
	}
	return s
}

func (ps *problems) add(d *demo, p testbed.Problem, notMoved map[string]outcome) {
	switch {
	case p.Kind == testbed.ProblemStillOnEvacuated:
		if _, ok := notMoved[p.ObjectID]; ok {
			ps.stillReported.add(p.String())
		} else {
			ps.stillUnreported.add(p.String())
		}
	case p.Kind == testbed.ProblemBadMD5 && d.corrupted[p.ObjectID] == p.Shark:
		if ps.corruptFound == nil {
			ps.corruptFound = map[string]bool{}
		}
		ps.corruptFound[p.ObjectID] = true
	default:
		ps.other.add(p.String())
	}
}

// explain sorts the objects the job did not move by what explains them:
// a fault the demo injected, or the object's copies as Verify found them
// (its only copy is on the evacuated shark, or no shark may take another
// under the placement rules; as many as Verify counted). What is left is
// unexplained.
func (d *demo) explain(notMoved map[string]outcome, rep testbed.Report) (explained []string, unexplained tally) {
	byCause := map[string]int{}
	single, noDest := rep.SingleCopy, rep.NoDestination
	for id, o := range notMoved {
		var cause string
		switch {
		case d.onDead[id] && strings.HasPrefix(o.reason, "source_"):
			cause = fmt.Sprintf("their other copy is on %s, which is down (%s)", d.DeadSource, o.reason)
		case d.corrupted[id] != "" && o.reason == "md5_mismatch":
			cause = fmt.Sprintf("their source copy on another shark is corrupted (%s)", o.reason)
		case o.reason == "source_is_evac_shark" && single > 0:
			single--
			cause = fmt.Sprintf("their only copy is on %s (%s)", d.Evacuate, o.reason)
		case noDestination[o.reason] && noDest > 0:
			noDest--
			cause = fmt.Sprintf("no other shark may take a copy under the placement rules (%s)", o.reason)
		}
		if cause == "" {
			unexplained.add(fmt.Sprintf("object %s %s %s %s", id, o.status, o.reason, o.detail))
			continue
		}
		byCause[cause]++
	}
	// The largest first.
	causes := slices.SortedFunc(maps.Keys(byCause), func(a, b string) int { return cmp.Or(byCause[b]-byCause[a], strings.Compare(a, b)) })
	for _, cause := range causes {
		explained = append(explained, fmt.Sprintf("%s: %s", humanize.Comma(int64(byCause[cause])), cause))
	}
	return explained, unexplained
}

// noDestination are the reasons placement gives for an object no shark
// may take.
var noDestination = map[string]bool{"destination_insufficient_space": true, "object_already_in_datacenter": true, "object_already_on_dest_shark": true}

// verdict checks the job's account against what Verify found on disk and
// in the metadata, prints every check, and ends with the verdict line.
func (d *demo) verdict(ctx context.Context, st evacuate.Status, rep testbed.Report, found *problems, notMoved map[string]outcome, sc *jobapi.SharkCheck) bool {
	complete, _ := st.Total(rebalancer.ObjectComplete)
	skipped, _ := st.Total(rebalancer.ObjectSkipped)
	failed, _ := st.Total(rebalancer.ObjectError)
	var total int64
	for _, c := range st.Counts {
		total += c.N
	}
	var failures []string
	check := func(ok bool, format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			failures = append(failures, line)
		}
		d.say("  %s %s", mark, line)
	}

	check(st.Job.State == rebalancer.JobComplete, "the job completed (state %s)", st.Job.State)
	check(total == int64(d.pinned()) && st.Remaining() == 0,
		"every object on %s was found and reached a final status (%s found, %s written there, %s not final)",
		d.Evacuate, humanize.Comma(total), humanize.Comma(int64(d.pinned())), humanize.Comma(st.Remaining()))
	v2Moved, _ := v2Total(st, rebalancer.ObjectComplete)
	fixed := st.Buckets.Uploads[mdapi.UploadFixed.String()]
	if d.noBuckets == "" {
		var v2Found int64
		for _, c := range st.Buckets.Counts {
			v2Found += c.N
		}
		check(st.Buckets.Scanned && v2Found == int64(d.v2.Pinned),
			"the job looked for v2 objects too, and found every one on %s (%s found, %s written there)",
			d.Evacuate, humanize.Comma(v2Found), humanize.Comma(int64(d.v2.Pinned)))
		// An upload's record is fixed once all its parts on the shark
		// moved; one whose parts could not all move (a fault) keeps
		// naming the shark, as Verify counts.
		left := st.Buckets.Uploads[evacuate.UploadPartsLeft]
		check(fixed+left == int64(d.v2.UploadsPinned) && left == int64(rep.UploadsSkipped) && (left == 0 || len(notMoved) > 0),
			"the record of every multipart upload with parts on %s names where its parts went, unless some could not move (%s fixed, %s with parts left, of %d)",
			d.Evacuate, humanize.Comma(fixed), humanize.Comma(left), d.v2.UploadsPinned)
	}
	left := found.stillReported.n + found.stillUnreported.n + rep.SingleCopy + rep.NoDestination
	check(int64(left) == skipped+failed && found.stillUnreported.n == 0 && len(notMoved) == int(skipped+failed),
		"metadata names %s only for the objects the job reports not moved (%s named, %s skipped or in error)%s",
		d.Evacuate, humanize.Comma(int64(left)), humanize.Comma(skipped+failed), found.stillUnreported)
	check(rep.CopiesOK+rep.Counts[testbed.ProblemBadMD5] == rep.Copies,
		"every copy the metadata names is on disk with the right size (%s copies checked)", humanize.Comma(int64(rep.Copies)))
	check(found.other.n == 0, "no copy with a wrong MD5, no temp file, no unknown shark (%s found)%s",
		humanize.Comma(int64(found.other.n)), found.other)
	if d.Corrupt > 0 {
		check(len(found.corruptFound) == len(d.corrupted),
			"the %d corrupted source copies are the only bad ones, and none was copied (%d found)", len(d.corrupted), len(found.corruptFound))
	}
	if d.writer != nil {
		kept, moved := d.writerOutcome(ctx)
		check(d.writer.firedCount() == d.EtagConflicts && kept == d.EtagConflicts && moved == d.EtagConflicts,
			"the %d objects changed by another writer met an etag conflict, were re-read and moved, and kept the writer's change (conflicts %d, kept %d, moved %d)",
			d.EtagConflicts, d.writer.firedCount(), kept, moved)
	}
	explained, unexplained := d.explain(notMoved, rep)
	if len(notMoved) > 0 {
		check(unexplained.n == 0, "each of the %s objects not moved is explained by a fault the demo injected or by its copies (%s unexplained)%s",
			humanize.Comma(int64(len(notMoved))), humanize.Comma(int64(unexplained.n)), unexplained)
		for _, e := range explained {
			d.say("         %s", e)
		}
	}

	// The manager's own answer, from its fresh scan, must match the
	// verification's.
	d.printCheck(sc)
	check(sc.Objects == int64(left) && sc.Safe == (left == 0 && st.Job.State == rebalancer.JobComplete),
		"the manager's shark check agrees: %s records still name %s (the verification found %s), safe to retire: %s",
		humanize.Comma(sc.Objects), d.Evacuate, humanize.Comma(int64(left)), yesNo(sc.Safe))

	if len(failures) > 0 {
		d.say("FAIL: %s", failures[0])
		return false
	}
	notMovedNote := ""
	if n := len(notMoved); n > 0 {
		notMovedNote = fmt.Sprintf("; %s could not be moved, each for the reason shown", humanize.Comma(int64(n)))
	}
	kinds := fmt.Sprintf("v1 %s; no v2 objects: %s", humanize.Comma(complete), d.noBuckets)
	if d.noBuckets == "" {
		kinds = fmt.Sprintf("v1 %s, v2 %s, MPU uploads %s fixed", humanize.Comma(complete-v2Moved), humanize.Comma(v2Moved), humanize.Comma(fixed))
	}
	safe := "safe to retire"
	if !sc.Safe {
		safe = "not safe to retire: see the shark check above"
	}
	d.say("PASS: %s objects moved off %s and verified (%s; %s copies MD5-checked on disk)%s; %s is %s.",
		humanize.Comma(complete), d.Evacuate, kinds, humanize.Comma(int64(rep.CopiesOK)), notMovedNote, d.Evacuate, safe)
	return true
}

// sharkCheck asks the manager, as rebalancer-adm shark check does, whether
// the evacuated shark is safe to retire.
func (d *demo) sharkCheck(ctx context.Context) (*jobapi.SharkCheck, error) {
	sc, err := d.jobs.CheckShark(ctx, d.Evacuate, jobapi.CheckQuery{Examples: 2})
	if err != nil {
		return nil, fmt.Errorf("shark check: %w", err)
	}
	return sc, nil
}

// printCheck prints the shark check's answer: whether the shark is safe to
// retire, what still names it and why, and what to do next.
func (d *demo) printCheck(sc *jobapi.SharkCheck) {
	state := strings.ReplaceAll(sc.Shark.State, "_", " ")
	if sc.Shark.Job != "" {
		state += " by job " + sc.Shark.Job
	}
	d.say("The manager's answer to rebalancer-adm shark check %s (a fresh scan of the metadata, %.1fs):", d.Evacuate, sc.ScanSeconds)
	d.say("  safe to retire: %s (%s records name it; it is %s)", yesNo(sc.Safe), humanize.Comma(sc.Objects), state)
	for _, g := range sc.Groups {
		what := g.Kind
		if g.Reason != "" {
			what += " " + g.Reason
		}
		line := fmt.Sprintf("    %s objects: %s", humanize.Comma(g.Objects), what)
		var srcs []string
		for s, n := range g.Sources {
			if s != "" {
				srcs = append(srcs, fmt.Sprintf("%s %s", s, humanize.Comma(n)))
			}
		}
		if len(srcs) > 0 {
			slices.Sort(srcs)
			line += ", read from " + strings.Join(srcs, ", ")
		}
		d.say("%s", line)
	}
	for _, n := range sc.Next {
		d.say("  next: %s", n)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writerOutcome counts the concurrent writer's objects that still carry its
// change, and those whose metadata no longer names the evacuated shark.
func (d *demo) writerOutcome(ctx context.Context) (kept, moved int) {
	for key, shard := range d.writer.targets {
		cur, err := d.fleet.Moray(shard).Get("manta", key)
		if err != nil {
			continue
		}
		if bytes.Contains(cur.Value, []byte(strings.TrimSuffix(writerMark, ","))) {
			kept++
		}
		o, err := rebalancer.ParseObject(cur.Value)
		if err == nil && !o.HasShark(d.Evacuate) {
			moved++
		}
	}
	return kept, moved
}
