//go:build unix

package agent

import (
	"io/fs"
	"os"
	"path"
	"runtime"

	"golang.org/x/sys/unix"
)

// dir is a directory of the tree, open: a descriptor, checked when it was
// opened to be a directory reached without a symbolic link, and used from
// then on with the *at system calls.
type dir struct {
	rel string   // relative to the root ("." for the root)
	f   *os.File // owns fd; for fsync (the tree's syncFunc) and reading names
	fd  int
}

// stat is what the agent needs to know of a file: its type, and which
// file it is.
type stat struct {
	mode     fs.FileMode // the type bits only
	dev, ino uint64
}

func (s stat) same(o stat) bool { return s.dev == o.dev && s.ino == o.ino }

func statOfUnix(st *unix.Stat_t) stat {
	s := stat{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	switch uint32(st.Mode) & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		s.mode = fs.ModeDir
	case unix.S_IFLNK:
		s.mode = fs.ModeSymlink
	default:
		s.mode = fs.ModeIrregular
	}
	return s
}

// newDir wraps fd. os.NewFile keeps a regular descriptor out of the
// runtime's poller: os.Open would first try to add it (and fail), at the
// cost of five system calls per file.
func newDir(fd int, rel string) *dir {
	return &dir{rel: rel, f: os.NewFile(uintptr(fd), rel), fd: fd}
}

// openRootDir opens the Manta root (following a link there: the operator
// chose the path).
func openRootDir(p string) (*dir, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return newDir(fd, "."), nil
}

func (d *dir) pathError(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: path.Join(d.rel, name), Err: err}
}

func (d *dir) Close() error { return d.f.Close() }

// openDir opens the directory name in d: not through a symbolic link, and
// only if it is a directory.
func (d *dir) openDir(name string) (*dir, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	runtime.KeepAlive(d.f)
	if err != nil {
		return nil, dirError(d, name, d.pathError("openat", name, err))
	}
	return newDir(fd, path.Join(d.rel, name)), nil
}

func (d *dir) mkdir(name string) error {
	err := unix.Mkdirat(d.fd, name, 0o755)
	runtime.KeepAlive(d.f)
	if err != nil {
		return d.pathError("mkdirat", name, err)
	}
	return nil
}

// lstat describes name in d, not following a symbolic link.
func (d *dir) lstat(name string) (stat, error) {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	runtime.KeepAlive(d.f)
	if err != nil {
		return stat{}, d.pathError("fstatat", name, err)
	}
	return statOfUnix(&st), nil
}

// open opens name in d for reading, refusing a symbolic link.
func (d *dir) open(name string) (*os.File, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	runtime.KeepAlive(d.f)
	if err != nil {
		return nil, d.pathError("openat", name, err)
	}
	return os.NewFile(uintptr(fd), path.Join(d.rel, name)), nil
}

// create creates name in d, which must not exist, for writing.
func (d *dir) create(name string) (*os.File, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	runtime.KeepAlive(d.f)
	if err != nil {
		return nil, d.pathError("openat", name, err)
	}
	return os.NewFile(uintptr(fd), path.Join(d.rel, name)), nil
}

// remove removes the file (not a directory) name from d.
func (d *dir) remove(name string) error {
	err := unix.Unlinkat(d.fd, name, 0)
	runtime.KeepAlive(d.f)
	if err != nil {
		return d.pathError("unlinkat", name, err)
	}
	return nil
}

// rmdir removes the empty directory name from d.
func (d *dir) rmdir(name string) error {
	err := unix.Unlinkat(d.fd, name, unix.AT_REMOVEDIR)
	runtime.KeepAlive(d.f)
	if err != nil {
		return d.pathError("unlinkat", name, err)
	}
	return nil
}

// names lists d's entries.
func (d *dir) names() ([]string, error) {
	// A duplicate, so that reading does not move d's own offset (and
	// can be done again).
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	runtime.KeepAlive(d.f)
	if err != nil {
		return nil, d.pathError("openat", ".", err)
	}
	f := os.NewFile(uintptr(fd), d.rel)
	defer f.Close()
	return f.Readdirnames(-1)
}

// rename moves from/fromName to to/toName, replacing what is there (not
// following a link there), by the two directories' descriptors.
func rename(from *dir, fromName string, to *dir, toName string) error {
	err := unix.Renameat(from.fd, fromName, to.fd, toName)
	runtime.KeepAlive(from.f)
	runtime.KeepAlive(to.f)
	if err != nil {
		return &os.LinkError{Op: "renameat", Old: path.Join(from.rel, fromName), New: path.Join(to.rel, toName), Err: err}
	}
	return nil
}

// statFile describes the open file f.
func statFile(f *os.File) (stat, error) {
	var st unix.Stat_t
	err := unix.Fstat(int(f.Fd()), &st)
	runtime.KeepAlive(f)
	if err != nil {
		return stat{}, &fs.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return statOfUnix(&st), nil
}
