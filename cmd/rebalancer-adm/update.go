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
	if err := cl.SetMetadataThreads(ctx, c.UUID, c.MetadataThreads); err != nil {
		return err
	}
	_, err := fmt.Fprintf(a.stdout, "Job %s: metadata threads set to %d.\n", c.UUID, c.MetadataThreads)
	return err
}
