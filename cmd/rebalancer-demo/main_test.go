package main

import (
	"context"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func runDemo(t *testing.T, h hooks, args ...string) (int, string) {
	t.Helper()
	var out, errOut testutil.Buffer
	code := run(context.Background(), args, &out, &errOut, h)
	return code, out.String() + errOut.String()
}

// The demo as CI runs it: a small evacuation, verified.
func TestDemo(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		contains []string
	}{
		{"clean", []string{"--objects", "300"}, []string{"0 not final", "agents download only from: .stor.demo.example"}},
		{"faults", []string{"--objects", "400", "--dead-source", "2.stor.demo.example", "--corrupt", "2", "--etag-conflicts", "3"},
			[]string{"md5_mismatch: 2", "could not be moved and are reported as such", "conflicts 3, kept 3, moved 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runDemo(t, hooks{}, tt.args...)
			if code != 0 || !strings.HasPrefix(lastLine(out), "PASS: ") {
				t.Fatalf("exit %d, output:\n%s", code, out)
			}
			for _, want := range tt.contains {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// Damage the verification must catch: a copy the metadata names is
// corrupted after the job, as a rebalancer that skipped the MD5 check would
// have left it.
func TestDemoCatchesDamage(t *testing.T) {
	damage := func(ctx context.Context, f *testbed.Fleet) error {
		var victim *rebalancer.Object
		err := f.ScanSource().Discover(ctx, rebalancer.DiscoverRequest{Shark: "3.stor.demo.example"}, func(o rebalancer.Object) error {
			if victim == nil {
				victim = &o
			}
			return nil
		})
		if err != nil || victim == nil {
			t.Fatalf("no object on shark 3: %v", err)
		}
		return f.Shark("3.stor.demo.example").Corrupt(victim.Owner, victim.ID)
	}
	code, out := runDemo(t, hooks{afterJob: damage}, "--objects", "200")
	if code != 1 || !strings.HasPrefix(lastLine(out), "FAIL: no copy with a wrong MD5") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}

func TestDemoFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "--dead-source"},
		{[]string{"--objects", "0"}, 2, "--objects must be positive"},
		{[]string{"--copies", "6"}, 2, "--copies must be in 1..5"},
		{[]string{"--min-size", "1MiB", "--max-size", "4KiB"}, 2, "is below --min-size"},
		{[]string{"--min-size", "lots"}, 2, "--min-size"},
		{[]string{"--dead-source", "1.stor.demo.example"}, 2, "must differ from --evacuate"},
		{[]string{"--objects", "10", "--evacuate", "9.stor.demo.example"}, 1, "no shark 9.stor.demo.example"},
		{[]string{"--objects", "10", "--corrupt", "50"}, 1, "need that many objects"},
	}
	for _, tt := range tests {
		code, out := runDemo(t, hooks{}, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q; output:\n%s", tt.args, code, tt.code, tt.want, out)
		}
	}
}
