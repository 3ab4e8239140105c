package cmdline

import (
	"bytes"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func TestParse(t *testing.T) {
	type grammar struct {
		Name    string           `help:"A name." default:"x"`
		Version kong.VersionFlag `help:"Print the version."`
	}
	tests := []struct {
		name         string
		args         []string
		usageOnError bool
		ok           bool
		code         int
		wantName     string
		stdout       []string
		stderr       []string
	}{
		{name: "flags", args: []string{"--name", "y"}, ok: true, wantName: "y"},
		{name: "help", args: []string{"--help"}, stdout: []string{"A name.", "Does things."}},
		{name: "version", args: []string{"--version"}, stdout: []string{"t " + Version()}},
		{name: "usage error", args: []string{"--bogus"}, code: 2, stderr: []string{"t: unknown flag --bogus\n"}},
		{name: "usage error with usage", args: []string{"--bogus"}, usageOnError: true, code: 2,
			stderr: []string{"t: error: unknown flag --bogus\n", "Usage: t [flags]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g grammar
			var out, errs bytes.Buffer
			c := Command{Name: "t", Description: "Does things.", Stdout: &out, Stderr: &errs, UsageOnError: tt.usageOnError}
			kctx, code, ok := c.Parse(&g, tt.args)
			if ok != tt.ok || code != tt.code || (kctx != nil) != tt.ok {
				t.Fatalf("Parse(%v) = %v, %d, %v; want ok %v, code %d", tt.args, kctx, code, ok, tt.ok, tt.code)
			}
			if tt.ok && g.Name != tt.wantName {
				t.Errorf("name %q, want %q", g.Name, tt.wantName)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout %q, want %q in it", out.String(), w)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(errs.String(), w) {
					t.Errorf("stderr %q, want %q in it", errs.String(), w)
				}
			}
			if len(tt.stderr) == 0 && errs.Len() > 0 {
				t.Errorf("stderr %q, want nothing", errs.String())
			}
		})
	}
}

// A grammar kong refuses is the program's mistake: a message and status 2,
// never a panic.
func TestParseBadGrammar(t *testing.T) {
	var errs bytes.Buffer
	var bad struct {
		A string `short:"x"`
		B string `short:"x"`
	}
	_, code, ok := Command{Name: "t", Stdout: &errs, Stderr: &errs}.Parse(&bad, nil)
	if ok || code != 2 || !strings.HasPrefix(errs.String(), "t: ") {
		t.Errorf("Parse = %d %v, stderr %q; want 2 and a message", code, ok, errs.String())
	}
}
