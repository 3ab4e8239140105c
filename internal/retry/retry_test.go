package retry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

var (
	errFlaky = errors.New("flaky")
	errFatal = errors.New("fatal")
)

// clock is a fake time for Do: sleeping advances it, and is recorded.
type clock struct {
	now    time.Time
	waits  []time.Duration
	cancel context.CancelFunc // when set, the first sleep cancels instead
}

func (c *clock) sleep(ctx context.Context, d time.Duration) bool {
	if c.cancel != nil {
		c.cancel()
		return Sleep(ctx, d)
	}
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	return true
}

// script returns an operation failing with errs in turn, then succeeding,
// and a pointer to its call count.
func script(errs ...error) (func(context.Context) error, *int) {
	n := 0
	return func(context.Context) error {
		n++
		if n <= len(errs) {
			return errs[n-1]
		}
		return nil
	}, &n
}

func TestDo(t *testing.T) {
	ms := time.Millisecond
	expo := Backoff{Initial: 10 * ms, Max: 40 * ms}
	transient := func(err error) bool { return errors.Is(err, errFlaky) }
	for _, tc := range []struct {
		name      string
		policy    Policy
		errs      []error // op's results in turn; nil after them
		cancelled bool    // ctx is cancelled during the first wait
		calls     int
		waits     []time.Duration
		want      error // nil, or what errors.Is must find
		attempts  int   // > 0: the error is an *Error with this count
	}{
		{name: "first attempt succeeds", policy: Policy{Attempts: 3, Backoff: expo},
			calls: 1},
		{name: "succeeds after retries", policy: Policy{Attempts: 5, Backoff: expo},
			errs: []error{errFlaky, errFlaky, errFlaky}, calls: 4, waits: []time.Duration{10 * ms, 20 * ms, 40 * ms}},
		{name: "attempts run out", policy: Policy{Attempts: 3, Backoff: expo},
			errs: []error{errFlaky, errFlaky, errFlaky, errFlaky}, calls: 3, waits: []time.Duration{10 * ms, 20 * ms},
			want: errFlaky, attempts: 3},
		{name: "one attempt: the error as it is", policy: Policy{Attempts: 1, Backoff: expo},
			errs: []error{errFlaky}, calls: 1, want: errFlaky},
		{name: "not retryable at once", policy: Policy{Attempts: 5, Backoff: expo, Retryable: transient},
			errs: []error{errFatal}, calls: 1, want: errFatal},
		{name: "not retryable after retries", policy: Policy{Attempts: 5, Backoff: expo, Retryable: transient},
			errs: []error{errFlaky, errFatal}, calls: 2, waits: []time.Duration{10 * ms}, want: errFatal, attempts: 2},
		{name: "permanent overrides Retryable", policy: Policy{Attempts: 5, Backoff: expo},
			errs: []error{Permanent(errFlaky)}, calls: 1, want: errFlaky},
		{name: "wrapped permanent", policy: Policy{Attempts: 5, Backoff: expo},
			errs: []error{errFlaky, fmt.Errorf("op: %w", Permanent(errFatal))}, calls: 2, waits: []time.Duration{10 * ms},
			want: errFatal, attempts: 2},
		{name: "no attempt limit", policy: Policy{Backoff: expo},
			errs: slices.Repeat([]error{errFlaky}, 6), calls: 7,
			waits: []time.Duration{10 * ms, 20 * ms, 40 * ms, 40 * ms, 40 * ms, 40 * ms}},
		{name: "max elapsed: no wait past it", policy: Policy{Backoff: expo, MaxElapsed: 65 * ms},
			errs: slices.Repeat([]error{errFlaky}, 10), calls: 3, waits: []time.Duration{10 * ms, 20 * ms},
			want: errFlaky, attempts: 3},
		{name: "fixed delays, last repeats", policy: Policy{Attempts: 5, Delays: []time.Duration{ms, 7 * ms}},
			errs: slices.Repeat([]error{errFlaky}, 10), calls: 5, waits: []time.Duration{ms, 7 * ms, 7 * ms, 7 * ms},
			want: errFlaky, attempts: 5},
		{name: "fixed delays set the attempts", policy: Policy{Delays: []time.Duration{ms, 2 * ms}},
			errs: slices.Repeat([]error{errFlaky}, 10), calls: 3, waits: []time.Duration{ms, 2 * ms},
			want: errFlaky, attempts: 3},
		{name: "no backoff: retries at once", policy: Policy{Attempts: 3},
			errs: []error{errFlaky, errFlaky}, calls: 3, waits: []time.Duration{0, 0}},
		{name: "ctx ends during a wait", policy: Policy{Attempts: 5, Backoff: Backoff{Initial: time.Hour}},
			errs: []error{errFlaky, errFlaky}, cancelled: true, calls: 1, want: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := &clock{now: time.Unix(1e9, 0)}
			if tc.cancelled {
				c.cancel = cancel
			}
			p := tc.policy
			p.sleep, p.now = c.sleep, func() time.Time { return c.now }
			var retries []int
			p.OnRetry = func(n int, wait time.Duration, err error) {
				if err == nil {
					t.Error("OnRetry without an error")
				}
				retries = append(retries, n)
			}
			op, calls := script(tc.errs...)
			err := Do(ctx, p, op)
			if *calls != tc.calls {
				t.Errorf("%d calls, want %d", *calls, tc.calls)
			}
			if !slices.Equal(c.waits, tc.waits) {
				t.Errorf("waits %v, want %v", c.waits, tc.waits)
			}
			if n := len(tc.waits); !tc.cancelled && len(retries) != n {
				t.Errorf("OnRetry called %d times, want %d", len(retries), n)
			}
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Do = %v, want success", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Do = %v, want %v", err, tc.want)
			}
			var re *Error
			if got := errors.As(err, &re); got != (tc.attempts > 0) {
				t.Fatalf("Do = %v: *Error %v, want %v", err, got, tc.attempts > 0)
			}
			if re != nil && (re.Attempts != tc.attempts || re.Error() != fmt.Sprintf("after %d attempts: %v", tc.attempts, tc.want)) {
				t.Errorf("Error = %+v (%q), want %d attempts", re, re, tc.attempts)
			}
			var pe *permanentError
			if errors.As(err, &pe) {
				t.Errorf("Do leaked the Permanent wrapper: %v", err)
			}
		})
	}
}

