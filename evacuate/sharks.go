package evacuate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
	"github.com/TritonDataCenter/rebalancer/internal/suggest"
)

// SharkState is where a shark is in its lifecycle. The job store keeps it,
// so that it outlives jobs and manager restarts: a shark that was
// evacuated stays out of every placement until an operator puts it back.
type SharkState string

// The states of a shark.
const (
	// SharkInService: any job may place copies on it.
	SharkInService SharkState = "in_service"
	// SharkDraining: a job is evacuating it, or one did and ended without
	// completing (failed or stopped: what it left is still to move).
	SharkDraining SharkState = "draining"
	// SharkDrained: its evacuation completed, or an operator took it out.
	SharkDrained SharkState = "drained"
)

// SharkStatus is a shark's lifecycle state and how it got there.
//
// A shark that is draining or drained is never a destination, for any job,
// dry runs included; nor is one a running job evacuates (even a dry run's),
// nor one the configuration blocklists.
type SharkStatus struct {
	Shark      string
	Datacenter string // when known (Config.Fleet, or the job that evacuated it)
	State      SharkState
	// Job is the job that set State, when a job did; ByOperator says an
	// operator set it (SetSharkState), with Reason.
	Job        string
	ByOperator bool
	Reason     string
	// Since is when State was set; zero for a shark never taken out.
	Since time.Time
	// Running is the job evacuating the shark now, if any.
	Running string
	// Blocklisted says Config.Blocklist names it: whatever its state, it is
	// never a destination.
	Blocklisted bool
	// Listed says Config.Fleet lists it.
	Listed bool
}

// OutOfService reports whether no copy may be placed on the shark.
func (s SharkStatus) OutOfService() bool {
	return s.State != SharkInService || s.Running != "" || s.Blocklisted
}

// SharkExcluder is a rebalancer.Placement that can itself leave sharks out
// of every placement, as storinfo.Placement does. The engine gives it the
// sharks that are draining or drained, and those running jobs evacuate,
// whenever they change; any other Placement gets them in the avoid list of
// every Place call instead. Either way the engine also checks every
// destination it is given.
type SharkExcluder interface {
	// ExcludeSharks replaces the set of sharks left out of placements.
	ExcludeSharks(sharks []string)
}

// UnknownSharkError refuses a job or a state change for a storage id that
// names no storage node.
type UnknownSharkError struct {
	Shark string
	// Suggestions are the known storage ids closest to Shark, closest
	// first; maybe none.
	Suggestions []string
}

func (e *UnknownSharkError) Error() string {
	msg := "no storage node is named " + e.Shark
	switch n := len(e.Suggestions); n {
	case 0:
	case 1:
		msg += "; did you mean " + e.Suggestions[0] + "?"
	default:
		msg += "; did you mean " + strings.Join(e.Suggestions[:n-1], ", ") + " or " + e.Suggestions[n-1] + "?"
	}
	return msg
}

// Is makes the error match rebalancer.ErrSharkNotFound.
func (e *UnknownSharkError) Is(target error) bool { return target == rebalancer.ErrSharkNotFound }

// Errors of the shark states.
var (
	// ErrSharkLookup is wrapped by the error of a job create whose shark
	// could not be looked up (Config.LookupShark failed other than by not
	// finding it): the create may be tried again.
	ErrSharkLookup = errors.New("cannot look up the shark")
	// ErrInvalidSharkState refuses a state an operator cannot set.
	ErrInvalidSharkState = errors.New("invalid shark state")
)

// sharkStates is the engine's copy of the stored shark states, read from
// the store once and then changed only with it (the engine is the store's
// one writer), so that placement reads it without a query.
type sharkStates struct {
	mu   sync.Mutex // guards recs; held across a store write and the copy's change
	recs map[string]jobstore.SharkRecord
	// push serialises the exclusions handed to a SharkExcluder, so that
	// the last one handed over is the latest.
	push sync.Mutex
}

// loadStates reads the stored shark states, once.
func (e *Engine) loadStates(ctx context.Context) error {
	e.states.mu.Lock()
	loaded := e.states.recs != nil
	e.states.mu.Unlock()
	if loaded {
		return nil
	}
	recs, err := e.store.Sharks(ctx)
	if err != nil {
		return err
	}
	e.states.mu.Lock()
	if e.states.recs == nil {
		e.states.recs = make(map[string]jobstore.SharkRecord, len(recs))
		for _, r := range recs {
			e.states.recs[r.Shark] = r
		}
	}
	e.states.mu.Unlock()
	e.pushExclusions()
	return nil
}

