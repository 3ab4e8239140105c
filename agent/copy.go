package agent

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

// errAbandoned means a task was interrupted by shutdown: nothing was
// written to its destination, its temp file is gone, and it stays pending
// so that the next start does it again.
var errAbandoned = errors.New("abandoned at shutdown")

// outcome is what one task came to.
type outcome struct {
	status  rebalancer.TaskStatus
	bytes   int64 // bytes downloaded and committed
	present bool  // the destination already held the object
	err     error // why it failed (or errAbandoned)
}

func failure(r rebalancer.SkipReason, format string, args ...any) outcome {
	return outcome{status: rebalancer.TaskFailedWith(r), err: fmt.Errorf(format, args...)}
}

// copier downloads objects into the Manta root.
type copier struct {
	root     string
	tmpDir   string
	client   *http.Client
	idle     time.Duration   // longest wait for the next piece of a body
	retries  []time.Duration // waits between attempts to reach a source
	log      *slog.Logger
	m        *metrics
	bufs     sync.Pool
	ownsConn bool // client was built here: close its idle connections on close
}

// copyBufSize is the unit of reads from a source and of writes to disk:
// large enough that a big object costs few system calls.
const copyBufSize = 256 << 10

func newCopier(cfg Config, log *slog.Logger, m *metrics) *copier {
	c := &copier{
		root:    cfg.Root,
		tmpDir:  filepath.Join(cfg.Root, TempDirName),
		client:  cfg.SourceClient,
		idle:    cfg.DownloadTimeout,
		retries: cfg.RetryDelays,
		log:     log,
		m:       m,
	}
	c.bufs.New = func() any { b := make([]byte, copyBufSize); return &b }
	if c.client == nil {
		c.ownsConn = true
		d := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
		// Sharks talk to each other directly; a proxy from the environment
		// would only be in the way. Only an explicit one is used.
		var proxy func(*http.Request) (*url.URL, error)
		if cfg.SourceProxy != nil {
			proxy = http.ProxyURL(cfg.SourceProxy)
		}
		c.client = &http.Client{Transport: &http.Transport{
			Proxy:                 proxy,
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   cfg.ConnectTimeout,
			ResponseHeaderTimeout: cfg.DownloadTimeout,
			MaxIdleConns:          4 * cfg.Workers * cfg.WorkersPerAssignment,
			MaxIdleConnsPerHost:   cfg.Workers * cfg.WorkersPerAssignment,
			IdleConnTimeout:       90 * time.Second,
			// The checksum is over the stored bytes: never let the
			// transport decode a compressed body.
			DisableCompression: true,
		}}
	}
	return c
}

func (c *copier) close() {
	if c.ownsConn {
		c.client.CloseIdleConnections()
	}
}

// copy does one task: it puts the object at its destination, verified, or
// says why not. It never leaves anything but a complete, verified file at
// the destination, and never touches an existing destination unless it
// has a verified replacement.
func (c *copier) copy(ctx context.Context, t rebalancer.Task) outcome {
	if err := checkTask(t); err != nil {
		return failure(rebalancer.SkipAssignmentError, "invalid task: %w", err)
	}
	dest, err := destPath(c.root, t)
	if err != nil {
		return failure(rebalancer.SkipAssignmentError, "invalid task: %w", err)
	}
	if c.present(dest, t.MD5Sum) {
		return outcome{status: rebalancer.TaskStatus{State: rebalancer.TaskComplete}, present: true}
	}
	url := sourceURL(t)
	var lastErr error
	for attempt := 0; attempt <= len(c.retries); attempt++ {
		if attempt > 0 {
			c.m.retries.Inc()
			if !sleep(ctx, c.retries[attempt-1]) {
				return outcome{err: errAbandoned}
			}
		}
		reqCtx, cancel := context.WithCancel(ctx)
		req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, url, nil)
		if err != nil {
			cancel()
			return failure(rebalancer.SkipAssignmentError, "build request for %s: %w", url, err)
		}
		resp, err := c.client.Do(req)
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return outcome{err: errAbandoned}
			}
			lastErr = err
			c.log.Debug("cannot reach source", "url", url, "attempt", attempt+1, "err", err)
			continue
		}
		return c.receive(ctx, cancel, resp, t, dest)
	}
	return failure(rebalancer.SkipSourceOtherError, "source %s unreachable after %d attempts: %w",
		t.Source.MantaStorageID, len(c.retries)+1, lastErr)
}

