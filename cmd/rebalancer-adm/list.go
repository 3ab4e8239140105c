package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/TritonDataCenter/rebalancer/jobapi"
)

type listCmd struct {
	JSON bool `name:"json" help:"Print the API's JSON unchanged."`
}

func (c *listCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	if a.legacy {
		b, err := cl.Get(ctx, jobapi.JobsPath)
		if err != nil {
			return legacyFailure(err, true)
		}
		return a.printLegacyJSON(b, legacyListFields)
	}
	if c.JSON {
		b, err := cl.Get(ctx, jobapi.JobsPath)
		if err != nil {
			return err
		}
		return writeRaw(a, b)
	}
	jobs, err := cl.Jobs(ctx)
	if err != nil {
		return err
	}
	if len(jobs) == 0 {
		fmt.Fprintln(a.stdout, "No jobs.")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTION\tSTATE\tSHARK\tCREATED\tRETRY OF")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Action.Title(), j.State.Title(), orDash(j.FromShark.MantaStorageID),
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
