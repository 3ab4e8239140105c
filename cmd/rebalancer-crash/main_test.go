package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "--agent-seeds"},
		{[]string{"--agent-seeds", "0", "--manager-seeds", "0"}, 2, "nor both zero"},
		{[]string{"--objects", "5"}, 2, "--objects"},
		{[]string{"--uploads=-1"}, 2, "--v2-objects and --uploads must not be negative"},
		{[]string{"--bogus"}, 2, "unknown flag"},
	} {
		var out, errs bytes.Buffer
		code := run(context.Background(), c.args, &out, &errs)
		if code != c.code || !strings.Contains(out.String()+errs.String(), c.want) {
			t.Errorf("%v: exit %d, output %q %q; want %d and %q", c.args, code, out.String(), errs.String(), c.code, c.want)
		}
	}
}

// A run that cannot happen (no binaries) is a failed run: a FAIL line and
// exit 1.
func TestFailedRunExits1(t *testing.T) {
	var out, errs bytes.Buffer
	code := run(context.Background(), []string{"--agent-seeds", "1", "--manager-seeds", "0", "--objects", "10", "--v2-objects", "0", "--uploads", "0",
		"--bin-dir", t.TempDir(), "--dir", t.TempDir()}, &out, &errs)
	if code != 1 || !strings.Contains(out.String(), "FAIL agent") || !strings.Contains(out.String(), "FAIL: 1 of 1 runs failed") {
		t.Fatalf("exit %d, output:\n%s%s", code, out.String(), errs.String())
	}
}
