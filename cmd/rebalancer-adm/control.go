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
	id, err := c.id(ctx, cl)
	if err != nil {
		return err
	}
	return control(a, id, cl.StopJob(ctx, id), "stopping once the copies in flight are done")
}

func (c *pauseCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	id, err := c.id(ctx, cl)
	if err != nil {
		return err
	}
	return control(a, id, cl.PauseJob(ctx, id), "paused")
}

func (c *resumeCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	id, err := c.id(ctx, cl)
	if err != nil {
		return err
	}
	return control(a, id, cl.ResumeJob(ctx, id), "resumed")
}

// control reports the outcome of a control request.
func control(a *app, id string, err error, done string) error {
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "Job %s: %s.\n", id, done)
	return err
}
