//go:build !unix

package agent

import (
	"io/fs"
	"os"
	"path"
)

// dir is a directory of the tree, open: an os.Root, checked when it was
// opened to be a directory reached without a symbolic link (os.Root would
// follow one that stays inside it), and f, the same directory, for fsync.
type dir struct {
	rel  string
	root *os.Root
	f    *os.File
	top  *os.Root // the tree's root, for rename
}

// stat is what the agent needs to know of a file: its type, and which
// file it is.
type stat struct {
	mode fs.FileMode // the type bits only
	fi   fs.FileInfo
}

func (s stat) same(o stat) bool { return os.SameFile(s.fi, o.fi) }

func statOfInfo(fi fs.FileInfo) stat { return stat{mode: fi.Mode().Type(), fi: fi} }

func openRootDir(p string) (*dir, error) {
	r, err := os.OpenRoot(p)
	if err != nil {
		return nil, err
	}
	f, err := r.Open(".")
	if err != nil {
		r.Close()
		return nil, err
	}
	return &dir{rel: ".", root: r, f: f, top: r}, nil
}

func (d *dir) Close() error {
	d.f.Close()
	return d.root.Close()
}

func (d *dir) openDir(name string) (*dir, error) {
	fi, err := d.root.Lstat(name)
	if err != nil {
		return nil, dirError(d, name, err)
	}
	if !fi.IsDir() {
		return nil, dirError(d, name, &fs.PathError{Op: "open", Path: path.Join(d.rel, name), Err: fs.ErrInvalid})
	}
	sub, err := d.root.OpenRoot(name)
	if err != nil {
		return nil, dirError(d, name, err)
	}
	here, err := sub.Lstat(".")
	if err == nil && !os.SameFile(fi, here) {
		err = &fs.PathError{Op: "open", Path: path.Join(d.rel, name), Err: fs.ErrInvalid}
	}
	var f *os.File
	if err == nil {
		f, err = sub.Open(".")
	}
	if err != nil {
		sub.Close()
		return nil, dirError(d, name, err)
	}
	return &dir{rel: path.Join(d.rel, name), root: sub, f: f, top: d.top}, nil
}

func (d *dir) mkdir(name string) error { return d.root.Mkdir(name, 0o755) }

func (d *dir) lstat(name string) (stat, error) {
	fi, err := d.root.Lstat(name)
	if err != nil {
		return stat{}, err
	}
	return statOfInfo(fi), nil
}

func (d *dir) open(name string) (*os.File, error) { return d.root.Open(name) }

func (d *dir) create(name string) (*os.File, error) {
	return d.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

func (d *dir) remove(name string) error { return d.root.Remove(name) }

func (d *dir) rmdir(name string) error { return d.root.Remove(name) }

func (d *dir) names() ([]string, error) {
	f, err := d.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// rename moves from/fromName to to/toName by paths resolved again inside
// the root (there is no renameat here); the commit then checks that the
// file is in the directory that was checked.
func rename(from *dir, fromName string, to *dir, toName string) error {
	return to.top.Rename(path.Join(from.rel, fromName), path.Join(to.rel, toName))
}

func statFile(f *os.File) (stat, error) {
	fi, err := f.Stat()
	if err != nil {
		return stat{}, err
	}
	return statOfInfo(fi), nil
}
