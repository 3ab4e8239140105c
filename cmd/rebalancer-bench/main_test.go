package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

// The rss bench runs this binary as a child; under go test that binary is
// the test binary, so it must behave as the command when asked to.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "--rss-child" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	pgtest.Main(m)
}

// A quick run of every bench produces every figure, with positive values
// and baselines where they are promised. Whether targets are met is not
// checked: figures are for the bench command, not for assertions. (The
// full bench is `go run ./cmd/rebalancer-bench`.)
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every bench at a tiny size; skipped with -short")
	}
	var stdout, stderr bytes.Buffer
	args := []string{"--quick", "--json", "--dir", t.TempDir(), "--rss-sizes", "200,600", "--postgres", pgtest.NewDatabase(t)}
	code := run(context.Background(), args, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	want := map[string]bool{ // bench/figure -> has a baseline
		"agent/copy rate, 16 MiB objects":                    true,
		"agent/copy rate, 4 KiB objects":                     true,
		"e2e/evacuation, 4 KiB objects":                      false,
		"e2e/time to first copied object, 4 KiB objects":     false,
		"e2e/time to first copied object, 16 MiB objects":    false,
		"e2e/evacuation, 16 MiB objects":                     false,
		"discovery/direct-PostgreSQL scan":                   true,
		"discovery/direct-PostgreSQL scan, every row parsed": true,
		"moray/getObject, one at a time":                     true,
		"moray/getObject allocations":                        true,
		"rss/manager peak RSS, 600 objects":                  true,
		"rss/job store size, 600 objects":                    true,
	}
	dec := json.NewDecoder(&stdout)
	seen := map[string]bool{}
	for dec.More() {
		var f Figure
		if err := dec.Decode(&f); err != nil {
			t.Fatal(err)
		}
		name := f.Bench + "/" + f.Name
		seen[name] = true
		if f.Value <= 0 {
			t.Errorf("%s: value %v", name, f.Value)
		}
		if baseline, ok := want[name]; ok && baseline && (f.Base <= 0 || f.Baseline == "") {
			t.Errorf("%s: no baseline: %+v", name, f)
		}
		if f.Target != "" && f.Met == nil {
			t.Errorf("%s: target %q without a verdict", name, f.Target)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no figure %q", name)
		}
	}
}

// The components' logs are bunyan records on standard error, among the
// progress lines meant for people.
func TestLogs(t *testing.T) {
	var stdout bytes.Buffer
	stderr := &lockedBuffer{} // Moray's connections may log as they close, after run
	code := run(context.Background(), []string{"--quick", "--only", "moray", "--log-level", "debug", "--dir", t.TempDir()}, &stdout, stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	var records strings.Builder
	for line := range strings.Lines(stderr.String()) {
		if strings.HasPrefix(line, "{") {
			records.WriteString(line)
		}
	}
	recs, err := logging.Check(strings.NewReader(records.String()))
	if err != nil {
		t.Errorf("logs on stderr are not bunyan records: %v", err)
	}
	if len(recs) == 0 || recs[0].Name != "rebalancer-bench" {
		t.Errorf("records %+v; stderr:\n%s", recs, stderr.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--help"}, 0, "--quick"},
		{[]string{"--only", "nosuch"}, 2, `unknown bench "nosuch"`},
		{[]string{"--bogus"}, 2, "unknown flag"},
		{[]string{"--objects=-5"}, 2, "--objects must be positive"},
		{[]string{"--only", "rss", "--objects", "50000", "--dir", t.TempDir()}, 1, "must be larger than the small one"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.out) {
			t.Errorf("%v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", tt.args, code, tt.code, tt.out, &stdout, &stderr)
		}
	}
}
