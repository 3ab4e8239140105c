// Package cmdline parses the commands' flags with kong without letting
// kong exit the process, so that every command's run function returns its
// exit status and can be tested in-process.
package cmdline

import (
	"errors"
	"fmt"

	"github.com/alecthomas/kong"
)

// ExitError is returned by Parse when kong asked to exit, after printing
// --help or --version: the command should return Code without a message.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit %d", e.Code) }

// Exited reports whether err is an ExitError, and its code.
func Exited(err error) (code int, ok bool) {
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code, true
	}
	return 0, false
}

// Parser is a kong parser whose exits come back from Parse as ExitErrors.
type Parser struct{ *kong.Kong }

// exit carries kong's requested exit out of its Parse, which has no other
// way to stop.
type exit int

// New is kong.New with kong's exits captured (a kong.Exit among options
// is overridden).
func New(grammar any, options ...kong.Option) (*Parser, error) {
	k, err := kong.New(grammar, append(options, kong.Exit(func(code int) { panic(exit(code)) }))...)
	if err != nil {
		return nil, err
	}
	return &Parser{k}, nil
}

// Parse parses args. After --help or --version it returns an ExitError.
func (p *Parser) Parse(args []string) (kctx *kong.Context, err error) {
	defer func() {
		if r := recover(); r != nil {
			code, ok := r.(exit)
			if !ok {
				panic(r)
			}
			kctx, err = nil, &ExitError{Code: int(code)}
		}
	}()
	return p.Kong.Parse(args)
}
