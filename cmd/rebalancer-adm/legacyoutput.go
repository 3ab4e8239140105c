package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/TritonDataCenter/rebalancer/internal/jsonstr"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// --legacy-output (REBALANCER_LEGACY_OUTPUT) prints what the legacy
// (Rust) rebalancer-adm printed, for scripts written against it
// (manager/src/rebalancer-adm.rs of the legacy, branch MANTA-5484):
//
//   - job list and job get: a blank line, "server version: " and the
//     reply's Server header ("unknown" without one), then the reply's JSON
//     pretty-printed as serde_json does it (two-space indent, keys sorted,
//     the legacy's escapes and number forms), keeping only the fields the
//     legacy manager sends (the others are this manager's additions);
//   - job create evacuate and job retry: the same two lines, then the
//     reply's body, the job id and a newline, followed by a newline;
//   - a failure: Error: "<message>" on stderr with the legacy's messages
//     (Failed to get job: 404 Not Found, Server response: ..., Request
//     failed: ...), exit status 1; the manager's explanation is not shown,
//     as the legacy did not show it.
//
// The README says what differs still.

// legacyFields are the fields of the legacy manager's replies; the rest of
// a reply is left out of the legacy output. A nil value keeps the whole
// value under the key.
var (
	legacyListFields = map[string]any{"action": nil, "id": nil, "state": nil}
	legacyGetFields  = map[string]any{
		"config":  map[string]any{"action": nil, "from_shark": map[string]any{"datacenter": nil, "manta_storage_id": nil}},
		"results": nil,
		"state":   nil,
	}
)

// serverRecorder remembers the Server header of the last reply, which the
// legacy output prints.
type serverRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	last string
}

func (r *serverRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if resp != nil {
		r.mu.Lock()
		r.last = resp.Header.Get("Server")
		r.mu.Unlock()
	}
	return resp, err
}

// version is what the legacy printed after "server version: ".
func (r *serverRecorder) version() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == "" {
		return "unknown"
	}
	return r.last
}

// recordServer makes cl remember its replies' Server header.
func recordServer(cl *jobapi.Client) *serverRecorder {
	rt := cl.HTTPClient.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	rec := &serverRecorder{next: rt}
	cl.HTTPClient.Transport = rec
	return rec
}

// legacyHeader is the legacy's blank line and server version line.
func (a *app) legacyHeader() string {
	return "\nserver version: " + a.server.version() + "\n"
}

// printLegacyJSON prints a GET reply as the legacy did: its JSON reduced to
// the fields of keep (a list: each element's) and pretty-printed.
func (a *app) printLegacyJSON(body []byte, keep any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return &legacyError{"Failed to parse response body: " + err.Error()}
	}
	var b strings.Builder
	b.WriteString(a.legacyHeader())
	writePretty(&b, onlyFields(v, keep), "")
	b.WriteByte('\n')
	_, err := io.WriteString(a.stdout, b.String())
	return err
}

// printLegacyID prints the id a POST answered as the legacy did: the reply
// body (the id and a newline) and a newline.
func (a *app) printLegacyID(id string) error {
	_, err := io.WriteString(a.stdout, a.legacyHeader()+id+"\n\n")
	return err
}

// onlyFields returns v with only the object fields keep names (recursively
// for a map value in keep; for each element of a list).
func onlyFields(v, keep any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = onlyFields(e, keep)
		}
		return out
	case map[string]any:
		fields, ok := keep.(map[string]any)
		if !ok {
			return v
		}
		out := map[string]any{}
		for name, sub := range fields {
			if e, ok := v[name]; ok {
				if sub == nil {
					out[name] = e
				} else {
					out[name] = onlyFields(e, sub)
				}
			}
		}
		return out
	}
	return v
}

