package release

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// writeTarball writes the entries (with their parent directories) as a
// gzipped tar whose bytes depend only on the entries' names, modes and
// contents and on mtime: names sorted, every entry owned by root (0:0) and
// dated mtime, no access or change times, and a gzip header without a name
// or a date. open returns an entry's content.
func writeTarball(w io.Writer, es []entry, mtime time.Time, open func(entry) (io.ReadCloser, int64, error)) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, e := range withDirs(es) {
		h := &tar.Header{
			Name:    e.Name,
			Mode:    e.Mode,
			ModTime: mtime,
			Uname:   "root",
			Gname:   "root",
			Format:  tar.FormatUSTAR,
		}
		if strings.HasSuffix(e.Name, "/") {
			h.Typeflag = tar.TypeDir
			if err := tw.WriteHeader(h); err != nil {
				return fmt.Errorf("%s: %w", e.Name, err)
			}
			continue
		}
		rc, size, err := open(e)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
		h.Typeflag, h.Size = tar.TypeReg, size
		if err := tw.WriteHeader(h); err != nil {
			rc.Close()
			return fmt.Errorf("%s: %w", e.Name, err)
		}
		n, err := io.Copy(tw, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
		if n != size {
			return fmt.Errorf("%s: changed while being written (%d bytes, expected %d)", e.Name, n, size)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// openFile opens a file for writeTarball.
func openFile(name string) (io.ReadCloser, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is not a regular file", name)
	}
	return f, fi.Size(), nil
}

// tarFile is one entry read back from a tarball.
type tarFile struct {
	Header *tar.Header
	Data   []byte
}

// readTarball reads a gzipped tar into memory, in order.
func readTarball(r io.Reader) ([]tarFile, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not gzip: %w", err)
	}
	tr := tar.NewReader(zr)
	var files []tarFile
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bad tar: %w", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name, err)
		}
		files = append(files, tarFile{h, data})
	}
	return files, zr.Close()
}
