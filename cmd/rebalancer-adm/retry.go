package main

import (
	"context"
	"fmt"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

type retryCmd struct {
	jobArg
}

// Run creates the retry job and prints its id.
func (c *retryCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	old := c.UUID // as given with --legacy-output, as get takes it
	if !a.legacy {
		var err error
		if old, err = c.id(ctx, cl); err != nil {
			return err
		}
	}
	id, err := cl.RetryJob(ctx, old)
	if a.legacy {
		if err != nil {
			return legacyFailure(err, false)
		}
		return a.printLegacyID(id)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(a.stdout, id)
	return err
}
