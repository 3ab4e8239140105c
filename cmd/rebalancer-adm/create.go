package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/TritonDataCenter/rebalancer/jobapi"
)

type createCmd struct {
	Evacuate evacuateCmd `cmd:"" help:"Evacuate a shark: move every object off it onto other sharks."`
}

// evacuateCmd has the legacy flags (-s/--shark, -m/--max_objects, also
// spelled --max-objects) and the new job options.
type evacuateCmd struct {
	Shark      string `short:"s" required:"" help:"Storage id of the shark to evacuate; the manager appends its domain to a short name such as 1.stor." placeholder:"SHARK"`
	MaxObjects uint32 `short:"m" name:"max-objects" aliases:"max_objects" help:"Stop discovering after this many objects (0: all). For testing." placeholder:"N"`
	DryRun     bool   `name:"dry-run" help:"Discover and place objects without copying anything or changing metadata; job get shows where they would go."`

	ExcludeKeyPrefix      []string `name:"exclude-key-prefix" sep:"none" help:"Leave out objects whose key contains this string (repeatable, e.g. /stor/logs/; \"none\" disables the manager's list)." placeholder:"STRING"`
	MetadataThreads       int      `name:"metadata-threads" help:"Concurrent metadata updates, 1..250 (default: the manager's)." placeholder:"N"`
	MaxTasksPerAssignment int      `name:"max-tasks-per-assignment" help:"Objects per assignment sent to an agent (default: the manager's)." placeholder:"N"`
	MaxInflightPerSource  int      `name:"max-inflight-per-source" help:"Copies read from any one source shark at once, to protect its user traffic (default: no limit)." placeholder:"N"`
	MaxAttempts           int      `name:"max-attempts" help:"Times an object is tried before a failure that might pass becomes final (default: the manager's)." placeholder:"N"`
}

func (c *evacuateCmd) Run(ctx context.Context, a *app, cl *jobapi.Client) error {
	p := jobapi.CreateParams{FromShark: c.Shark, DryRun: c.DryRun}
	if c.MaxObjects > 0 {
		n := int64(c.MaxObjects)
		p.MaxObjects = &n
	}
	opts := map[string]any{}
	if len(c.ExcludeKeyPrefix) > 0 {
		opts["exclude_key_prefixes"] = c.ExcludeKeyPrefix
	}
	for name, v := range map[string]int{
		"metadata_threads":         c.MetadataThreads,
		"max_tasks_per_assignment": c.MaxTasksPerAssignment,
		"max_inflight_per_source":  c.MaxInflightPerSource,
		"max_attempts":             c.MaxAttempts,
	} {
		if v != 0 {
			opts[name] = v
		}
	}
	if len(opts) > 0 {
		var err error
		if p.Options, err = json.Marshal(opts); err != nil {
			return err
		}
	}
	id, err := cl.CreateJob(ctx, p)
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
