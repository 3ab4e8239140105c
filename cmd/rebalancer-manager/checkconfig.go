package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/alecthomas/kong"

	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
)

// checkConfigCommand is the first argument that runs check-config instead
// of the manager.
const checkConfigCommand = "check-config"

type checkCLI struct {
	File string `arg:"" optional:"" default:"${default_config}" help:"The config file to check (${default})." placeholder:"FILE"`
}

// checkConfig is "rebalancer-manager check-config [FILE]": it reads the
// file as the manager would, prints the configuration it would run with
// and every problem, and exits 0 when there is none, 1 when there is one
// (an unknown key included), 2 for a usage error. Nothing is started or
// contacted.
func checkConfig(args []string, stdout, stderr io.Writer) int {
	var c checkCLI
	if _, code, ok := (cmdline.Command{
		Name: "rebalancer-manager check-config",
		Description: "Checks a rebalancer-manager config file without starting anything: prints the configuration " +
			"the manager would run with (defaults filled in; \"*\" marks a value that is not the default, which follows in brackets) " +
			"and every problem: invalid values, and unknown keys with the key most likely meant (the manager ignores " +
			"unknown keys with a warning, or refuses them with --strict). Exit status: 0 without problems, 1 with problems, 2 for a usage error.",
		Stdout:  stdout,
		Stderr:  stderr,
		Options: []kong.Option{kong.Vars{"default_config": DefaultConfigFile}},
	}).Parse(&c, args); !ok {
		return code
	}

	var (
		cfg      *manager.Config
		problems []string
	)
	b, err := os.ReadFile(c.File)
	if err != nil {
		problems = []string{err.Error() + configHint(err)}
	} else {
		cfg, problems = manager.CheckConfig(b)
	}
	if cfg != nil {
		fmt.Fprintf(stdout, "%s, as rebalancer-manager would run with it (\"*\": not the default, which follows in brackets):\n", c.File)
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		for _, s := range cfg.Settings() {
			switch {
			case s.IsDefault():
				fmt.Fprintf(tw, "    %s\t%s\n", s.Key, s.Value)
			case s.Default == "":
				fmt.Fprintf(tw, "  * %s\t%s\n", s.Key, s.Value)
			default:
				fmt.Fprintf(tw, "  * %s\t%s\t[%s]\n", s.Key, s.Value, s.Default)
			}
		}
		tw.Flush()
	}
	if len(problems) == 0 {
		fmt.Fprintln(stdout, "OK: no problems.")
		return 0
	}
	fmt.Fprintf(stdout, "%d problem(s) in %s:\n", len(problems), c.File)
	for _, p := range problems {
		fmt.Fprintln(stdout, "  "+p)
	}
	return 1
}
