package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/TritonDataCenter/rebalancer"
)

// Directories of the legacy agent's state, under the data directory
// (docs/compatibility.md, Agent): one SQLite file per assignment, named by its id.
const (
	legacyScheduled = "scheduled"
	legacyCompleted = "completed"
	legacyTemp      = "temp"
	// LegacyImportedDir is where imported legacy files are moved, under
	// the data directory, so that they are read once and kept for
	// inspection.
	LegacyImportedDir = "legacy-imported"
)

// importLegacy brings over the state a legacy agent left in the data
// directory, so that an in-place upgrade neither drops queued work nor
// forgets finished assignments a manager may still ask about.
//
// Scheduled assignments are imported with every task pending (the legacy
// agent never recorded progress; finished copies are found on disk and
// not downloaded again). Completed ones keep their task statuses, except
// that a task the legacy agent left pending, which it would have reported
// as copied, is reported failed (AssignmentError). Files that cannot be
// read are left where they are and logged.
//
// Every move and removal goes through an os.Root of the data directory, and
// a legacy directory that is a symbolic link is left alone: the import
// reads and moves files only where the legacy agent kept them.
func (s *Server) importLegacy(ctx context.Context) error {
	data, err := os.OpenRoot(s.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	defer data.Close()
	for _, sub := range []string{legacyScheduled, legacyCompleted} {
		dir := filepath.Join(s.cfg.DataDir, sub)
		fi, err := data.Lstat(sub)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("legacy %s directory: %w", sub, err)
		}
		if !fi.IsDir() {
			s.log.Error("legacy state directory is not a directory (a symbolic link?); not importing from it", "path", dir,
				"mode", fi.Mode().String())
			continue
		}
		entries, err := fs.ReadDir(data.FS(), sub)
		if err != nil {
			return fmt.Errorf("read legacy %s directory: %w", sub, err)
		}
		for _, e := range entries {
			name := e.Name()
			path := filepath.Join(dir, name)
			id, err := ParseID(name)
			if err != nil || !e.Type().IsRegular() {
				// SQLite journals and anything else that is not an
				// assignment file.
				s.log.Warn("ignoring file in legacy state directory", "path", path)
				continue
			}
			if err := s.importLegacyFile(ctx, sub, id, path); err != nil {
				s.log.Error("cannot import legacy assignment; leaving its file in place", "path", path, "err", err)
				continue
			}
			dest := LegacyImportedDir + "/" + sub
			if err := data.MkdirAll(dest, 0o755); err != nil {
				return fmt.Errorf("import legacy assignments: %w", err)
			}
			if err := data.Rename(sub+"/"+name, dest+"/"+name); err != nil {
				return fmt.Errorf("import legacy assignments: %w", err)
			}
		}
	}
	// The legacy temp directory only ever holds interrupted downloads.
	if fi, err := data.Lstat(legacyTemp); err == nil && fi.IsDir() {
		if err := data.RemoveAll(legacyTemp); err != nil {
			s.log.Warn("cannot remove the legacy temp directory", "path", filepath.Join(s.cfg.DataDir, legacyTemp), "err", err)
		}
	}
	return nil
}

func (s *Server) importLegacyFile(ctx context.Context, sub, id, path string) error {
	tasks, err := readLegacyTasks(ctx, path)
	if err != nil {
		return err
	}
	state := stateScheduled
	for i := range tasks {
		t := &tasks[i]
		switch {
		case sub == legacyScheduled:
			t.Status = rebalancer.TaskStatus{}
		case t.Status.State == rebalancer.TaskPending:
			t.Status = rebalancer.TaskFailedWith(rebalancer.SkipAssignmentError)
		}
	}
	if sub == legacyCompleted {
		state = stateComplete
	}
	err = s.store.insert(ctx, newAssignment{id: id, tasks: tasks, state: state, origin: originLegacy})
	if errors.Is(err, errExists) {
		s.log.Warn("legacy assignment already imported", "assignment", id, "path", path)
		return nil
	}
	if err != nil {
		return err
	}
	s.log.Info("imported legacy assignment", "assignment", id, "state", state, "tasks", len(tasks))
	return nil
}

// readLegacyTasks reads the tasks table of a legacy assignment file
// (its schema: docs/golden.md). Statuses were written as BLOBs of JSON; TEXT is
// accepted too. Older files have no bucket columns. A status that cannot
// be parsed becomes Failed(AssignmentError).
func readLegacyTasks(ctx context.Context, path string) ([]rebalancer.Task, error) {
	// Opened read-write on purpose: SQLite must be able to roll back a hot
	// journal left by a crash during the legacy agent's save.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	cols := map[string]bool{}
	rows, err := db.QueryContext(ctx, "SELECT name FROM pragma_table_info('tasks')")
	if err != nil {
		return nil, fmt.Errorf("read legacy schema: %w", err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, err
		}
		cols[name] = true
	}
	rows.Close()
	if !cols["object_id"] || !cols["status"] {
		return nil, errors.New("not a legacy assignment file (no tasks table)")
	}
	bucket := "NULL, NULL"
	if cols["bucket_id"] && cols["object_name_hash"] {
		bucket = "bucket_id, object_name_hash"
	}
	rows, err = db.QueryContext(ctx, `SELECT object_id, owner, md5sum, datacenter, manta_storage_id, status, `+
		bucket+` FROM tasks ORDER BY rowid`)
	if err != nil {
		return nil, fmt.Errorf("read legacy tasks: %w", err)
	}
	defer rows.Close()
	tasks := []rebalancer.Task{}
	for rows.Next() {
		var (
			t              rebalancer.Task
			status         []byte
			bucket, digest sql.NullString
		)
		if err := rows.Scan(&t.ObjectID, &t.Owner, &t.MD5Sum, &t.Source.Datacenter, &t.Source.MantaStorageID,
			&status, &bucket, &digest); err != nil {
			return nil, fmt.Errorf("read legacy tasks: %w", err)
		}
		t.BucketID, t.ObjectNameHash = bucket.String, digest.String
		if err := json.Unmarshal(status, &t.Status); err != nil {
			t.Status = rebalancer.TaskFailedWith(rebalancer.SkipAssignmentError)
		}
		tasks = append(tasks, t)
	}
	return tasks, rows.Err()
}
