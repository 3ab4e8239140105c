package sharkspotter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
)

// matcher decides whether a row is an object on the shark.
type matcher struct {
	shark      string
	quoted     []byte // "shark", as it appears in a value listing it
	escaped    []byte // \"shark\", as it appears in a value sent as a JSON string
	exclude    [][]byte
	exhaustive bool
}

func newMatcher(shark string, exclude []string, exhaustive bool) (matcher, error) {
	for _, r := range shark {
		// JSON.stringify escapes only these; any other storage id appears
		// verbatim in every value that lists it.
		if r == '"' || r == '\\' || r < 0x20 {
			return matcher{}, fmt.Errorf("sharkspotter: invalid shark id %q", shark)
		}
	}
	m := matcher{
		shark:      shark,
		quoted:     []byte(`"` + shark + `"`),
		escaped:    []byte(`\"` + shark + `\"`),
		exhaustive: exhaustive,
	}
	if !(len(exclude) == 1 && exclude[0] == "none") {
		for _, p := range exclude {
			if p == "" {
				return matcher{}, fmt.Errorf("sharkspotter: empty exclude key prefix")
			}
			m.exclude = append(m.exclude, []byte(p))
		}
	}
	return m, nil
}

// candidate reports whether a value, as stored, may list the shark.
func (m *matcher) candidate(value []byte) bool {
	return m.exhaustive || bytes.Contains(value, m.quoted)
}

// candidateEscaped is candidate for a value still encoded as a JSON string.
func (m *matcher) candidateEscaped(value []byte) bool {
	return m.exhaustive || bytes.Contains(value, m.escaped)
}

// excluded reports whether key is left out by ExcludeKeyPrefixes.
func (m *matcher) excluded(key []byte) bool {
	for _, p := range m.exclude {
		if bytes.Contains(key, p) {
			return true
		}
	}
	return false
}

// row is one table row as a stream read it.
type row struct {
	id    int64
	key   []byte
	etag  []byte
	value []byte
	owned bool // value may be kept (otherwise it is copied)
}

// match parses a candidate row. ok says whether it is an object on the shark
// (and not excluded); err is a *RowError for a row naming the shark that
// cannot be used.
func (m *matcher) match(shard int, r row) (obj rebalancer.Object, ok bool, err error) {
	if !m.candidate(r.value) || m.excluded(r.key) {
		return obj, false, nil
	}
	if m.exhaustive && !bytes.Contains(r.value, m.quoted) && !m.listsShark(r.value) {
		return obj, false, nil
	}
	value := r.value
	if !r.owned {
		value = bytes.Clone(value)
	}
	obj, err = rebalancer.ParseObject(value)
	if err != nil {
		return obj, false, &RowError{Shard: shard, ID: r.id, Key: string(r.key), Err: err}
	}
	if !obj.HasShark(m.shark) {
		return obj, false, nil
	}
	// The row's _key is where Moray keeps the object, which is what a
	// conditional update must name; the value's key is only a copy of it.
	if len(r.key) > 0 {
		obj.Key = string(r.key)
	} else if m.excluded([]byte(obj.Key)) {
		return obj, false, nil
	}
	obj.Shard = shard
	obj.ScanID = r.id
	obj.Etag = string(r.etag)
	return obj, true, nil
}

// listsShark is a quick look at a value's sharks for Exhaustive scans,
// which cannot rule a value out by its text. It says true when in doubt (a
// value it cannot decode), leaving the verdict to ParseObject.
func (m *matcher) listsShark(value []byte) bool {
	var v struct {
		Sharks []struct {
			ID string `json:"manta_storage_id"`
		} `json:"sharks"`
	}
	if json.Unmarshal(value, &v) != nil {
		return true
	}
	for _, s := range v.Sharks {
		if s.ID == m.shark {
			return true
		}
	}
	return false
}

// likePattern is a LIKE pattern matching text that contains s.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}
