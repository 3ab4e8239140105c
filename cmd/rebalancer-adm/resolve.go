package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/posener/complete"

	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// minPrefix is the shortest job id prefix accepted: shorter ones match
// too many jobs to be worth a list request.
const minPrefix = 4

// id returns the job's full id: the argument when it is a UUID, otherwise
// the one job whose id starts with it (as job list and the status page
// show ids by their first 8 characters). A prefix that matches no job or
// several is refused with what to do.
func (j *jobArg) id(ctx context.Context, cl *jobapi.Client) (string, error) {
	arg := strings.ToLower(strings.TrimSpace(j.UUID))
	if u, err := uuid.Parse(arg); err == nil {
		return u.String(), nil
	}
	if len(arg) < minPrefix || strings.Trim(arg, "0123456789abcdef-") != "" {
		return "", &exitError{code: 2, msg: fmt.Sprintf("%q is not a job id: give the whole id or its first %d or more characters "+
			"(rebalancer-adm job list shows them)", j.UUID, minPrefix)}
	}
	jobs, err := cl.Jobs(ctx)
	if err != nil {
		return "", fmt.Errorf("looking up the job whose id starts with %q: %w", arg, err)
	}
	var found []string
	for _, job := range jobs {
		if strings.HasPrefix(strings.ToLower(job.ID), arg) {
			found = append(found, job.ID)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", &exitError{code: 1, msg: fmt.Sprintf("no job id starts with %q (rebalancer-adm job list shows the jobs)", j.UUID)}
	}
	if len(found) > 5 {
		found = append(found[:5], "...")
	}
	return "", &exitError{code: 1, msg: fmt.Sprintf("%q is the start of several job ids (%s): give more of it", j.UUID, strings.Join(found, ", "))}
}

// jobPredictor completes job ids from the manager's job list (at
// $REBALANCER_MANAGER, as a completion request carries no flags), within
// a few seconds; nothing when the manager cannot be reached.
func jobPredictor(rt http.RoundTripper) complete.Predictor {
	return complete.PredictFunc(func(args complete.Args) []string {
		manager := os.Getenv("REBALANCER_MANAGER")
		if manager == "" {
			manager = "http://localhost"
		}
		cl, err := newClient(manager, os.Getenv("REBALANCER_TOKEN"), 3*time.Second, rt)
		if err != nil {
			return nil
		}
		jobs, err := cl.Jobs(context.Background())
		if err != nil {
			return nil
		}
		ids := make([]string, len(jobs))
		for i, j := range jobs {
			ids[i] = j.ID
		}
		return ids
	})
}