// A cancelled context stops retries even when the operation's error
// looks retryable.
func TestDoStopsOnCancelledOp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Do(ctx, Policy{Attempts: 5}, func(context.Context) error {
		calls++
		cancel()
		return errFlaky
	})
	if calls != 1 || !errors.Is(err, errFlaky) {
		t.Fatalf("%d calls, %v", calls, err)
	}
}

func TestBackoffDelay(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		b    Backoff
		n    int
		want time.Duration
	}{
		{"zero value", Backoff{}, 3, 0},
		{"first", Backoff{Initial: 100 * ms}, 0, 100 * ms},
		{"negative n is the first", Backoff{Initial: 100 * ms}, -2, 100 * ms},
		{"doubles by default", Backoff{Initial: 100 * ms}, 3, 800 * ms},
		{"factor", Backoff{Initial: 100 * ms, Factor: 3}, 2, 900 * ms},
		{"factor below 1 means 2", Backoff{Initial: 100 * ms, Factor: 0.5}, 1, 200 * ms},
		{"capped", Backoff{Initial: 100 * ms, Max: time.Second}, 10, time.Second},
		{"max below initial", Backoff{Initial: time.Second, Max: 100 * ms}, 0, 100 * ms},
		{"no overflow without max", Backoff{Initial: time.Second}, 1000, maxWait},
	} {
		if got := tc.b.Delay(tc.n); got != tc.want {
			t.Errorf("%s: Delay(%d) = %v, want %v", tc.name, tc.n, got, tc.want)
		}
	}
}

func TestBackoffJitter(t *testing.T) {
	b := Backoff{Initial: time.Second, Jitter: 0.25}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := b.Delay(0)
		if d < 750*time.Millisecond || d > 1250*time.Millisecond {
			t.Fatalf("Delay = %v, outside ±25%% of 1s", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct waits in 200: no jitter", len(seen))
	}
	if d := (Backoff{Initial: time.Second, Jitter: 7}).Delay(0); d < 0 || d > 2*time.Second {
		t.Errorf("jitter above 1 gave %v", d)
	}
}

func TestPolicyDelay(t *testing.T) {
	p := Policy{Backoff: Backoff{Initial: time.Second}}
	if got := p.Delay(2); got != 4*time.Second {
		t.Errorf("backoff Delay(2) = %v", got)
	}
	p.Delays = []time.Duration{time.Millisecond, 5 * time.Millisecond}
	for n, want := range []time.Duration{time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond} {
		if got := p.Delay(n); got != want {
			t.Errorf("Delays Delay(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Microsecond) {
		t.Error("Sleep of a live context returned false")
	}
	if !Sleep(context.Background(), 0) {
		t.Error("Sleep(0) of a live context returned false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, 0) {
		t.Error("Sleep(0) of a cancelled context returned true")
	}
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep of a cancelled context returned true")
	}
}

func TestPermanentNil(t *testing.T) {
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	if err := Permanent(errFatal); err.Error() != errFatal.Error() || !errors.Is(err, errFatal) {
		t.Errorf("Permanent(errFatal) = %v", err)
	}
}
