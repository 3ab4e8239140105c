package main

import (
	"context"
	"fmt"
)

type updateCmd struct {
	jobArg
	MetadataThreads int `name:"metadata-threads" required:"" help:"Concurrent metadata updates, 1..250." placeholder:"N"`
}

// Run sends the legacy dynamic update message.
func (c *updateCmd) Run(ctx context.Context, a *app, cl *client) error {
	msg := map[string]any{"action": "set_metadata_threads", "params": c.MetadataThreads}
	if _, err := cl.do(ctx, "PUT", jobPath(c.UUID), msg); err != nil {
		return err
	}
	_, err := fmt.Fprintf(a.stdout, "Job %s: metadata threads set to %d.\n", c.UUID, c.MetadataThreads)
	return err
}
