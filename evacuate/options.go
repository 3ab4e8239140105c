package evacuate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration that encodes in JSON as a string such as
// "1.5s" and also decodes from a number of seconds.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration must be a string like \"1m30s\" or a number of seconds")
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Options are a job's tunables. A job keeps the options it was created with
// (the manager's configuration at that time); MetadataThreads can change
// while it runs.
type Options struct {
	// MaxObjects stops discovery after this many objects (0: no limit).
	MaxObjects int `json:"max_objects,omitempty"`
	// ExcludeKeyPrefixes leaves out objects whose key contains any of these
	// strings (legacy: a substring match, e.g. "/stor/logs/").
	ExcludeKeyPrefixes []string `json:"exclude_key_prefixes,omitempty"`
	// DryRun discovers and places without copying or changing metadata.
	DryRun bool `json:"dry_run,omitempty"`

	// MaxTasksPerAssignment caps an assignment's size (legacy 50).
	MaxTasksPerAssignment int `json:"max_tasks_per_assignment"`
	// FlushAge sends a partial assignment once its oldest task waited this
	// long, so copying starts within a second of job start.
	FlushAge Duration `json:"flush_age"`
	// AssignmentTimeout gives up on an assignment an agent has not finished
	// this long after accepting it (legacy: 2 x max_assignment_age).
	AssignmentTimeout Duration `json:"assignment_timeout"`
	// AgentUnreachableTimeout gives up on an assignment whose agent cannot
	// be reached for this long.
	AgentUnreachableTimeout Duration `json:"agent_unreachable_timeout"`
	// PollInterval is how often an accepted assignment is checked.
	PollInterval Duration `json:"poll_interval"`
	// PollConcurrency bounds concurrent status requests (legacy 8).
	PollConcurrency int `json:"poll_concurrency"`
	// MaxOutstandingPerDest bounds the assignments posted to one agent and
	// not yet finished.
	MaxOutstandingPerDest int `json:"max_outstanding_per_dest"`
	// MaxInflightTasks bounds the tasks of one job that are placed and not
	// yet copied, which bounds its memory.
	MaxInflightTasks int `json:"max_inflight_tasks"`
	// MaxInflightPerSource bounds the copies being read from one source
	// shark at once, to protect user traffic on it (0: no limit).
	MaxInflightPerSource int `json:"max_inflight_per_source,omitempty"`
	// MaxAttempts is how many times an object is placed and copied before a
	// failure that might pass (a busy or lost agent, a bad source copy when
	// another exists) becomes final.
	MaxAttempts int `json:"max_attempts"`
	// BusyBackoff is the schedule of waits after an agent answers 503
	// (legacy: min(5n, 30) s, 60 times).
	BusyBackoff Backoff `json:"busy_backoff"`
	// UnreachableBackoff is the schedule of waits after a POST fails to reach
	// the agent.
	UnreachableBackoff Backoff `json:"unreachable_backoff"`

	// MetadataThreads is the number of concurrent metadata updates (legacy
	// max_metadata_update_threads, 1..250, adjustable while running).
	MetadataThreads int `json:"metadata_threads"`
	// MetadataRetryWindow is how long transient Moray errors are retried
	// before an object's update counts as failed.
	MetadataRetryWindow Duration `json:"metadata_retry_window"`
	// EtagRetries is how often an update that lost an etag race is re-read
	// and tried again.
	EtagRetries int `json:"etag_retries"`
	// IndividualUpdates updates each object's metadata with its own
	// putObject. By default (the legacy use_batched_updates) an
	// assignment's updates go to each shard in one atomic batch when the
	// MetadataStore is a rebalancer.BatchMetadataStore; a batch that fails
	// is done again object by object, with the conflict handling above.
	IndividualUpdates bool `json:"individual_updates,omitempty"`
}

// Backoff is a retry schedule: wait Initial, growing by Step each time, up to
// Max, for at most Tries attempts.
type Backoff struct {
	Initial Duration `json:"initial"`
	Step    Duration `json:"step"`
	Max     Duration `json:"max"`
	Tries   int      `json:"tries"`
}

// Delay returns the wait before retry n (1-based).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Initial.D() + time.Duration(n-1)*b.Step.D()
	if b.Max > 0 && d > b.Max.D() {
		d = b.Max.D()
	}
	return d
}