// writePretty writes v as serde_json's to_string_pretty writes a
// serde_json::Value: objects with their keys sorted (a BTreeMap, the
// legacy not using the preserve_order feature), two spaces per level,
// "key": value, empty objects and arrays as {} and [].
func writePretty(b *strings.Builder, v any, indent string) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case json.Number:
		b.WriteString(serdeNumber(v))
	case string:
		writeSerdeString(b, v)
	case []any:
		if len(v) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for i, e := range v {
			if i > 0 {
				b.WriteString(",\n")
			}
			b.WriteString(indent + "  ")
			writePretty(b, e, indent+"  ")
		}
		b.WriteString("\n" + indent + "]")
	case map[string]any:
		if len(v) == 0 {
			b.WriteString("{}")
			return
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // byte order, as Rust's String ordering
		b.WriteString("{\n")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(",\n")
			}
			b.WriteString(indent + "  ")
			writeSerdeString(b, k)
			b.WriteString(": ")
			writePretty(b, v[k], indent+"  ")
		}
		b.WriteString("\n" + indent + "}")
	}
}

// writeSerdeString writes s quoted as serde_json does (jsonstr.AppendSerde:
// ", \ and the control characters escaped, everything else, non-ASCII
// included, as it is). s is valid UTF-8: it was decoded from JSON.
func writeSerdeString(b *strings.Builder, s string) {
	b.Write(jsonstr.AppendSerde(nil, s))
}

// serdeNumber is a JSON number as serde_json reads and writes it back: an
// integer that fits 64 bits as it is; any other number as an f64 in the
// shortest form that reads back the same, laid out as Rust's float
// formatters (ryu, zmij) do: 1.0, 0.001, 1e20, 1.5e-7.
func serdeNumber(n json.Number) string {
	s := string(n)
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return s
	}
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return s // not a number serde_json would have read; shown as sent
	}
	return rustFloat(f)
}

// rustFloat lays f out as ryu's format64: digits d1..dn times 10^k, with
// kk = n+k the position of the decimal point.
func rustFloat(f float64) string {
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX, shortest
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	n := len(digits)
	kk := x + 1 // the value is 0.d1d2... times 10^kk
	k := kk - n
	var out string
	switch {
	case k >= 0 && kk <= 16:
		out = digits + strings.Repeat("0", k) + ".0"
	case kk > 0 && kk <= 16:
		out = digits[:kk] + "." + digits[kk:]
	case kk > -5 && kk <= 0:
		out = "0." + strings.Repeat("0", -kk) + digits
	case n == 1:
		out = digits + "e" + strconv.Itoa(kk-1)
	default:
		out = digits[:1] + "." + digits[1:] + "e" + strconv.Itoa(kk-1)
	}
	return sign + out
}

// legacyError is a failure reported as the legacy's main did: its
// Err(String) printed with Debug, `Error: "..."`, exit status 1.
type legacyError struct{ msg string }

func (e *legacyError) Error() string { return e.msg }

// rustDebug quotes s as Rust's Debug for str does for the messages at hand
// (quotes, backslashes and control characters escaped).
func rustDebug(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u{%x}`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// legacyFailure turns err into the legacy's message for a GET (get is
// true) or a POST: a reply outside 2xx becomes "Failed to get job: <status
// line>" or "Server response: <status line>" (the body not shown), a
// request that got no reply "Request failed: ..." or "Failed to post job:
// ...". An interruption stays one.
func legacyFailure(err error, get bool) error {
	if err == nil || errors.Is(err, errInterrupted) || errors.Is(err, context.Canceled) {
		return err
	}
	var le *legacyError
	if errors.As(err, &le) {
		return err
	}
	var je *jobapi.Error
	if errors.As(err, &je) {
		status := fmt.Sprintf("%d %s", je.Code, http.StatusText(je.Code))
		if get {
			return &legacyError{"Failed to get job: " + status}
		}
		return &legacyError{"Server response: " + status}
	}
	if get {
		return &legacyError{"Request failed: " + err.Error()}
	}
	return &legacyError{"Failed to post job: " + err.Error()}
}
