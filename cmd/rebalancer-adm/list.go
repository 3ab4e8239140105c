package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
)

type listCmd struct {
	JSON bool `name:"json" help:"Print the API's JSON unchanged."`
}

// listEntry is one element of GET /jobs. The legacy manager sends id,
// action and state only.
type listEntry struct {
	ID        string `json:"id"`
	Action    string `json:"action"`
	State     string `json:"state"`
	FromShark *struct {
		MantaStorageID string `json:"manta_storage_id"`
	} `json:"from_shark"`
	RetryOf string `json:"retry_of"`
	Created string `json:"created"`
}

func (c *listCmd) Run(ctx context.Context, a *app, cl *client) error {
	r, err := cl.do(ctx, "GET", "/jobs", nil)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeRaw(a, r.Body)
	}
	var jobs []listEntry
	if err := json.Unmarshal(r.Body, &jobs); err != nil {
		return fmt.Errorf("cannot read the job list: %w", err)
	}
	if len(jobs) == 0 {
		fmt.Fprintln(a.stdout, "No jobs.")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTION\tSTATE\tSHARK\tCREATED\tRETRY OF")
	for _, j := range jobs {
		shark := "-"
		if j.FromShark != nil && j.FromShark.MantaStorageID != "" {
			shark = j.FromShark.MantaStorageID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, orDash(j.Action), orDash(j.State), shark, orDash(j.Created), orDash(j.RetryOf))
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
