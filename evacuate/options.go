package evacuate

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
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
	// Beyond about 292 years a time.Duration overflows, and Go leaves the
	// conversion of such a float undefined.
	if math.IsNaN(secs) || math.Abs(secs) > math.MaxInt64/float64(time.Second) {
		return fmt.Errorf("duration %v seconds is out of range", secs)
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

	// MaxTasksPerAssignment caps an assignment's size (legacy 50). The
	// first assignments to each destination are smaller (2, 4, 8...), so
	// that a job's first copies are done within a second of its start.
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
	// not yet finished. A job starts with one per agent, and doubles that
	// each time one finishes: its first copies are not slowed down by
	// everything else it posts.
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
	// StaticMetadataThreads is the legacy use_static_md_update_threads:
	// the job's MetadataThreads workers are fixed for its whole life
	// (SetMetadataThreads refuses with ErrStaticThreads, and the HTTP API
	// answers PUT with the legacy's 400), and assignments whose copies are
	// verified wait for them in a queue of StaticQueueDepth: while it is
	// full, the poller waits before it hands over another. By default the
	// workers can be resized while the job runs and the queue is unbounded.
	StaticMetadataThreads bool `json:"static_metadata_threads,omitempty"`
	// StaticQueueDepth is that queue's length in assignments (legacy
	// static_queue_depth, 1..10000; 0 takes the engine's default, else
	// DefaultStaticQueueDepth). Only static jobs use it.
	StaticQueueDepth int `json:"static_queue_depth,omitempty"`
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

// DefaultStaticQueueDepth is the legacy default of static_queue_depth: the
// assignments a static job's metadata workers may have waiting.
const DefaultStaticQueueDepth = 10

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
	if o.StaticMetadataThreads {
		fill(&o.StaticQueueDepth, d.StaticQueueDepth)
		fill(&o.StaticQueueDepth, DefaultStaticQueueDepth)
	}
	fillD(&o.MetadataRetryWindow, d.MetadataRetryWindow)
	fill(&o.EtagRetries, d.EtagRetries)
	return o
}

// ErrInvalidOptions is matched (errors.Is) by the error of options out of
// range.
var ErrInvalidOptions = errors.New("invalid job options")

// Validate reports every option outside the range the engine can run
// with: counts in their ranges, durations positive and not absurdly long.
// The manager's API and configuration accept less (ValidateStrict); an
// embedder's tests may use timers far shorter than real agents allow.
func (o Options) Validate() error { return o.validate(false) }

// ValidateStrict reports every option outside its documented range
// (docs/api.md): Validate's ranges, with floors under the timers below
// which a job would work against real agents rather than with them. The
// manager's HTTP API and its configuration file accept only these.
func (o Options) ValidateStrict() error { return o.validate(true) }

func (o Options) validate(strict bool) error {
	var bad []string
	for _, r := range optionRanges {
		if msg := r.check(r.get(&o), strict); msg != "" {
			bad = append(bad, msg)
		}
	}
	if msg := checkPrefixes(o.ExcludeKeyPrefixes); msg != "" {
		bad = append(bad, msg)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(bad, "; "))
	}
	return nil
}

// Limits of exclude_key_prefixes.
const (
	maxPrefixes   = 1000
	maxPrefixSize = 1024
)

func checkPrefixes(ps []string) string {
	if len(ps) > maxPrefixes {
		return fmt.Sprintf("exclude_key_prefixes has %d entries, at most %d are accepted", len(ps), maxPrefixes)
	}
	for _, p := range ps {
		if p == "" || len(p) > maxPrefixSize {
			return fmt.Sprintf("exclude_key_prefixes entries must be 1..%d bytes long", maxPrefixSize)
		}
	}
	return ""
}

// optionRange is the accepted range of one numeric option.
type optionRange struct {
	key      string // its path in the JSON options: "busy_backoff.tries"
	min, max int64  // inclusive; durations in nanoseconds
	// floor is the least value the manager's API and configuration take
	// (ValidateStrict), when above min, and why is the reason.
	floor    int64
	why      string
	duration bool
	get      func(*Options) int64
}

