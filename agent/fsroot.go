package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// The agent touches the Manta root only through an os.Root: whatever a
// task names, no open, create, mkdir, rename or remove can resolve to a
// file outside the root, by "..", an absolute path or a symbolic link.
// On top of that, the agent refuses a symbolic link at any component of a
// path it writes (a legitimate Manta root holds none): each directory is
// checked with Lstat, opened, and checked again to be the same directory,
// so the check holds for what is then used, and the rename that commits a
// download goes from the temp directory's descriptor to the checked
// directory's (renameat), resolving no path again.

// symlinkError is a symbolic link found on a path the agent was to write.
type symlinkError struct {
	rel string // relative to the Manta root
}

func (e *symlinkError) Error() string {
	return fmt.Sprintf("%s is a symbolic link: the agent does not write through one", e.rel)
}

// syncFunc makes what was written to f durable: its data, or for a
// directory, its entries. rel is f's path relative to the Manta root ("."
// for the root itself). Every fsync a commit depends on goes through
// one, so that tests can see each of them happen, and fail one.
type syncFunc func(f *os.File, rel string) error

func fsync(f *os.File, _ string) error { return f.Sync() }

// tree is the Manta root as the agent uses it.
type tree struct {
	root   *os.Root
	tmp    *os.Root // TempDirName, opened once: temp files are created and removed through it
	tmpDir *os.File // the same directory, for renameat
	sync   syncFunc
}

// openTree opens the Manta root and its temp directory, creating the temp
// directory or emptying it of interrupted downloads. Only the temp
// directory is read, never the rest of the root (which can hold millions
// of files).
func openTree(dir string, log *slog.Logger) (*tree, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("manta root: %w", err)
	}
	t := &tree{root: root, sync: fsync}
	fi, err := root.Lstat(TempDirName)
	if errors.Is(err, fs.ErrNotExist) {
		if err := root.Mkdir(TempDirName, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			root.Close()
			return nil, fmt.Errorf("create temp directory: %w", err)
		}
		fi, err = root.Lstat(TempDirName)
	}
	if err == nil {
		t.tmp, err = t.openChecked(root, TempDirName, TempDirName, fi)
	}
	if err == nil {
		if t.tmpDir, err = t.tmp.Open("."); err != nil {
			t.tmp.Close()
		}
	}
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("temp directory %s: %w", filepath.Join(dir, TempDirName), err)
	}
	if err := t.emptyTemp(log); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

func (t *tree) close() error {
	t.tmpDir.Close()
	t.tmp.Close()
	return t.root.Close()
}

// emptyTemp removes everything in the temp directory: all of it is
// downloads that were interrupted.
func (t *tree) emptyTemp(log *slog.Logger) error {
	d, err := t.tmp.Open(".")
	if err != nil {
		return fmt.Errorf("read temp directory: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("read temp directory: %w", err)
	}
	for _, name := range names {
		if err := t.tmp.RemoveAll(name); err != nil {
			return fmt.Errorf("clean temp directory: %w", err)
		}
	}
	if len(names) > 0 {
		log.Info("removed interrupted downloads", "dir", t.abs(TempDirName), "count", len(names))
	}
	return nil
}

// openDir opens the directory rel (slash-separated, relative to the root,
// at least one component) as an os.Root, refusing a symbolic link or
// anything but a directory at every component. With create, missing
// directories are created, and the parent of each is fsynced so that the
// new entry survives a power loss; without, a missing one is an error
// matching fs.ErrNotExist. The caller closes the returned Root.
func (t *tree) openDir(rel string, create bool) (*os.Root, error) {
	cur, curRel := t.root, "."
	for name := range strings.SplitSeq(rel, "/") {
		next, err := t.step(cur, curRel, name, create)
		if cur != t.root {
			cur.Close()
		}
		if err != nil {
			return nil, err
		}
		cur, curRel = next, path.Join(curRel, name)
	}
	return cur, nil
}

// step opens the directory name in parent (whose path is parentRel),
// creating it first if asked to.
func (t *tree) step(parent *os.Root, parentRel, name string, create bool) (*os.Root, error) {
	rel := path.Join(parentRel, name)
	fi, err := parent.Lstat(name)
	if create && errors.Is(err, fs.ErrNotExist) {
		if err := parent.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create directory %s: %w", rel, err)
		}
		// Sync even when another download created it first: that one
		// may not have synced the parent yet.
		if err := t.syncDir(parent, parentRel); err != nil {
			return nil, err
		}
		fi, err = parent.Lstat(name)
	}
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", rel, err)
	}
	return t.openChecked(parent, name, rel, fi)
}

// openChecked opens the directory name in parent, which Lstat described as
// fi, and makes sure that what was opened is that directory: os.Root
// follows symbolic links that stay inside it, so a name swapped for one
// between the Lstat and the open would otherwise go unnoticed.
func (t *tree) openChecked(parent *os.Root, name, rel string, fi fs.FileInfo) (*os.Root, error) {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, &symlinkError{rel: rel}
	case !fi.IsDir():
		return nil, fmt.Errorf("%s exists and is not a directory", rel)
	}
	sub, err := parent.OpenRoot(name)
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", rel, err)
	}
	here, err := sub.Lstat(".")
	if err == nil && !os.SameFile(fi, here) {
		err = fmt.Errorf("%s was replaced while it was being opened", rel)
	}
	if err != nil {
		sub.Close()
		return nil, err
	}
	return sub, nil
}

// syncDir fsyncs the directory r, whose path is rel.
func (t *tree) syncDir(r *os.Root, rel string) error {
	d, err := r.Open(".")
	if err != nil {
		return fmt.Errorf("open directory %s: %w", rel, err)
	}
	err = t.syncOpenDir(d, rel)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncOpenDir fsyncs the open directory d, whose path is rel.
func (t *tree) syncOpenDir(d *os.File, rel string) error {
	if err := t.sync(d, rel); err != nil {
		return fmt.Errorf("fsync directory %s: %w", rel, err)
	}
	return nil
}

// abs is the absolute path of rel, for logs.
func (t *tree) abs(rel string) string {
	return filepath.Join(t.root.Name(), filepath.FromSlash(rel))
}

// splitRel splits a path relative to the root into its directory and
// file name.
func splitRel(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	return rel[:i], rel[i+1:]
}
