package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// What the commands show of a job's status (jobapi.JobStatus), from the Go
// manager's document or a legacy one.

// statusOrder are the object statuses in pipeline order.
var statusOrder = []rebalancer.ObjectStatus{rebalancer.ObjectUnprocessed, rebalancer.ObjectAssigned,
	rebalancer.ObjectPostProcessing, rebalancer.ObjectComplete, rebalancer.ObjectSkipped, rebalancer.ObjectError}

// progress is what watch shows, from the Go manager's progress block or,
// for a legacy manager, derived from the counts.
type progress struct {
	objects, done, complete int64
	bytes, bytesComplete    int64 // 0 when unknown
	objRate, byteRate       float64
	eta                     time.Duration // -1 when unknown
	discoveryDone           bool
}

func progressOf(s *jobapi.JobStatus) progress {
	if p := s.Progress; p != nil {
		out := progress{objects: p.Objects, done: p.ObjectsDone, complete: p.ObjectsComplete,
			bytes: p.Bytes, bytesComplete: p.BytesComplete, objRate: p.ObjectsPerSecond, byteRate: p.BytesPerSecond,
			eta: -1, discoveryDone: p.DiscoveryDone}
		if p.ETASeconds != nil {
			out.eta = time.Duration(*p.ETASeconds * float64(time.Second))
		}
		return out
	}
	r := &s.Results
	return progress{objects: r.Total - r.Duplicates, done: r.Complete + r.Skipped + r.Error, complete: r.Complete,
		eta: -1, discoveryDone: s.State.Terminal()}
}

// skipBreakdown returns the skip reasons with their counts, largest first.
func skipBreakdown(s *jobapi.JobStatus) []reasonCount {
	var out []reasonCount
	for r, n := range s.Results.SkipBreakdown {
		out = append(out, reasonCount{r, n})
	}
	return sortCounts(out)
}

// errorBreakdown returns the errors with their counts, largest first.
// Errors are grouped in the legacy document as {"moray":{"etag_mismatch":1}};
// they come back as "moray_etag_mismatch".
func errorBreakdown(s *jobapi.JobStatus) []reasonCount {
	var out []reasonCount
	for group, reasons := range s.Results.ErrorBreakdown {
		for r, n := range reasons {
			name := r
			if group != "other" {
				name = group + "_" + r
			}
			out = append(out, reasonCount{name, n})
		}
	}
	return sortCounts(out)
}

func sortCounts(out []reasonCount) []reasonCount {
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].reason < out[j].reason
	})
	return out
}

type reasonCount struct {
	reason string
	n      int64
}

func joinCounts(rs []reasonCount) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.reason + " " + commas(r.n)
	}
	return strings.Join(parts, ", ")
}

// countsLine is every status count, in pipeline order.
func countsLine(s *jobapi.JobStatus) string {
	var parts []string
	for _, st := range statusOrder {
		parts = append(parts, strings.ToLower(st.Title())+" "+commas(s.Results.Count(st)))
	}
	if d := s.Results.Duplicates; d > 0 {
		parts = append(parts, "duplicates "+commas(d))
	}
	return strings.Join(parts, ", ")
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// bytesString formats a byte count in binary units.
func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		f /= unit
		if f < unit || u == "PiB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return ""
}

// durationString formats a duration for people: "17s", "3m05s", "2h04m",
// "3d04h" (jobapi.FormatDuration), or "--" when it is negative.
func durationString(d time.Duration) string {
	if d < 0 {
		return "--"
	}
	return jobapi.FormatDuration(d)
}

// rateString formats a per-second rate with sensible precision.
func rateString(r float64) string {
	if r < 10 {
		return fmt.Sprintf("%.1f", r)
	}
	return commas(int64(math.Round(r)))
}

// percent returns done/total as a percentage, 0 when total is 0.
func percent(done, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return 100 * float64(done) / float64(total)
}

// timeString formats a timestamp, "-" when absent.
func timeString(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// sourceLine says one count of skips or errors by source shark:
// "skipped source_other_error 3,789 from 2.stor.us-east.joyent.us".
func sourceLine(c jobapi.SourceCount) string {
	s := c.Status + " " + c.Reason + " " + commas(c.Objects)
	if c.Source != "" {
		s += " from " + c.Source
	}
	return s
}

// upperFirst capitalises the first letter of a sentence.
func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// movedNothing says why a retry that ended having moved nothing did so,
// and that another would do the same; "" for any other job.
func movedNothing(st *jobapi.JobStatus) string {
	left := st.Results.Skipped + st.Results.Error
	if st.RetryOf == "" || !st.State.Terminal() || st.State == rebalancer.JobFailed || st.Results.Complete > 0 || left == 0 {
		return ""
	}
	shark := st.Config.FromShark.MantaStorageID
	msg := "This retry moved nothing"
	if len(st.BySource) > 0 {
		c := st.BySource[0]
		which := "all " + commas(left)
		if c.Objects < left {
			which = commas(c.Objects) + " of the " + commas(left)
		}
		msg += fmt.Sprintf(": %s left were %s %s", which, c.Status, c.Reason)
		if c.Source != "" {
			msg += " reading from " + c.Source
		}
	}
	return msg + "; another retry does the same until that changes. What to do: rebalancer-adm shark check " + shark
}
