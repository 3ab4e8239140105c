package sapitest_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/sapitest"
)

// The expected text was produced by hogan.js 3.0.2, config-agent's
// renderer, from the same template and metadata.
func TestRenderLikeHogan(t *testing.T) {
	const tmpl = `n={{N}} big={{BIG}} frac={{FRAC}} zero=[{{#ZERO}}set{{/ZERO}}{{^ZERO}}unset{{/ZERO}}] str0=[{{#STR0}}{{STR0}}{{/STR0}}] f=[{{#F}}set{{/F}}{{^F}}unset{{/F}}] null=[{{NULL}}] missing=[{{MISSING}}] empty=[{{#EMPTY}}x{{/EMPTY}}{{^EMPTY}}none{{/EMPTY}}]
esc={{ESC}} raw={{{ESC}}} dotted={{auto.SERVER_UUID}}
list=[{{#L}}"{{{value}}}"{{^last}}, {{/last}}{{/L}}]
`
	const metadata = `{"N": 50, "BIG": 134217728, "FRAC": 0.5, "ZERO": 0, "STR0": "0", "F": false, "NULL": null,
		"EMPTY": [], "ESC": "a&b<c>", "auto": {"SERVER_UUID": "u-1"},
		"L": [{"value": "x"}, {"value": "y", "last": true}]}`
	const want = `n=50 big=134217728 frac=0.5 zero=[unset] str0=[0] f=[unset] null=[] missing=[] empty=[none]
esc=a&amp;b&lt;c&gt; raw=a&b<c> dotted=u-1
list=["x", "y"]
`
	got, err := sapitest.Render(tmpl, []byte(metadata))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRenderErrors(t *testing.T) {
	for _, c := range []struct{ tmpl, metadata, want string }{
		{"{{x}}", `[1]`, "metadata"},
		{"{{x}}", `null`, "not a JSON object"},
		{"{{x}}", `{"x": 1e999}`, "number"},
		{"{{#x}}", `{}`, "template"},
	} {
		_, err := sapitest.Render(c.tmpl, []byte(c.metadata))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Render(%q, %s) = %v, want an error about %s", c.tmpl, c.metadata, err, c.want)
		}
	}
}

func TestVariables(t *testing.T) {
	got, err := sapitest.Variables(`{{A}} {{#B}}{{B}}{{/B}}{{^C}}{{D}}{{/C}} {{auto.SERVER_UUID}}
{{#INDEX_MORAY_SHARDS}}{{host}}{{^last}},{{/last}}{{/INDEX_MORAY_SHARDS}} {{! a comment }}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A", "B", "C", "D", "INDEX_MORAY_SHARDS", "auto.SERVER_UUID"}
	if !slices.Equal(got, want) {
		t.Errorf("Variables = %q, want %q", got, want)
	}
}
