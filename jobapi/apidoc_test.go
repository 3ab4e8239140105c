package jobapi

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docs/api.md and the server agree where a test can hold them together:
// the routes the server has are the routes the document describes, the
// create request's params are the fields the server reads, and the
// examples of a job list and a job status show exactly the fields the
// server sends (a dry run's, which has them all).
func TestAPIDocMatchesServer(t *testing.T) {
	b, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)

	t.Run("routes", func(t *testing.T) {
		// Documented: the sections' headings and the first column of the
		// tables of routes.
		route := regexp.MustCompile("(GET|POST|PUT|DELETE|HEAD) (/[^\\s`?:,]*)")
		documented := map[string]bool{}
		for line := range strings.SplitSeq(doc, "\n") {
			var cell string
			switch {
			case strings.HasPrefix(line, "## "):
				cell = line
			case strings.HasPrefix(line, "| `"):
				cell = strings.Split(line, "|")[1]
			default:
				continue
			}
			for _, m := range route.FindAllStringSubmatch(cell, -1) {
				documented[m[1]+" "+m[2]] = true
			}
		}
		// Served: the patterns the package registers.
		served := map[string]bool{}
		files, _ := filepath.Glob("*.go")
		pattern := regexp.MustCompile(`\.HandleFunc\("([A-Z]+) ([^"]+)"`)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range pattern.FindAllStringSubmatch(string(src), -1) {
				served[m[1]+" "+strings.TrimSuffix(m[2], "{$}")] = true
			}
		}
		if len(served) < 10 {
			t.Fatalf("found %d routes in the sources: %v", len(served), served)
		}
		for r := range served {
			if !documented[r] {
				t.Errorf("the server has %s; docs/api.md does not describe it", r)
			}
		}
		for r := range documented {
			if !served[r] {
				t.Errorf("docs/api.md describes %s; the server has no such route", r)
			}
		}
	})

	t.Run("create params", func(t *testing.T) {
		documented := map[string]bool{}
		for _, m := range regexp.MustCompile("(?m)^\\| `params\\.([a-z_]+)` \\|").FindAllStringSubmatch(doc, -1) {
			documented[m[1]] = true
		}
		typ := reflect.TypeFor[CreateParams]()
		var fields []string
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			fields = append(fields, name)
		}
		if got := slices.Sorted(maps.Keys(documented)); !slices.Equal(got, slices.Sorted(slices.Values(fields))) {
			t.Errorf("docs/api.md documents params %v; the server reads %v", got, fields)
		}
	})

	t.Run("documents", func(t *testing.T) {
		h := newHarness(t, 10)
		code, body, _ := h.do("POST", "/jobs", `{"action":"evacuate","params":{"from_shark":"1.stor","dry_run":true}}`)
		if code != 200 {
			t.Fatalf("create: %d %s", code, body)
		}
		id := strings.TrimSpace(body)
		h.wait(id)
		for _, tt := range []struct {
			section, path string
			nested        []string // objects inside whose keys must agree too
			sometimes     []string // keys the example shows and this job may lack
		}{
			{"## GET /jobs: list jobs", "/jobs", []string{"from_shark"}, nil},
			// A dry run skips nothing here: by_source is empty, and left out.
			{"## GET /jobs/{uuid}: job status", "/jobs/" + id, []string{"config", "progress", "dry_run"}, []string{"by_source"}},
		} {
			example := firstJSONBlock(t, doc, tt.section)
			var served any
			if err := json.Unmarshal([]byte(h.get(tt.path)), &served); err != nil {
				t.Fatal(err)
			}
			if list, ok := example.([]any); ok {
				// A list's members may each show some keys only (a dry
				// run's dry_run): compare the keys of all of them.
				example, served = union(list), union(served.([]any))
			}
			ex, sv := example.(map[string]any), served.(map[string]any)
			for _, k := range tt.sometimes {
				if _, ok := sv[k]; !ok {
					delete(ex, k)
				}
			}
			compareKeys(t, tt.section, ex, sv)
			for _, k := range tt.nested {
				e, _ := ex[k].(map[string]any)
				s, _ := sv[k].(map[string]any)
				compareKeys(t, tt.section+": "+k, e, s)
			}
		}
	})
}

// firstJSONBlock returns the first ```json block after heading in doc,
// parsed.
func firstJSONBlock(t *testing.T, doc, heading string) any {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/api.md has no section %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```json\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("section %q has no JSON example", heading)
	}
	var v any
	if err := json.Unmarshal([]byte(block), &v); err != nil {
		t.Fatalf("section %q: its example is not JSON: %v", heading, err)
	}
	return v
}

// union merges the members of a list of JSON objects into one, for
// comparing which keys they have.
func union(list []any) map[string]any {
	out := map[string]any{}
	for _, m := range list {
		for k, v := range m.(map[string]any) {
			out[k] = v
		}
	}
	return out
}

func compareKeys(t *testing.T, what string, example, served map[string]any) {
	t.Helper()
	for k := range served {
		if _, ok := example[k]; !ok {
			t.Errorf("%s: the server sends %q; the example in docs/api.md lacks it", what, k)
		}
	}
	for k := range example {
		if _, ok := served[k]; !ok {
			t.Errorf("%s: the example in docs/api.md shows %q; the server does not send it", what, k)
		}
	}
}
