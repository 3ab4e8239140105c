// Command rebalancer-adm is the operator's client for the rebalancer
// manager: it lists, inspects, creates, retries, tunes and controls
// evacuation jobs over the manager's HTTP API, and watches a job's progress
// live.
//
//	rebalancer-adm job list
//	rebalancer-adm job get <uuid>
//	rebalancer-adm job create evacuate --shark 1.stor.us-east.joyent.us [--max-objects N] [--dry-run]
//	rebalancer-adm job retry <uuid>
//	rebalancer-adm job update <uuid> --metadata-threads N
//	rebalancer-adm job stop|pause|resume <uuid>
//	rebalancer-adm job objects <uuid> --status skipped
//	rebalancer-adm job watch <uuid>
//	rebalancer-adm shark list
//	rebalancer-adm shark out|in <shark> [--reason TEXT]
//	rebalancer-adm shark check <shark> [--json]
//
// The manager is at --manager (or $REBALANCER_MANAGER), by default
// http://localhost as the legacy client assumed; a manager that requires
// an API token gets it from --token (or $REBALANCER_TOKEN). Read commands print a
// human summary, or with --json the API's JSON unchanged; with
// --legacy-output (or $REBALANCER_LEGACY_OUTPUT) job list, get, create and
// retry print what the legacy client printed (legacyoutput.go). A request
// the manager refuses exits 1 with its message; a usage error exits 2; a
// shark check whose shark is not safe to retire exits 3.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"
	"golang.org/x/term"

	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
)

// cli is the command line.
type cli struct {
	Manager string           `help:"Base URL of the rebalancer manager (${default}, as the legacy client)." default:"http://localhost" env:"REBALANCER_MANAGER" placeholder:"URL"`
	Token   string           `help:"The manager's API token (its api_token), sent as a bearer token. Prefer the environment variable: flags show in ps. Default: none." env:"REBALANCER_TOKEN" placeholder:"TOKEN"`
	Timeout time.Duration    `help:"Give up on a request after this long (0: never; a large job's status can take minutes on a legacy manager)." default:"0s" placeholder:"DURATION"`
	Version kong.VersionFlag `help:"Print the version and exit."`
	// LegacyOutput: legacyoutput.go.
	LegacyOutput bool `name:"legacy-output" env:"REBALANCER_LEGACY_OUTPUT" help:"Print job list, get, create and retry as the legacy (Rust) rebalancer-adm did, for scripts that parse it: the server version line, then the legacy's fields as sorted-key JSON (README: what is identical)."`

	Job                jobCmd                       `cmd:"" help:"Manage evacuation jobs."`
	Shark              sharkCmd                     `cmd:"" help:"List sharks' states, take them out of service or back, and check whether one is safe to retire."`
	InstallCompletions kongplete.InstallCompletions `cmd:"" name:"install-completions" help:"Print the shell code that completes rebalancer-adm's commands, flags and job ids (bash, zsh, fish): add 'eval \"$(rebalancer-adm install-completions)\"' to your shell's startup file."`
}

type jobCmd struct {
	List    listCmd    `cmd:"" help:"List every job."`
	Get     getCmd     `cmd:"" help:"Show a job's state and object counts."`
	Create  createCmd  `cmd:"" help:"Create a job."`
	Retry   retryCmd   `cmd:"" help:"Create a job that retries what a job did not move."`
	Update  updateCmd  `cmd:"" help:"Change a running job's tunables."`
	Stop    stopCmd    `cmd:"" help:"Stop a job once the copies in flight are done; what it did not move can be retried."`
	Pause   pauseCmd   `cmd:"" help:"Pause a job: nothing new starts until it is resumed."`
	Resume  resumeCmd  `cmd:"" help:"Resume a paused job."`
	Objects objectsCmd `cmd:"" help:"List a job's objects in one status (skipped, error...)."`
	Watch   watchCmd   `cmd:"" help:"Show a job's progress live until it ends."`
}

// jobArg is the positional job id most commands take.
type jobArg struct {
	UUID string `arg:"" name:"uuid" predictor:"job" help:"The job's id, or the start of it (4 characters or more) when only one job's id starts so."`
}

// app is what commands run with: the output streams and what tests swap
// for fakes.
type app struct {
	stdout, stderr io.Writer
	// isTerminal says whether w is an interactive terminal, where watch
	// redraws in place.
	isTerminal func(w io.Writer) bool
	// width returns the terminal width of w, or 0 when unknown.
	width func(w io.Writer) int
	// now is the clock (timestamps of non-terminal watch lines).
	now func() time.Time
	// transport, when set, replaces the default HTTP transport.
	transport http.RoundTripper
	// legacy is --legacy-output; server has the Server header it prints.
	legacy bool
	server *serverRecorder
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newApp(stdout, stderr).run(ctx, args)
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{stdout: stdout, stderr: stderr, isTerminal: isTerminal, width: termWidth, now: time.Now}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func termWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return width
}

// errInterrupted ends a command the user interrupted; it exits 130 without
// a message.
var errInterrupted = errors.New("interrupted")

func (a *app) run(ctx context.Context, args []string) (code int) {
	var c cli
	kctx, code, ok := cmdline.Command{
		Name:         "rebalancer-adm",
		Description:  "Rebalancer client utility " + cmdline.Version() + ": manage the evacuation jobs of a rebalancer manager.",
		Stdout:       a.stdout,
		Stderr:       a.stderr,
		UsageOnError: true, // as the legacy client shows it
		Options:      []kong.Option{kong.ConfigureHelp(kong.HelpOptions{Compact: true})},
		Completion:   true,
		Predictors:   map[string]complete.Predictor{"job": jobPredictor(a.transport)},
	}.Parse(&c, args)
	if !ok {
		return code
	}
	cl, err := newClient(c.Manager, c.Token, c.Timeout, a.transport)
	if err != nil {
		fmt.Fprintln(a.stderr, "rebalancer-adm:", err)
		return 2
	}
	a.legacy, a.server = c.LegacyOutput, recordServer(cl)
	kctx.BindTo(ctx, (*context.Context)(nil))
	err = kctx.Run(a, cl)
	var (
		exit   *exitError
		legacy *legacyError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &legacy):
		fmt.Fprintln(a.stderr, "Error:", rustDebug(legacy.msg))
		return 1
	case errors.Is(err, errInterrupted), ctx.Err() != nil && errors.Is(err, context.Canceled):
		return 130
	case errors.As(err, &exit):
		if exit.msg != "" {
			fmt.Fprintln(a.stderr, "rebalancer-adm:", exit.msg)
		}
		return exit.code
	default:
		fmt.Fprintln(a.stderr, "rebalancer-adm:", err)
		if h := hint(err, c.Manager, args); h != "" {
			fmt.Fprintln(a.stderr, "rebalancer-adm:", h)
		}
		return 1
	}
}

// exitError ends the command with a given status.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
