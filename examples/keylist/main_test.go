package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
)

func TestKeyList(t *testing.T) {
	const shark = "1.stor.demo.example"
	f := testbed.New(t, testbed.Config{Sharks: 4, Shards: 2, Objects: testbed.Objects{Count: 60, Pin: shark}})
	ctx := context.Background()

	// List every third object on the shark, plus one that is not on it.
	var lines []string
	listed := map[string]bool{}
	i := 0
	err := f.ScanSource().Discover(ctx, rebalancer.DiscoverRequest{Shark: shark}, func(o rebalancer.Object) error {
		if i%3 == 0 {
			lines = append(lines, fmt.Sprintf("%d %s", o.Shard, o.Key))
			listed[o.Key] = true
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "keys.txt")
	body := "# objects to move\n" + strings.Join(lines, "\n") + "\n\n"
	if err := os.WriteFile(keys, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}

	st, err := Run(ctx, Options{Moray: f.Shards(), Storinfo: f.StorinfoURL(), Agents: f.AgentClient(), Shark: shark,
		Keys: keys, Database: filepath.Join(t.TempDir(), "jobs.db"), Log: f.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if done, _ := st.Total(rebalancer.ObjectComplete); st.Job.State != rebalancer.JobComplete || done != int64(len(lines)) {
		t.Fatalf("job %s with %d complete, want complete with %d: %+v", st.Job.State, done, len(lines), st.Counts)
	}

	// The listed objects moved, with verified copies; the others stayed.
	rep, err := f.Verify(ctx, shark)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.Counts[testbed.ProblemStillOnEvacuated], i-len(lines); got != want || len(rep.Counts) != 1 {
		t.Fatalf("problems %v, want only %d still on %s:\n%s", rep.Counts, want, shark, rep)
	}
	for _, p := range rep.Problems {
		if listed[p.Key] {
			t.Errorf("listed object %s is still on %s", p.Key, shark)
		}
	}
}

func TestKeyListBadLine(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(keys, []byte("1 /a/stor/x\nnot-a-shard /a/stor/y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := KeyListSource{Path: keys, Metadata: nil}
	err := src.Discover(context.Background(), rebalancer.DiscoverRequest{Shark: "s", After: map[int]int64{1: 1}},
		func(rebalancer.Object) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `keys.txt:2: want "SHARD KEY"`) {
		t.Errorf("got %v", err)
	}
}
