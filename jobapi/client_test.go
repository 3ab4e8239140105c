package jobapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
)

// Every route through the Client, against the Server.
func TestClient(t *testing.T) {
	h := newHarness(t, 40)
	ctx := context.Background()
	c := h.client
	h.agents.SetSlow(true)

	max := int64(30)
	id, err := c.CreateJob(ctx, CreateParams{FromShark: "1.stor", MaxObjects: &max, Options: []byte(`{"metadata_threads":4}`)})
	if err != nil {
		t.Fatal(err)
	}
	h.running(id)
	jobs, err := c.Jobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].ID != id || jobs[0].State != rebalancer.JobRunning ||
		jobs[0].FromShark != fakes.Shark(1) || jobs[0].Created == "" {
		t.Fatalf("Jobs = %+v, %v", jobs, err)
	}
	if err := c.PauseJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.SetMetadataThreads(ctx, id, 7); err != nil {
		t.Fatal(err)
	}
	st, err := c.JobStatus(ctx, id)
	if err != nil || st.State != rebalancer.JobPaused || st.ID != id || st.Options.MetadataThreads != 7 || st.Options.MaxObjects != 30 {
		t.Fatalf("JobStatus = %+v, %v", st, err)
	}
	if err := c.ResumeJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.StopJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	h.agents.SetSlow(false)
	h.wait(id)
	st, err = c.JobStatus(ctx, id)
	if err != nil || st.State != rebalancer.JobStopped || st.Results.Total != st.Progress.Objects {
		t.Fatalf("JobStatus of the stopped job = %+v, %v", st, err)
	}
	done, err := c.Objects(ctx, id, ObjectQuery{Status: rebalancer.ObjectComplete, Limit: 5})
	if err != nil || len(done) > 5 || int64(len(done)) != min(5, st.Results.Complete) {
		t.Fatalf("Objects = %d objects, %v; %d complete", len(done), err, st.Results.Complete)
	}
	for _, o := range done {
		if o.Status != "complete" || o.DestShark == "" {
			t.Errorf("complete object %+v", o)
		}
	}
	retry, err := c.RetryJob(ctx, id)
	if err != nil || retry == id {
		t.Fatalf("RetryJob = %q, %v", retry, err)
	}
	if j := h.wait(retry); j.State != rebalancer.JobComplete || j.RetryOf != id {
		t.Errorf("retry job %+v", j)
	}

	unknown := uuid.NewString()
	var e *Error
	if _, err := c.JobStatus(ctx, unknown); !errors.As(err, &e) || e.Code != http.StatusNotFound ||
		err.Error() != "GET /jobs/"+unknown+": 404 Not Found: Could not find job UUID: "+unknown {
		t.Errorf("JobStatus of an unknown job = %v", err)
	}
	if err := c.SetMetadataThreads(ctx, id, 3); !errors.As(err, &e) || e.Code != http.StatusBadRequest {
		t.Errorf("SetMetadataThreads of a stopped job = %v", err)
	}
}

func TestNewClient(t *testing.T) {
	for _, tt := range []struct {
		in, base string
	}{
		{"localhost", "http://localhost"},
		{"127.0.0.1:8080/", "http://127.0.0.1:8080"},
		{"https://m.example/api/", "https://m.example/api"},
		{"ftp://x", ""},
		{"http://", ""},
	} {
		c, err := NewClient(tt.in)
		switch {
		case tt.base == "" && (err == nil || !strings.Contains(err.Error(), "is not an http(s) URL")):
			t.Errorf("NewClient(%q) = %v, want an error", tt.in, err)
		case tt.base != "" && (err != nil || c.base != tt.base):
			t.Errorf("NewClient(%q) = %+v, %v; want base %s", tt.in, c, err, tt.base)
		}
	}
	// A request that gets no reply says which.
	c, _ := NewClient("127.0.0.1:1")
	if _, err := c.Jobs(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "GET /jobs: dial tcp 127.0.0.1:1: connect:") {
		t.Errorf("Jobs from nowhere = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Jobs(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Jobs with a cancelled context = %v", err)
	}
}
