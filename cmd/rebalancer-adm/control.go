package main

import (
	"context"
	"fmt"
)

type stopCmd struct{ jobArg }
type pauseCmd struct{ jobArg }
type resumeCmd struct{ jobArg }

func (c *stopCmd) Run(ctx context.Context, a *app, cl *client) error {
	return control(ctx, a, cl, c.UUID, "stop", "stopping once the copies in flight are done")
}

func (c *pauseCmd) Run(ctx context.Context, a *app, cl *client) error {
	return control(ctx, a, cl, c.UUID, "pause", "paused")
}

func (c *resumeCmd) Run(ctx context.Context, a *app, cl *client) error {
	return control(ctx, a, cl, c.UUID, "resume", "resumed")
}

func control(ctx context.Context, a *app, cl *client, id, action, done string) error {
	if _, err := cl.do(ctx, "POST", jobPath(id, action), nil); err != nil {
		return err
	}
	_, err := fmt.Fprintf(a.stdout, "Job %s: %s.\n", id, done)
	return err
}
