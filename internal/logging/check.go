package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Record is a bunyan record as ParseRecord read it.
type Record struct {
	Level    int
	Name     string
	Hostname string
	PID      int
	Time     time.Time
	Msg      string
	// Fields are the other keys, decoded by encoding/json.
	Fields map[string]any
}

// ParseRecord reads one line as a bunyan record and checks it the way the
// bunyan CLI and this package's promises need: a single JSON object, no key
// twice in any object; v 0; level one of 10, 20, 30, 40, 50, 60; name and
// hostname non-empty strings; pid a positive integer; time a UTC time with
// milliseconds, as Date.toISOString writes it; msg a string; every key
// ending in "_ms" a number. It is written from node-bunyan's description of
// the format, not from Handler, so that tests of the commands' output check
// the one against the other.
func ParseRecord(line []byte) (Record, error) {
	var rec Record
	if err := noDuplicateKeys(line); err != nil {
		return rec, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return rec, fmt.Errorf("not a JSON object: %w", err)
	}
	if dec.More() {
		return rec, errors.New("more than one JSON value on the line")
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	integer := func(key string) (int, bool) {
		n, ok := m[key].(json.Number)
		if !ok {
			bad("%s is %v, not a number", key, m[key])
			return 0, false
		}
		i, err := n.Int64()
		if err != nil {
			bad("%s is %s, not an integer", key, n)
			return 0, false
		}
		return int(i), true
	}
	str := func(key string, nonEmpty bool) string {
		s, ok := m[key].(string)
		if !ok || (nonEmpty && s == "") {
			bad("%s is %#v, not a non-empty string", key, m[key])
		}
		return s
	}
	if v, ok := integer("v"); ok && v != 0 {
		bad("v is %d, not 0", v)
	}
	if l, ok := integer("level"); ok {
		switch l {
		case 10, 20, 30, 40, 50, 60:
			rec.Level = l
		default:
			bad("level %d is not a bunyan level (10, 20, 30, 40, 50 or 60)", l)
		}
	}
	if p, ok := integer("pid"); ok {
		if p <= 0 {
			bad("pid %d is not positive", p)
		}
		rec.PID = p
	}
	rec.Name = str("name", true)
	rec.Hostname = str("hostname", true)
	if _, ok := m["msg"]; ok {
		rec.Msg = str("msg", false)
	} else {
		bad("no msg")
	}
	if ts := str("time", true); ts != "" {
		t, err := time.Parse("2006-01-02T15:04:05.000Z", ts)
		if err != nil {
			bad("time %q is not UTC with milliseconds (2006-01-02T15:04:05.000Z): %v", ts, err)
		}
		rec.Time = t
	}
	rec.Fields = map[string]any{}
	for k, v := range m {
		switch k {
		case "v", "level", "name", "hostname", "pid", "time", "msg":
			continue
		}
		rec.Fields[k] = v
	}
	checkMillis(m, "", bad)
	return rec, errors.Join(errs...)
}

// checkMillis checks that every key ending in _ms, at any depth, holds a
// number.
func checkMillis(m map[string]any, path string, bad func(string, ...any)) {
	for k, v := range m {
		if inner, ok := v.(map[string]any); ok {
			checkMillis(inner, path+k+".", bad)
			continue
		}
		if _, ok := v.(json.Number); strings.HasSuffix(k, "_ms") && !ok {
			bad("%s%s is %#v, not a number of milliseconds", path, k, v)
		}
	}
}

// noDuplicateKeys walks the JSON text token by token: encoding/json keeps
// the last of two equal keys without a word.
func noDuplicateKeys(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					return fmt.Errorf("key %q twice in %s", key, strings.TrimSuffix("the record."+path, "."))
				}
				seen[key] = true
				if err := walk(path + key + "."); err != nil {
					return err
				}
			}
			_, err := dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(path); err != nil {
					return err
				}
			}
			_, err := dec.Token()
			return err
		}
		return nil
	}
	if err := walk(""); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	return nil
}

// Check reads r line by line and returns the records, or an error naming
// every line that is not a bunyan record (ParseRecord) and why. Empty
// lines are errors too: bunyan writes none.
func Check(r io.Reader) ([]Record, error) {
	var (
		recs []Record
		errs []error
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		rec, err := ParseRecord(sc.Bytes())
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w: %s", n, err, truncate(sc.Text(), 300)))
			continue
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return recs, errors.Join(errs...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
