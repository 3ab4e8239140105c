package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/retry"
)

var errBusy = errors.New("server busy")

// Do retries what its Policy calls retryable, waiting longer each time.
func ExampleDo() {
	calls := 0
	err := retry.Do(context.Background(), retry.Policy{
		Attempts:  4,
		Backoff:   retry.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond, Jitter: 0.25},
		Retryable: func(err error) bool { return errors.Is(err, errBusy) },
		OnRetry: func(n int, _ time.Duration, err error) {
			fmt.Printf("retry %d after: %v\n", n, err)
		},
	}, func(ctx context.Context) error {
		calls++
		if calls < 3 {
			return errBusy
		}
		return nil
	})
	fmt.Println(calls, "calls, error:", err)
	// Output:
	// retry 0 after: server busy
	// retry 1 after: server busy
	// 3 calls, error: <nil>
}
