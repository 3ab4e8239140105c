package rebalancertest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// AgentHarness is an Agent under test, with a source of objects to copy.
type AgentHarness struct {
	// Agent is the implementation under test.
	Agent rebalancer.Agent
	// Dest is the destination shark the suite posts assignments to.
	Dest rebalancer.StorageNode
	// Serve makes body downloadable as the v1 object owner/objectID (GET
	// /{owner}/{objectID} on the returned shark, which tasks name as their
	// source) and returns that shark. Required.
	Serve func(owner, objectID string, body []byte) rebalancer.StorageNode
	// Copy, when set, reads the copy of owner/objectID the agent wrote on
	// Dest: tasks reported complete must have their bytes there.
	Copy func(owner, objectID string) ([]byte, error)
	// Stall, when set, makes downloads from Serve's sharks hang until
	// release is called. With Capacity, it unlocks the busy check.
	Stall func() (release func())
	// Capacity is how many scheduled and running assignments the agent
	// holds before it answers busy (0: unknown, and the check is skipped).
	Capacity int
}

// TestAgent checks a rebalancer.Agent against the interface's contract.
// newAgent returns an agent and a source of objects; it is called once per
// check.
//
// The checks, each a subtest:
//
//   - a posted assignment is reported under its id, with failed <= complete
//     <= total (complete counts processed tasks, failed ones included),
//     until every task is processed; then as complete with every task
//     counted: the copied ones (whose bytes, given Copy, are on Dest) and
//     the failed ones (a source without the object, an MD5 that does not
//     match), each failed task listed with a valid reason; an empty
//     assignment completes too;
//   - posting an id the agent has gives an error wrapping
//     ErrAssignmentExists; reading an unknown id, ErrAssignmentNotFound;
//   - a deleted assignment is forgotten: reading it gives
//     ErrAssignmentNotFound;
//   - given Stall and Capacity, a full agent refuses more with an error
//     wrapping ErrAgentBusy, keeps nothing of what it refused, and takes
//     assignments again once it has room.
//
// Use it from the implementation's tests:
//
//	func TestConformance(t *testing.T) {
//		rebalancertest.TestAgent(t, func(t *testing.T) rebalancertest.AgentHarness {
//			src := startTestShark(t) // serves /{owner}/{object}
//			agent := startTestAgent(t)
//			return rebalancertest.AgentHarness{Agent: NewClient(agent.URL), Dest: agent.Node(),
//				Serve: src.Put, Copy: agent.ReadObject}
//		})
//	}
func TestAgent(t *testing.T, newAgent func(t *testing.T) AgentHarness) {
	ctx := context.Background()
	start := func(t *testing.T) AgentHarness {
		t.Helper()
		h := newAgent(t)
		if h.Agent == nil || h.Serve == nil {
			t.Fatal("the harness needs an Agent and Serve")
		}
		return h
	}
	type served struct {
		task rebalancer.Task
		body []byte
	}
	serve := func(h AgentHarness, i int) served {
		body := fmt.Appendf(nil, "object %d of the agent conformance suite\n", i)
		body = bytes.Repeat(body, i+1)
		id := uuid.NewString()
		src := h.Serve(Owner, id, body)
		return served{task: rebalancer.Task{ObjectID: id, Owner: Owner, MD5Sum: md5sum(body), Source: src}, body: body}
	}
	post := func(t *testing.T, h AgentHarness, tasks ...rebalancer.Task) string {
		t.Helper()
		id := uuid.NewString()
		if tasks == nil {
			tasks = []rebalancer.Task{}
		}
		if err := h.Agent.PostAssignment(ctx, h.Dest, rebalancer.AssignmentPayload{ID: id, Tasks: tasks}); err != nil {
			t.Fatalf("PostAssignment(%s): %v", id, err)
		}
		return id
	}
	complete := func(t *testing.T, h AgentHarness, id string) rebalancer.Assignment {
		t.Helper()
		var a rebalancer.Assignment
		testutil.Poll(t, "assignment "+id+" to complete", func() error {
			var err error
			a, err = h.Agent.GetAssignment(ctx, h.Dest, id)
			switch {
			case err != nil:
				return err
			case a.UUID != id:
				t.Fatalf("GetAssignment(%s) answered about %q", id, a.UUID)
			case a.Stats.Failed < 0 || a.Stats.Failed > a.Stats.Complete || a.Stats.Complete > a.Stats.Total:
				t.Fatalf("GetAssignment(%s): failed %d, complete %d, total %d; want failed <= complete <= total",
					id, a.Stats.Failed, a.Stats.Complete, a.Stats.Total)
			case a.Stats.State.Phase != rebalancer.AssignmentComplete:
				return fmt.Errorf("state %v, %d of %d tasks processed", a.Stats.State, a.Stats.Complete+a.Stats.Failed, a.Stats.Total)
			}
			return nil
		})
		return a
	}

	t.Run("every task is reported", func(t *testing.T) {
		h := start(t)
		var good []served
		for i := range 3 {
			good = append(good, serve(h, i))
		}
		missing := good[0].task
		missing.ObjectID = uuid.NewString() // the source has no such object
		corrupt := serve(h, 3)
		corrupt.task.MD5Sum = md5sum([]byte("other bytes"))
		tasks := []rebalancer.Task{good[0].task, missing, good[1].task, corrupt.task, good[2].task}
		id := post(t, h, tasks...)

		a := complete(t, h, id)
		if a.Stats.Total != 5 || a.Stats.Complete != 5 || a.Stats.Failed != 2 {
			t.Errorf("assignment %s: total %d, complete %d, failed %d; want 5, 5 (processed, failed included) and 2",
				id, a.Stats.Total, a.Stats.Complete, a.Stats.Failed)
		}
		var failed []string
		for _, f := range a.Stats.State.Failed {
			failed = append(failed, f.ObjectID)
			if f.Status.State != rebalancer.TaskFailed || !f.Status.Reason.Valid() {
				t.Errorf("failed task %s has status %v, want Failed with a valid reason", f.ObjectID, f.Status)
			}
		}
		slices.Sort(failed)
		want := []string{missing.ObjectID, corrupt.task.ObjectID}
		slices.Sort(want)
		if !slices.Equal(failed, want) {
			t.Errorf("failed tasks %v, want %v (the missing and the corrupt object)", failed, want)
		}
		if h.Copy != nil {
			for _, s := range good {
				b, err := h.Copy(s.task.Owner, s.task.ObjectID)
				if err != nil || !bytes.Equal(b, s.body) {
					t.Errorf("copy of %s on %s: %d bytes, %v; want the %d bytes served", s.task.ObjectID, h.Dest, len(b), err, len(s.body))
				}
			}
		}

		empty := post(t, h)
		if a := complete(t, h, empty); a.Stats.Total != 0 || a.Stats.Failed != 0 {
			t.Errorf("empty assignment %s: %+v", empty, a.Stats)
		}
	})

	t.Run("known ids exist, unknown ones are not found", func(t *testing.T) {
		h := start(t)
		s := serve(h, 0)
		id := post(t, h, s.task)
		complete(t, h, id)
		err := h.Agent.PostAssignment(ctx, h.Dest, rebalancer.AssignmentPayload{ID: id, Tasks: []rebalancer.Task{s.task}})
		if !errors.Is(err, rebalancer.ErrAssignmentExists) {
			t.Errorf("posting id %s again = %v, want ErrAssignmentExists", id, err)
		}
		unknown := uuid.NewString()
		if _, err := h.Agent.GetAssignment(ctx, h.Dest, unknown); !errors.Is(err, rebalancer.ErrAssignmentNotFound) {
			t.Errorf("GetAssignment of an unknown id = %v, want ErrAssignmentNotFound", err)
		}
	})

	t.Run("a deleted assignment is forgotten", func(t *testing.T) {
		h := start(t)
		id := post(t, h, serve(h, 0).task)
		complete(t, h, id)
		if err := h.Agent.DeleteAssignment(ctx, h.Dest, id); err != nil {
			t.Fatalf("DeleteAssignment of a completed assignment: %v", err)
		}
		if _, err := h.Agent.GetAssignment(ctx, h.Dest, id); !errors.Is(err, rebalancer.ErrAssignmentNotFound) {
			t.Errorf("GetAssignment after DeleteAssignment = %v, want ErrAssignmentNotFound", err)
		}
	})

	t.Run("a full agent is busy", func(t *testing.T) {
		h := start(t)
		if h.Stall == nil || h.Capacity <= 0 {
			t.Skip("the harness has no Stall and Capacity")
		}
		release := h.Stall()
		released := false
		defer func() {
			if !released {
				release()
			}
		}()
		var ids []string
		for i := range h.Capacity {
			ids = append(ids, post(t, h, serve(h, i).task))
		}
		refused := uuid.NewString()
		err := h.Agent.PostAssignment(ctx, h.Dest, rebalancer.AssignmentPayload{ID: refused, Tasks: []rebalancer.Task{serve(h, 0).task}})
		if !errors.Is(err, rebalancer.ErrAgentBusy) {
			t.Errorf("posting to an agent holding %d assignments = %v, want ErrAgentBusy", h.Capacity, err)
		}
		if _, err := h.Agent.GetAssignment(ctx, h.Dest, refused); !errors.Is(err, rebalancer.ErrAssignmentNotFound) {
			t.Errorf("GetAssignment of the refused assignment = %v, want ErrAssignmentNotFound", err)
		}
		release()
		released = true
		for _, id := range ids {
			if a := complete(t, h, id); a.Stats.Complete != 1 {
				t.Errorf("assignment %s, stalled then released: %+v", id, a.Stats)
			}
		}
		complete(t, h, post(t, h, serve(h, 1).task))
	})
}

func md5sum(b []byte) string {
	sum := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}