// receive streams a response into a temp file, verifies it and moves it
// to dest. cancel cancels the response's request.
func (c *copier) receive(ctx context.Context, cancel context.CancelFunc, resp *http.Response, t rebalancer.Task, dest string) (out outcome) {
	defer cancel()
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return failure(rebalancer.SkipSourceObjectNotFound, "source %s answered 404 for %s", t.Source.MantaStorageID, resp.Request.URL)
	default:
		return failure(rebalancer.SkipHTTPStatus(uint16(resp.StatusCode)), "source %s answered %s for %s",
			t.Source.MantaStorageID, resp.Status, resp.Request.URL)
	}

	f, tmp, err := c.createTemp(t.ObjectID)
	if err != nil {
		return failure(rebalancer.SkipAgentFSError, "create temp file: %w", err)
	}
	committed := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !committed {
			if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.log.Error("cannot remove temp file", "path", tmp, "err", err)
			}
		}
	}()

	// A source that stops sending fails the download after c.idle, however
	// long the whole transfer takes.
	var idled atomic.Bool
	timer := time.AfterFunc(c.idle, func() { idled.Store(true); cancel() })
	defer timer.Stop()

	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	buf := *bp
	h := md5.New()
	var n int64
	for eof := false; !eof; {
		// Fill the buffer before writing, so that a large object costs a
		// few large writes rather than one per network read.
		k := 0
		for k < len(buf) {
			r, err := resp.Body.Read(buf[k:])
			if r > 0 {
				timer.Reset(c.idle)
				k += r
			}
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				switch {
				case ctx.Err() != nil:
					return outcome{err: errAbandoned}
				case idled.Load():
					return failure(rebalancer.SkipSourceOtherError, "source %s sent nothing for %v (after %d bytes)",
						t.Source.MantaStorageID, c.idle, n+int64(k))
				}
				return failure(rebalancer.SkipSourceOtherError, "read from source %s after %d bytes: %w",
					t.Source.MantaStorageID, n+int64(k), err)
			}
		}
		h.Write(buf[:k])
		if _, err := f.Write(buf[:k]); err != nil {
			return failure(rebalancer.SkipAgentFSError, "write temp file: %w", err)
		}
		n += int64(k)
	}
	timer.Stop()

	if sum := base64.StdEncoding.EncodeToString(h.Sum(nil)); sum != t.MD5Sum {
		return failure(rebalancer.SkipMD5Mismatch, "downloaded %d bytes with MD5 %s, expected %s", n, sum, t.MD5Sum)
	}
	if err := f.Sync(); err != nil {
		return failure(rebalancer.SkipAgentFSError, "fsync temp file: %w", err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return failure(rebalancer.SkipAgentFSError, "close temp file: %w", err)
	}
	dir := filepath.Dir(dest)
	if err := mkdirAllSync(dir); err != nil {
		return failure(rebalancer.SkipAgentFSError, "create directory: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return failure(rebalancer.SkipAgentFSError, "move into place: %w", err)
	}
	committed = true
	// Until the directory is synced the new name may not survive a power
	// loss; only then is the copy safe to report.
	if err := syncDir(dir); err != nil {
		return failure(rebalancer.SkipAgentFSError, "fsync %s: %w", dir, err)
	}
	return outcome{status: rebalancer.TaskStatus{State: rebalancer.TaskComplete}, bytes: n}
}

// present reports whether dest already holds the object: a regular file
// with the expected MD5, on stable storage. Any error reading it means
// "no", and the object is downloaded again.
func (c *copier) present(dest, want string) bool {
	fi, err := os.Lstat(dest)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("cannot check existing destination; downloading again", "path", dest, "err", err)
		}
		return false
	}
	if !fi.Mode().IsRegular() {
		c.log.Warn("destination exists but is not a regular file; downloading again", "path", dest, "mode", fi.Mode().String())
		return false
	}
	f, err := os.Open(dest)
	if err != nil {
		c.log.Warn("cannot open existing destination; downloading again", "path", dest, "err", err)
		return false
	}
	defer f.Close()
	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	h := md5.New()
	if _, err := io.CopyBuffer(h, f, *bp); err != nil {
		c.log.Warn("cannot read existing destination; downloading again", "path", dest, "err", err)
		return false
	}
	if base64.StdEncoding.EncodeToString(h.Sum(nil)) != want {
		return false
	}
	// The file may have been written by an agent that never synced (the
	// legacy one did not): make sure it is on disk before it counts.
	if err := f.Sync(); err != nil {
		c.log.Warn("cannot fsync existing destination; downloading again", "path", dest, "err", err)
		return false
	}
	if err := syncDir(filepath.Dir(dest)); err != nil {
		c.log.Warn("cannot fsync destination directory; downloading again", "path", dest, "err", err)
		return false
	}
	return true
}

// createTemp creates a uniquely named file in the temp directory, so that
// two downloads of one object never share a file.
func (c *copier) createTemp(objectID string) (*os.File, string, error) {
	for range 10 {
		name := filepath.Join(c.tmpDir, truncate(objectID, 64)+"."+rand.Text()+".tmp")
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", errors.New("cannot find an unused temp file name")
}

// mkdirAllSync creates dir and its missing parents, syncing each parent
// after a child is created, so that a synced file inside is reachable
// after a power loss.
func mkdirAllSync(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s exists and is not a directory", d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if parent := filepath.Dir(d); parent == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		// Sync even when another download created it first: that one may
		// not have synced the parent yet.
		if err := syncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
