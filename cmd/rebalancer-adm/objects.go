package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
)

type objectsCmd struct {
	jobArg
	Status string `help:"Object status: unprocessed, assigned, skipped, error, post_processing or complete." default:"skipped" enum:"unprocessed,assigned,skipped,error,post_processing,complete"`
	Limit  int    `help:"Objects per page, 1..10000." default:"100" placeholder:"N"`
	After  int64  `help:"Start after this sequence number (the SEQ column of the previous page)." placeholder:"SEQ"`
	JSON   bool   `name:"json" help:"Print the API's JSON unchanged."`
}

type objectEntry struct {
	ID            string `json:"id"`
	Key           string `json:"key"`
	Shard         int    `json:"shard"`
	Status        string `json:"status"`
	SkippedReason string `json:"skipped_reason"`
	Error         string `json:"error"`
	Detail        string `json:"detail"`
	DestShark     string `json:"dest_shark"`
	Attempts      int    `json:"attempts"`
	ContentLength int64  `json:"content_length"`
	Seq           int64  `json:"seq"`
}

func (c *objectsCmd) Run(ctx context.Context, a *app, cl *client) error {
	q := url.Values{"status": {c.Status}, "limit": {strconv.Itoa(c.Limit)}}
	if c.After > 0 {
		q.Set("after", strconv.FormatInt(c.After, 10))
	}
	r, err := cl.do(ctx, "GET", jobPath(c.UUID, "objects")+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeRaw(a, r.Body)
	}
	var objs []objectEntry
	if err := json.Unmarshal(r.Body, &objs); err != nil {
		return fmt.Errorf("cannot read the object list: %w", err)
	}
	if len(objs) == 0 {
		fmt.Fprintf(a.stdout, "No %s objects.\n", c.Status)
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tOBJECT\tSHARD\tSIZE\tDEST\tATTEMPTS\tREASON\tKEY")
	for _, o := range objs {
		reason := o.SkippedReason
		if reason == "" {
			reason = o.Error
		}
		if o.Detail != "" {
			reason += " (" + o.Detail + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", o.Seq, o.ID, o.Shard, bytesString(o.ContentLength),
			orDash(o.DestShark), o.Attempts, orDash(reason), o.Key)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(objs) == c.Limit {
		fmt.Fprintf(a.stderr, "More may follow: --after %d\n", objs[len(objs)-1].Seq)
	}
	return nil
}
