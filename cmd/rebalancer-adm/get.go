package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer/jobapi"
)

type getCmd struct {
	jobArg
	JSON bool `name:"json" help:"Print the API's JSON unchanged."`
}

func (c *getCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	// --legacy-output asks for the legacy client's behaviour, which takes
	// the id as given (no prefixes) and reports a bad one as the manager's
	// refusal.
	id := c.UUID
	if !a.legacy {
		var err error
		if id, err = c.id(ctx, cl); err != nil {
			return err
		}
	}
	// A legacy manager counts a big job's objects for minutes: say so
	// rather than look hung (on stderr, so --json output stays clean).
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		patience(stop, a.stderr, 3*time.Second, 2*time.Second)
	}()
	b, err := cl.Get(ctx, jobapi.JobPath(id))
	close(stop)
	<-done
	if a.legacy {
		if err != nil {
			return legacyFailure(err, true)
		}
		return a.printLegacyJSON(b, legacyGetFields)
	}
	if err != nil {
		return err
	}
	if c.JSON {
		return writeRaw(a, b)
	}
	st, err := jobapi.ParseJobStatus(b)
	if err != nil {
		return err
	}
	return printStatus(a.stdout, id, st)
}

// patience prints the legacy "this may take some time" notice after first,
// then a dot every next, until stop closes.
func patience(stop <-chan struct{}, w io.Writer, first, next time.Duration) {
	t := time.NewTimer(first)
	defer t.Stop()
	select {
	case <-stop:
		return
	case <-t.C:
	}
	fmt.Fprint(w, "Getting job status counts.  This may take some time...")
	defer fmt.Fprintln(w)
	tick := time.NewTicker(next)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			fmt.Fprint(w, ".")
		}
	}
}

// printStatus prints a job's status for people: one "Label: value" line per
// fact, labels padded to one width.
func printStatus(w io.Writer, id string, st *jobapi.JobStatus) error {
	var b strings.Builder
	// Labels in a column, at least a space between each and its value.
	row := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "%-15s"+format+"\n", append([]any{k}, args...)...)
	}
	if st.ID != "" {
		id = st.ID
	}
	row("Job:", "%s", id)
	shark := st.Config.FromShark.MantaStorageID
	if dc := st.Config.FromShark.Datacenter; dc != "" {
		shark += " (" + dc + ")"
	}
	row("Evacuating:", "%s", shark)
	state := st.State.Title()
	if st.Stopping && !st.State.Terminal() {
		state = "Stopping (waiting for the copies in flight)"
	}
	if st.DryRun != nil {
		state += " (dry run)"
	}
	row("State:", "%s", state)
	if st.Error != "" {
		row("Error:", "%s", st.Error)
	}
	if st.RetryOf != "" {
		row("Retry of:", "%s", st.RetryOf)
	}
	if st.Created != nil {
		row("Created:", "%s", timeString(st.Created))
		row("Started:", "%s", timeString(st.Started))
		row("Finished:", "%s", timeString(st.Finished))
	}
	if d := st.DryRun; d != nil {
		// A dry run moves nothing: what it found is the point.
		row("Would move:", "%s objects, %s", commas(d.Objects), bytesString(d.Bytes))
		row("No other copy:", "%s objects", commas(d.SingleCopy))
		row("Unplaceable:", "%s objects", commas(d.Unplaceable))
		dests := make([]string, 0, len(d.Destinations))
		for k := range d.Destinations {
			dests = append(dests, k)
		}
		sort.Strings(dests)
		for _, k := range dests {
			v := d.Destinations[k]
			fill := ""
			if v.PercentUsed != nil && v.ProjectedPercentUsed != nil {
				fill = fmt.Sprintf(" (%.1f%% used now, %.1f%% after)", *v.PercentUsed, *v.ProjectedPercentUsed)
			}
			row("  to", "%s: %s objects, %s%s", k, commas(v.Objects), bytesString(v.Bytes), fill)
		}
	} else {
		p := progressOf(st)
		total := commas(p.objects)
		if !p.discoveryDone {
			total += "+ (discovery running)"
			if st.State.Terminal() {
				total = commas(p.objects) + " found (discovery did not finish)"
			}
		}
		row("Objects done:", "%s of %s (%.1f%%)", commas(p.done), total, percent(p.done, p.objects))
		if p.bytes > 0 {
			row("Bytes moved:", "%s of %s", bytesString(p.bytesComplete), bytesString(p.bytes))
		}
		if st.Progress != nil {
			rate := fmt.Sprintf("%s objects/s, %s/s", rateString(p.objRate), bytesString(int64(p.byteRate)))
			if !st.State.Terminal() {
				rate += ", ETA " + etaString(st, p)
			}
			row("Rate:", "%s", rate)
		}
	}
	row("Counts:", "%s", countsLine(st))
	if skips := skipBreakdown(st); len(skips) > 0 {
		row("Skipped:", "%s", joinCounts(skips))
	}
	if errs := errorBreakdown(st); len(errs) > 0 {
		row("Errors:", "%s", joinCounts(errs))
	}
	for _, c := range st.BySource {
		row("  by source", "%s", sourceLine(c))
	}
	if v := st.Verdict; v != nil {
		row("Shark left:", "%s", v.Message)
	}
	if why := movedNothing(st); why != "" {
		row("Note:", "%s", why)
	}
	if opts := optionLines(st); len(opts) > 0 {
		row("Options:", "%s", opts[0])
		for _, l := range opts[1:] {
			row("", "%s", l)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
