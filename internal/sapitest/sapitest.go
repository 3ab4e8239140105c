// Package sapitest renders the SAPI templates under deploy/sapi_manifests
// the way config-agent does, so that tests can feed the result to the real
// config parsers.
//
// config-agent (TritonDataCenter/sdc-config-agent, lib/agent/agent.js)
// renders each template with hogan.js over the zone's SAPI metadata, after
// adding config-agent's own values under "auto". Render reproduces the
// semantics that matter for our templates with
// github.com/cbroglie/mustache:
//
//   - metadata numbers are JavaScript numbers: 67108864 renders as such, not
//     as 6.7108864e+07, and 0 is false in a section, as are false, "",
//     null and [];
//   - a missing variable renders as nothing;
//   - {{x}} is HTML-escaped and {{{x}}} is not (hogan escapes ' as &#39;
//     and " as &quot;, cbroglie as &#39; and &#34;: only values that would
//     break the rendered file anyway differ).
//
// One difference is left: a string of blanks is false here and true in
// hogan. No metadata value of ours is one.
package sapitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/cbroglie/mustache"
)

// Render renders template with the SAPI metadata given as JSON.
func Render(template string, metadata []byte) (string, error) {
	md, err := decode(metadata)
	if err != nil {
		return "", err
	}
	tmpl, err := mustache.ParseString(template)
	if err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	return tmpl.Render(md)
}

// RenderFiles renders the template file with the metadata file.
func RenderFiles(templateFile, metadataFile string) (string, error) {
	t, err := os.ReadFile(templateFile)
	if err != nil {
		return "", err
	}
	md, err := os.ReadFile(metadataFile)
	if err != nil {
		return "", err
	}
	out, err := Render(string(t), md)
	if err != nil {
		return "", fmt.Errorf("render %s with %s: %w", templateFile, metadataFile, err)
	}
	return out, nil
}

// Variables lists the names a template looks up at the top level of the
// metadata (sorted, without duplicates): the SAPI metadata keys it reads.
// Names used only inside a list section, such as host, value, shard and
// last, are left out; dotted names (auto.SERVER_UUID) are kept whole.
func Variables(template string) ([]string, error) {
	tmpl, err := mustache.ParseString(template)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var walk func(tags []mustache.Tag, inList bool)
	walk = func(tags []mustache.Tag, inList bool) {
		for _, t := range tags {
			if !inList {
				seen[t.Name()] = true
			}
			if t.Type() == mustache.Section || t.Type() == mustache.InvertedSection {
				// Only a non-inverted section can iterate a list; its
				// body reads the list elements' fields.
				walk(t.Tags(), inList || (t.Type() == mustache.Section && listSections[t.Name()]))
			}
		}
	}
	walk(tmpl.Tags(), false)
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// listSections are the metadata keys whose value is a list of objects;
// inside their sections, names are the elements' fields.
var listSections = map[string]bool{
	"INDEX_MORAY_SHARDS":               true,
	"BUCKETS_MORAY_SHARDS":             true,
	"ZK_SERVERS":                       true,
	"REBALANCER_EXCLUDE_KEY_PREFIXES":  true,
	"REBALANCER_BLOCKLIST_SHARKS":      true,
	"REBALANCER_BLOCKLIST_DATACENTERS": true,
	"REBALANCER_SHARD_DATABASES":       true,
	"REBALANCER_MORAY_ENDPOINTS":       true,
	"REBALANCER_MDAPI_DATABASES":       true,
	"REBALANCER_MDAPI_ENDPOINTS":       true,
	"REBALANCER_AGENT_ALLOW_SOURCES":   true,
}

// decode reads metadata JSON with numbers as JavaScript would hold them.
func decode(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var md map[string]any
	if err := dec.Decode(&md); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if md == nil {
		return nil, fmt.Errorf("metadata: not a JSON object")
	}
	v, err := jsNumbers(md)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// jsNumbers replaces each json.Number with an int64 when it is a whole
// number (so that it renders without an exponent, as JavaScript prints
// it) and a float64 otherwise; either is false in a section when zero. It
// also drops null members, which hogan renders as nothing, as it does a
// missing one (cbroglie would print "<nil>").
func jsNumbers(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				delete(v, k)
				continue
			}
			n, err := jsNumbers(e)
			if err != nil {
				return nil, err
			}
			v[k] = n
		}
	case []any:
		for i, e := range v {
			n, err := jsNumbers(e)
			if err != nil {
				return nil, err
			}
			v[i] = n
		}
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("metadata: number %s: %w", v, err)
		}
		return f, nil
	}
	return v, nil
}
