package main

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// jobStatus is GET /jobs/{uuid}: the legacy document (config, results,
// state) and what the Go manager adds (id, error, times, progress, dry
// run). Everything added is optional, so a legacy manager's reply reads
// too.
type jobStatus struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Error   string `json:"error"`
	RetryOf string `json:"retry_of"`
	Config  struct {
		Action    string `json:"action"`
		FromShark struct {
			Datacenter     string `json:"datacenter"`
			MantaStorageID string `json:"manta_storage_id"`
		} `json:"from_shark"`
	} `json:"config"`
	Results  map[string]json.RawMessage `json:"results"`
	Created  *time.Time                 `json:"created"`
	Started  *time.Time                 `json:"started"`
	Finished *time.Time                 `json:"finished"`
	Progress *struct {
		Objects          int64    `json:"objects"`
		ObjectsDone      int64    `json:"objects_done"`
		ObjectsComplete  int64    `json:"objects_complete"`
		Bytes            int64    `json:"bytes"`
		BytesComplete    int64    `json:"bytes_complete"`
		ObjectsPerSecond float64  `json:"objects_per_second"`
		BytesPerSecond   float64  `json:"bytes_per_second"`
		DiscoveryDone    bool     `json:"discovery_done"`
		ETASeconds       *float64 `json:"eta_seconds"`
	} `json:"progress"`
	DryRun *struct {
		Objects      int64 `json:"objects"`
		Bytes        int64 `json:"bytes"`
		SingleCopy   int64 `json:"single_copy_objects"`
		Unplaceable  int64 `json:"unplaceable_objects"`
		Destinations map[string]struct {
			Objects int64 `json:"objects"`
			Bytes   int64 `json:"bytes"`
		} `json:"destinations"`
	} `json:"dry_run"`
}

func parseStatus(b []byte) (*jobStatus, error) {
	var st jobStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("cannot read the job status: %w", err)
	}
	if st.State == "" {
		return nil, fmt.Errorf("cannot read the job status: no state in %.80q", b)
	}
	return &st, nil
}

// statusKeys are the legacy object counts, in pipeline order.
var statusKeys = []string{"Unprocessed", "Assigned", "Post Processing", "Complete", "Skipped", "Error"}

// count returns a count from results (0 when absent).
func (s *jobStatus) count(key string) int64 {
	var n int64
	json.Unmarshal(s.Results[key], &n)
	return n
}

// terminal reports whether the job will not change any more.
func (s *jobStatus) terminal() bool {
	switch s.State {
	case "Complete", "Failed", "Stopped":
		return true
	}
	return false
}

// progress is what watch shows, from the Go manager's progress block or,
// for a legacy manager, derived from the counts.
type progress struct {
	objects, done, complete int64
	bytes, bytesComplete    int64 // 0 when unknown
	objRate, byteRate       float64
	eta                     time.Duration // -1 when unknown
	discoveryDone           bool
}

func (s *jobStatus) progress() progress {
	if p := s.Progress; p != nil {
		out := progress{objects: p.Objects, done: p.ObjectsDone, complete: p.ObjectsComplete,
			bytes: p.Bytes, bytesComplete: p.BytesComplete, objRate: p.ObjectsPerSecond, byteRate: p.BytesPerSecond,
			eta: -1, discoveryDone: p.DiscoveryDone}
		if p.ETASeconds != nil {
			out.eta = time.Duration(*p.ETASeconds * float64(time.Second))
		}
		return out
	}
	done := s.count("Complete") + s.count("Skipped") + s.count("Error")
	return progress{objects: s.count("Total") - s.count("Duplicates"), done: done, complete: s.count("Complete"),
		eta: -1, discoveryDone: s.terminal()}
}

// breakdown returns the skip reasons, or the errors, with their counts,
// largest first. Errors are grouped in the legacy document as
// {"moray":{"etag_mismatch":1}}; they come back as "moray_etag_mismatch".
func (s *jobStatus) breakdown(key string) []reasonCount {
	var out []reasonCount
	switch key {
	case "skip_breakdown":
		var m map[string]int64
		json.Unmarshal(s.Results[key], &m)
		for r, n := range m {
			out = append(out, reasonCount{r, n})
		}
	case "error_breakdown":
		var m map[string]map[string]int64
		json.Unmarshal(s.Results[key], &m)
		for group, reasons := range m {
			for r, n := range reasons {
				name := r
				if group != "other" {
					name = group + "_" + r
				}
				out = append(out, reasonCount{name, n})
			}
		}
	}
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
func (s *jobStatus) countsLine() string {
	var parts []string
	for _, k := range statusKeys {
		parts = append(parts, strings.ToLower(k)+" "+commas(s.count(k)))
	}
	if d := s.count("Duplicates"); d > 0 {
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
// "3d04h".
func durationString(d time.Duration) string {
	if d < 0 {
		return "--"
	}
	s := int64(math.Round(d.Seconds()))
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
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
