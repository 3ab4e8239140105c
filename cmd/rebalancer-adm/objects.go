package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

type objectsCmd struct {
	jobArg
	Status string `help:"Object status: unprocessed, assigned, skipped, error, post_processing or complete." default:"skipped" enum:"unprocessed,assigned,skipped,error,post_processing,complete"`
	Limit  int    `help:"Objects per page, 1..10000." default:"100" placeholder:"N"`
	After  int64  `help:"Start after this sequence number (the SEQ column of the previous page)." placeholder:"SEQ"`
	JSON   bool   `name:"json" help:"Print the API's JSON unchanged."`
}

func (c *objectsCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	status, err := rebalancer.ParseObjectStatus(c.Status) // one of the enum
	if err != nil {
		return err
	}
	id, err := c.id(ctx, cl)
	if err != nil {
		return err
	}
	q := jobapi.ObjectQuery{Status: status, Limit: c.Limit, After: c.After}
	if c.JSON {
		b, err := cl.Get(ctx, jobapi.ObjectsPath(id, q))
		if err != nil {
			return err
		}
		return writeRaw(a, b)
	}
	objs, err := cl.Objects(ctx, id, q)
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		fmt.Fprintf(a.stdout, "No %s objects.\n", c.Status)
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tOBJECT\tSHARD\tSIZE\tSOURCE\tDEST\tATTEMPTS\tREASON\tKEY")
	for _, o := range objs {
		reason := o.SkippedReason
		if reason == "" {
			reason = o.Error
		}
		if o.Detail != "" {
			reason += " (" + o.Detail + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", o.Seq, o.ID, o.Shard, bytesString(o.ContentLength),
			orDash(o.SourceShark), orDash(o.DestShark), o.Attempts, orDash(reason), o.Key)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(objs) == c.Limit {
		fmt.Fprintf(a.stderr, "More may follow: --after %d\n", objs[len(objs)-1].Seq)
	}
	return nil
}
