package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/manager"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// readmeConfig is the example config.json of the README's "Running the
// real binaries" section, read from README.md so that the two cannot
// drift apart.
func readmeConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "**Manager**, in the rebalancer zone.")
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindStringSubmatch(after)
	if !ok || m == nil {
		t.Fatal("README.md has no example config.json after **Manager**")
	}
	return m[1]
}

func checkConfigRun(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(context.Background(), append([]string{"check-config"}, args...), &out, &out, nil, manager.Deps{}, nil)
	return code, out.String()
}

func TestCheckConfigCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	example := readmeConfig(t)
	typo := strings.Replace(example, `"max_fill_percentage"`, `"max_fill_percentag"`, 1)
	if typo == example {
		t.Fatal("the README's example has no max_fill_percentage")
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"README example", []string{write("readme.json", example)}, 0, []string{
			"OK: no problems.",
			// Values the example sets, marked with their defaults;
			// defaults that depend on other keys, written out.
			"* max_fill_percentage ", " 92 ", "[100]",
			`    storinfo_url `, `"http://storinfo.us-east.joyent.us"`,
			`* shard_databases.2 `, `"postgres://postgres@10.0.0.7:5432/moray?sslmode=disable"`,
			"* options.use_static_md_update_threads "}},
		{"typo", []string{write("typo.json", typo)}, 1, []string{
			"1 problem(s) in", "unknown key max_fill_percentag (did you mean max_fill_percentage?)", "    max_fill_percentage "}},
		{"invalid values and unknown keys together", []string{write("bad.json", `{"shards": [], "options": {"max_sharkz": 2}}`)}, 1, []string{
			"3 problem(s)", "domain_name is required", "at least one shard", "unknown key options.max_sharkz (did you mean options.max_sharks?)"}},
		{"not JSON", []string{write("broken.json", `{"domain_name": `)}, 1, []string{"1 problem(s)", "not a JSON object"}},
		{"missing file", []string{filepath.Join(dir, "none.json")}, 1, []string{"none.json", "no such file", "--config FILE or $REBALANCER_CONFIG"}},
		{"help", []string{"--help"}, 0, []string{"check-config", "unknown keys", "--strict", DefaultConfigFile}},
		{"usage", []string{"a.json", "b.json"}, 2, []string{"unexpected argument"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := checkConfigRun(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tt.code, out)
			}
			for _, want := range tt.contains {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// With --strict, unknown keys stop the manager at start (exit 2, naming
// the key meant); without it they do not (TestServeReloadAndShutdown).
func TestStrictRefusesUnknownKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	writeConfig(t, path, map[string]any{"domain_name": "demo.example", "shards": []any{map[string]any{"host": "1.moray.demo.example"}},
		"options": map[string]any{"max_sharkz": 3}})
	var out, errOut testutil.Buffer
	code := run(context.Background(), []string{"--config", path, "--strict"}, &out, &errOut, nil, manager.Deps{},
		func(string, string) { t.Error("started with --strict and an unknown key") })
	if code != 2 || !strings.Contains(errOut.String(), "unknown key options.max_sharkz (did you mean options.max_sharks?)") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}
