package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// clientFor returns a Client that reaches a test agent whatever the
// destination.
func clientFor(a *testAgent) *Client {
	return &Client{BaseURL: func(rebalancer.StorageNode) string { return a.srv.URL + "/" }}
}

func TestClientAgainstServer(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	cfg := testConfig(t)
	cfg.Workers = 1
	cfg.MaxQueued = 2
	a := startAgent(t, cfg)
	c := clientFor(a)
	dest := rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: "2.stor.example.com"}

	g := newGate()
	body := content("client", 100)
	task := src.put(newID(), newID(), body)
	src.handle(task, func(w http.ResponseWriter, r *http.Request) { g.wait(r.Context()); w.Write(body) })
	first, second := newID(), newID()
	if err := c.PostAssignment(ctx, dest, rebalancer.AssignmentPayload{ID: first, Tasks: []rebalancer.Task{task}}); err != nil {
		t.Fatalf("post: %v", err)
	}
	g.arrivals(t, 1)
	if err := c.PostAssignment(ctx, dest, rebalancer.AssignmentPayload{ID: second, Tasks: []rebalancer.Task{}}); err != nil {
		t.Fatalf("post: %v", err)
	}

	err := c.PostAssignment(ctx, dest, rebalancer.AssignmentPayload{ID: newID(), Tasks: []rebalancer.Task{}})
	var se *StatusError
	if !errors.Is(err, rebalancer.ErrAgentBusy) || !errors.As(err, &se) || se.StatusCode() != 503 {
		t.Fatalf("post to a full agent: %v", err)
	}
	err = c.PostAssignment(ctx, dest, rebalancer.AssignmentPayload{ID: first, Tasks: []rebalancer.Task{task}})
	if !errors.Is(err, rebalancer.ErrAssignmentExists) {
		t.Fatalf("duplicate post: %v", err)
	}
	err = c.PostAssignment(ctx, dest, rebalancer.AssignmentPayload{ID: "bad id", Tasks: []rebalancer.Task{}})
	if !errors.As(err, &se) || se.Code != 400 || se.Err != nil || !strings.Contains(se.Body, "not a UUID") {
		t.Fatalf("invalid post: %v", err)
	}

	got, err := c.GetAssignment(ctx, dest, first)
	if err != nil || got.UUID != first || got.Stats.State.Phase != rebalancer.AssignmentRunning {
		t.Fatalf("get running: %+v %v", got, err)
	}
	if err := c.DeleteAssignment(ctx, dest, first); !errors.Is(err, ErrNotComplete) {
		t.Fatalf("delete running: %v", err)
	}
	if _, err := c.GetAssignment(ctx, dest, newID()); !errors.Is(err, rebalancer.ErrAssignmentNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	if _, err := c.GetAssignment(ctx, dest, "nope"); !errors.As(err, &se) || se.Code != 400 {
		t.Fatalf("get malformed: %v", err)
	}
	g.release()
	a.waitComplete(first)
	a.waitComplete(second)
	l, err := c.ListAssignments(ctx, dest, "", 1)
	if err != nil || len(l.Assignments) != 1 || l.Assignments[0].UUID != first || l.Next == "" {
		t.Fatalf("list: %+v %v", l, err)
	}
	l, err = c.ListAssignments(ctx, dest, l.Next, 1)
	if err != nil || len(l.Assignments) != 1 || l.Assignments[0].UUID != second {
		t.Fatalf("list page 2: %+v %v", l, err)
	}
	if err := c.DeleteAssignment(ctx, dest, first); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := c.DeleteAssignment(ctx, dest, first); !errors.Is(err, rebalancer.ErrAssignmentNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestClientToken(t *testing.T) {
	cfg := testConfig(t)
	cfg.Token = "t0k"
	a := startAgent(t, cfg)
	c := clientFor(a)
	dest := rebalancer.StorageNode{MantaStorageID: "x"}
	var se *StatusError
	err := c.PostAssignment(context.Background(), dest, rebalancer.AssignmentPayload{ID: newID(), Tasks: []rebalancer.Task{}})
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("without token: %v", err)
	}
	c = clientFor(a)
	c.Token = "t0k"
	if err := c.PostAssignment(context.Background(), dest, rebalancer.AssignmentPayload{ID: newID(), Tasks: []rebalancer.Task{}}); err != nil {
		t.Fatalf("with token: %v", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &Client{BaseURL: func(rebalancer.StorageNode) string { return "http://" + addr }}
	dest := rebalancer.StorageNode{MantaStorageID: "x"}
	ctx := context.Background()
	if err := c.PostAssignment(ctx, dest, rebalancer.AssignmentPayload{ID: newID(), Tasks: []rebalancer.Task{}}); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("post: %v", err)
	}
	if _, err := c.GetAssignment(ctx, dest, newID()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("get: %v", err)
	}
	if err := c.DeleteAssignment(ctx, dest, newID()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("delete: %v", err)
	}
}

// TestClientReplies covers replies the Go agent never gives but other
// agents might: the Dropshot port's 204 on DELETE, a 500, garbage JSON.
func TestClientReplies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		case http.MethodPost:
			http.Error(w, "cannot save", http.StatusInternalServerError)
		default:
			w.Write([]byte(`{"uuid":"x","stats":{"state":"Exploded"}}`))
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: func(rebalancer.StorageNode) string { return srv.URL }}
	ctx := context.Background()
	dest := rebalancer.StorageNode{}
	if err := c.DeleteAssignment(ctx, dest, "x"); err != nil {
		t.Fatalf("delete 204: %v", err)
	}
	var se *StatusError
	err := c.PostAssignment(ctx, dest, rebalancer.AssignmentPayload{ID: "x", Tasks: []rebalancer.Task{}})
	if !errors.As(err, &se) || se.Code != 500 || se.Body != "cannot save" || errors.Is(err, ErrUnreachable) {
		t.Fatalf("post 500: %v", err)
	}
	if _, err := c.GetAssignment(ctx, dest, "x"); err == nil || errors.Is(err, ErrUnreachable) {
		t.Fatalf("get of an unknown state: %v", err)
	}
}

func TestDefaultBaseURL(t *testing.T) {
	cases := map[string]string{
		"1.stor.us-east.joyent.us":      "http://1.stor.us-east.joyent.us:7878",
		"1.stor.us-east.joyent.us:8080": "http://1.stor.us-east.joyent.us:7878",
		"127.0.0.1":                     "http://127.0.0.1:7878",
	}
	for in, want := range cases {
		if got := DefaultBaseURL(rebalancer.StorageNode{MantaStorageID: in}); got != want {
			t.Errorf("DefaultBaseURL(%q) = %q, want %q", in, got, want)
		}
	}
	if got := PortBaseURL(9999)(rebalancer.StorageNode{MantaStorageID: "3.stor:80"}); got != "http://3.stor:9999" {
		t.Errorf("PortBaseURL = %q", got)
	}
}
