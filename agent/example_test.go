package agent_test

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/agent"
)

// An agent embedded in a program: serve its Handler, Run it, and drive it
// with a Client, as a manager does.
func Example() {
	dir, err := os.MkdirTemp("", "agent-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "manta")
	os.Mkdir(root, 0o755)

	// A shark serving one object.
	object := []byte("hello, manta\n")
	shark := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/owner-1/object-1" {
			http.NotFound(w, r)
			return
		}
		w.Write(object)
	}))
	defer shark.Close()

	s, err := agent.New(agent.Config{Root: root, DataDir: filepath.Join(dir, "data")}, nil)
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		srv.Close()
		cancel()
		<-done
		s.Close()
	}()

	c := &agent.Client{BaseURL: func(rebalancer.StorageNode) string { return srv.URL }}
	dest := rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: "2.stor.example.com"}
	sum := md5.Sum(object)
	id := "463ec933-1d31-41f9-8e76-0db3191f6346"
	err = c.PostAssignment(ctx, dest, rebalancer.AssignmentPayload{ID: id, Tasks: []rebalancer.Task{{
		ObjectID: "object-1",
		Owner:    "owner-1",
		MD5Sum:   base64.StdEncoding.EncodeToString(sum[:]),
		Source:   rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: strings.TrimPrefix(shark.URL, "http://")},
	}}})
	if err != nil {
		log.Fatal(err)
	}
	for {
		a, err := c.GetAssignment(ctx, dest, id)
		if err != nil {
			log.Fatal(err)
		}
		if a.Stats.State.Phase == rebalancer.AssignmentComplete {
			fmt.Println(a.Stats.State, a.Stats.Complete, "of", a.Stats.Total)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(root, "owner-1", "object-1"))
	fmt.Print(string(b))
	// Output:
	// Complete(0 failed) 1 of 1
	// hello, manta
}

// Errors from the client say what the agent answered.
func ExampleClient_PostAssignment() {
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "agent busy", http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	c := &agent.Client{BaseURL: func(rebalancer.StorageNode) string { return busy.URL }}
	err := c.PostAssignment(context.Background(), rebalancer.StorageNode{MantaStorageID: "2.stor.example.com"},
		rebalancer.AssignmentPayload{ID: "463ec933-1d31-41f9-8e76-0db3191f6346", Tasks: []rebalancer.Task{}})
	fmt.Println(errors.Is(err, rebalancer.ErrAgentBusy))
	// Output: true
}
