// Package retry is the module's one way to wait and try again: a
// context-aware Sleep, an exponential Backoff schedule with jitter, and Do,
// which runs an operation under a Policy (how many attempts, how long in
// all, which errors are worth another try).
//
// The rebalancer retries in many places (shard scans, Moray redials,
// downloads from a source shark, job-store writes, metadata updates), and
// each used to carry its own loop. They differ in what they retry, not in
// how: that is what a Policy says. Loops that need more than Do offers
// (say, a branch per kind of failure) still take their waits from Backoff
// and Sleep, so that every wait in the module ends when its context does.
//
// Plain HTTP requests whose whole reply is read at once can use
// go-retryablehttp instead (package storinfo does); Do is for everything
// else, and for requests whose reply is streamed.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Sleep waits for d or until ctx ends, and reports whether d passed. It
// returns false at once when ctx has already ended, even for d <= 0.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Backoff is an exponential schedule of waits: Initial before the first
// retry, multiplied by Factor for each further one, never above Max, each
// spread at random over ±Jitter of itself so that many clients retrying the
// same server do not retry in lockstep.
type Backoff struct {
	Initial time.Duration // the first wait; <= 0 means no wait at all
	Max     time.Duration // the longest wait before jitter; 0 means no limit
	Factor  float64       // growth per retry; values below 1 mean 2
	Jitter  float64       // 0 to 1: the fraction of each wait spread at random
}

// Delay returns the wait before retry n, counted from 0 (the wait after
// the first attempt failed). Negative n is taken as 0.
func (b Backoff) Delay(n int) time.Duration {
	if b.Initial <= 0 {
		return 0
	}
	f := b.Factor
	if f < 1 {
		f = 2
	}
	d := float64(b.Initial)
	for range max(n, 0) {
		d *= f
		if b.Max > 0 && d >= float64(b.Max) || d >= float64(maxWait) {
			break
		}
	}
	if b.Max > 0 {
		d = min(d, float64(b.Max))
	}
	d = min(d, float64(maxWait))
	if j := min(max(b.Jitter, 0), 1); j > 0 {
		d += d * j * (2*rand.Float64() - 1)
	}
	return time.Duration(d)
}

// maxWait keeps a schedule without Max from overflowing a Duration.
const maxWait = 24 * time.Hour

// Policy says how Do retries.
type Policy struct {
	// Attempts is the most times Do calls the operation, the first call
	// included. 0 means no limit (until ctx ends, MaxElapsed passes or an
	// error is not retryable); with Delays set, 0 means len(Delays)+1.
	Attempts int
	// MaxElapsed, when positive, makes Do give up rather than start a wait
	// that would end later than MaxElapsed after the first call.
	MaxElapsed time.Duration
	// Backoff is the schedule of waits between attempts.
	Backoff Backoff
	// Delays, when set, is the schedule instead of Backoff: Delays[i] is
	// the wait before retry i, and the last one repeats.
	Delays []time.Duration
	// Retryable says whether a failure is worth another attempt; nil means
	// every error is. An error the operation wraps with Permanent is never
	// retried, nor is any error once ctx has ended.
	Retryable func(error) bool
	// OnRetry, when set, is called before each wait, with the retry number
	// (from 0), the wait and the failure: for logs and metrics.
	OnRetry func(retry int, wait time.Duration, err error)

	// sleep replaces Sleep in this package's tests.
	sleep func(ctx context.Context, d time.Duration) bool
	// now replaces time.Now in this package's tests.
	now func() time.Time
}

// Delay returns the wait before retry n under the policy's schedule.
func (p *Policy) Delay(n int) time.Duration {
	if len(p.Delays) > 0 {
		return p.Delays[min(max(n, 0), len(p.Delays)-1)]
	}
	return p.Backoff.Delay(n)
}

func (p *Policy) attempts() int {
	if p.Attempts == 0 && len(p.Delays) > 0 {
		return len(p.Delays) + 1
	}
	return p.Attempts
}

// Do calls op until it succeeds, and returns nil, or until it fails for
// good: op's error is not retryable (Permanent, rejected by Retryable, or
// returned once ctx has ended), or Attempts or MaxElapsed ran out. Then it
// returns op's last error as it is after a single attempt, and an *Error
// wrapping it (which says how many attempts were made) after several. When
// ctx ends during a wait, Do returns ctx's error.
func Do(ctx context.Context, p Policy, op func(ctx context.Context) error) error {
	sleep, now := p.sleep, p.now
	if sleep == nil {
		sleep = Sleep
	}
	if now == nil {
		now = time.Now
	}
	limit := p.attempts()
	start := now()
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		wait := p.Delay(attempt - 1)
		var perm *permanentError
		switch {
		case errors.As(err, &perm):
			err = perm.err
		case ctx.Err() != nil,
			p.Retryable != nil && !p.Retryable(err),
			limit > 0 && attempt >= limit,
			p.MaxElapsed > 0 && now().Add(wait).Sub(start) > p.MaxElapsed:
		default:
			if p.OnRetry != nil {
				p.OnRetry(attempt-1, wait, err)
			}
			if !sleep(ctx, wait) {
				return ctx.Err()
			}
			continue
		}
		if attempt == 1 {
			return err
		}
		return &Error{Attempts: attempt, Err: err}
	}
}

// Error is Do's error when it ran out of attempts or time: the last
// failure, and how many attempts were made.
type Error struct {
	Attempts int
	Err      error
}

func (e *Error) Error() string { return fmt.Sprintf("after %d attempts: %v", e.Attempts, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying, whatever Policy.Retryable
// says: Do returns err itself (not the wrapper) at once. It returns nil for
// a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (e *permanentError) Unwrap() error { return e.err }
