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

// The agent writes nothing outside the Manta root: every file operation
// under it names one path component, relative to a directory the agent
// holds open, and never "..", "." or an empty name, so that no open,
// create, mkdir, rename or remove can resolve to a file outside the root.
// It refuses a symbolic link at any component of a path it writes (a
// legitimate Manta root holds none): each directory is opened without
// following a link at its last component and must be a directory, and is
// then used by its descriptor alone, so the check holds for what is
// used. The rename that commits a download goes from the temp directory's
// descriptor to the destination directory's, resolving no path again.
//
// On Unix systems a directory is a descriptor used with the *at system
// calls (openat with O_NOFOLLOW|O_DIRECTORY, fstatat, mkdirat, renameat,
// unlinkat): one system call per directory on the way and per operation,
// which is most of what a small object costs. Elsewhere it is an os.Root,
// which does the same checks with more calls (fsroot_other.go).

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
	path string // the root's absolute path, for logs
	top  *dir   // the root, open
	tmp  *dir   // TempDirName, opened once: temp files are created, renamed and removed through it
	sync syncFunc
}

// openTree opens the Manta root and its temp directory, creating the temp
// directory or emptying it of interrupted downloads. Only the temp
// directory is read, never the rest of the root (which can hold millions
// of files).
func openTree(root string, log *slog.Logger) (*tree, error) {
	top, err := openRootDir(root)
	if err != nil {
		return nil, fmt.Errorf("manta root: %w", err)
	}
	t := &tree{path: root, top: top, sync: fsync}
	t.tmp, err = top.openDir(TempDirName)
	if errors.Is(err, fs.ErrNotExist) {
		if err = top.mkdir(TempDirName); err == nil || errors.Is(err, fs.ErrExist) {
			t.tmp, err = top.openDir(TempDirName)
		}
	}
	if err != nil {
		top.Close()
		return nil, fmt.Errorf("temp directory %s: %w", filepath.Join(root, TempDirName), err)
	}
	if err := t.emptyTemp(log); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

func (t *tree) close() error {
	t.tmp.Close()
	return t.top.Close()
}

// emptyTemp removes everything in the temp directory: all of it is
// downloads that were interrupted.
func (t *tree) emptyTemp(log *slog.Logger) error {
	names, err := t.tmp.names()
	if err != nil {
		return fmt.Errorf("read temp directory: %w", err)
	}
	for _, name := range names {
		if err := t.tmp.removeAll(name); err != nil {
			return fmt.Errorf("clean temp directory: %w", err)
		}
	}
	if len(names) > 0 {
		log.Info("removed interrupted downloads", "dir", t.abs(TempDirName), "count", len(names))
	}
	return nil
}

// removeAll removes name from d, and everything under it if it is a
// directory, without following symbolic links.
func (d *dir) removeAll(name string) error {
	err := d.remove(name)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if st, lerr := d.lstat(name); lerr != nil || !st.mode.IsDir() {
		return err
	}
	sub, err := d.openDir(name)
	if err != nil {
		return err
	}
	names, err := sub.names()
	for _, n := range names {
		if err == nil {
			err = sub.removeAll(n)
		}
	}
	sub.Close()
	if err != nil {
		return err
	}
	return d.rmdir(name)
}

// openDir opens the directory rel (slash-separated, relative to the root,
// at least one component) refusing a symbolic link or anything but a
// directory at every component. With create, missing directories are
// created, and the parent of each is fsynced so that the new entry
// survives a power loss; without, a missing one is an error matching
// fs.ErrNotExist. The caller closes the returned dir.
func (t *tree) openDir(rel string, create bool) (*dir, error) {
	cur := t.top
	for name := range strings.SplitSeq(rel, "/") {
		next, err := t.step(cur, name, create)
		if cur != t.top {
			cur.Close()
		}
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

// step opens the directory name in parent, creating it first if asked to.
func (t *tree) step(parent *dir, name string, create bool) (*dir, error) {
	rel := path.Join(parent.rel, name)
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("directory %q: not a name inside its parent", rel)
	}
	d, err := parent.openDir(name)
	if create && errors.Is(err, fs.ErrNotExist) {
		if err := parent.mkdir(name); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create directory %s: %w", rel, err)
		}
		// Sync even when another download created it first: that one
		// may not have synced the parent yet.
		if err := t.syncDir(parent); err != nil {
			return nil, err
		}
		d, err = parent.openDir(name)
	}
	return d, err
}

// syncDir fsyncs the open directory d.
func (t *tree) syncDir(d *dir) error {
	if err := t.sync(d.f, d.rel); err != nil {
		return fmt.Errorf("fsync directory %s: %w", d.rel, err)
	}
	return nil
}

// abs is the absolute path of rel, for logs.
func (t *tree) abs(rel string) string {
	return filepath.Join(t.path, filepath.FromSlash(rel))
}

// dirError is the error of opening name in parent as a directory, which
// failed with err: a symbolic link or a non-directory there is named as
// such (what is there is looked at again only to say so).
func dirError(parent *dir, name string, err error) error {
	rel := path.Join(parent.rel, name)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("directory %s: %w", rel, err)
	}
	if st, lerr := parent.lstat(name); lerr == nil {
		switch {
		case st.mode&fs.ModeSymlink != 0:
			return &symlinkError{rel: rel}
		case !st.mode.IsDir():
			return fmt.Errorf("%s exists and is not a directory", rel)
		}
	}
	return fmt.Errorf("open directory %s: %w", rel, err)
}

// splitRel splits a path relative to the root into its directory and
// file name.
func splitRel(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	return rel[:i], rel[i+1:]
}
