package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

var updateReference = flag.Bool("update", false, "rewrite docs/rebalancer-adm.md from the commands' --help")

// commandPaths lists every command that runs something (those without
// subcommands), as the words that name it, in the order --help lists them.
func commandPaths(t *testing.T) [][]string {
	t.Helper()
	k, err := kong.New(&cli{}, kong.Name("rebalancer-adm"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	var walk func(n *kong.Node, path []string)
	walk = func(n *kong.Node, path []string) {
		sub := false
		for _, c := range n.Children {
			if c.Type == kong.CommandNode && !c.Hidden {
				sub = true
				walk(c, append(append([]string(nil), path...), c.Name))
			}
		}
		if !sub && len(path) > 0 {
			out = append(out, path)
		}
	}
	walk(k.Model.Node, nil)
	return out
}

// reference renders the reference of every command: its --help, as the
// command prints it.
func reference(t *testing.T) []byte {
	t.Helper()
	var doc bytes.Buffer
	doc.WriteString(`# rebalancer-adm reference

<!-- Generated from the commands' --help by
     go test ./cmd/rebalancer-adm/ -run TestReferenceDoc -update
     TestReferenceDoc fails when this file and the commands disagree. -->

` + "`rebalancer-adm`" + ` drives a rebalancer manager's job API: evacuation jobs and the sharks'
states. Every command takes the global flags of ` + "`rebalancer-adm --help`" + ` (` + "`--manager`" + `, ` + "`--token`" + `,
` + "`--timeout`" + `, ` + "`--legacy-output`" + `). Exit status: 0 done; 1 the manager refused or could not be
reached (the message says what to do); 2 a usage error; 3 ` + "`shark check`" + `: not safe to retire;
130 interrupted. The [README](../README.md) shows them at work, [api.md](api.md) the API beneath.

`)
	paths := append([][]string{nil}, commandPaths(t)...)
	for _, p := range paths {
		var stdout, stderr bytes.Buffer
		args := append(append([]string(nil), p...), "--help")
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("rebalancer-adm %s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
		}
		title := strings.TrimSpace("rebalancer-adm " + strings.Join(p, " "))
		fmt.Fprintf(&doc, "## %s\n\n```text\n%s```\n\n", title, stdout.String())
	}
	return bytes.TrimRight(doc.Bytes(), "\n")
}

// The reference in docs/ is what the commands' --help says, for every
// command: an operator reads the manual without a manager at hand, and
// the two never drift apart.
func TestReferenceDoc(t *testing.T) {
	const path = "../../docs/rebalancer-adm.md"
	got := append(reference(t), '\n')
	if *updateReference {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (write it with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/rebalancer-adm.md differs from the commands' --help: run go test ./cmd/rebalancer-adm/ -run TestReferenceDoc -update")
	}
	if paths := commandPaths(t); len(paths) < 10 {
		t.Errorf("only %d commands found: %v", len(paths), paths)
	}
}
