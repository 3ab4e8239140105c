// Package cmdline is how the module's commands read their command lines:
// Command.Parse parses flags with kong without letting kong exit the
// process, prints --help, --version and usage errors the same way for
// every command, and hands back the exit status, so that each command's
// run function returns its status and can be tested in-process. Version
// says which build is running. Serve runs a daemon's HTTP servers beside
// its main work, and stops them first when it ends.
package cmdline

import (
	"errors"
	"fmt"
	"io"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"
)

// Command is a command's command line.
type Command struct {
	// Name is the command's name, which starts its messages and its
	// --version line ("rebalancer-adm").
	Name string
	// Description is the first paragraph of --help.
	Description string
	// Stdout receives --help and --version, Stderr usage errors.
	Stdout, Stderr io.Writer
	// UsageOnError prints, after a usage error, the usage of the command
	// or subcommand that was being parsed, and writes the error as
	// "name: error: ...", as the legacy rebalancer-adm (clap) does.
	// Otherwise the error alone is written, as "name: ...".
	UsageOnError bool
	// Options are further kong options (help layout, interpolated
	// variables). The variable "version" is set to the name and Version.
	Options []kong.Option
	// Completion answers a shell's completion request (the COMP_LINE
	// that bash's "complete -C" sets) with the commands and flags that
	// fit, and exits 0 (github.com/willabides/kongplete); Predictors
	// complete the values of flags and arguments tagged predictor:"name".
	Completion bool
	Predictors map[string]complete.Predictor
}

// Parse parses args into grammar, a kong grammar struct. When the command
// should go on, it returns the parsed context and ok true. Otherwise the
// command should return code at once: 0 after --help or --version (printed
// to Stdout), 2 after a usage error (printed to Stderr).
func (c Command) Parse(grammar any, args []string) (kctx *kong.Context, code int, ok bool) {
	opts := append([]kong.Option{
		kong.Name(c.Name),
		kong.Description(c.Description),
		kong.Writers(c.Stdout, c.Stderr),
		kong.Vars{"version": c.Name + " " + Version()},
	}, c.Options...)
	p, err := newParser(grammar, opts...)
	if err != nil {
		fmt.Fprintf(c.Stderr, "%s: %v\n", c.Name, err)
		return nil, 2, false
	}
	if c.Completion {
		if code, exited := exitCode(p.complete(c.Predictors)); exited {
			return nil, code, false
		}
	}
	kctx, err = p.parse(args)
	if code, exited := exitCode(err); exited {
		return nil, code, false
	}
	if err != nil {
		if !c.UsageOnError {
			fmt.Fprintf(c.Stderr, "%s: %v\n", c.Name, err)
			return nil, 2, false
		}
		fmt.Fprintf(c.Stderr, "%s: error: %v\n", c.Name, err)
		var perr *kong.ParseError
		if errors.As(err, &perr) && perr.Context != nil {
			p.Stdout = c.Stderr
			perr.Context.PrintUsage(false)
		}
		return nil, 2, false
	}
	return kctx, 0, true
}

// exitError is returned by parse when kong asked to exit, after printing
// --help or --version.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// exitCode reports whether err is an exitError, and its code.
func exitCode(err error) (code int, ok bool) {
	var e *exitError
	if errors.As(err, &e) {
		return e.code, true
	}
	return 0, false
}

// parser is a kong parser whose exits come back from parse as exitErrors.
type parser struct{ *kong.Kong }

// exit carries kong's requested exit out of its Parse, which has no other
// way to stop.
type exit int

// newParser is kong.New with kong's exits captured (a kong.Exit among
// options is overridden).
func newParser(grammar any, options ...kong.Option) (*parser, error) {
	k, err := kong.New(grammar, append(options, kong.Exit(func(code int) { panic(exit(code)) }))...)
	if err != nil {
		return nil, err
	}
	return &parser{k}, nil
}

// complete answers a completion request, if there is one, with an
// exitError.
func (p *parser) complete(predictors map[string]complete.Predictor) (err error) {
	defer func() {
		if r := recover(); r != nil {
			code, ok := r.(exit)
			if !ok {
				panic(r)
			}
			err = &exitError{code: int(code)}
		}
	}()
	kongplete.Complete(p.Kong, kongplete.WithPredictors(predictors))
	return nil
}

// parse parses args. After --help or --version it returns an exitError.
func (p *parser) parse(args []string) (kctx *kong.Context, err error) {
	defer func() {
		if r := recover(); r != nil {
			code, ok := r.(exit)
			if !ok {
				panic(r)
			}
			kctx, err = nil, &exitError{code: int(code)}
		}
	}()
	return p.Kong.Parse(args)
}
