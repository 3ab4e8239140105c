package main

import (
	"context"
	"fmt"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

type updateCmd struct {
	jobArg
	MetadataThreads int `name:"metadata-threads" required:"" help:"Concurrent metadata updates, 1..250." placeholder:"N"`
}

// Run sends the legacy dynamic update message.
func (c *updateCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	id, err := c.id(ctx, cl)
	if err != nil {
		return err
	}
	if err := cl.SetMetadataThreads(ctx, id, c.MetadataThreads); err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "Job %s: metadata threads set to %d.\n", id, c.MetadataThreads)
	return err
}
