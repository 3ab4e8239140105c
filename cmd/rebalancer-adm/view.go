package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// What get and watch say of a job beyond its counts: the state it is
// really in, its ETA, its options.

// stateOf is the state a job is shown in: Stopping for a running job that
// was asked to stop (the API keeps the legacy's Running for it).
func stateOf(st *jobapi.JobStatus) string {
	if st.Stopping && !st.State.Terminal() {
		return "Stopping"
	}
	return st.State.Title()
}

// moving reports whether a job's rates and ETA mean anything: it runs,
// neither paused nor stopping.
func moving(st *jobapi.JobStatus) bool {
	return st.State == rebalancer.JobRunning && !st.Stopping
}

// etaString is a running job's ETA for people: "5m04s", "~5m04s
// (estimate)" while discovery runs, or why there is none.
func etaString(st *jobapi.JobStatus, p progress) string {
	switch {
	case st.Stopping:
		return "none while stopping"
	case st.State == rebalancer.JobPaused:
		return "none while paused"
	case p.eta < 0 && !p.discoveryDone:
		return "-- (discovery running)"
	case p.eta < 0:
		return "--"
	case st.Progress != nil && st.Progress.ETAEstimated:
		return "~" + durationString(p.eta) + " (estimate)"
	}
	return durationString(p.eta)
}

// shortETA is etaString for the one-line views: "ETA ~5m04s".
func shortETA(st *jobapi.JobStatus, p progress) string {
	switch {
	case p.eta < 0:
		return "ETA --"
	case st.Progress != nil && st.Progress.ETAEstimated:
		return "ETA ~" + durationString(p.eta)
	}
	return "ETA " + durationString(p.eta)
}

// inFlight is the number of a job's objects on their way: assigned to an
// agent or copied and waiting for their metadata update.
func inFlight(st *jobapi.JobStatus) int64 {
	return st.Results.Assigned + st.Results.PostProcessing
}

// optionLines are a job's options as "name value" pairs, a few to a line.
func optionLines(st *jobapi.JobStatus) []string {
	if st.Options == nil {
		return nil
	}
	b, err := json.Marshal(st.Options)
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	var lines []string
	line := ""
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			break
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		val := string(v)
		var s string
		if json.Unmarshal(v, &s) == nil {
			val = s
		}
		item := fmt.Sprintf("%s %s", k, val)
		if line != "" && len(line)+2+len(item) > 64 {
			lines = append(lines, line+",")
			line = ""
		}
		if line != "" {
			line += ", "
		}
		line += item
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