// MaxMetadataThreads is the legacy upper bound for MetadataThreads.
const MaxMetadataThreads = 250

// DefaultOptions returns the legacy defaults where the legacy has a value.
func DefaultOptions() Options {
	return Options{
		ExcludeKeyPrefixes:      nil,
		MaxTasksPerAssignment:   50,
		FlushAge:                Duration(time.Second),
		AssignmentTimeout:       Duration(2 * time.Hour),
		AgentUnreachableTimeout: Duration(10 * time.Minute),
		PollInterval:            Duration(500 * time.Millisecond),
		PollConcurrency:         8,
		MaxOutstandingPerDest:   16,
		MaxInflightTasks:        20000,
		MaxAttempts:             3,
		BusyBackoff:             Backoff{Initial: Duration(5 * time.Second), Step: Duration(5 * time.Second), Max: Duration(30 * time.Second), Tries: 60},
		UnreachableBackoff:      Backoff{Initial: Duration(time.Second), Step: Duration(time.Second), Max: Duration(4 * time.Second), Tries: 4},
		MetadataThreads:         10,
		MetadataRetryWindow:     Duration(5 * time.Minute),
		EtagRetries:             3,
	}
}

// withDefaults fills zero fields from d.
func (o Options) withDefaults(d Options) Options {
	fill := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fillD := func(v *Duration, def Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&o.MaxTasksPerAssignment, d.MaxTasksPerAssignment)
	fillD(&o.FlushAge, d.FlushAge)
	fillD(&o.AssignmentTimeout, d.AssignmentTimeout)
	fillD(&o.AgentUnreachableTimeout, d.AgentUnreachableTimeout)
	fillD(&o.PollInterval, d.PollInterval)
	fill(&o.PollConcurrency, d.PollConcurrency)
	fill(&o.MaxOutstandingPerDest, d.MaxOutstandingPerDest)
	fill(&o.MaxInflightTasks, d.MaxInflightTasks)
	fill(&o.MaxAttempts, d.MaxAttempts)
	if o.BusyBackoff.Tries == 0 {
		o.BusyBackoff = d.BusyBackoff
	}
	if o.UnreachableBackoff.Tries == 0 {
		o.UnreachableBackoff = d.UnreachableBackoff
	}
	fill(&o.MetadataThreads, d.MetadataThreads)
	fillD(&o.MetadataRetryWindow, d.MetadataRetryWindow)
	fill(&o.EtagRetries, d.EtagRetries)
	return o
}

// ErrInvalidOptions is matched (errors.Is) by the error of options out of
// range.
var ErrInvalidOptions = errors.New("invalid job options")

// Validate reports every option out of range.
func (o Options) Validate() error {
	var bad []string
	if o.MaxObjects < 0 {
		bad = append(bad, "max_objects must not be negative")
	}
	if o.MaxTasksPerAssignment < 1 || o.MaxTasksPerAssignment > 10000 {
		bad = append(bad, "max_tasks_per_assignment must be in 1..10000")
	}
	if o.MetadataThreads < 1 || o.MetadataThreads > MaxMetadataThreads {
		bad = append(bad, fmt.Sprintf("metadata threads must be in 1..%d", MaxMetadataThreads))
	}
	if o.PollConcurrency < 1 || o.MaxOutstandingPerDest < 1 || o.MaxInflightTasks < 1 || o.MaxAttempts < 1 {
		bad = append(bad, "poll_concurrency, max_outstanding_per_dest, max_inflight_tasks and max_attempts must be positive")
	}
	if o.MaxInflightPerSource < 0 {
		bad = append(bad, "max_inflight_per_source must not be negative")
	}
	for _, p := range o.ExcludeKeyPrefixes {
		if p == "" {
			bad = append(bad, "exclude_key_prefixes must not contain an empty string")
			break
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(bad, "; "))
	}
	return nil
}

// Exclusions returns the key prefixes in effect: ExcludeKeyPrefixes, except
// that the legacy list ["none"] means none.
func (o Options) Exclusions() []string {
	if len(o.ExcludeKeyPrefixes) == 1 && o.ExcludeKeyPrefixes[0] == "none" {
		return nil
	}
	return o.ExcludeKeyPrefixes
}

// excluded reports whether a key matches an exclusion.
func (o Options) excluded(key string) bool {
	for _, p := range o.Exclusions() {
		if strings.Contains(key, p) {
			return true
		}
	}
	return false
}
