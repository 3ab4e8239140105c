package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/TritonDataCenter/rebalancer/jobapi"
)

type listCmd struct {
	JSON  bool     `name:"json" help:"Print the API's JSON unchanged."`
	State []string `name:"state" help:"Only jobs in these states (repeatable or comma-separated): Init, Setup, Running, Paused, Stopping, Stopped, Complete, Failed; any case." placeholder:"STATE"`
}

func (c *listCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	if a.legacy {
		b, err := cl.Get(ctx, jobapi.JobsPath)
		if err != nil {
			return legacyFailure(err, true)
		}
		return a.printLegacyJSON(b, legacyListFields)
	}
	keep, err := stateFilter(c.State)
	if err != nil {
		return err
	}
	if c.JSON && keep == nil {
		b, err := cl.Get(ctx, jobapi.JobsPath)
		if err != nil {
			return err
		}
		return writeRaw(a, b)
	}
	all, err := cl.Jobs(ctx)
	if err != nil {
		return err
	}
	var jobs []jobapi.Job
	for _, j := range all {
		if keep == nil || keep[strings.ToLower(jobState(j))] {
			jobs = append(jobs, j)
		}
	}
	if c.JSON {
		b, err := json.Marshal(jobs)
		if err != nil {
			return err
		}
		return writeRaw(a, b)
	}
	if len(jobs) == 0 {
		if len(all) > 0 {
			fmt.Fprintf(a.stdout, "No jobs in state %s (%d in others).\n", strings.Join(c.State, ", "), len(all))
			return nil
		}
		fmt.Fprintln(a.stdout, "No jobs.")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTION\tSTATE\tSHARK\tCREATED\tRETRY OF")
	for _, j := range jobs {
		state := jobState(j)
		if j.DryRun {
			state += " (dry run)" // it moved nothing
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Action.Title(), state, orDash(j.FromShark.MantaStorageID),
			orDash(j.Created), orDash(j.RetryOf))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeRaw prints a reply body as it came, ending in a newline.
func writeRaw(a *app, b []byte) error {
	if _, err := a.stdout.Write(b); err != nil {
		return err
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		_, err := fmt.Fprintln(a.stdout)
		return err
	}
	return nil
}

// jobState is the state a job is shown in: Stopping for a running job
// that was asked to stop.
func jobState(j jobapi.Job) string {
	if j.Stopping && !j.State.Terminal() {
		return "Stopping"
	}
	return j.State.Title()
}

// jobStates are the states --state takes.
var jobStates = []string{"Init", "Setup", "Running", "Paused", "Stopping", "Stopped", "Complete", "Failed"}

// stateFilter reads --state: nil for no filter, else the states to keep
// in lower case.
func stateFilter(states []string) (map[string]bool, error) {
	if len(states) == 0 {
		return nil, nil
	}
	keep := map[string]bool{}
	for _, s := range states {
		for _, one := range strings.Split(s, ",") {
			one = strings.ToLower(strings.TrimSpace(one))
			ok := false
			for _, known := range jobStates {
				ok = ok || strings.ToLower(known) == one
			}
			if !ok {
				return nil, &exitError{code: 2, msg: fmt.Sprintf("--state %q is not a job state: one of %s", one, strings.Join(jobStates, ", "))}
			}
			keep[one] = true
		}
	}
	return keep, nil
}
