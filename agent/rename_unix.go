//go:build unix

package agent

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// renameAt renames the temp file tmpName into the directory dir, opened
// at dirRel, as name: by the two directories' descriptors, so that no path
// is resolved again between the checks and the rename.
func (t *tree) renameAt(tmpName string, dir *os.File, _, name string) error {
	err := unix.Renameat(int(t.tmpDir.Fd()), tmpName, int(dir.Fd()), name)
	runtime.KeepAlive(t.tmpDir)
	runtime.KeepAlive(dir)
	if err != nil {
		return &os.LinkError{Op: "renameat", Old: TempDirName + "/" + tmpName, New: name, Err: err}
	}
	return nil
}
