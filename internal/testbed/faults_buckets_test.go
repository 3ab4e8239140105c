package testbed

import (
	"context"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/mdapi/mdapitest"
)

// mdapiUpdate reports whether a buckets-mdapi request updates metadata.
func mdapiUpdate(r mdapitest.Request) bool {
	return r.Method == "updateobject" || r.Method == "batchupdateobjects"
}

// The fault table of the buckets tier: an evacuation of a shark holding v1
// objects, v2 objects and the parts of multipart uploads, under one
// buckets-mdapi fault at a time (discovery reads the buckets databases
// directly, so the faults hit the metadata updates and the upload records).
// Transient faults must not cost an object; conflicts are per object; a
// buckets-mdapi that stays down, or cannot move objects, fails the job,
// whose v1 objects move regardless. Verify then checks that the objects
// still naming the shark are exactly those the job did not complete.
func TestEvacuationUnderMdapiFaults(t *testing.T) {
	type run struct {
		f       *Fleet
		v1, v2  []rebalancer.Object
		faulted map[string]bool // v2 object names a partial fault hits
		fired   atomic.Int64
	}
	cases := []struct {
		name   string
		cfg    func(*Config)
		inject func(t *testing.T, r *run)
		state  rebalancer.JobState // default complete
		// v2, when set, is "status/reason" of every v2 object, or of the
		// faulted ones when partial; "" means they complete.
		v2      string
		partial bool
		errText string // in the job's error
	}{
		{
			name: "mdapi slow",
			inject: func(t *testing.T, r *run) {
				r.f.SetMdapiHook(func(req mdapitest.Request) mdapitest.Action {
					if mdapiUpdate(req) || req.Method == "getobject" {
						r.fired.Add(1)
						return mdapitest.Action{Delay: 20 * time.Millisecond}
					}
					return mdapitest.Action{}
				})
			},
		},
		{
			name: "mdapi errors transient",
			inject: func(t *testing.T, r *run) {
				// Batches fail, then some of their objects' single updates.
				r.f.Mdapi(1).FailNext("batchupdateobjects", 2, mdapitest.Overloaded)
				r.f.Mdapi(1).FailNext("updateobject", 2, mdapitest.PostgresDown)
				r.fired.Add(4)
			},
		},
		{
			name: "mdapi drops connections",
			inject: func(t *testing.T, r *run) {
				var n atomic.Int64
				r.f.SetMdapiHook(func(req mdapitest.Request) mdapitest.Action {
					if mdapiUpdate(req) {
						if k := n.Add(1); k%4 == 1 && k < 40 {
							r.fired.Add(1)
							return mdapitest.Action{Drop: true}
						}
					}
					return mdapitest.Action{}
				})
			},
		},
		{
			name: "mdapi offline for a while",
			inject: func(t *testing.T, r *run) {
				srv := r.f.Mdapi(1)
				outage := outageOnce(t, srv, &r.fired)
				srv.SetHook(func(req mdapitest.Request) mdapitest.Action {
					if !mdapiUpdate(req) {
						return mdapitest.Action{}
					}
					return mdapitest.Action{Drop: outage()}
				})
			},
		},
		{
			name: "mdapi etag conflicts transient",
			inject: func(t *testing.T, r *run) {
				lose := loseFirstRaces(&r.fired)
				r.f.MdapiConflictStorm(func(_, _, name string) bool { return lose(name) })
			},
		},
		{
			name: "mdapi etag conflict storm",
			inject: func(t *testing.T, r *run) {
				r.f.MdapiConflictStorm(func(owner, bucketID, name string) bool {
					if r.faulted[name] {
						r.fired.Add(1)
					}
					return r.faulted[name]
				})
			},
			v2:      "error/mdapi_etag_mismatch",
			partial: true,
		},
		{
			name: "mdapi down",
			inject: func(t *testing.T, r *run) {
				r.f.MdapiOffline()
				r.fired.Add(1)
				t.Cleanup(func() {
					if err := r.f.MdapiOnline(); err != nil {
						t.Error(err)
					}
				})
			},
			state:   rebalancer.JobFailed,
			v2:      "error/mdapi_update_failed",
			errText: "buckets (v2) metadata could not be updated",
		},
		{
			name: "upstream buckets-mdapi",
			cfg:  func(c *Config) { c.Buckets.Version = mdapitest.Upstream },
			inject: func(t *testing.T, r *run) {
				r.fired.Add(1) // the server itself is the fault
			},
			state:   rebalancer.JobFailed,
			v2:      "error/mdapi_update_failed",
			errText: "MANTA-5484",
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := Config{Sharks: 5, Objects: Objects{Count: 20, Seed: uint64(300 + i), Pin: shark1, MaxSize: 4 << 10},
				Buckets: Buckets{DSNs: BucketsDatabases(t, 1), Vnodes: 4, Objects: BucketObjects{
					Objects: Objects{Count: 40, Seed: uint64(400 + i), Pin: shark1, MaxSize: 4 << 10}, Uploads: 3}}}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			f := New(t, cfg)
			r := &run{f: f, v1: objects(t, f), faulted: map[string]bool{}}
			for _, o := range v2Objects(t, f) {
				if strings.HasPrefix(o.Name, ".mpu-uploads/") {
					continue
				}
				if strings.IndexByte("0123", o.ID[0]) >= 0 {
					r.faulted[o.Name] = true
				}
				r.v2 = append(r.v2, rebalancer.Object{ID: o.ID, Name: o.Name, Owner: o.Owner, BucketID: o.BucketID,
					Key: mdapi.Locator{Owner: o.Owner, BucketID: o.BucketID, Name: o.Name, Vnode: o.Vnode}.Key()})
			}
			if len(r.faulted) == 0 || len(r.faulted) == len(r.v2) {
				t.Fatalf("%d of %d v2 objects faulted: pick another seed", len(r.faulted), len(r.v2))
			}
			st := evacuateUnderFault(t, f, &r.fired, func() { tc.inject(t, r) })
			wantState := stateOr(tc.state)
			if st.Job.State != wantState || !strings.Contains(st.Job.Error, tc.errText) {
				t.Errorf("job ended %s (%s), want %s (%s)", st.Job.State, st.Job.Error, wantState, tc.errText)
			}
			want := map[string]int64{"complete/": int64(len(r.v1) + len(r.v2))}
			notMoved := 0
			switch {
			case tc.v2 != "" && tc.partial:
				notMoved = len(r.faulted)
			case tc.v2 != "":
				notMoved = len(r.v2)
			}
			if notMoved > 0 {
				want["complete/"] -= int64(notMoved)
				want[tc.v2] = int64(notMoved)
			}
			if got := jobCounts(st); !maps.Equal(got, want) {
				t.Errorf("counts %v, want %v", got, want)
			}
			// Every upload's record is fixed, unless some of its parts
			// did not move.
			left := 0
			ups := map[string]bool{}
			for _, o := range r.v2 {
				if up, _, ok := mdapi.UploadOf(o.Key); ok {
					if !ups[up.ID] && (notMoved == len(r.v2) || tc.partial && r.faulted[o.Name]) {
						left++
					}
					ups[up.ID] = ups[up.ID] || notMoved == len(r.v2) || tc.partial && r.faulted[o.Name]
				}
			}
			fixed := int64(len(ups) - left)
			if got := st.Buckets.Uploads; got["fixed"] != fixed || got["fixed"]+got[evacuate.UploadPartsLeft]+got[evacuate.UploadFailed] != int64(len(ups)) {
				t.Errorf("uploads %v, want %d fixed of %d", got, fixed, len(ups))
			}

			rep, err := f.Verify(ctx, shark1)
			if err != nil {
				t.Fatal(err)
			}
			wantProblems := map[ProblemKind]int{}
			if notMoved > 0 {
				wantProblems[ProblemStillOnEvacuated] = notMoved
			}
			if !maps.Equal(rep.Counts, wantProblems) {
				t.Errorf("verify found %v, want %v\n%v", rep.Counts, wantProblems, rep.Err())
			}
			if rep.UploadsSkipped != len(ups)-int(fixed) {
				t.Errorf("%d uploads still on the shark, want %d", rep.UploadsSkipped, len(ups)-int(fixed))
			}
		})
	}
}
