package manager_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// take returns the records logged since the last take.
func takeLogs(t *testing.T, l *testutil.Buffer) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.Take()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// noNodes is a storinfo that lists nothing; nothing runs in these tests.
type noNodes struct{}

func (noNodes) List(context.Context) ([]storinfo.Node, error) { return nil, nil }

// idle builds a manager that is never run: enough to reload it. Its
// logger writes every level to the returned buffer, filtered by level
// when level is set (the command's wiring).
func idle(t *testing.T, text string, level *slog.LevelVar) (*manager.Manager, *testutil.Buffer) {
	t.Helper()
	cfg, err := manager.ParseConfig([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = filepath.Join(t.TempDir(), "jobs.db")
	logs := &testutil.Buffer{}
	var l slog.Leveler = slog.LevelDebug
	if level != nil {
		l = level
	}
	shards := moray.NewShards(moray.StaticShards{}, moray.Options{})
	t.Cleanup(func() { shards.Close() })
	m, err := manager.New(context.Background(), cfg, manager.Deps{
		Shards: shards, Storinfo: noNodes{}, LogLevel: level,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: l})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, logs
}

// config is a valid configuration with extra top-level keys (JSON members
// without braces).
func config(extra string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return `{"domain_name": "us-east.joyent.us", "shards": [{"host": "1.moray.us-east.joyent.us"}]` + extra + `}`
}

func parseText(t *testing.T, text string) *manager.Config {
	t.Helper()
	c, err := manager.ParseConfig([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// messages are the msg of records at level that have attr, with its value.
func messages(recs []map[string]any, level, attr string) []string {
	var out []string
	for _, r := range recs {
		if _, ok := r[attr]; ok && r["level"] == level {
			out = append(out, r["msg"].(string)+": "+toString(r[attr]))
		}
	}
	return out
}

func toString(v any) string {
	if v == nil {
		return ""
	}
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

// log_level changes with SIGUSR1: the level is applied and reported, and
// debug lines follow a change to debug.
func TestReloadLogLevel(t *testing.T) {
	level := new(slog.LevelVar)
	m, logs := idle(t, config(`"log_level": "warning"`), level)
	if level.Level() != slog.LevelWarn {
		t.Fatalf("level after New = %v, want the config's warning", level.Level())
	}
	takeLogs(t, logs)

	applied, err := m.Reload(context.Background(), parseText(t, config(`"log_level": "DEBUG"`)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "log_level") || level.Level() != slog.LevelDebug {
		t.Errorf("applied %q, level %v; want log_level applied, debug", applied, level.Level())
	}
	recs := takeLogs(t, logs)
	if got := messages(recs, "DEBUG", "settings"); len(got) != 1 || !strings.Contains(got[0], `"log_level":"DEBUG"`) {
		t.Errorf("debug lines after the reload: %q", got)
	}

	// trace is debug for slog: nothing changes.
	if applied, _ := m.Reload(context.Background(), parseText(t, config(`"log_level": "trace"`))); slices.Contains(applied, "log_level") {
		t.Errorf("debug to trace applied %q", applied)
	}
	applied, _ = m.Reload(context.Background(), parseText(t, config(`"log_level": "error"`)))
	if !slices.Contains(applied, "log_level") || level.Level() != slog.LevelError {
		t.Errorf("applied %q, level %v; want log_level applied, error", applied, level.Level())
	}
	takeLogs(t, logs)
	// Without a LevelVar (--log-level fixes the level), the change is
	// refused, with a warning saying why.
	m2, logs2 := idle(t, config(`"log_level": "info"`), nil)
	takeLogs(t, logs2)
	applied, _ = m2.Reload(context.Background(), parseText(t, config(`"log_level": "debug"`)))
	if slices.Contains(applied, "log_level") {
		t.Errorf("applied %q without a level to set", applied)
	}
	if got := messages(takeLogs(t, logs2), "WARN", "log_level"); !slices.Contains(got, "log_level changed, but the log level is fixed by --log-level or REBALANCER_LOG_LEVEL; keeping it: debug") {
		t.Errorf("warnings %q", got)
	}
}

// Unknown keys are warned about, with the key most likely meant, when the
// manager starts and at every reload.
func TestUnknownKeysWarned(t *testing.T) {
	_, logs := idle(t, config(`"max_fill_percentag": 90, "options": {"max_sharkz": 3, "use_static_md_update_threads": true}`), nil)
	recs := takeLogs(t, logs)
	want := []string{"unknown configuration key; ignored: max_fill_percentag", "unknown configuration key; ignored: options.max_sharkz"}
	if got := messages(recs, "WARN", "key"); !slices.Equal(got, want) {
		t.Errorf("warnings at start %q, want %q", got, want)
	}
	if got := messages(recs, "WARN", "did_you_mean"); len(got) < 2 || got[0] != "unknown configuration key; ignored: max_fill_percentage" ||
		got[1] != "unknown configuration key; ignored: options.max_sharks" {
		t.Errorf("suggestions at start %q", got)
	}
	if got := messages(recs, "WARN", "why"); len(got) != 0 {
		t.Errorf("warnings at start %q: every known key is applied", got)
	}

	m, logs := idle(t, config(""), nil)
	takeLogs(t, logs)
	if _, err := m.Reload(context.Background(), parseText(t, config(`"mdapi": {"shards": [{"host": "1.buckets-mdapi.us-east.joyent.us", "hots": "2.buckets-mdapi.us-east.joyent.us"}]}`))); err != nil {
		t.Fatal(err)
	}
	if got := messages(takeLogs(t, logs), "WARN", "did_you_mean"); !slices.Equal(got, []string{"unknown configuration key; ignored: mdapi.shards[0].host"}) {
		t.Errorf("warnings at reload %q", got)
	}
}

// Every key a reload cannot apply is named as needing a restart; the
// discovery settings apply to the next job.
func TestReloadRestartOnlyAndDiscovery(t *testing.T) {
	m, logs := idle(t, config(""), nil)
	takeLogs(t, logs)
	applied, err := m.Reload(context.Background(), parseText(t, config(
		`"storinfo_poll_interval_ms": 2000, "options": {"shark_list_retry_delay_ms": 100, "md_read_chunk_size": 500}`)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, []string{"discovery"}) {
		t.Errorf("applied %q", applied)
	}
	got := messages(takeLogs(t, logs), "WARN", "key")
	for _, k := range []string{"storinfo_poll_interval_ms", "options.shark_list_retry_delay_ms"} {
		if !slices.Contains(got, "configuration change needs a restart; keeping the running value: "+k) {
			t.Errorf("no restart warning for %s in %q", k, got)
		}
	}
}
