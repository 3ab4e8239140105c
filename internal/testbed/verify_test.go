package testbed

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray"
)

// objects returns every object of the fleet, with shard and etag.
func objects(t *testing.T, f *Fleet) []rebalancer.Object {
	t.Helper()
	var out []rebalancer.Object
	for _, shard := range f.ShardNumbers() {
		for rec := range f.Moray(shard).Objects(moray.MantaBucket) {
			o, err := rebalancer.ParseObject(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			o.Shard, o.Etag = shard, rec.Etag
			out = append(out, o)
		}
	}
	return out
}

// move does by hand what an evacuation does for one object: copy the file
// to a shark that has none, then point the metadata at it.
func move(t *testing.T, f *Fleet, o rebalancer.Object, from string) {
	t.Helper()
	var to *Shark
	for _, s := range f.Sharks() {
		if !o.HasShark(s.ID()) {
			to = s
			break
		}
	}
	b, err := os.ReadFile(f.Shark(from).ObjectPath(o.Owner, o.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to.ObjectPath(o.Owner, o.ID), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.MetadataStore().ReplaceShark(context.Background(), o, from, to.Node()); err != nil {
		t.Fatal(err)
	}
}

// putValue rewrites an object's metadata through a change to its JSON.
func putValue(t *testing.T, f *Fleet, o rebalancer.Object, change func(v map[string]any)) {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(o.Metadata, &v); err != nil {
		t.Fatal(err)
	}
	change(v)
	if _, err := f.Moray(o.Shard).Put(moray.MantaBucket, o.Key, v); err != nil {
		t.Fatal(err)
	}
}

// other returns a shark holding a copy of o other than shark1.
func other(o rebalancer.Object) string {
	src, _ := o.Source(shark1)
	return src.MantaStorageID
}

func TestVerify(t *testing.T) {
	const n = 40
	pinned := Objects{Count: n, Seed: 1, Pin: shark1}
	for _, tc := range []struct {
		name      string
		cfg       Config
		evacuated string
		mutate    func(t *testing.T, f *Fleet, objs []rebalancer.Object)
		want      map[ProblemKind]int
		// wantSingle and wantNoDest are the skips Verify must tell apart
		// from failures.
		wantSingle, wantNoDest int
		wantUnreferenced       map[string]int
		detail                 string // in the first problem's String
	}{
		{name: "clean", cfg: Config{Objects: pinned}},
		{name: "nothing moved", cfg: Config{Objects: pinned}, evacuated: shark1,
			want: map[ProblemKind]int{ProblemStillOnEvacuated: n}},
		{name: "evacuated but one", cfg: Config{Objects: pinned}, evacuated: shark1,
			mutate: func(t *testing.T, f *Fleet, objs []rebalancer.Object) {
				for _, o := range objs[1:] {
					move(t, f, o, shark1)
				}
			},
			want:             map[ProblemKind]int{ProblemStillOnEvacuated: 1},
			wantUnreferenced: map[string]int{shark1: n - 1},
			detail:           "still_on_evacuated object /"},
		{name: "fully evacuated", cfg: Config{Objects: pinned}, evacuated: shark1,
			mutate: func(t *testing.T, f *Fleet, objs []rebalancer.Object) {
				for _, o := range objs {
					move(t, f, o, shark1)
				}
			},
			wantUnreferenced: map[string]int{shark1: n}},
		{name: "missing copy", cfg: Config{Objects: pinned},
			mutate: func(t *testing.T, f *Fleet, objs []rebalancer.Object) {
				if err := f.Shark(other(objs[3])).Remove(objs[3].Owner, objs[3].ID); err != nil {
					t.Fatal(err)
				}
			},
			want: map[ProblemKind]int{ProblemMissingCopy: 1}, detail: "no such file"},
		{name: "corrupt copy", cfg: Config{Objects: pinned},
			mutate: func(t *testing.T, f *Fleet, objs []rebalancer.Object) {
				if err := f.Shark(shark1).Corrupt(objs[5].Owner, objs[5].ID); err != nil {
					t.Fatal(err)
				}
			},
			want: map[ProblemKind]int{ProblemBadMD5: 1}, detail: "bad_md5 object /"},
		{name: "truncated copy", cfg: Config{Objects: pinned},
			mutate: func(t *testing.T, f *Fleet, objs []rebalancer.Object) {
				if err := os.Truncate(f.Shark(shark1).ObjectPath(objs[0].Owner, objs[0].ID), 3); err != nil {
					t.Fatal(err)
				}
			},
			want: map[ProblemKind]int{ProblemWrongSize: 1}, detail: "3 bytes, contentLength"},
		{name: "directory at a copy's path", cfg: Config{Objects: pinned},
			mutate: func(t *testing.T, f *Fleet, objs []rebalancer.Object) {
				p := f.Shark(shark1).ObjectPath(objs[0].Owner, objs[0].ID)
				os.Remove(p)
				os.Mkdir(p, 0o755)
			},
			want: map[ProblemKind]int{ProblemNotAFile: 1}},
		{name: "partial download left", cfg: Config{Objects: pinned},
			mutate: func(t *testing.T, f *Fleet, objs []rebalancer.Object) {
				os.WriteFile(filepath.Join(f.Shark(shark1).Root(), ".rebalancer-tmp", "partial"), []byte("x"), 0o644)
			},
			want: map[ProblemKind]int{ProblemTempFile: 1}, detail: ".rebalancer-tmp/partial"},
		{name: "unknown shark", cfg: Config{Objects: pinned},
			mutate: func(t *testing.T, f *Fleet, objs []rebalancer.Object) {
				putValue(t, f, objs[0], func(v map[string]any) {
					v["sharks"] = append(v["sharks"].([]any), map[string]any{"datacenter": "dc9", "manta_storage_id": "9.stor.demo.example"})
				})
			},
			want: map[ProblemKind]int{ProblemUnknownShark: 1}, detail: "on 9.stor.demo.example"},
		{name: "shark listed twice", cfg: Config{Objects: pinned},
			mutate: func(t *testing.T, f *Fleet, objs []rebalancer.Object) {
				putValue(t, f, objs[0], func(v map[string]any) {
					s := v["sharks"].([]any)
					v["sharks"] = append(s, s[0])
				})
			},
			want: map[ProblemKind]int{ProblemDuplicateShark: 1}},
		{name: "bad metadata", cfg: Config{Objects: pinned},
			mutate: func(t *testing.T, f *Fleet, objs []rebalancer.Object) {
				putValue(t, f, objs[0], func(v map[string]any) { delete(v, "owner") })
			},
			want: map[ProblemKind]int{ProblemBadMetadata: 1}, detail: "missing owner"},
		{name: "single copies are skips", evacuated: shark1,
			cfg:        Config{Objects: Objects{Count: n, Seed: 1, Pin: shark1, Copies: 1}},
			wantSingle: n},
		{name: "no destination is a skip", evacuated: shark1,
			cfg:        Config{Sharks: 2, Objects: Objects{Count: n, Seed: 1, Pin: shark1}},
			wantNoDest: n},
		{name: "datacenter rule leaves no destination", evacuated: "2.stor.demo.example",
			// dc1: sharks 1 and 3; dc2: shark 2. An object on shark 2 has
			// its other copy in dc1, and a copy may not move from dc2 into
			// a datacenter that already holds one.
			cfg:        Config{Sharks: 3, Datacenters: 2, Objects: Objects{Count: n, Seed: 1, Pin: "2.stor.demo.example"}},
			wantNoDest: n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New(t, tc.cfg)
			objs := objects(t, f)
			if tc.mutate != nil {
				tc.mutate(t, f, objs)
			}
			rep, err := f.Verify(context.Background(), tc.evacuated)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(rep.Counts, tc.want) && !(len(rep.Counts) == 0 && len(tc.want) == 0) {
				t.Fatalf("problems %v, want %v\n%v", rep.Counts, tc.want, rep.Err())
			}
			if rep.OK() != (len(tc.want) == 0) || (rep.Err() == nil) != rep.OK() {
				t.Fatalf("OK %v, Err %v", rep.OK(), rep.Err())
			}
			if rep.Objects != n || rep.SingleCopy != tc.wantSingle || rep.NoDestination != tc.wantNoDest {
				t.Fatalf("report %s", rep)
			}
			if len(rep.Skipped) != tc.wantSingle+tc.wantNoDest {
				t.Fatalf("%d skipped keys, want %d", len(rep.Skipped), tc.wantSingle+tc.wantNoDest)
			}
			if tc.wantUnreferenced != nil && !maps.Equal(rep.Unreferenced, tc.wantUnreferenced) {
				t.Fatalf("unreferenced %v, want %v", rep.Unreferenced, tc.wantUnreferenced)
			}
			if tc.detail != "" && !strings.Contains(rep.Problems[0].String(), tc.detail) {
				t.Fatalf("problem %q does not say %q", rep.Problems[0], tc.detail)
			}
			if tc.detail != "" && !strings.Contains(rep.Err().Error(), tc.detail) {
				t.Fatalf("error %q does not say %q", rep.Err(), tc.detail)
			}
		})
	}
}

// More problems of one kind than a Report lists do not hide the few of
// another kind found after them, and VerifyEach sees every one: the demo's
// corrupt-copy check found none of its 5 at 30,000 objects, where 3,774
// objects left on the evacuated shark filled the list first.
func TestVerifyBeyondTheList(t *testing.T) {
	n := MaxProblems + 50
	f := New(t, Config{Objects: Objects{Count: n, Seed: 1, Pin: shark1, MaxSize: 1024}})
	objs := objects(t, f)
	last := objs[len(objs)-1]
	if err := f.Shark(other(last)).Corrupt(last.Owner, last.ID); err != nil {
		t.Fatal(err)
	}
	seen := map[ProblemKind]int{}
	rep, err := f.VerifyEach(context.Background(), shark1, func(p Problem) { seen[p.Kind]++ })
	if err != nil {
		t.Fatal(err)
	}
	want := map[ProblemKind]int{ProblemStillOnEvacuated: n, ProblemBadMD5: 1}
	if !maps.Equal(rep.Counts, want) || !maps.Equal(seen, want) {
		t.Fatalf("counted %v, handed over %v; want %v", rep.Counts, seen, want)
	}
	listed := map[ProblemKind]int{}
	for _, p := range rep.Problems {
		listed[p.Kind]++
	}
	if listed[ProblemStillOnEvacuated] != MaxProblems || listed[ProblemBadMD5] != 1 {
		t.Fatalf("listed %v", listed)
	}
}
