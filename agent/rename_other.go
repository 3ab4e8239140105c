//go:build !unix

package agent

import "os"

// renameAt renames the temp file tmpName into the directory dirRel as
// name, by paths resolved again inside the root (where there is no
// renameat); the commit then checks that the file is in the directory
// that was checked.
func (t *tree) renameAt(tmpName string, _ *os.File, dirRel, name string) error {
	return t.root.Rename(TempDirName+"/"+tmpName, dirRel+"/"+name)
}
