package cmdline

import (
	"bytes"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func TestParse(t *testing.T) {
	var c struct {
		Name    string           `help:"A name." default:"x"`
		Version kong.VersionFlag `help:"Print the version."`
	}
	tests := []struct {
		args     []string
		exited   bool
		code     int
		wantErr  bool
		wantName string
		out      string
	}{
		{args: []string{"--name", "y"}, wantName: "y"},
		{args: []string{"--help"}, exited: true, code: 0, out: "A name."},
		{args: []string{"--version"}, exited: true, code: 0, out: "v1.2"},
		{args: []string{"--bogus"}, wantErr: true},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		p, err := New(&c, kong.Name("t"), kong.Writers(&out, &out), kong.Vars{"version": "v1.2"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Parse(tt.args)
		code, exited := Exited(err)
		switch {
		case exited != tt.exited || code != tt.code:
			t.Errorf("%v: exited %v with %d (err %v), want %v with %d", tt.args, exited, code, err, tt.exited, tt.code)
		case tt.wantErr && (err == nil || exited):
			t.Errorf("%v: err %v, want a parse error", tt.args, err)
		case !tt.wantErr && !tt.exited && (err != nil || c.Name != tt.wantName):
			t.Errorf("%v: err %v, name %q, want %q", tt.args, err, c.Name, tt.wantName)
		case !strings.Contains(out.String(), tt.out):
			t.Errorf("%v: output %q, want %q in it", tt.args, out.String(), tt.out)
		}
	}
}
