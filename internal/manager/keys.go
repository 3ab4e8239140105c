package manager

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/TritonDataCenter/rebalancer/internal/suggest"
)

// UnknownKey is a key of the configuration file that no setting has: a
// typo, or a key that a newer SAPI template writes. The manager ignores
// it, as the legacy did, but says so (at start, on every SIGUSR1 reload and
// in check-config), and refuses it with --strict.
type UnknownKey struct {
	// Path is where the key is, as "options.max_sharkz" or
	// "mdapi.shards[0].hots".
	Path string
	// Suggestion is the known key the operator most likely meant, with its
	// whole path, or "" when none is close.
	Suggestion string
}

func (u UnknownKey) String() string {
	if u.Suggestion != "" {
		return fmt.Sprintf("unknown key %s (did you mean %s?)", u.Path, u.Suggestion)
	}
	return fmt.Sprintf("unknown key %s", u.Path)
}

// UnknownKeys are the keys of the file the configuration was parsed from
// that no setting has, in the order of the file's structure.
func (c *Config) UnknownKeys() []UnknownKey { return slices.Clone(c.unknown) }

// UnknownKeysError is the error --strict makes of unknown keys: nil when
// there are none.
func (c *Config) UnknownKeysError() error {
	if len(c.unknown) == 0 {
		return nil
	}
	lines := make([]string, len(c.unknown))
	for i, u := range c.unknown {
		lines[i] = u.String()
	}
	return fmt.Errorf("%s (--strict refuses unknown keys)", strings.Join(lines, "; "))
}

// legacyAliases are top-level keys the parser reads on purpose although no
// field is named after them: the SAPI template's misspelling of
// max_fill_percentage (see ParseConfig).
var legacyAliases = map[string]bool{"max_fill_precentage": true}

// checkKeys walks a decoded JSON document (objects as map[string]any)
// along the type t of the value it is decoded into, and returns the
// document without the keys that t does not have, exactly spelt, together
// with those keys. Decoding the returned document gives what serde gave
// the legacy: encoding/json would otherwise match keys whatever their case
// ("LISTEN_PORT" setting listen_port), which the legacy never did.
func checkKeys(doc any, t reflect.Type) (any, []UnknownKey) {
	w := keyWalker{leaves: map[string][]string{}}
	w.index(t, "", map[reflect.Type]bool{})
	out := w.walk(doc, t, "")
	return out, w.unknown
}

type keyWalker struct {
	unknown []UnknownKey
	// leaves maps the name of each object key the schema has to its paths
	// (list elements as "[]"), to suggest a key written at the wrong level.
	leaves map[string][]string
}

// jsonFields are the fields of a struct type that encoding/json decodes,
// by their names.
func jsonFields(t reflect.Type) ([]string, map[string]reflect.StructField) {
	var names []string
	fields := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		names = append(names, name)
		fields[name] = f
	}
	return names, fields
}

func (w *keyWalker) index(t reflect.Type, path string, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if seen[t] {
			return
		}
		seen[t] = true
		defer delete(seen, t)
		names, fields := jsonFields(t)
		for _, name := range names {
			p := join(path, name)
			w.leaves[name] = append(w.leaves[name], p)
			w.index(fields[name].Type, p, seen)
		}
	case reflect.Slice, reflect.Array:
		w.index(t.Elem(), path+"[]", seen)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (w *keyWalker) walk(v any, t reflect.Type, path string) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return v // the decoder reports the wrong type
		}
		names, fields := jsonFields(t)
		out := make(map[string]any, len(obj))
		for _, k := range sortedKeys(obj) {
			if f, ok := fields[k]; ok {
				out[k] = w.walk(obj[k], f.Type, join(path, k))
				continue
			}
			if path == "" && legacyAliases[k] {
				out[k] = obj[k]
				continue
			}
			w.unknown = append(w.unknown, UnknownKey{Path: join(path, k), Suggestion: w.suggest(path, k, names)})
		}
		return out
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(obj))
		for k, e := range obj {
			out[k] = w.walk(e, t.Elem(), join(path, k))
		}
		return out
	case reflect.Slice, reflect.Array:
		list, ok := v.([]any)
		if !ok {
			return v
		}
		out := make([]any, len(list))
		for i, e := range list {
			out[i] = w.walk(e, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
		return out
	}
	return v
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// suggest returns the known key closest to key: one of the same object
// (names) spelt the same but for case, else the same name where the schema
// has it at another level (when it has it at only one: "max_sharks" at the
// top is options.max_sharks), else one of the same object a few edits
// away.
func (w *keyWalker) suggest(path, key string, names []string) string {
	for _, n := range names {
		if strings.EqualFold(n, key) {
			return join(path, n)
		}
	}
	if elsewhere := w.leaves[strings.ToLower(key)]; len(elsewhere) == 1 {
		// The schema's own path, with "[]" for "any element".
		return strings.ReplaceAll(elsewhere[0], "[]", "[0]")
	}
	best, bestDist := "", len(key)/5+2
	for _, n := range names {
		if d := suggest.Distance(strings.ToLower(key), n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" {
		return join(path, best)
	}
	return ""
}
