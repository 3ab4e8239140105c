package logging_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/logging"
)

// A command's logger: one bunyan record per line, a later component
// replacing the earlier one, durations in milliseconds, errors as text.
func ExampleNew() {
	var out bytes.Buffer
	log := logging.New(&out, "rebalancer", slog.LevelInfo).With("component", "manager")
	log.With("component", "api").Warn("cannot resume job", "job", "5f0e", "in", 5*time.Second, "err", errors.New("store closed"))

	rec, err := logging.ParseRecord(out.Bytes())
	fmt.Println(err)
	fmt.Println(rec.Name, rec.Level, rec.Msg)
	fmt.Println(rec.Fields)
	// Output:
	// <nil>
	// rebalancer 40 cannot resume job
	// map[component:api err:store closed in_ms:5000 job:5f0e]
}

// Twelve thousand objects failing for one reason make two lines: the first
// failure, then (when the interval ends, or at Flush) a summary.
func ExampleSummarizer() {
	var out bytes.Buffer
	failures := logging.NewSummarizer(logging.New(&out, "rebalancer-agent", nil), time.Minute)
	refused := errors.New("connection refused")
	for i := range 12000 {
		failures.Log(context.Background(), slog.LevelWarn, "task failed", fmt.Errorf("object o%d: %w", i, refused), "object", fmt.Sprintf("o%d", i))
	}
	failures.Flush(context.Background())

	recs, _ := logging.Check(&out)
	for _, r := range recs {
		fmt.Println(r.Msg, r.Fields["object"], r.Fields["count"], r.Fields["cause"], r.Fields["last"])
	}
	// Output:
	// task failed o0 <nil> <nil> <nil>
	// task failed <nil> 11999 connection refused map[err:object o11999: connection refused object:o11999]
}
