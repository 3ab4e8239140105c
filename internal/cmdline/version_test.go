package cmdline

import "testing"

func TestVersion(t *testing.T) {
	// A test binary has no module version: "(devel)".
	if got := Version(); got != "(devel)" {
		t.Errorf("Version() = %q without a stamp, want (devel)", got)
	}
	defer func(s string) { stamp = s }(stamp)
	stamp = "master-20250101T000000Z-g0123abc"
	if got := Version(); got != stamp {
		t.Errorf("Version() = %q, want the stamp %q", got, stamp)
	}
}
