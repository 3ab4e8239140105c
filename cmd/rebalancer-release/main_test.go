package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The build itself is tested in internal/release; here, the command line.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "--manta-scripts=DIR"},
		{[]string{"--manta-scripts", "/nonexistent"}, 2, "--manta-scripts"},
		{[]string{"--bogus"}, 2, "unknown flag"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, want %d; output\n%s%s\nshould mention %q", tt.args, code, tt.code, stdout.String(), stderr.String(), tt.want)
		}
	}
}
