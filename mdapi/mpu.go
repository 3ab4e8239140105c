package mdapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
)

// Multipart uploads (S3 MPU in buckets-api, TritonDataCenter/manta-buckets-api
// lib/s3-multipart.js and lib/s3-mako-v2-commit.js). An upload in progress
// is two kinds of object in the upload's bucket:
//
//   - its parts, ordinary objects named ".mpu-parts/<upload id>/<n>", each
//     with a copy on every one of the upload's preallocated sharks;
//   - its record, the zero-length object ".mpu-uploads/<upload id>", which
//     keeps the upload's state in two headers: x-upload-record (the record
//     as JSON, with preAllocatedSharks among its members) and
//     x-preallocated-sharks (that array alone). Its sharks are empty.
//
// buckets-api writes every later part to the preallocated sharks, and
// completes the upload by asking each of them to assemble the object from
// the parts it holds locally (mako's /mpu/v2/commit). So once the parts on
// an evacuated shark have moved, the record must name their new shark
// instead: otherwise new parts keep going to the shark being retired, and
// the commit asks it for the assembly. And every part that left one shark
// must have gone to the same new shark, which then holds them all.
const (
	partPrefix   = ".mpu-parts/"
	uploadPrefix = ".mpu-uploads/"
)

// Upload is a multipart upload: its bucket and its id.
type Upload struct {
	Owner    string
	BucketID string
	ID       string
}

// RecordName is the name of the upload's record object.
func (u Upload) RecordName() string { return UploadRecordName(u.ID) }

func (u Upload) String() string { return u.Owner + "/" + u.BucketID + "/" + u.ID }

// UploadRecordName is the name of the record object of an upload.
func UploadRecordName(uploadID string) string { return uploadPrefix + uploadID }