// outOfService reports whether a stored state keeps copies off a shark.
func outOfService(r jobstore.SharkRecord) bool {
	return r.State == jobstore.SharkDraining || r.State == jobstore.SharkDrained
}

// excluded reports whether no copy of job may go to shark: it is draining
// or drained, or another running job evacuates it.
func (e *Engine) excluded(shark, job string) bool {
	if e.evacuatedByOther(shark, job) {
		return true
	}
	e.states.mu.Lock()
	defer e.states.mu.Unlock()
	return outOfService(e.states.recs[shark])
}

// exclusions returns the sharks no copy of job may go to, for a Placement
// that is not a SharkExcluder.
func (e *Engine) exclusions(job string) []string {
	out := e.evacuatedByOthers(job)
	e.states.mu.Lock()
	defer e.states.mu.Unlock()
	for shark, r := range e.states.recs {
		if outOfService(r) && !slices.Contains(out, shark) {
			out = append(out, shark)
		}
	}
	return out
}

// pushExclusions hands a SharkExcluder placement the sharks that are out
// of service now.
func (e *Engine) pushExclusions() {
	ex, ok := e.cfg.Placement.(SharkExcluder)
	if !ok {
		return
	}
	e.states.push.Lock()
	defer e.states.push.Unlock()
	e.mu.Lock()
	out := make([]string, 0, len(e.sharks))
	for shark := range e.sharks {
		out = append(out, shark)
	}
	e.mu.Unlock()
	e.states.mu.Lock()
	for shark, r := range e.states.recs {
		if outOfService(r) && !slices.Contains(out, shark) {
			out = append(out, shark)
		}
	}
	e.states.mu.Unlock()
	slices.Sort(out)
	ex.ExcludeSharks(out)
}

// setStateLocked stores a shark's state with write, which stores it with
// whatever else must change in the same transaction, and keeps the
// engine's copy. e.states.mu is held.
func (e *Engine) setStateLocked(rec jobstore.SharkRecord, write func(jobstore.SharkRecord) error) error {
	if err := write(rec); err != nil {
		return err
	}
	rec.UpdatedAt = time.Now().UnixMilli()
	e.states.recs[rec.Shark] = rec
	return nil
}

// resolveShark looks up the shark a new job evacuates (Config.LookupShark):
// an unknown one is refused with the known names closest to it.
func (e *Engine) resolveShark(ctx context.Context, shark string) (rebalancer.StorageNode, error) {
	if e.cfg.LookupShark == nil {
		return rebalancer.StorageNode{MantaStorageID: shark}, nil
	}
	node, err := e.cfg.LookupShark(ctx, shark)
	switch {
	case err == nil:
		if node.MantaStorageID == "" {
			node.MantaStorageID = shark
		}
		return node, nil
	case errors.Is(err, rebalancer.ErrSharkNotFound):
		return node, &UnknownSharkError{Shark: shark, Suggestions: e.suggestSharks(ctx, shark)}
	case ctx.Err() != nil:
		return node, ctx.Err()
	}
	return node, fmt.Errorf("%w %s: %w", ErrSharkLookup, shark, err)
}

// suggestSharks returns up to three known storage ids close to shark.
func (e *Engine) suggestSharks(ctx context.Context, shark string) []string {
	var names []string
	if e.cfg.Fleet != nil {
		nodes, err := e.cfg.Fleet(ctx)
		if err != nil {
			e.log.Warn("cannot list the fleet's sharks to suggest a name", "err", err)
		}
		for _, n := range nodes {
			names = append(names, n.MantaStorageID)
		}
	}
	e.states.mu.Lock()
	for s := range e.states.recs {
		names = append(names, s)
	}
	e.states.mu.Unlock()
	return suggest.Closest(shark, names, 3)
}

