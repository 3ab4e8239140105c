package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// exitNotSafe is the exit status of a shark check whose shark is not safe
// to retire: distinct from 1, a request that failed, so that a script can
// tell "no" from "could not ask".
const exitNotSafe = 3

type sharkCmd struct {
	List  sharkListCmd  `cmd:"" help:"List every shark with its state: in service, draining (an evacuation of it has not completed) or drained (one completed, or an operator took it out)."`
	Out   sharkOutCmd   `cmd:"" help:"Take a shark out of service (drained): no job places copies on it until 'shark in'."`
	In    sharkInCmd    `cmd:"" help:"Put a shark back in service: jobs may place copies on it again."`
	Check sharkCheckCmd `cmd:"" help:"Is this shark safe to retire? Scans the metadata afresh (as long as a job's discovery) and says what still names it, why, and what to do next. Exit 0 only when safe, 3 when not."`
}

// sharkArg is the positional shark most shark commands take.
type sharkArg struct {
	Shark string `arg:"" name:"shark" help:"The shark's storage id (1.stor.us-east.joyent.us; 1.stor gets the manager's domain)."`
}

type sharkListCmd struct {
	JSON bool `name:"json" help:"Print the API's JSON unchanged."`
}

func (c *sharkListCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	if c.JSON {
		b, err := cl.Get(ctx, jobapi.SharksPath)
		if err != nil {
			return err
		}
		return writeRaw(a, b)
	}
	sharks, err := cl.Sharks(ctx)
	if err != nil {
		return err
	}
	if len(sharks) == 0 {
		fmt.Fprintln(a.stdout, "No sharks.")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARK\tDATACENTER\tSTATE\tBY\tJOB\tSINCE\tREASON")
	for _, s := range sharks {
		job := s.Job
		if s.RunningJob != "" {
			job = s.RunningJob // the job evacuating it now
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.MantaStorageID, orDash(s.Datacenter), sharkState(s), orDash(s.ChangedBy),
			orDash(job), timeString(s.Since), orDash(s.Reason))
	}
	return tw.Flush()
}

// sharkState says a shark's state for people: "drained", "in service,
// blocklisted", "draining (unlisted)".
func sharkState(s jobapi.Shark) string {
	st := strings.ReplaceAll(s.State, "_", " ")
	var notes []string
	if s.Blocklisted {
		notes = append(notes, "blocklisted")
	}
	if !s.Listed {
		notes = append(notes, "not in the storage records")
	}
	if len(notes) > 0 {
		st += ", " + strings.Join(notes, ", ")
	}
	return st
}

// sharkStateChange is what 'shark out' and 'shark in' take: the shark,
// and why its state changes.
type sharkStateChange struct {
	sharkArg
	Reason string `help:"Why, kept with the state and shown by 'shark list'." placeholder:"TEXT"`
}

type sharkOutCmd struct{ sharkStateChange }

func (c *sharkOutCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	s, err := cl.SharkOut(ctx, c.Shark, c.Reason)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "Shark %s: %s; no job places copies on it. Put it back with: rebalancer-adm shark in %s\n",
		s.MantaStorageID, sharkState(*s), s.MantaStorageID)
	return err
}

type sharkInCmd struct{ sharkStateChange }

func (c *sharkInCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	s, err := cl.SharkIn(ctx, c.Shark, c.Reason)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("Shark %s: %s", s.MantaStorageID, sharkState(*s))
	if s.Blocklisted {
		line += "; the configuration's blocklist_sharks still keeps it out of every placement"
	} else {
		line += "; jobs may place copies on it"
	}
	_, err = fmt.Fprintln(a.stdout, line+".")
	return err
}

type sharkCheckCmd struct {
	sharkArg
	Examples int  `help:"Example keys shown for each group of objects, 1..100." default:"3" placeholder:"N"`
	JSON     bool `name:"json" help:"Print the check's result as JSON (the result line of the API's reply)."`
}

func (c *sharkCheckCmd) Validate() error {
	if c.Examples < 1 || c.Examples > 100 {
		return fmt.Errorf("--examples must be in 1..100")
	}
	return nil
}