// UploadOfPart returns the upload id in a part object's name,
// ".mpu-parts/<upload id>/<part number>". ok is false for any other name.
func UploadOfPart(name string) (uploadID string, ok bool) {
	rest, found := strings.CutPrefix(name, partPrefix)
	if !found {
		return "", false
	}
	id, num, found := strings.Cut(rest, "/")
	if !found || id == "" || id == "." || id == ".." || num == "" || strings.IndexByte(id, 0) >= 0 {
		return "", false
	}
	for _, c := range []byte(num) {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return id, true
}

// UploadOf tells whether a rebalancer key (Locator.Key) is that of a part
// of a multipart upload, and if so returns the upload and where the part
// is.
func UploadOf(key string) (Upload, Locator, bool) {
	if !IsKey(key) {
		return Upload{}, Locator{}, false
	}
	loc, err := ParseKey(key)
	if err != nil {
		return Upload{}, Locator{}, false
	}
	id, ok := UploadOfPart(loc.Name)
	if !ok {
		return Upload{}, Locator{}, false
	}
	return Upload{Owner: loc.Owner, BucketID: loc.BucketID, ID: id}, loc, true
}

// UploadOutcome says what fixing an upload record found and did.
type UploadOutcome int

const (
	// UploadFixed: the record named the shark the parts left; it now names
	// their new shark.
	UploadFixed UploadOutcome = iota + 1
	// UploadAlreadyFixed: the record names the new shark and not the old
	// one: an earlier fix (for other parts of the upload) did it.
	UploadAlreadyFixed
	// UploadFinished: there is no record: the upload was completed or
	// aborted, and its parts are ordinary objects or gone. Nothing to do.
	UploadFinished
	// UploadNotListed: the record names neither shark (or holds no
	// preallocated sharks). Nothing to do.
	UploadNotListed
)

func (o UploadOutcome) String() string {
	switch o {
	case UploadFixed:
		return "fixed"
	case UploadAlreadyFixed:
		return "already_fixed"
	case UploadFinished:
		return "finished"
	case UploadNotListed:
		return "not_listed"
	}
	return fmt.Sprintf("UploadOutcome(%d)", int(o))
}

// UploadResult is what became of one upload's record.
type UploadResult struct {
	Upload Upload
	// Record is where the record is (its vnode computed with the ring),
	// on buckets-mdapi shard Shard.
	Record  Locator
	Shard   int
	Outcome UploadOutcome
	// From and To are the shark the parts left and the one they went to.
	From string
	To   rebalancer.StorageNode
	// Etag is the record's etag after an UploadFixed.
	Etag string
	// Err is set by FixMoved for an upload it could not fix; Outcome is
	// then 0.
	Err error
}

// Errors of the upload record fix, besides the client's.
var (
	// ErrRingMismatch: the ring does not put a part in the vnode it was
	// found in, so it is not the ring buckets-api places objects with, and
	// the record's vnode computed with it would be wrong (and a record not
	// found there would be taken for a finished upload).
	ErrRingMismatch = errors.New("the placement ring does not match buckets-api's")
	// ErrSplitUpload: the parts of one upload that left a shark went to
	// different sharks, so no single shark can replace it in the record.
	ErrSplitUpload = errors.New("parts of one upload moved to different sharks")
	// ErrAlreadyPreallocated: the new shark is already one of the upload's
	// preallocated sharks, besides the one being replaced: naming it twice
	// would leave new parts with one copy fewer.
	ErrAlreadyPreallocated = errors.New("the new shark is already preallocated to the upload")
)

// DefaultUploadRetries is how many times UploadFixer re-reads and rewrites
// a record that changed under it.
const DefaultUploadRetries = 5

// UploadFixer rewrites the upload records of multipart uploads whose parts
// moved: in both headers that list the preallocated sharks, the entry of
// the shark the parts left gets the storage id and datacenter of the shark
// they went to, and every other byte of the record stays as it was. The
// update is conditional, like a MetadataStore's, on the record's id and
// modification time as read; a record that changed meanwhile is read and
// rewritten again.
//
// It finds a record with the placement ring (its vnode) and the vnode map
// discovery learnt (its shard). Before trusting the ring it checks that it
// puts the moved part in the vnode the part was found in: a record is
// looked for only where buckets-api would have put it, so that "not found"
// can safely mean "the upload finished".
//
// Call it after the parts' metadata names their new shark, whichever way
// it was written (one object at a time or in batches: the record does not
// depend on it). Fix is safe for concurrent use; but buckets-mdapi checks
// an update's conditions without locking the row, so two fixes made from
// one read of a record can both be written. That is harmless when they
// write the same, and the parts of an upload leaving a shark must all go
// to one new shark anyway (see FixMoved).
type UploadFixer struct {
	Shards ShardClients
	Ring   Ring
	Vnodes *VnodeMap
	// Retries is how many times a record changed by another writer is read
	// and rewritten again (0: DefaultUploadRetries; negative: never).
	Retries int
}

// Fix rewrites the record of the upload the part at part belongs to, so
// that it names to instead of from. See UploadOutcome for the successful
// outcomes. Errors name the upload and the record; a record that kept
// changing wraps rebalancer.ErrEtagConflict, a record that is not an
// upload record as buckets-api writes it is a *rebalancer.BadObjectError.
func (f *UploadFixer) Fix(ctx context.Context, part Locator, from string, to rebalancer.StorageNode) (UploadResult, error) {
	id, ok := UploadOfPart(part.Name)
	if !ok {
		return UploadResult{}, fmt.Errorf("fix upload record: %s is not a multipart upload part", part.Key())
	}
	res := UploadResult{Upload: Upload{Owner: part.Owner, BucketID: part.BucketID, ID: id}, From: from, To: to}
	fail := func(format string, args ...any) (UploadResult, error) {
		return res, fmt.Errorf("fix record of upload %s: %w", res.Upload, fmt.Errorf(format, args...))
	}
	if err := checkShark(to); err != nil {
		return fail("new shark: %w", err)
	}
	if from == to.MantaStorageID {
		return fail("the parts did not move (from and to are both %s)", from)
	}
	if f.Vnodes == nil {
		return fail("no vnode map")
	}
	if v, err := f.Ring.ObjectVnode(part.Owner, part.BucketID, part.Name); err != nil {
		return fail("%w", err)
	} else if v != part.Vnode {
		return fail("%w: it puts part %s in vnode %d of %d, it was found in vnode %d",
			ErrRingMismatch, part.Name, v, f.Ring.Vnodes(), part.Vnode)
	}
	rv, err := f.Ring.ObjectVnode(part.Owner, part.BucketID, res.Upload.RecordName())
	if err != nil {
		return fail("%w", err)
	}
	res.Record = Locator{Owner: part.Owner, BucketID: part.BucketID, Name: res.Upload.RecordName(), Vnode: rv}
	shard, ok := f.Vnodes.Shard(rv)
	if !ok {
		return fail("record %s: no shard holds vnode %d", res.Record.Key(), rv)
	}
	res.Shard = shard
	c := f.Shards.Client(shard)
	tries := f.Retries
	switch {
	case tries == 0:
		tries = DefaultUploadRetries
	case tries < 0:
		tries = 0
	}
	for attempt := 0; ; attempt++ {
		rec, err := c.GetObject(ctx, res.Record)
		if errors.Is(err, rebalancer.ErrObjectNotFound) {
			res.Outcome = UploadFinished
			return res, nil
		}
		if err != nil {
			return fail("read record %s on buckets-mdapi shard %d: %w", res.Record.Key(), shard, err)
		}
		headers, outcome, err := rewriteUploadHeaders(rec.Headers, from, to)
		if errors.Is(err, ErrAlreadyPreallocated) {
			return fail("record %s on buckets-mdapi shard %d: %w", res.Record.Key(), shard, err)
		}
		if err != nil {
			return res, &rebalancer.BadObjectError{Kind: rebalancer.ErrorBadMantaObject, Key: res.Record.Key(),
				Msg: fmt.Sprintf("upload record on buckets-mdapi shard %d: %v", shard, err)}
		}
		if outcome != UploadFixed {
			res.Outcome = outcome
			return res, nil
		}
		u := Update{
			Locator:     res.Record,
			ID:          rec.ID,
			ContentType: rec.ContentType,
			Headers:     headers,
			Properties:  rec.Properties,
			// No sharks: the record has none, and upstream servers, which
			// ignore sharks, can then fix records too.
			Conditions: Conditions{IfMatch: []string{rec.ID}, IfUnmodifiedSince: rec.Modified},
		}
		now, err := c.UpdateObject(ctx, u)
		if err == nil {
			res.Outcome, res.Etag = UploadFixed, now.Etag()
			return res, nil
		}
		// A conflict, or a record replaced or deleted since it was read:
		// read it again.
		again := errors.Is(err, rebalancer.ErrEtagConflict) || errors.Is(err, rebalancer.ErrObjectNotFound)
		if !again || attempt >= tries {
			return fail("rewrite record %s on buckets-mdapi shard %d (attempt %d): %w", res.Record.Key(), shard, attempt+1, err)
		}
	}
}

// PartMove is one part whose copy moved: its key (Locator.Key) and the
// sharks it left and went to.
type PartMove struct {
	Key  string
	From string
	To   rebalancer.StorageNode
}

// SplitUploadError reports an upload whose parts that left one shark went
// to several: the record can name only one of them, and a commit there
// would lack the others' parts. It matches ErrSplitUpload.
type SplitUploadError struct {
	Upload Upload
	From   string
	To     []string // the storage ids the parts went to, ascending
}

func (e *SplitUploadError) Error() string {
	return fmt.Sprintf("upload %s: parts that left %s went to %s: %v", e.Upload, e.From, strings.Join(e.To, " and "), ErrSplitUpload)
}

func (e *SplitUploadError) Is(target error) bool { return target == ErrSplitUpload }

// FixMoved fixes the record of every upload that moves names a part of,
// once per upload and shark left, and returns one result per upload in the
// order of their first part in moves. Keys that are not parts are ignored.
// An upload whose parts went to several sharks is not touched: its result
// carries a *SplitUploadError. Other failures are in the result's Err, as
// Fix returns them.
func (f *UploadFixer) FixMoved(ctx context.Context, moves []PartMove) []UploadResult {
	type group struct {
		part Locator
		up   Upload
		from string
		to   map[string]rebalancer.StorageNode
	}
	var order []*group
	groups := map[[4]string]*group{}
	for _, m := range moves {
		up, loc, ok := UploadOf(m.Key)
		if !ok {
			continue
		}
		k := [4]string{up.Owner, up.BucketID, up.ID, m.From}
		g := groups[k]
		if g == nil {
			g = &group{part: loc, up: up, from: m.From, to: map[string]rebalancer.StorageNode{}}
			groups[k] = g
			order = append(order, g)
		}
		g.to[m.To.MantaStorageID] = m.To
	}
	out := make([]UploadResult, 0, len(order))
	for _, g := range order {
		if len(g.to) > 1 {
			ids := slices.Sorted(maps.Keys(g.to))
			out = append(out, UploadResult{Upload: g.up, From: g.from,
				Err: &SplitUploadError{Upload: g.up, From: g.from, To: ids}})
			continue
		}
		var to rebalancer.StorageNode
		for _, t := range g.to {
			to = t
		}
		res, err := f.Fix(ctx, g.part, g.from, to)
		res.Upload, res.From, res.To, res.Err = g.up, g.from, to, err
		if err != nil {
			res.Outcome = 0
		}
		out = append(out, res)
	}
	return out
}

// The headers of an upload record that list its preallocated sharks.
const (
	headerUploadRecord = "x-upload-record"
	headerPreallocated = "x-preallocated-sharks"
)

// rewriteUploadHeaders rewrites the preallocated sharks in an upload
// record's headers (a JSON object of strings or nulls): the entry of from
// gets to's storage id and datacenter in both x-upload-record
// (preAllocatedSharks) and x-preallocated-sharks, and nothing else changes.
// The outcome is UploadFixed when some header named from (the headers are
// then the rewritten ones), else UploadAlreadyFixed when one names to, else
// UploadNotListed.
func rewriteUploadHeaders(headers json.RawMessage, from string, to rebalancer.StorageNode) (json.RawMessage, UploadOutcome, error) {
	members, err := objectMembers(headers)
	if err != nil {
		return nil, 0, fmt.Errorf("headers: %w", err)
	}
	var fromSeen, toSeen bool
	changed := map[string][]byte{}
	for _, m := range members {
		if m.key != headerUploadRecord && m.key != headerPreallocated {
			continue
		}
		var text string
		if string(m.value) == "null" {
			continue
		}
		if err := json.Unmarshal(m.value, &text); err != nil {
			return nil, 0, fmt.Errorf("header %s is not a string", m.key)
		}
		doc := []byte(text)
		arr := doc
		start := 0
		if m.key == headerUploadRecord {
			inner, err := objectMembers(doc)
			if err != nil {
				return nil, 0, fmt.Errorf("header %s: %w", m.key, err)
			}
			arr = nil
			for _, im := range inner {
				if im.key == "preAllocatedSharks" {
					arr, start = im.value, im.start
				}
			}
			if arr == nil || string(arr) == "null" {
				continue // no sharks were preallocated
			}
		}
		newArr, hadFrom, hadTo, err := rewriteSharkList(arr, from, to)
		if err != nil {
			return nil, 0, fmt.Errorf("header %s: %w", m.key, err)
		}
		toSeen = toSeen || hadTo
		if !hadFrom {
			continue
		}
		fromSeen = true
		out := make([]byte, 0, len(doc)+len(newArr)-len(arr))
		out = append(out, doc[:start]...)
		out = append(out, newArr...)
		out = append(out, doc[start+len(arr):]...)
		changed[m.key] = out
	}
	switch {
	case fromSeen:
	case toSeen:
		return nil, UploadAlreadyFixed, nil
	default:
		return nil, UploadNotListed, nil
	}
	w := jsonstr.Object{B: make([]byte, 0, len(headers)+64), Form: jsonstr.Serde}
	w.Open()
	for _, m := range members {
		if v, ok := changed[m.key]; ok {
			w.Key(m.key)
			w.B = appendBytes(w.B, v)
			continue
		}
		w.Raw(m.key, m.value)
	}
	w.Close()
	return w.B, UploadFixed, nil
}

// rewriteSharkList rewrites the element of a JSON array of sharks
// ({"datacenter","manta_storage_id",...}) whose manta_storage_id is from:
// its storage id becomes to's, and its datacenter, if it has one, to's.
// hadFrom and hadTo say whether from and to were listed.
func rewriteSharkList(arr []byte, from string, to rebalancer.StorageNode) (out []byte, hadFrom, hadTo bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(arr))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, false, false, errors.New("preallocated sharks are not an array")
	}
	var edits []edit
	for dec.More() {
		var elem json.RawMessage
		if err := dec.Decode(&elem); err != nil {
			return nil, false, false, fmt.Errorf("preallocated sharks: %w", err)
		}
		end := int(dec.InputOffset())
		base := end - len(elem)
		members, err := objectMembers(elem)
		if err != nil {
			return nil, false, false, fmt.Errorf("preallocated shark: %w", err)
		}
		var id string
		var idAt, dcAt *member
		for i := range members {
			switch members[i].key {
			case "manta_storage_id":
				idAt = &members[i]
			case "datacenter":
				dcAt = &members[i]
			}
		}
		if idAt == nil || json.Unmarshal(idAt.value, &id) != nil {
			return nil, false, false, fmt.Errorf("preallocated shark %s has no manta_storage_id string", truncate(string(elem), 100))
		}
		switch id {
		case to.MantaStorageID:
			hadTo = true
		case from:
			if hadFrom {
				return nil, false, false, fmt.Errorf("shark %s is preallocated twice", from)
			}
			hadFrom = true
			edits = append(edits, edit{base + idAt.start, base + idAt.start + len(idAt.value), appendString(nil, to.MantaStorageID)})
			if dcAt != nil {
				edits = append(edits, edit{base + dcAt.start, base + dcAt.start + len(dcAt.value), appendString(nil, to.Datacenter)})
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, false, false, fmt.Errorf("preallocated sharks: %w", err)
	}
	if hadFrom && hadTo {
		return nil, true, true, fmt.Errorf("%s and %s: %w", from, to.MantaStorageID, ErrAlreadyPreallocated)
	}
	if !hadFrom {
		return arr, false, hadTo, nil
	}
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	out = make([]byte, 0, len(arr)+64)
	prev := 0
	for _, e := range edits {
		out = append(out, arr[prev:e.start]...)
		out = append(out, e.value...)
		prev = e.end
	}
	return append(out, arr[prev:]...), true, hadTo, nil
}

// edit replaces the bytes [start, end) with value.
type edit struct {
	start, end int
	value      []byte
}

// member is one member of a JSON object: its key, and its value as the
// bytes it spans, starting at start in the object's text.
type member struct {
	key   string
	value []byte
	start int
}

// objectMembers splits a JSON object into its members, in order. A key
// present twice is an error: which one a reader honours is not something
// to guess about.
func objectMembers(obj []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var out []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, fmt.Errorf("member %q is there twice", key)
		}
		seen[key] = true
		end := int(dec.InputOffset())
		out = append(out, member{key: key, value: obj[end-len(raw) : end], start: end - len(raw)})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the object")
	}
	return out, nil
}
