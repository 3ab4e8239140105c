package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

type watchCmd struct {
	jobArg
	Interval time.Duration `help:"Time between two looks at the job." default:"2s" placeholder:"DURATION"`
	JSON     bool          `name:"json" help:"Print the API's JSON of every look, one document per line."`
}

// Run polls the job until it ends. On a terminal it redraws two lines in
// place; otherwise (a pipe, a log file, a dumb SSH session) it prints a
// plain timestamped line whenever the counts change, and at least every
// minute. It exits 0 when the job completes and 1 when it fails or is
// stopped. Losing the manager for a while (a restart) is shown and waited
// out; a 4xx (no such job) ends the watch.
func (c *watchCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	if c.Interval <= 0 {
		return &exitError{code: 2, msg: "--interval must be positive"}
	}
	id, err := c.id(ctx, cl)
	if err != nil {
		return err
	}
	v := &view{w: a.stdout, tty: a.isTerminal(a.stdout), width: a.width(a.stdout), now: a.now}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			v.close()
			return errInterrupted
		case <-timer.C:
		}
		b, err := cl.Get(ctx, jobapi.JobPath(id))
		var ae *jobapi.Error
		switch {
		case ctx.Err() != nil:
			v.close()
			return errInterrupted
		case errors.As(err, &ae) && ae.Code/100 == 4:
			v.close()
			return err
		case err != nil:
			v.problem(err)
		default:
			st, err := jobapi.ParseJobStatus(b)
			if err != nil {
				v.close()
				return err
			}
			if st.ID == "" {
				st.ID = id // a legacy manager does not repeat it
			}
			if c.JSON {
				var line bytes.Buffer
				if json.Compact(&line, b) != nil {
					line.Reset()
					line.Write(bytes.TrimSpace(b))
				}
				line.WriteByte('\n')
				a.stdout.Write(line.Bytes())
			} else {
				v.frame(st)
			}
			if st.State.Terminal() {
				if !c.JSON {
					v.final(st)
				}
				if st.State != rebalancer.JobComplete {
					return &exitError{code: 1}
				}
				return nil
			}
		}
		timer.Reset(c.Interval)
	}
}

// view draws a job's progress: in place on a terminal, as plain lines
// elsewhere.
type view struct {
	w     io.Writer
	tty   bool
	width int
	now   func() time.Time

	drawn int      // lines of the current in-place frame
	last  []string // the last frame, kept on screen while the manager is away

	lastKey   string // what the last plain line said, without rates
	lastPrint time.Time
}

// plainEvery is how often a plain line repeats itself when nothing
// changes, so that a log shows the watch is alive.
const plainEvery = time.Minute

func (v *view) frame(st *jobapi.JobStatus) {
	p := progressOf(st)
	state := stateOf(st)
	total := commas(p.objects)
	if !p.discoveryDone {
		total += "+"
	}
	objects := fmt.Sprintf("%s/%s objects", commas(p.done), total)
	size := ""
	if p.bytes > 0 {
		size = fmt.Sprintf("%s/%s", bytesString(p.bytesComplete), bytesString(p.bytes))
	}
	// What the job does now: its rates and ETA while it moves; otherwise
	// why it does not (a paused job has no rate, a stopping one waits).
	activity := ""
	switch {
	case st.Progress == nil:
	case moving(st):
		activity = fmt.Sprintf("%s obj/s  %s/s  %s", rateString(p.objRate), bytesString(int64(p.byteRate)), shortETA(st, p))
	case st.Stopping:
		activity = fmt.Sprintf("stopping: %s copies in flight", commas(inFlight(st)))
	case st.State == rebalancer.JobPaused:
		activity = fmt.Sprintf("paused (%s in flight)", commas(inFlight(st)))
	}
	pct := fmt.Sprintf("%5.1f%%", percent(p.done, p.objects))

	if !v.tty {
		counts := countsLine(st)
		key := state + " " + objects + " " + counts
		now := v.now()
		if key == v.lastKey && now.Sub(v.lastPrint) < plainEvery {
			return
		}
		v.lastKey, v.lastPrint = key, now
		fields := []string{now.UTC().Format(time.RFC3339), state, objects, strings.TrimSpace(pct)}
		if size != "" {
			fields = append(fields, size)
		}
		if activity != "" {
			fields = append(fields, activity)
		}
		fmt.Fprintf(v.w, "%s; %s\n", strings.Join(fields, "  "), counts)
		return
	}
	v.last = frameLines(v.width, state, percent(p.done, p.objects), pct, objects, size, activity, st)
	v.redraw(v.last)
}

