package jobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// MarkOptions guard a store against being silently swapped (see
// evacuate.StoreOptions, which they are).
//
// A mark file, kept outside the store, records the store's identity (a
// random id drawn when the store was created, in its store_meta table)
// and the number of jobs it held. It is written (atomically) when the
// store is first opened with it and after every job created; a crash in
// between leaves it behind the store, never ahead, so it never refuses a
// good store.
type MarkOptions struct {
	// File is where the mark is kept; "" keeps none.
	File string
	// AcceptEmpty opens a store that does not match its mark anyway and
	// marks it as the store from now on.
	AcceptEmpty bool
	// Logger receives the warning when AcceptEmpty was needed
	// (slog.Default when nil).
	Logger *slog.Logger
}

// markRecord is the content of a mark file.
type markRecord struct {
	Store    string    `json:"store"`    // the store's identity
	Jobs     int64     `json:"jobs"`     // jobs the store held, at least
	Database string    `json:"database"` // where it was (password removed), for people
	Updated  time.Time `json:"updated"`
}

// mark keeps a store's mark file up to date. A nil *mark keeps nothing.
type mark struct {
	path string

	mu  sync.Mutex
	rec markRecord
	err error // the last failure to write it, until a write succeeds
}

// checkMark compares the store with its mark file, refusing a store that
// is not the one marked, and starts keeping the mark.
func (s *Store) checkMark(ctx context.Context, opts MarkOptions) error {
	if opts.File == "" {
		return nil
	}
	var jobs int64
	if err := s.db.GetContext(ctx, &jobs, `SELECT COUNT(*) FROM jobs`); err != nil {
		return fmt.Errorf("job store %s: count jobs: %w", s.name, err)
	}
	here := markRecord{Store: s.identity, Jobs: jobs, Database: s.name}
	m := &mark{path: opts.File, rec: here}
	prev, err := readMark(opts.File)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// First start with a mark (a new store, or an upgrade).
		err = nil
	case err != nil:
		err = fmt.Errorf("%w: mark file %s is unreadable (%v)", ErrStoreReplaced, opts.File, err)
	case prev.Store != here.Store:
		err = fmt.Errorf("%w: job store %s is store %s with %d jobs, but mark file %s records store %s (%s) with %d jobs: was it replaced, or the database recreated?",
			ErrStoreReplaced, s.name, here.Store, here.Jobs, opts.File, prev.Store, prev.Database, prev.Jobs)
	case prev.Jobs > here.Jobs:
		err = fmt.Errorf("%w: job store %s holds %d jobs, but mark file %s records %d: jobs were lost (restored from an old copy?)",
			ErrStoreReplaced, s.name, here.Jobs, opts.File, prev.Jobs)
	}
	if err != nil {
		if !opts.AcceptEmpty {
			return err
		}
		log := opts.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Warn("accepting a job store that does not match its mark; the jobs the mark remembers are forgotten", "err", err)
	}
	if err := m.write(); err != nil {
		return err
	}
	s.mark = m
	return nil
}

// readMark reads a mark file.
func readMark(path string) (markRecord, error) {
	var rec markRecord
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, err
	}
	if rec.Store == "" {
		return rec, errors.New("no store identity in it")
	}
	return rec, nil
}

// jobCreated counts a new job in the mark. A failure to write it is kept
// for Check to report: the job itself is stored.
func (m *mark) jobCreated() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rec.Jobs++
	m.err = m.writeLocked()
}

// failure returns the last failure to write the mark, if it persists.
func (m *mark) failure() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		// Try again: the disk may have come back.
		m.err = m.writeLocked()
	}
	return m.err
}

func (m *mark) write() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writeLocked()
}

// writeLocked replaces the mark file atomically: a new file, synced,
// renamed over the old one, and the directory synced.
func (m *mark) writeLocked() error {
	m.rec.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(m.rec, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(m.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("job store mark file %s: %w", m.path, err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(m.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("job store mark file %s: %w", m.path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), m.path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("job store mark file %s: %w", m.path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
