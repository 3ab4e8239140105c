package jobapi

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
)

// checkAdvice says what to do after a shark check, a step a line, with the
// rebalancer-adm commands to run.
func checkAdvice(c evacuate.SharkCheck) []string {
	shark := c.Shark.Shark
	if c.Safe {
		return []string{fmt.Sprintf("%s may be retired: no metadata names it, and no job puts copies on it.", shark)}
	}
	var next []string
	for _, j := range c.Running {
		if !j.Options.DryRun {
			next = append(next, fmt.Sprintf("Job %s is evacuating %s: wait for it to end (rebalancer-adm job watch %s), then check again.", j.ID, shark, j.ID))
		}
	}
	if len(next) > 0 {
		return next
	}
	if c.Objects == 0 {
		return []string{fmt.Sprintf("Nothing names %s, but it is in service, so jobs may put copies on it: take it out first (rebalancer-adm shark out %s), then check again.", shark, shark)}
	}

	var fresh, fleet, repair, none int64
	excluded := false
	retry := map[string]int64{}              // by job
	sources := map[string]map[string]int64{} // by job, by source
	var repairJobs []string
	for _, g := range c.Groups {
		remedy := evacuate.RemedyRetry
		switch g.Kind {
		case evacuate.CheckSkipped:
			remedy = evacuate.RemedyFor(rebalancer.ObjectSkipped, g.Reason)
		case evacuate.CheckError:
			remedy = evacuate.RemedyFor(rebalancer.ObjectError, g.Reason)
		case evacuate.CheckUnprocessed:
		case evacuate.CheckExcluded:
			excluded = true
			fallthrough
		default: // moved, dry_run, not_found: only a new discovery finds them
			fresh += g.Objects
			continue
		}
		switch remedy {
		case evacuate.RemedyRetry:
			retry[g.Job] += g.Objects
			if sources[g.Job] == nil {
				sources[g.Job] = map[string]int64{}
			}
			for s, n := range g.Sources {
				sources[g.Job][s] += n
			}
		case evacuate.RemedyGone:
			fresh += g.Objects // deleted, and written again since
		case evacuate.RemedyFleet:
			fleet += g.Objects
		case evacuate.RemedyRepair:
			repair += g.Objects
			if !slices.Contains(repairJobs, g.Job) {
				repairJobs = append(repairJobs, g.Job)
			}
		case evacuate.RemedyNone:
			none += g.Objects
		}
	}

	var retried int64
	for _, n := range retry {
		retried += n
	}
	switch {
	case fresh > 0:
		// A new evacuation discovers afresh: it also takes what a retry
		// would.
		cmd := "rebalancer-adm job create evacuate --shark " + shark
		why := "written since the latest evacuation's scan"
		if excluded {
			cmd += " --exclude-key-prefix none"
			why += ", or under the key prefixes it left out"
		}
		msg := fmt.Sprintf("%s no evacuation found (%s): evacuate %s again: %s", objects(fresh), why, shark, cmd)
		if c.Latest == nil && !slices.ContainsFunc(c.Groups, func(g evacuate.CheckGroup) bool {
			return g.Kind != evacuate.CheckNotFound && g.Kind != evacuate.CheckDryRun // only an evacuation leaves these
		}) {
			msg = fmt.Sprintf("%s was never evacuated: evacuate it: %s", shark, cmd)
		}
		if retried > 0 {
			msg += fmt.Sprintf(" (it also retries the %s a retry would)", objects(retried))
		}
		next = append(next, msg)
	case retried > 0:
		for _, job := range slices.Sorted(maps.Keys(retry)) {
			msg := fmt.Sprintf("%s may move on a retry of job %s", objects(retry[job]), job)
			if src, n := dominant(sources[job]); n*2 >= retry[job] {
				msg += fmt.Sprintf(" (%s of them failed reading from %s: make sure it serves its objects first)", commas(n), src)
			}
			next = append(next, msg+": rebalancer-adm job retry "+job)
		}
	}
	if fleet > 0 {
		next = append(next, fmt.Sprintf("%s a copy on every shark, or in every datacenter, that could take them: they move once there is another shark for them.", have(fleet)))
	}
	if repair > 0 {
		var cmds []string
		for _, j := range repairJobs {
			cmds = append(cmds, "rebalancer-adm job objects "+j+" --status skipped (or --status error)")
		}
		next = append(next, fmt.Sprintf("%s a bad or missing copy elsewhere, or malformed metadata: see %s; repair them, then retry.",
			have(repair), strings.Join(cmds, ", ")))
	}
	if none > 0 {
		next = append(next, fmt.Sprintf("%s no copy but the one on %s, or their data is gone: they cannot be moved, and retiring %s loses them.",
			have(none), shark, shark))
	}
	if c.Shark.State == evacuate.SharkInService && !c.Shark.Blocklisted {
		next = append(next, fmt.Sprintf("%s is in service: take it out (rebalancer-adm shark out %s) so that no job puts copies back on it.", shark, shark))
	}
	return next
}

// dominant returns the source with the most objects.
func dominant(sources map[string]int64) (string, int64) {
	var best string
	var most int64
	for _, s := range slices.Sorted(maps.Keys(sources)) {
		if sources[s] > most {
			best, most = s, sources[s]
		}
	}
	return best, most
}

// objects says "1 object" or "1,234 objects".
func objects(n int64) string {
	if n == 1 {
		return "1 object"
	}
	return commas(n) + " objects"
}

// have says "1 object has" or "2 objects have".
func have(n int64) string {
	if n == 1 {
		return "1 object has"
	}
	return commas(n) + " objects have"
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
