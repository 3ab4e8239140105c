package main

import (
	"context"
	"fmt"
)

type retryCmd struct {
	jobArg
}

// Run creates the retry job and prints its id.
func (c *retryCmd) Run(ctx context.Context, a *app, cl *client) error {
	r, err := cl.do(ctx, "POST", jobPath(c.UUID, "retry"), nil)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(a.stdout, createdID(r.Body))
	return err
}
