package testbed

import (
	"context"
	"maps"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
)

// faultRun is what a fault sees of the fleet under test: the objects, the
// subset a partial fault hits, and a counter of the faults it injected (a
// fault that never fired would make a "transient" row pass for nothing).
type faultRun struct {
	f       *Fleet
	objs    []rebalancer.Object
	faulted map[string]bool // object ids a partial fault hits
	fired   atomic.Int64

	mu         sync.Mutex
	seen       map[string]int    // requests per object id, for faults that pass
	firstAsked map[string]string // object id -> the shark first asked for it
}

// hit reports whether a request for objectID is in the faulted subset.
func (r *faultRun) hit(_ *Shark, objectID string) bool { return r.faulted[objectID] }

// first reports whether this is one of the first n requests for objectID:
// a fault that stops after a while, per object, so that retries must see
// it through whatever the timing.
func (r *faultRun) first(n int) func(*Shark, string) bool {
	return func(_ *Shark, objectID string) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.seen[objectID]++
		return r.seen[objectID] <= n
	}
}

// firstAskedFor reports whether s is the shark an object was first asked
// for: that copy stays bad, so only another copy can do.
func (r *faultRun) firstAskedFor(s *Shark, objectID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.firstAsked[objectID]; !ok {
		r.firstAsked[objectID] = s.ID()
	}
	return r.firstAsked[objectID] == s.ID()
}

// keys returns the Moray keys of the faulted objects.
func (r *faultRun) keys() map[string]bool {
	out := map[string]bool{}
	for _, o := range r.objs {
		if r.faulted[o.ID] {
			out[o.Key] = true
		}
	}
	return out
}

// onSources installs a file-server fault on every shark but the evacuated
// one (which must never be read).
func (r *faultRun) onSources(fault func(s *Shark) MakoFault) {
	for _, s := range r.f.Sharks() {
		if s.ID() != shark1 {
			s.SetMakoFault(fault(s))
		}
	}
}

// sourceFault makes a file server misbehave with do for the objects when
// says so, and serve normally otherwise.
func (r *faultRun) sourceFault(when func(s *Shark, objectID string) bool, do func(s *Shark, w http.ResponseWriter, req *http.Request)) func(*Shark) MakoFault {
	return func(s *Shark) MakoFault {
		return func(w http.ResponseWriter, req *http.Request) bool {
			if !when(s, path.Base(req.URL.Path)) {
				return false
			}
			r.fired.Add(1)
			do(s, w, req)
			return true
		}
	}
}

func answer(code int) func(*Shark, http.ResponseWriter, *http.Request) {
	return func(_ *Shark, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "testbed: injected", code)
	}
}

