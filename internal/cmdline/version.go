package cmdline

import "runtime/debug"

// stamp is the release stamp (BRANCH-YYYYMMDDTHHMMSSZ-gSHA, as Triton's
// builds name their artifacts), set by the release build with
//
//	-ldflags "-X github.com/TritonDataCenter/rebalancer/internal/cmdline.stamp=STAMP"
//
// (see internal/release). It is empty in other builds.
var stamp string

// Version is what the commands print for --version and send in headers:
// the release stamp, else the module version a "go install" recorded,
// else "(devel)".
func Version() string {
	if stamp != "" {
		return stamp
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
