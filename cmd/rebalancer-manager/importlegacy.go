package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/alecthomas/kong"

	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
	"github.com/TritonDataCenter/rebalancer/internal/legacyimport"
	"github.com/TritonDataCenter/rebalancer/internal/manager"
)

// importLegacyCommand is the first argument that runs import-legacy
// instead of the manager.
const importLegacyCommand = "import-legacy"

type importCLI struct {
	From        string `required:"" placeholder:"URL" help:"The legacy manager's jobs database: a postgres:// URL; what it leaves out is the legacy's (user postgres, database rebalancer, no TLS), e.g. postgres://localhost or postgres://postgres@10.0.0.9:5432/rebalancer. Its server must hold the job databases too. Nothing there is changed."`
	Config      string `short:"c" default:"${default_config}" placeholder:"FILE" env:"REBALANCER_CONFIG" help:"The manager's config file (${default}): the job store to write into (database, store_mark) and the options the imported jobs get."`
	Database    string `placeholder:"URL-OR-PATH" env:"REBALANCER_DATABASE" help:"Job store to write into, overriding the config's database: a postgres:// URL, or a SQLite file or directory."`
	AcceptEmpty bool   `name:"accept-empty-store" help:"Write into a job store that does not match the manager's record of it (see rebalancer-manager --help)."`
}

// importLegacy is "rebalancer-manager import-legacy --from URL": it imports
// the legacy manager's jobs into the job store of the manager's
// configuration, printing a progress line per job on stderr and what
// became of each job on stdout. Exit status: 0 when every job is in the
// store or cannot be imported for a reason of the legacy's own (skipped),
// 1 when a job failed or the import stopped, 2 for a usage or
// configuration error.
func importLegacy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c importCLI
	if _, code, ok := (cmdline.Command{
		Name: "rebalancer-manager import-legacy",
		Description: "Imports the jobs of the legacy (Rust) rebalancer manager from its PostgreSQL into this manager's job store, " +
			"so that job list, get, objects and retry show them. Each legacy job keeps its uuid, every object its status, skip reason, " +
			"error and duplicates; a job the legacy was running when it stopped is imported failed, as the legacy shows it after a restart. " +
			"Only reads the legacy databases. Idempotent: jobs already imported are left as they are, and a job is written whole or " +
			"not at all, so an interrupted import is completed by running it again. A job with the action none, one whose database is " +
			"missing and a database without a job row are listed and left out. On a SQLite job store, a running manager's jobs wait " +
			"while a job is written: import before starting it, or set import_legacy_from in its config. Exit status: 0 when every " +
			"legacy job is in the job store or was left out for a reason of the legacy's own, 1 when one failed, 2 for a usage error.",
		Stdout:  stdout,
		Stderr:  stderr,
		Options: []kong.Option{kong.Vars{"default_config": DefaultConfigFile}},
	}).Parse(&c, args); !ok {
		return code
	}
	cfg, err := manager.LoadConfig(c.Config)
	if err != nil {
		fmt.Fprintf(stderr, "rebalancer-manager import-legacy: config file: %v (give the manager's config with --config)\n", err)
		return 2
	}
	if c.Database != "" {
		cfg.Database = c.Database
	}
	cfg.AcceptEmptyStore = c.AcceptEmpty
	store, err := manager.OpenStore(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(stderr, "rebalancer-manager import-legacy:", err)
		return 1
	}
	defer store.Close()
	sum, err := manager.ImportLegacy(ctx, c.From, store, cfg, func(p legacyimport.Progress) {
		fmt.Fprintln(stderr, p)
	})
	if err == nil || len(sum.Jobs) > 0 { // what was done, if anything
		if werr := sum.Write(stdout); werr != nil && err == nil {
			err = werr
		}
	}
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "rebalancer-manager import-legacy: interrupted; the job being imported was left out whole: run the command again to import it")
		return 1
	case err != nil:
		fmt.Fprintln(stderr, "rebalancer-manager import-legacy:", err)
		return 1
	case sum.Count(legacyimport.Failed) > 0:
		return 1
	}
	return 0
}