// reset closes the connection with a TCP RST before any reply.
func reset(_ *Shark, w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// serveSlowly serves the object in two halves with pauses before the
// headers and between the halves, or, when truncate is set, only its first
// half under the full Content-Length.
func serveSlowly(pause time.Duration, truncate bool) func(*Shark, http.ResponseWriter, *http.Request) {
	return func(s *Shark, w http.ResponseWriter, req *http.Request) {
		b, err := os.ReadFile(s.Root() + req.URL.Path)
		if err != nil {
			http.NotFound(w, req)
			return
		}
		time.Sleep(pause)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		if truncate {
			return // the server closes the connection short of Content-Length
		}
		time.Sleep(pause)
		w.Write(b[len(b)/2:])
	}
}

// staticSource discovers the objects as they were populated, without
// Moray, so that Moray faults hit the metadata updates only.
type staticSource []rebalancer.Object

func (s staticSource) Discover(ctx context.Context, req rebalancer.DiscoverRequest, visit func(rebalancer.Object) error) error {
	for _, o := range s {
		if err := ctx.Err(); err != nil {
			return err
		}
		if o.ScanID <= req.After[o.Shard] || !o.HasShark(req.Shark) {
			continue
		}
		if err := visit(o); err != nil {
			return err
		}
	}
	return nil
}

func staticObjects(f *Fleet) (rebalancer.ObjectSource, error) {
	var out staticSource
	for _, shard := range f.ShardNumbers() {
		for rec := range f.Moray(shard).Objects(moray.MantaBucket) {
			o, err := rebalancer.ParseObject(rec.Value)
			if err != nil {
				return nil, err
			}
			o.Shard, o.Etag, o.ScanID = shard, rec.Etag, rec.ID
			out = append(out, o)
		}
	}
	return out, nil
}

// method matches Moray requests by method and, when bucket is set, by
// their first argument.
func method(req moraytest.Request, name, bucket string) bool {
	return req.Method == name && (bucket == "" || len(req.Args) > 0 && string(req.Args[0]) == strconv.Quote(bucket))
}

// corruptFaulted corrupts the source copy (the one not on the evacuated
// shark) of every object the row faults.
func corruptFaulted(t *testing.T, r *faultRun) {
	for _, o := range r.objs {
		if r.faulted[o.ID] {
			if err := r.f.Shark(other(o)).Corrupt(o.Owner, o.ID); err != nil {
				t.Fatal(err)
			}
			r.fired.Add(1)
		}
	}
}

// metadataUpdate reports whether req is a metadata update: one putObject
// into manta, or a batch of them (the engine's default).
// outageOnce returns a hook step for a metadata server: the first call
// takes srv offline for 300ms (from another goroutine, counted in fired)
// and reports true, so that the hook drops the request that started the
// outage; every other call reports false. The outage ends before the
// fleet closes.
func outageOnce(t *testing.T, srv interface {
	Offline()
	Online() error
}, fired *atomic.Int64) func() bool {
	var once sync.Once
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // before the fleet closes
	return func() bool {
		started := false
		once.Do(func() {
			started = true
			fired.Add(1)
			wg.Go(func() {
				srv.Offline()
				time.Sleep(300 * time.Millisecond)
				if err := srv.Online(); err != nil {
					t.Error(err)
				}
			})
		})
		return started
	}
}

// loseFirstRaces returns a conflict storm's predicate under which every
// object (by key) loses its first EtagRetries races, each counted in fired:
// the next try must win.
func loseFirstRaces(fired *atomic.Int64) func(key string) bool {
	var mu sync.Mutex
	tries := map[string]int{}
	return func(key string) bool {
		mu.Lock()
		defer mu.Unlock()
		tries[key]++
		if tries[key] <= FastJobOptions().EtagRetries {
			fired.Add(1)
			return true
		}
		return false
	}
}

// evacuateUnderFault makes f's engine, lets inject install the fault (after
// the engine's first storinfo refresh), evacuates shark1 and waits for the
// job to end. A fault that never fired fails the test.
func evacuateUnderFault(t *testing.T, f *Fleet, fired *atomic.Int64, inject func()) evacuate.Status {
	t.Helper()
	ctx := context.Background()
	e, err := f.NewEngine(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	inject()
	j, err := e.CreateJob(ctx, shark1, evacuate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, e, j.ID)
	if fired.Load() == 0 {
		t.Error("the fault never fired")
	}
	return st
}

// stateOr is the state a fault row wants its job to end in: state, or
// complete when the row leaves it zero.
func stateOr(state rebalancer.JobState) rebalancer.JobState {
	if state == 0 {
		return rebalancer.JobComplete
	}
	return state
}

func metadataUpdate(req moraytest.Request) bool {
	return method(req, "putObject", "manta") || req.Method == "batch"
}

// The evacuation of a shark under one fault at a time, with the real
// components: agents downloading over HTTP from mako-like file servers,
// Moray over the Fast protocol, storinfo over HTTP. Each row says what the
// job must come to: its state and its exact counts (every object either
// complete or skipped/failed for the right reason), and Verify then checks
// from scratch that metadata names only good copies: the objects still on
// the evacuated shark are exactly those the job did not complete, and
// nothing else is wrong (a bad copy a row planted itself excepted).
//
// Transient faults stop after a while (the first requests of each object,
// a short outage): retries must move everything. Permanent faults hit a
// quarter of the objects (faulted): those must end with the right skip
// reason or error, and the others must move regardless.
func TestEvacuationUnderFaults(t *testing.T) {
	const nObjects = 80
	fastBusy := func(c *Config) {
		o := FastJobOptions()
		o.BusyBackoff = evacuate.Backoff{Initial: evacuate.Duration(time.Millisecond), Max: evacuate.Duration(5 * time.Millisecond), Tries: 3}
		c.JobDefaults = &o
	}
	static := func(c *Config) { c.Source = staticObjects }
	cases := []struct {
		name string
		cfg  func(*Config)
		// inject installs the fault once the fleet is populated and the
		// engine made (its first storinfo refresh must succeed).
		inject func(t *testing.T, r *faultRun)
		// state is the job's end state (default complete).
		state rebalancer.JobState
		// faulted is "status/reason" of the faulted objects; "" means
		// they complete too.
		faulted string
		// counts, when set, are the exact counts instead.
		counts func(r *faultRun) map[string]int64
		// planted are problems the row made itself (bad source copies).
		planted ProblemKind
		// check, when set, checks more after the job; before holds the
		// copies each shark had.
		check func(t *testing.T, r *faultRun, before map[string]int)
	}{
		// Source (file server) faults: the agents' downloads.
		{
			name: "source 404",
			inject: func(t *testing.T, r *faultRun) {
				r.onSources(r.sourceFault(r.hit, answer(http.StatusNotFound)))
			},
			faulted: "skipped/source_object_not_found",
		},
		{
			name: "source 404 with another copy",
			cfg:  func(c *Config) { c.Objects.Copies = 3 },
			inject: func(t *testing.T, r *faultRun) {
				r.onSources(r.sourceFault(r.firstAskedFor, answer(http.StatusNotFound)))
			},
		},
		{
			name: "source 500 transient",
			inject: func(t *testing.T, r *faultRun) {
				r.onSources(r.sourceFault(r.first(2), answer(http.StatusInternalServerError)))
			},
		},
		{
			name: "source 500",
			inject: func(t *testing.T, r *faultRun) {
				r.onSources(r.sourceFault(r.hit, answer(http.StatusInternalServerError)))
			},
			faulted: "skipped/{http_status_code:500}",
		},
		{
			name: "source connection reset transient",
			inject: func(t *testing.T, r *faultRun) {
				r.onSources(r.sourceFault(r.first(2), reset))
			},
		},
		{
			name: "source connection reset",
			inject: func(t *testing.T, r *faultRun) {
				r.onSources(r.sourceFault(r.hit, reset))
			},
			faulted: "skipped/source_other_error",
		},
		{
			name: "source slow",
			inject: func(t *testing.T, r *faultRun) {
				r.onSources(r.sourceFault(func(*Shark, string) bool { return true }, serveSlowly(10*time.Millisecond, false)))
			},
		},
		{
			name: "source truncated body transient",
			inject: func(t *testing.T, r *faultRun) {
				r.onSources(r.sourceFault(r.first(2), serveSlowly(0, true)))
			},
		},
		{
			name: "source truncated body",
			inject: func(t *testing.T, r *faultRun) {
				r.onSources(r.sourceFault(r.hit, serveSlowly(0, true)))
			},
			faulted: "skipped/source_other_error",
		},
		{
			name:    "source copy corrupt",
			inject:  corruptFaulted,
			faulted: "skipped/md5_mismatch",
			planted: ProblemBadMD5,
		},
		{
			// The bad copy stays listed (it is not the evacuated one); the
			// good one is what moves.
			name:    "source copy corrupt with a good copy",
			cfg:     func(c *Config) { c.Objects.Copies = 3 },
			inject:  corruptFaulted,
			planted: ProblemBadMD5,
		},

		// Moray faults: the metadata updates.
		{
			name: "moray drops connections",
			cfg:  static,
			inject: func(t *testing.T, r *faultRun) {
				var n atomic.Int64
				r.f.Moray(1).SetHook(func(req moraytest.Request) moraytest.Action {
					if !metadataUpdate(req) {
						return moraytest.Action{}
					}
					if k := n.Add(1); k%4 == 1 && k < 40 {
						r.fired.Add(1)
						return moraytest.Action{Drop: true}
					}
					return moraytest.Action{}
				})
			},
		},
		{
			name: "moray slow",
			cfg:  static,
			inject: func(t *testing.T, r *faultRun) {
				r.f.Moray(1).SetHook(func(req moraytest.Request) moraytest.Action {
					if metadataUpdate(req) || method(req, "getObject", "") {
						r.fired.Add(1)
						return moraytest.Action{Delay: 20 * time.Millisecond}
					}
					return moraytest.Action{}
				})
			},
		},
		{
			name: "moray errors transient",
			cfg:  static,
			inject: func(t *testing.T, r *faultRun) {
				// Few enough that no object's retries outlast the job's
				// MetadataRetryWindow even if it meets them all.
				// The first batches fail; their objects are then updated
				// one by one, and the first of those fail too.
				r.f.Moray(1).FailNext("batch", 2, &fast.Error{Name: "NoDatabasePeersError", Message: "no manatee peers available"})
				r.f.Moray(1).FailNext("putObject", 2, &fast.Error{Name: "NoDatabasePeersError", Message: "no manatee peers available"})
				r.fired.Add(4)
			},
			check: func(t *testing.T, r *faultRun, _ map[string]int) {
				if n := r.f.Moray(1).Calls("batch"); n < 2+1 {
					t.Errorf("%d batch calls: the injected errors were not all used", n)
				}
				if n := r.f.Moray(1).Calls("putObject"); n < 2+1 {
					t.Errorf("%d putObject calls: the injected errors were not all used", n)
				}
			},
		},
		{
			name: "moray offline for a while",
			cfg:  static,
			inject: func(t *testing.T, r *faultRun) {
				m := r.f.Moray(1)
				outage := outageOnce(t, m, &r.fired)
				m.SetHook(func(req moraytest.Request) moraytest.Action {
					if !metadataUpdate(req) {
						return moraytest.Action{}
					}
					return moraytest.Action{Drop: outage()}
				})
			},
		},
		{
			name: "moray etag conflicts transient",
			cfg:  static,
			inject: func(t *testing.T, r *faultRun) {
				// Every object loses its first three races (EtagRetries):
				// the fourth try must win.
				lose := loseFirstRaces(&r.fired)
				r.f.Moray(1).ConflictStorm(func(_, key string) bool { return lose(key) })
			},
		},
		{
			name: "moray etag conflict storm",
			cfg:  static,
			inject: func(t *testing.T, r *faultRun) {
				keys := r.keys()
				r.f.Moray(1).ConflictStorm(func(bucket, key string) bool {
					if keys[key] {
						r.fired.Add(1)
					}
					return keys[key]
				})
			},
			faulted: "error/moray_etag_mismatch",
		},
		{
			// Discovery fails after its first page: the job fails, naming
			// the error, once the objects found are moved.
			name: "moray drops the discovery scan",
			cfg: func(c *Config) {
				c.Source = func(f *Fleet) (rebalancer.ObjectSource, error) {
					return &ScanSource{Shards: f.Shards(), Numbers: f.ShardNumbers(), PageSize: 50}, nil
				}
			},
			inject: func(t *testing.T, r *faultRun) {
				var n atomic.Int64
				r.f.Moray(1).SetHook(func(req moraytest.Request) moraytest.Action {
					if method(req, "findObjects", "manta") && n.Add(1) > 1 {
						r.fired.Add(1)
						return moraytest.Action{Drop: true}
					}
					return moraytest.Action{}
				})
			},
			state:  rebalancer.JobFailed,
			counts: func(*faultRun) map[string]int64 { return map[string]int64{"complete/": 50} },
		},

		// Storinfo: the placement keeps the last good snapshot.
		{
			name: "storinfo down",
			cfg:  func(c *Config) { c.StorinfoInterval = 20 * time.Millisecond },
			inject: func(t *testing.T, r *faultRun) {
				r.f.Storinfo().Intercept(func(w http.ResponseWriter, req *http.Request) bool {
					r.fired.Add(1)
					reset(nil, w, req)
					return true
				})
			},
		},
		{
			name: "storinfo errors",
			cfg:  func(c *Config) { c.StorinfoInterval = 20 * time.Millisecond },
			inject: func(t *testing.T, r *faultRun) {
				r.f.Storinfo().Intercept(func(w http.ResponseWriter, req *http.Request) bool {
					r.fired.Add(1)
					http.Error(w, `{"code":"InternalError","message":"injected"}`, http.StatusInternalServerError)
					return true
				})
			},
		},

		// Agents answering 503 (busy) to new assignments.
		{
			name: "agents busy for a while",
			inject: func(t *testing.T, r *faultRun) {
				for _, s := range r.f.Sharks() {
					var n atomic.Int64
					s.SetAgentFault(func(w http.ResponseWriter, req *http.Request) bool {
						if req.Method != http.MethodPost || n.Add(1) > 5 {
							return false
						}
						r.fired.Add(1)
						http.Error(w, "testbed: busy", http.StatusServiceUnavailable)
						return true
					})
				}
			},
		},
		{
			// One agent stays busy: its share goes to the others.
			name: "one agent busy",
			cfg:  fastBusy,
			inject: func(t *testing.T, r *faultRun) {
				r.f.Shark("2.stor.demo.example").SetAgentFault(func(w http.ResponseWriter, req *http.Request) bool {
					if req.Method != http.MethodPost {
						return false
					}
					r.fired.Add(1)
					http.Error(w, "testbed: busy", http.StatusServiceUnavailable)
					return true
				})
			},
			check: func(t *testing.T, r *faultRun, before map[string]int) {
				rep, err := r.f.Verify(context.Background(), "")
				if err != nil {
					t.Fatal(err)
				}
				if id := "2.stor.demo.example"; rep.ByShark[id] != before[id] {
					t.Errorf("%s holds %d copies, had %d: the busy agent got work", id, rep.ByShark[id], before[id])
				}
			},
		},
		{
			name: "every agent busy",
			cfg:  fastBusy,
			inject: func(t *testing.T, r *faultRun) {
				for _, s := range r.f.Sharks() {
					s.SetAgentFault(func(w http.ResponseWriter, req *http.Request) bool {
						if req.Method != http.MethodPost {
							return false
						}
						r.fired.Add(1)
						http.Error(w, "testbed: busy", http.StatusServiceUnavailable)
						return true
					})
				}
			},
			counts: func(r *faultRun) map[string]int64 { return map[string]int64{"skipped/agent_busy": int64(len(r.objs))} },
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := Config{Sharks: 5, Objects: Objects{Count: nObjects, Seed: uint64(100 + i), Pin: shark1, MaxSize: 4 << 10}}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			f := New(t, cfg)
			r := &faultRun{f: f, objs: objects(t, f), faulted: map[string]bool{}, seen: map[string]int{}, firstAsked: map[string]string{}}
			for _, o := range r.objs {
				if strings.IndexByte("0123", o.ID[0]) >= 0 {
					r.faulted[o.ID] = true
				}
			}
			if len(r.faulted) == 0 || len(r.faulted) == len(r.objs) {
				t.Fatalf("%d of %d objects faulted: pick another seed", len(r.faulted), len(r.objs))
			}
			before := map[string]int{}
			for _, o := range r.objs {
				for _, n := range o.Sharks {
					before[n.MantaStorageID]++
				}
			}
			st := evacuateUnderFault(t, f, &r.fired, func() { tc.inject(t, r) })

			wantState := stateOr(tc.state)
			if st.Job.State != wantState {
				t.Errorf("job ended %s (%s), want %s", st.Job.State, st.Job.Error, wantState)
			}
			var want map[string]int64
			switch {
			case tc.counts != nil:
				want = tc.counts(r)
			case tc.faulted != "":
				want = map[string]int64{"complete/": int64(len(r.objs) - len(r.faulted)), tc.faulted: int64(len(r.faulted))}
			default:
				want = map[string]int64{"complete/": int64(len(r.objs))}
			}
			got := jobCounts(st)
			if !maps.Equal(got, want) {
				t.Errorf("counts %v, want %v", got, want)
			}

			rep, err := f.Verify(ctx, shark1)
			if err != nil {
				t.Fatal(err)
			}
			wantProblems := map[ProblemKind]int{}
			if n := len(r.objs) - int(got["complete/"]); n > 0 {
				wantProblems[ProblemStillOnEvacuated] = n
			}
			if tc.planted != "" {
				wantProblems[tc.planted] = len(r.faulted)
			}
			if !maps.Equal(rep.Counts, wantProblems) {
				t.Errorf("verify found %v, want %v\n%v", rep.Counts, wantProblems, rep.Err())
			}
			if tc.faulted != "" {
				keys := r.keys()
				for _, p := range rep.Problems {
					if !keys[p.Key] {
						t.Errorf("problem with an object the fault did not hit: %s", p)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, r, before)
			}
		})
	}
}