// check returns what is wrong with v, or "".
func (r optionRange) check(v int64, strict bool) string {
	lo := r.min
	if strict && r.floor > lo {
		lo = r.floor
	}
	if v >= lo && v <= r.max {
		return ""
	}
	msg := fmt.Sprintf("%s %s is out of range %s", r.key, r.format(v), r.rangeString(strict))
	if strict && v < r.floor && r.why != "" {
		msg += " (" + r.why + ")"
	}
	return msg
}

// rangeString is the range as docs/api.md shows it: "1m..720h", "1..250".
func (r optionRange) rangeString(strict bool) string {
	lo := r.min
	if strict && r.floor > lo {
		lo = r.floor
	}
	return r.format(lo) + ".." + r.format(r.max)
}

func (r optionRange) format(v int64) string {
	if !r.duration {
		return strconv.FormatInt(v, 10)
	}
	return shortDuration(time.Duration(v))
}

// shortDuration writes a duration without its zero trailing units: "1m"
// rather than "1m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func count(key string, lo, hi int64, get func(*Options) int) optionRange {
	return optionRange{key: key, min: lo, max: hi, get: func(o *Options) int64 { return int64(get(o)) }}
}

// timer is a duration option: positive for the engine, at least floor for
// the API and configuration.
func timer(key string, floor, hi time.Duration, why string, get func(*Options) Duration) optionRange {
	return optionRange{key: key, min: 1, floor: int64(floor), max: int64(hi), why: why, duration: true,
		get: func(o *Options) int64 { return int64(get(o)) }}
}

func backoffRanges(key string, get func(*Options) *Backoff) []optionRange {
	d := func(f func(*Backoff) Duration) func(*Options) int64 {
		return func(o *Options) int64 { return int64(f(get(o))) }
	}
	return []optionRange{
		{key: key + ".initial", min: 1, floor: int64(time.Millisecond), max: int64(time.Hour), duration: true,
			why: "retries would hammer the agent", get: d(func(b *Backoff) Duration { return b.Initial })},
		{key: key + ".step", min: 0, max: int64(time.Hour), duration: true, get: d(func(b *Backoff) Duration { return b.Step })},
		{key: key + ".max", min: 0, max: int64(24 * time.Hour), duration: true, get: d(func(b *Backoff) Duration { return b.Max })},
		{key: key + ".tries", min: 1, max: 10000, get: func(o *Options) int64 { return int64(get(o).Tries) }},
	}
}

// optionRanges are the ranges of every numeric option, in the order of
// docs/api.md. The floors are the shortest timers that still work with
// agents on real sharks; the maxima keep a mistyped value from freezing a
// job for years.
var optionRanges = append([]optionRange{
	count("max_objects", 0, 1<<32-1, func(o *Options) int { return o.MaxObjects }),
	count("max_tasks_per_assignment", 1, 10000, func(o *Options) int { return o.MaxTasksPerAssignment }),
	timer("flush_age", time.Millisecond, time.Hour, "assignments of one object each",
		func(o *Options) Duration { return o.FlushAge }),
	timer("assignment_timeout", time.Minute, 30*24*time.Hour,
		"shorter than copying an assignment can take: the job would give up on copies the agents go on making",
		func(o *Options) Duration { return o.AssignmentTimeout }),
	timer("agent_unreachable_timeout", time.Second, 24*time.Hour,
		"shorter than an agent restart: the job would give up on copies the agent goes on making",
		func(o *Options) Duration { return o.AgentUnreachableTimeout }),
	timer("poll_interval", 10*time.Millisecond, 10*time.Minute, "polling would keep the agents busy answering",
		func(o *Options) Duration { return o.PollInterval }),
	count("poll_concurrency", 1, 1000, func(o *Options) int { return o.PollConcurrency }),
	count("max_outstanding_per_dest", 1, 10000, func(o *Options) int { return o.MaxOutstandingPerDest }),
	count("max_inflight_tasks", 1, 10_000_000, func(o *Options) int { return o.MaxInflightTasks }),
	count("max_inflight_per_source", 0, 100_000, func(o *Options) int { return o.MaxInflightPerSource }),
	count("max_attempts", 1, 100, func(o *Options) int { return o.MaxAttempts }),
	count("metadata_threads", 1, MaxMetadataThreads, func(o *Options) int { return o.MetadataThreads }),
	count("static_queue_depth", 0, 10000, func(o *Options) int { return o.StaticQueueDepth }),
	timer("metadata_retry_window", time.Second, 24*time.Hour, "a Moray failover takes longer",
		func(o *Options) Duration { return o.MetadataRetryWindow }),
	count("etag_retries", 1, 100, func(o *Options) int { return o.EtagRetries }),
},
	append(backoffRanges("busy_backoff", func(o *Options) *Backoff { return &o.BusyBackoff }),
		backoffRanges("unreachable_backoff", func(o *Options) *Backoff { return &o.UnreachableBackoff })...)...)

