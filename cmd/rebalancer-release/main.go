// Command rebalancer-release builds the artifacts Triton deploys the
// rebalancer from, for illumos/amd64, and checks them (package
// internal/release):
//
//	OUT/rebalancer-pkg-STAMP.tar.gz       the manager zone (root/opt/smartdc/rebalancer, root/opt/smartdc/boot)
//	OUT/rebalancer-agent-STAMP.tar.gz     the agent for storage zones (root/opt/smartdc/rebalancer-agent)
//	OUT/rebalancer-agent-STAMP.manifest   the agent tarball's image manifest
//	OUT/GOOS-GOARCH/                      the commands for this machine, to try them
//	OUT/SHA1SUMS
//
// Run it from the module, as scripts/release.sh does:
//
//	./scripts/release.sh [--out bin/release] [--stamp STAMP] [--manta-scripts DIR]
//
// The same commit built with the same Go gives the same bytes. It exits 0
// when the artifacts were written and passed the checks, 1 when not, 2 for
// a usage error.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
	"github.com/TritonDataCenter/rebalancer/internal/release"
)

type cli struct {
	Out          string `help:"Directory for the artifacts (${default}); earlier artifacts in it are replaced." default:"bin/release" type:"path" placeholder:"DIR"`
	Stamp        string `help:"Version stamp naming the artifacts and printed by --version. Default: BRANCH-YYYYMMDDTHHMMSSZ-gSHA of the commit (date of the commit), with -dirty for uncommitted changes." env:"STAMP" placeholder:"STAMP"`
	MantaScripts string `help:"Checkout of TritonDataCenter/manta-scripts: its *.sh go to root/opt/smartdc/boot/scripts, which the manager zone's setup.sh sources. Without it the manager tarball cannot set up a zone (a warning says so)." env:"MANTA_SCRIPTS" type:"existingdir" placeholder:"DIR"`
	Host         bool   `help:"Also build the commands for this machine, into OUT/GOOS-GOARCH." default:"true" negatable:""`
	ImageUUID    string `help:"UUID of the agent image. Default: derived from the image's name, stamp and sha1, so that rebuilding gives the same manifest." placeholder:"UUID"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c cli
	if _, code, ok := (cmdline.Command{Name: "rebalancer-release", Stdout: stdout, Stderr: stderr,
		Description: "Builds the rebalancer's release tarballs for Triton (illumos/amd64) in the legacy layouts, " +
			"with the agent's image manifest, and checks them. Run it from the module: ./scripts/release.sh.",
	}).Parse(&c, args); !ok {
		return code
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "rebalancer-release:", err)
		return 2
	}
	a, err := release.Build(ctx, release.Options{
		Root: root, Out: c.Out, Stamp: c.Stamp, MantaScripts: c.MantaScripts,
		Host: c.Host, ImageUUID: c.ImageUUID, Log: stderr,
	})
	if err != nil {
		fmt.Fprintln(stderr, "rebalancer-release:", err)
		return 1
	}
	if err := release.Verify(a); err != nil {
		fmt.Fprintf(stderr, "rebalancer-release: the artifacts fail their checks:\n%v\n", err)
		return 1
	}
	for _, w := range a.Warnings {
		fmt.Fprintln(stderr, "rebalancer-release: WARNING:", w)
	}
	sums, err := os.ReadFile(a.Sums)
	if err != nil {
		fmt.Fprintln(stderr, "rebalancer-release:", err)
		return 1
	}
	fmt.Fprintf(stdout, "Release %s in %s (checked):\n%s", a.Stamp, filepath.Dir(a.Sums), sums)
	return 0
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run it from the rebalancer module (no go.mod here)")
	}
	return filepath.Dir(mod), nil
}