func (c *sharkCheckCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	// The scan takes as long as a discovery: progress goes to stderr, so
	// that stdout (and --json) holds the answer alone.
	pr := &checkProgress{w: a.stderr, tty: a.isTerminal(a.stderr)}
	q := jobapi.CheckQuery{Examples: c.Examples, Progress: pr.show}
	// A check runs as long as its scan: --timeout, meant for one request's
	// answer, does not cut it short (ctx, the user's interrupt, does).
	timeout := cl.Timeout
	cl.Timeout = 0
	res, err := cl.CheckShark(ctx, c.Shark, q)
	cl.Timeout = timeout
	pr.done()
	if err != nil {
		return err
	}
	if c.JSON {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := writeRaw(a, b); err != nil {
			return err
		}
	} else if err := printCheck(a.stdout, res); err != nil {
		return err
	}
	if !res.Safe {
		return &exitError{code: exitNotSafe}
	}
	return nil
}

// checkProgress shows a check's scan as it goes: one line redrawn on a
// terminal, a line per report elsewhere.
type checkProgress struct {
	w     io.Writer
	tty   bool
	shown bool
}

func (p *checkProgress) show(cp jobapi.CheckProgress) {
	line := fmt.Sprintf("Scanning: %s records naming the shark so far, %s elapsed",
		commas(cp.Objects), durationString(time.Duration(cp.ElapsedSeconds*float64(time.Second))))
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K"+line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.shown = true
}

func (p *checkProgress) done() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

// printCheck prints a check's answer on one screen: the verdict, what
// still names the shark and why, the jobs running on it, and what to do.
func printCheck(w io.Writer, c *jobapi.SharkCheck) error {
	var b strings.Builder
	row := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "%-17s"+format+"\n", append([]any{k}, args...)...)
	}
	s := c.Shark
	safe := "NO"
	if c.Safe {
		safe = "yes"
	}
	row("Shark:", "%s", s.MantaStorageID)
	row("Safe to retire:", "%s", safe)
	state := sharkState(s)
	switch {
	case s.ChangedBy == "job" && s.Job != "":
		state += " (by job " + s.Job + ")"
	case s.ChangedBy == "operator":
		state += " (by an operator"
		if s.Reason != "" {
			state += ": " + s.Reason
		}
		state += ")"
	}
	row("State:", "%s", state)
	row("Objects on it:", "%s (a scan of the metadata, %s)", commas(c.Objects), durationString(time.Duration(c.ScanSeconds*float64(time.Second))))
	if j := c.LatestJob; j != nil {
		row("Latest job:", "%s, %s, created %s", j.ID, j.State.Title(), j.Created)
	}
	for _, j := range c.RunningJobs {
		kind := "evacuating it"
		if j.DryRun {
			kind = "a dry run"
		}
		row("Running job:", "%s (%s), %s", j.ID, kind, j.State.Title())
	}
	if len(c.Groups) > 0 {
		b.WriteString("\nWhy they are still there:\n")
		for _, g := range c.Groups {
			what := strings.ReplaceAll(g.Kind, "_", " ")
			switch g.Kind {
			case "not_found":
				what = "found by no job (written since the latest evacuation's scan, or never evacuated)"
			case "dry_run":
				what = "found by a dry run only"
			}
			if g.Reason != "" {
				what += " " + g.Reason
			}
			line := fmt.Sprintf("  %s objects: %s", commas(g.Objects), what)
			if g.Job != "" {
				line += " (job " + g.Job + ")"
			}
			if len(g.Sources) > 0 {
				var parts []string
				for _, sc := range sortCounts(sourcesOf(g.Sources)) {
					parts = append(parts, sc.reason+" "+commas(sc.n))
				}
				line += "; read from " + strings.Join(parts, ", ")
			}
			b.WriteString(line + "\n")
			for _, ex := range g.Examples {
				e := "      " + ex.Key
				if ex.Detail != "" {
					e += ": " + clip(ex.Detail, 160)
				}
				b.WriteString(e + "\n")
			}
		}
	}
	if c.V2NotScanned != "" {
		b.WriteString("\nBuckets (v2) objects were not looked for (" + c.V2NotScanned + "): the answer is for v1 objects only.\n")
	}
	if len(c.Next) > 0 {
		b.WriteString("\nNext:\n")
		for _, n := range c.Next {
			b.WriteString("  " + n + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func sourcesOf(m map[string]int64) []reasonCount {
	out := make([]reasonCount, 0, len(m))
	for s, n := range m {
		if s == "" {
			s = "(none)"
		}
		out = append(out, reasonCount{s, n})
	}
	return out
}

// clip cuts s to about n bytes, on a character boundary, marking the cut,
// so that a check's answer stays on one screen.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
