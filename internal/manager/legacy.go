package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/legacydb"
	"github.com/TritonDataCenter/rebalancer/internal/legacyimport"
	"github.com/TritonDataCenter/rebalancer/internal/storedsn"
)

// OpenStore opens the job store cfg names (its database, DefaultDatabase
// when empty) with the store mark the manager keeps for it, as the
// manager does at start: "rebalancer-manager import-legacy" writes into
// the very store the manager will use.
func OpenStore(ctx context.Context, cfg *Config, log *slog.Logger) (*evacuate.Store, error) {
	dsn := cfg.Database
	if dsn == "" {
		dsn = DefaultDatabase
	}
	store, err := storedsn.Open(ctx, dsn, evacuate.StoreOptions{
		MarkFile: cfg.markFile(dsn), AcceptEmpty: cfg.AcceptEmptyStore, Logger: log,
	})
	switch {
	case errors.Is(err, evacuate.ErrStoreReplaced):
		return nil, fmt.Errorf("%w. Restore the job store, or, if it was replaced on purpose, start once with --accept-empty-store to use it as it is (the jobs it lost are forgotten)", err)
	case err != nil:
		return nil, fmt.Errorf("job store %s: %w", redact(dsn), err)
	}
	return store, nil
}

// ImportLegacy imports the legacy manager's jobs from the jobs database
// at from into store, with the job options of cfg (package legacyimport).
// Each job's progress goes to progress, when set.
func ImportLegacy(ctx context.Context, from string, store *evacuate.Store, cfg *Config, progress func(legacyimport.Progress)) (legacyimport.Summary, error) {
	r, err := legacydb.Open(ctx, from)
	if err != nil {
		return legacyimport.Summary{}, err
	}
	defer r.Close()
	return legacyimport.Import(ctx, r, store, legacyimport.Config{Options: cfg.JobOptions(), Progress: progress})
}

// importLegacy imports, when import_legacy_from is set, the legacy jobs
// the store does not have yet, logging its progress and what became of
// each job. A failure is logged and does not stop the manager: its own
// jobs go on, and the next start tries the jobs that failed again.
func (m *Manager) importLegacy(ctx context.Context) {
	cfg := m.config()
	if cfg.ImportLegacyFrom == "" {
		return
	}
	from := redact(cfg.ImportLegacyFrom)
	log := m.log.With("component", "legacy-import", "from", from)
	log.Info("importing the legacy manager's jobs")
	sum, err := ImportLegacy(ctx, cfg.ImportLegacyFrom, m.store, cfg, func(p legacyimport.Progress) {
		log.Info(p.String(), "job", p.Job, "objects", p.Objects, "done", p.Done)
	})
	for _, r := range sum.Jobs {
		switch r.Outcome {
		case legacyimport.Skipped:
			log.Warn("legacy job not imported", "job", r.ID, "why", r.Why)
		case legacyimport.Failed:
			log.Error("legacy job could not be imported; the next start tries again", "job", r.ID, "err", r.Err)
		}
	}
	if len(sum.Orphans) > 0 {
		log.Warn("legacy job databases without a job row, not imported", "databases", strings.Join(sum.Orphans, ","))
	}
	if err != nil && ctx.Err() == nil {
		log.Error("cannot import the legacy manager's jobs; the next start tries again", "err", err)
		return
	}
	log.Info("legacy jobs imported", "imported", sum.Count(legacyimport.Imported), "present", sum.Count(legacyimport.Present),
		"skipped", sum.Count(legacyimport.Skipped), "failed", sum.Count(legacyimport.Failed))
}