// Sharks returns the state of every shark the engine knows of: those
// Config.Fleet lists, those with a stored state, and those Config.Blocklist
// names, by storage id.
func (e *Engine) Sharks(ctx context.Context) ([]SharkStatus, error) {
	if err := e.loadStates(ctx); err != nil {
		return nil, err
	}
	byID := map[string]*SharkStatus{}
	get := func(id string) *SharkStatus {
		s := byID[id]
		if s == nil {
			s = &SharkStatus{Shark: id, State: SharkInService}
			byID[id] = s
		}
		return s
	}
	if e.cfg.Fleet != nil {
		nodes, err := e.cfg.Fleet(ctx)
		if err != nil {
			// The stored states are what matters; say what is missing.
			e.log.Warn("cannot list the fleet's sharks; listing the sharks with a state only", "err", err)
		}
		for _, n := range nodes {
			s := get(n.MantaStorageID)
			s.Listed, s.Datacenter = true, n.Datacenter
		}
	}
	e.states.mu.Lock()
	for _, r := range e.states.recs {
		e.fillStatus(get(r.Shark), r)
	}
	e.states.mu.Unlock()
	if e.cfg.Blocklist != nil {
		for _, id := range e.cfg.Blocklist() {
			get(id).Blocklisted = true
		}
	}
	e.mu.Lock()
	for shark, job := range e.sharks {
		get(shark).Running = job
	}
	e.mu.Unlock()
	out := make([]SharkStatus, 0, len(byID))
	for _, s := range byID {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b SharkStatus) int { return strings.Compare(a.Shark, b.Shark) })
	return out, nil
}

// SharkStatus returns one shark's state. A shark the engine knows nothing
// of (not in Config.Fleet, no stored state, not blocklisted) gives an
// *UnknownSharkError, unless Config.LookupShark finds it.
func (e *Engine) SharkStatus(ctx context.Context, shark string) (SharkStatus, error) {
	all, err := e.Sharks(ctx)
	if err != nil {
		return SharkStatus{}, err
	}
	for _, s := range all {
		if s.Shark == shark {
			return s, nil
		}
	}
	node, err := e.resolveShark(ctx, shark)
	if err != nil {
		return SharkStatus{}, err
	}
	return SharkStatus{Shark: shark, Datacenter: node.Datacenter, State: SharkInService}, nil
}

// fillStatus sets what a stored state says.
func (e *Engine) fillStatus(s *SharkStatus, r jobstore.SharkRecord) {
	s.State = SharkState(r.State)
	s.Job = r.JobID
	s.ByOperator = r.ChangedBy == jobstore.ByOperator
	s.Reason = r.Reason
	if r.UpdatedAt != 0 {
		s.Since = time.UnixMilli(r.UpdatedAt)
	}
}

// SetSharkState is an operator's change of a shark's state: SharkDrained
// takes it out of service (no job places copies on it), SharkInService
// puts it back. reason says why, for the record. It is refused, with an
// error wrapping ErrSharkBusy, while a job evacuates the shark: stop the
// job first (it leaves the shark draining, and an evacuation that
// completes leaves it drained by itself). A shark no one knows gives an
// *UnknownSharkError.
func (e *Engine) SetSharkState(ctx context.Context, shark string, state SharkState, reason string) (SharkStatus, error) {
	shark = strings.TrimSpace(shark)
	if state != SharkInService && state != SharkDrained {
		return SharkStatus{}, fmt.Errorf("%w %q: an operator puts a shark in service or takes it out (drained); draining is a job's", ErrInvalidSharkState, state)
	}
	cur, err := e.SharkStatus(ctx, shark)
	if err != nil {
		return SharkStatus{}, err
	}
	changed, err := e.operatorSet(ctx, &cur, state, reason)
	if err != nil {
		return SharkStatus{}, err
	}
	if changed {
		e.pushExclusions()
		e.log.Info("shark state changed by an operator", "shark", shark, "state", string(cur.State), "reason", reason)
	}
	return cur, nil
}

// operatorSet is SetSharkState's change, under e.states.mu; it reports
// whether anything changed.
func (e *Engine) operatorSet(ctx context.Context, cur *SharkStatus, state SharkState, reason string) (bool, error) {
	e.states.mu.Lock()
	defer e.states.mu.Unlock()
	e.mu.Lock()
	running := e.sharks[cur.Shark]
	e.mu.Unlock()
	if running != "" {
		what := "stop the job first (it leaves the shark draining)"
		if state == SharkDrained {
			what = "the shark is out of service already, and drained once the job completes"
		}
		return false, fmt.Errorf("shark %s: job %s is evacuating it: %s: %w", cur.Shark, running, what, ErrSharkBusy)
	}
	if _, stored := e.states.recs[cur.Shark]; !stored && state == SharkInService {
		return false, nil // never taken out: nothing to change
	}
	rec := jobstore.SharkRecord{Shark: cur.Shark, State: string(state), ChangedBy: jobstore.ByOperator, Reason: reason}
	if err := e.setStateLocked(rec, func(rec jobstore.SharkRecord) error { return e.store.SetShark(ctx, rec) }); err != nil {
		return false, err
	}
	cur.Running = ""
	e.fillStatus(cur, e.states.recs[cur.Shark])
	return true, nil
}
