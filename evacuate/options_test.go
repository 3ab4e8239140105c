package evacuate

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// docs/api.md lists every option with the range the API holds it to: the
// table and optionRanges must not drift apart.
func TestOptionRangesDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // "`key`" -> its table row
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		keys, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, k := range strings.Split(keys, ", ") {
			rows[k] = line
		}
	}
	for _, r := range optionRanges {
		row, ok := rows["`"+r.key+"`"]
		if !ok {
			t.Errorf("docs/api.md has no row for option %s", r.key)
			continue
		}
		if want := "| " + r.rangeString(true) + " |"; !strings.Contains(row, want) {
			t.Errorf("docs/api.md row of %s lacks its range %q:\n%s", r.key, want, row)
		}
	}
	for key := range jsonFields(reflect.TypeFor[Options]()) {
		if _, ok := rows["`"+key+"`"]; !ok {
			t.Errorf("docs/api.md has no row for option %s", key)
		}
	}
}

func TestValidateAndValidateStrict(t *testing.T) {
	short := DefaultOptions()
	short.AssignmentTimeout = Duration(50 * time.Millisecond) // a test's timer
	if err := short.Validate(); err != nil {
		t.Errorf("Validate of a short timer: %v", err)
	}
	if err := short.ValidateStrict(); err == nil || !strings.Contains(err.Error(), "assignment_timeout 50ms is out of range 1m..720h") {
		t.Errorf("ValidateStrict of a short timer: %v", err)
	}
	if err := DefaultOptions().ValidateStrict(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
	bad := DefaultOptions()
	bad.PollInterval = Duration(-time.Second)
	bad.BusyBackoff.Tries = -1
	bad.EtagRetries = 0
	err := bad.Validate()
	for _, want := range []string{"poll_interval -1s is out of range 1ns..10m", "busy_backoff.tries -1 is out of range 1..10000", "etag_retries 0 is out of range 1..100"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to say %q", err, want)
		}
	}
}

func TestMergeJSON(t *testing.T) {
	o := DefaultOptions()
	if err := o.MergeJSON([]byte(`{"busy_backoff":{"tries":7},"metadata_threads":null,"poll_interval":0.25}`), ""); err != nil {
		t.Fatal(err)
	}
	want := DefaultOptions()
	want.BusyBackoff.Tries = 7
	want.PollInterval = Duration(250 * time.Millisecond)
	if !reflect.DeepEqual(o, want) {
		t.Errorf("merged %+v, want %+v", o, want)
	}
	for body, msg := range map[string]string{
		`{"busy_backoff":{"tires":7}}`:     "busy_backoff.tires is not an option (busy_backoff takes initial, max, step, tries)",
		`{"busy_backoff":{"tries":"x"}}`:   "busy_backoff.tries: string is not an integer",
		`{"flush_age":"1ns"}`:              "flush_age 1ns is out of range 1ms..1h (assignments of one object each)",
		`{"exclude_key_prefixes":"/stor"}`: "exclude_key_prefixes: string is not a list of strings",
		`null`:                             "options must be a JSON object",
	} {
		o := DefaultOptions()
		if err := o.MergeJSON([]byte(body), ""); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("MergeJSON(%s) = %v, want %q", body, err, msg)
		}
	}
}

// A job API request's options, over the configured ones: each value given
// is held to its documented range, and errors name the option.
func ExampleOptions_MergeJSON() {
	o := DefaultOptions()
	err := o.MergeJSON([]byte(`{"metadata_threads":20,"busy_backoff":{"tries":10}}`), "params.options.")
	fmt.Println(o.MetadataThreads, o.BusyBackoff.Tries, o.BusyBackoff.Initial.D(), err)

	err = o.MergeJSON([]byte(`{"assignment_timeout":"1ns"}`), "params.options.")
	fmt.Println(err)
	err = o.MergeJSON([]byte(`{"busy_backoff":{"tires":5}}`), "params.options.")
	fmt.Println(err)
	// Output:
	// 20 10 5s <nil>
	// invalid job options: params.options.assignment_timeout 1ns is out of range 1m..720h (shorter than copying an assignment can take: the job would give up on copies the agents go on making)
	// invalid job options: params.options.busy_backoff.tires is not an option (params.options.busy_backoff takes initial, max, step, tries)
}