// rangeOf returns the range of the option at path, if it has one.
func rangeOf(path string) (optionRange, bool) {
	for _, r := range optionRanges {
		if r.key == path {
			return r, true
		}
	}
	return optionRange{}, false
}

// MergeJSON overrides o with the options of a request: a JSON object of
// Options keys, a nested object for a backoff, null for "as it is". Every
// key must be an option, at any depth; every value given must be in its
// documented range (as ValidateStrict has it; zero is a value like any
// other, not "the default"). Errors name the option by its path, prefixed
// by path (say "params.options.").
func (o *Options) MergeJSON(raw []byte, path string) error {
	var given []string
	if err := mergeStruct(raw, reflect.ValueOf(o).Elem(), path, "", &given); err != nil {
		return err
	}
	var bad []string
	for _, key := range given {
		if r, ok := rangeOf(key); ok {
			if msg := r.check(r.get(o), true); msg != "" {
				bad = append(bad, path+msg)
			}
		}
		if key == "exclude_key_prefixes" {
			if msg := checkPrefixes(o.ExcludeKeyPrefixes); msg != "" {
				bad = append(bad, path+msg)
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(bad, "; "))
	}
	return nil
}

// mergeStruct decodes the JSON object raw into the struct v, field by
// field, so that an error names its field, and appends the paths of the
// fields given (prefix + key) to given.
func mergeStruct(raw []byte, v reflect.Value, path, prefix string, given *[]string) error {
	what := strings.TrimSuffix(path+prefix, ".")
	if what == "" {
		what = "options"
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return fmt.Errorf("%w: %s must be a JSON object", ErrInvalidOptions, what)
	}
	fields := jsonFields(v.Type())
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := prefix + k
		i, ok := fields[k]
		if !ok {
			return fmt.Errorf("%w: %s%s is not an option (%s takes %s)", ErrInvalidOptions, path, name,
				what, strings.Join(sortedKeys(fields), ", "))
		}
		val := obj[k]
		if string(val) == "null" {
			continue
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct && !f.Addr().Type().Implements(reflect.TypeFor[json.Unmarshaler]()) {
			if err := mergeStruct(val, f, path, name+".", given); err != nil {
				return err
			}
			continue
		}
		if err := json.Unmarshal(val, f.Addr().Interface()); err != nil {
			return fmt.Errorf("%w: %s%s: %s", ErrInvalidOptions, path, name, jsonProblem(err))
		}
		*given = append(*given, name)
	}
	return nil
}

// jsonFields maps the JSON names of a struct's fields to their indexes.
func jsonFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = i
		}
	}
	return out
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// jsonProblem says what is wrong with a value without the Go type names
// encoding/json puts in its messages.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "a number"
		switch te.Type.Kind() {
		case reflect.Int, reflect.Int64:
			want = "an integer"
		case reflect.Bool:
			want = "true or false"
		case reflect.Slice:
			want = "a list of strings"
		case reflect.String:
			want = "a string"
		}
		return fmt.Sprintf("%s is not %s", te.Value, want)
	}
	return err.Error()
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
