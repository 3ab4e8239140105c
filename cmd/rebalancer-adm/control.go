package main

import (
	"context"
	"fmt"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

type stopCmd struct{ jobArg }
type pauseCmd struct{ jobArg }
type resumeCmd struct{ jobArg }

func (c *stopCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	return control(a, c.UUID, cl.StopJob(ctx, c.UUID), "stopping once the copies in flight are done")
}

func (c *pauseCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	return control(a, c.UUID, cl.PauseJob(ctx, c.UUID), "paused")
}

func (c *resumeCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	return control(a, c.UUID, cl.ResumeJob(ctx, c.UUID), "resumed")
}

// control reports the outcome of a control request.
func control(a *app, id string, err error, done string) error {
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "Job %s: %s.\n", id, done)
	return err
}
