package logging

import (
	"context"
	"log/slog"
	"regexp"
	"sync"
	"time"
)

// Summarizer logs repeated failures from one cause as a few lines instead
// of one per object. An evacuation whose source shark died fails every
// object on it the same way: twelve thousand identical warnings hide the
// one line that matters and fill the service log.
//
// Occurrences are grouped by level, message and cause ([Cause] of the
// error). The first of a group is logged as given. Those that follow within
// Interval are counted, and when the interval is over one line sums them
// up: the same level and message, with
//
//	"cause":    the group's cause,
//	"count":    occurrences summed up by this line,
//	"first", "last": the first and last of them, as groups of their
//	            attributes (and "err", the error's message),
//	"summary_ms": the interval,
//
// A storm thus logs a line per Interval for as long as it lasts, and an
// occurrence after a quiet interval is logged as given again. A summary is
// written when its interval ends even if nothing else happens (a timer),
// and Flush writes the pending ones at once, as a job or a program ends.
//
// A Summarizer is safe for concurrent use. It keeps one small entry per
// group seen in the last interval, at most MaxGroups: beyond them, new
// causes share a group per level and message, whose cause is "other".
type Summarizer struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time
	after    func(time.Duration, func()) stopper

	mu     sync.Mutex
	groups map[summaryKey]*summaryGroup
	closed bool
}

// MaxGroups bounds the groups a Summarizer tracks at once.
const MaxGroups = 1024

// DefaultSummaryInterval is the interval of NewSummarizer(log, 0).
const DefaultSummaryInterval = time.Minute

type stopper interface{ Stop() bool }

type summaryKey struct {
	level slog.Level
	msg   string
	cause string
}

type summaryGroup struct {
	count       int
	first, last []any // attributes of the first and last summed-up occurrence
	timer       stopper
}

// NewSummarizer returns a Summarizer logging to log, summing up each group
// over interval (0: DefaultSummaryInterval).
func NewSummarizer(log *slog.Logger, interval time.Duration) *Summarizer {
	if interval <= 0 {
		interval = DefaultSummaryInterval
	}
	return &Summarizer{
		log: log, interval: interval, now: time.Now,
		after:  func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) },
		groups: map[summaryKey]*summaryGroup{},
	}
}

// Log records one occurrence of msg at level, caused by err (nil for a
// failure without an error value), with args as in slog.Logger.Log (the
// object, the shark...).
func (s *Summarizer) Log(ctx context.Context, level slog.Level, msg string, err error, args ...any) {
	if !s.log.Enabled(ctx, level) {
		return
	}
	key := summaryKey{level: level, msg: msg, cause: Cause(err)}
	s.mu.Lock()
	g := s.groups[key]
	if g == nil && len(s.groups) >= MaxGroups {
		key.cause = "other"
		g = s.groups[key]
	}
	if g == nil {
		if !s.closed {
			g = &summaryGroup{}
			s.groups[key] = g
			g.timer = s.after(s.interval, func() { s.tick(key, g) })
		}
		s.mu.Unlock()
		if err != nil {
			args = append(args, "err", err)
		}
		s.log.Log(ctx, level, msg, args...)
		return
	}
	example := args
	if err != nil {
		example = append(example[:len(example):len(example)], "err", err.Error())
	}
	if g.count == 0 {
		g.first = example
	}
	g.last = example
	g.count++
	s.mu.Unlock()
}

// tick ends an interval of group g: it writes the group's summary, or
// forgets the group after an interval without an occurrence.
func (s *Summarizer) tick(key summaryKey, g *summaryGroup) {
	s.mu.Lock()
	if s.groups[key] != g { // flushed meanwhile
		s.mu.Unlock()
		return
	}
	if g.count == 0 {
		delete(s.groups, key)
		s.mu.Unlock()
		return
	}
	done := *g
	g.count, g.first, g.last = 0, nil, nil
	g.timer = s.after(s.interval, func() { s.tick(key, g) })
	s.mu.Unlock()
	s.write(context.Background(), key, &done)
}

// Flush writes every pending summary now and starts the groups afresh:
// the next occurrence of each is logged as given.
func (s *Summarizer) Flush(ctx context.Context) {
	s.mu.Lock()
	groups := s.groups
	s.groups = map[summaryKey]*summaryGroup{}
	s.mu.Unlock()
	for key, g := range groups {
		g.timer.Stop()
		if g.count > 0 {
			s.write(ctx, key, g)
		}
	}
}

// Close flushes and stops the timers; later occurrences are logged as
// given, each one.
func (s *Summarizer) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Flush(context.Background())
}

func (s *Summarizer) write(ctx context.Context, key summaryKey, g *summaryGroup) {
	s.log.Log(ctx, key.level, key.msg, "cause", key.cause, "count", g.count,
		slog.Group("first", g.first...), slog.Group("last", g.last...), "summary", s.interval)
}

var (
	uuidPattern   = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	hexPattern    = regexp.MustCompile(`\b[0-9a-fA-F]{16,}\b`)
	numberPattern = regexp.MustCompile(`\b[0-9]+\b`)
)

// Cause is the class of err that Summarizer groups by: the message of the
// innermost error (errors.Unwrap until nothing is left; the first of a
// joined error) with what varies from object to object replaced: UUIDs by
// "<uuid>", long hex strings by "<hex>", numbers (whole words) by "#". So
//
//	fetch 2.stor.demo.example/a3f.../0c1d...: dial tcp 10.0.0.9:80: connect: connection refused
//
// is "connection refused" when its errors wrap (as net and os errors do),
// and "GET #.stor.demo.example/<uuid>/<uuid>: status #" when they are one
// string. A nil error is "".
func Cause(err error) string {
	if err == nil {
		return ""
	}
	for {
		var next error
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			next = u.Unwrap()
		case interface{ Unwrap() []error }:
			if errs := u.Unwrap(); len(errs) > 0 {
				next = errs[0]
			}
		}
		if next == nil {
			break
		}
		err = next
	}
	msg := err.Error()
	msg = uuidPattern.ReplaceAllString(msg, "<uuid>")
	msg = hexPattern.ReplaceAllString(msg, "<hex>")
	return numberPattern.ReplaceAllString(msg, "#")
}