// frameLines lays a terminal frame out in width columns (80 when
// unknown): what is dropped first when it does not fit is the size, then
// half the bar, the bar, the rates; the skipped and error counts start the
// second line and are never dropped.
func frameLines(width int, state string, pctDone float64, pct, objects, size, activity string, st *jobapi.JobStatus) []string {
	if width <= 0 {
		width = 80
	}
	fits := func(l string) bool { return len(l) <= width-1 }
	bar := func(n int) string {
		filled := int(pctDone / 100 * float64(n))
		return "[" + strings.Repeat("#", filled) + strings.Repeat("-", n-filled) + "] "
	}
	var line1 string
	for _, try := range []struct {
		bar  int
		size bool
	}{{20, true}, {20, false}, {10, false}, {0, false}} {
		line1 = fmt.Sprintf("%-8s ", state)
		if try.bar > 0 {
			line1 += bar(try.bar)
		}
		line1 += pct + "  " + objects
		if try.size && size != "" {
			line1 += "  " + size
		}
		if fits(line1) {
			break
		}
	}
	r := &st.Results
	outcome := fmt.Sprintf("moved %s  skipped %s  errors %s", commas(r.Complete), commas(r.Skipped), commas(r.Error))
	line2 := "         " + outcome
	if activity != "" && fits(line2+"  |  "+activity) {
		line2 += "  |  " + activity
	} else if activity != "" && fits("  "+outcome+"  |  "+activity) {
		line2 = "  " + outcome + "  |  " + activity
	}
	return []string{line1, line2}
}

// problem shows a failure to reach the manager, which watch waits out.
func (v *view) problem(err error) {
	msg := fmt.Sprintf("cannot reach the manager (retrying): %v", err)
	if !v.tty {
		fmt.Fprintf(v.w, "%s  %s\n", v.now().UTC().Format(time.RFC3339), msg)
		return
	}
	first := "waiting for the manager"
	if len(v.last) > 0 {
		first = v.last[0]
	}
	v.redraw([]string{first, "         " + msg})
}

// redraw replaces the frame on screen with lines, each cut to the
// terminal's width so that none wraps (wrapping would break the cursor
// arithmetic).
func (v *view) redraw(lines []string) {
	var b strings.Builder
	if v.drawn > 0 {
		b.WriteString("\r")
		if v.drawn > 1 {
			fmt.Fprintf(&b, "\x1b[%dA", v.drawn-1)
		}
	}
	for i, l := range lines {
		if v.width > 1 && len(l) > v.width-1 {
			l = l[:v.width-1]
		}
		b.WriteString("\x1b[2K" + l)
		if i < len(lines)-1 {
			b.WriteString("\n")
		}
	}
	io.WriteString(v.w, b.String())
	v.drawn = len(lines)
}

// close leaves the cursor below the frame.
func (v *view) close() {
	if v.tty && v.drawn > 0 {
		io.WriteString(v.w, "\n")
		v.drawn = 0
	}
}

// final prints the line that says how the job ended.
func (v *view) final(st *jobapi.JobStatus) {
	v.close()
	p := progressOf(st)
	id := st.ID
	line := fmt.Sprintf("Job %s %s", id, st.State.Title())
	if st.DryRun != nil {
		line += " (dry run)"
	}
	if st.Started != nil && st.Finished != nil {
		line += " after " + durationString(st.Finished.Sub(*st.Started))
	}
	if d := st.DryRun; d != nil {
		fmt.Fprintf(v.w, "%s: %s objects, %s would move; %s with no other copy, %s unplaceable. Details: rebalancer-adm job get %s\n",
			line, commas(d.Objects), bytesString(d.Bytes), commas(d.SingleCopy), commas(d.Unplaceable), id)
		return
	}
	line += fmt.Sprintf(": %s objects, %s complete, %s skipped, %s errors",
		commas(p.objects), commas(st.Results.Complete), commas(st.Results.Skipped), commas(st.Results.Error))
	if p.bytesComplete > 0 {
		line += ", " + bytesString(p.bytesComplete) + " moved"
	}
	line += "."
	if st.Error != "" {
		line += " Error: " + st.Error
	}
	if len(st.BySource) > 0 {
		line += " Largest: " + sourceLine(st.BySource[0]) + "."
	}
	if vd := st.Verdict; vd != nil {
		line += " " + upperFirst(vd.Message) + "."
	}
	switch n := st.Results.Skipped + st.Results.Error; {
	case n == 0 || st.State == rebalancer.JobFailed:
	case movedNothing(st) != "":
		// Another retry would do the same: say why instead.
		line += " " + movedNothing(st)
	default:
		line += " Retry what did not move with: rebalancer-adm job retry " + id
	}
	fmt.Fprintln(v.w, line)
}
