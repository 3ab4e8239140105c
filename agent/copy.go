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
	"sync"
	"sync/atomic"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/retry"
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
	// dir, for a complete task, is the destination directory, open: the
	// object's entry in it is durable, and the task may count, only once
	// it is fsynced. The group commit does that for every task of a batch
	// at once, and closes it.
	dir *pendingDir
}

// pendingDir is an open directory with an entry that is not yet durable.
type pendingDir struct {
	d  *dir
	id stat // d's, to fsync each directory of a batch once
}

// pending makes d the pendingDir of an outcome, which then owns it.
func pending(d *dir) (*pendingDir, error) {
	id, err := statFile(d.f)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", d.rel, err)
	}
	return &pendingDir{d: d, id: id}, nil
}

func failure(r rebalancer.SkipReason, format string, args ...any) outcome {
	return outcome{status: rebalancer.TaskFailedWith(r), err: fmt.Errorf(format, args...)}
}

// copier downloads objects into the Manta root.
type copier struct {
	tree       *tree
	client     *http.Client
	hosts      *allowList
	idle       time.Duration   // longest wait for the next piece of a body
	minRate    int64           // slowest a source may send, bytes a second...
	rateWindow time.Duration   // ...over periods at least this long
	retries    []time.Duration // waits between attempts to reach a source
	log        *slog.Logger
	m          *metrics
	bufs       sync.Pool
	ownsConn   bool // client was built here: close its idle connections on close
}

// copyBufSize is the unit of reads from a source and of writes to disk:
// large enough that a big object costs few system calls.
const copyBufSize = 256 << 10

func newCopier(cfg Config, t *tree, hosts *allowList, log *slog.Logger, m *metrics) *copier {
	c := &copier{
		tree:       t,
		client:     cfg.SourceClient,
		hosts:      hosts,
		idle:       cfg.DownloadTimeout,
		minRate:    cfg.MinSourceRate,
		rateWindow: cfg.MinSourceRateWindow,
		retries:    cfg.RetryDelays,
		log:        log,
		m:          m,
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
	// Sharks serve objects themselves and never redirect: a redirect is
	// the source's answer, and fails the task with its status code rather
	// than sending the agent to a host no one vetted. (A copy, so that a
	// caller's client is left as it was.)
	client := *c.client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.client = &client
	return c
}

func (c *copier) close() {
	if c.ownsConn {
		c.client.CloseIdleConnections()
	}
}

// copy does one task: it puts the object at its destination, verified, or
// says why not. It never leaves anything but a complete, verified file at
// the destination, never touches an existing destination unless it has a
// verified replacement, and never writes through a symbolic link.
func (c *copier) copy(ctx context.Context, t rebalancer.Task) (out outcome) {
	if err := checkTask(t); err != nil {
		return failure(rebalancer.SkipAssignmentError, "invalid task: %w", err)
	}
	if !c.hosts.allows(t.Source.MantaStorageID) {
		return failure(rebalancer.SkipAssignmentError, "invalid task: %w", notAllowedError(t.Source.MantaStorageID))
	}
	rel := relPath(t)
	dir, present, err := c.inspect(rel, t.MD5Sum)
	if err != nil {
		return c.fsFailure(rel, err)
	}
	defer func() {
		// Unless the outcome holds it, to be fsynced.
		if dir != nil && (out.dir == nil || out.dir.d != dir) {
			dir.Close()
		}
	}()
	if present {
		pd, err := pending(dir)
		if err != nil {
			return c.fsFailure(rel, err)
		}
		return outcome{status: rebalancer.TaskStatus{State: rebalancer.TaskComplete}, present: true, dir: pd}
	}
	url := sourceURL(t)
	var (
		resp             *http.Response
		cancel           context.CancelFunc
		buildErr, netErr error
	)
	// A source that fails before answering (connection refused, timeouts)
	// is tried again after each of c.retries; any answer is final.
	err = retry.Do(ctx, retry.Policy{
		Attempts: len(c.retries) + 1,
		Delays:   c.retries,
		OnRetry:  func(int, time.Duration, error) { c.m.retries.Inc() },
	}, func(ctx context.Context) error {
		reqCtx, cancelReq := context.WithCancel(ctx)
		req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, url, nil)
		if err != nil {
			cancelReq()
			buildErr = err
			return retry.Permanent(err)
		}
		if resp, err = c.client.Do(req); err != nil {
			cancelReq()
			netErr = err
			c.log.Debug("cannot reach source", "url", url, "err", err)
			return err
		}
		cancel = cancelReq
		return nil
	})
	switch {
	case err == nil:
		return c.receive(ctx, cancel, resp, t, rel, dir)
	case ctx.Err() != nil:
		return outcome{err: errAbandoned}
	case buildErr != nil:
		return failure(rebalancer.SkipAssignmentError, "build request for %s: %w", url, buildErr)
	}
	return failure(rebalancer.SkipSourceOtherError, "source %s unreachable after %d attempts: %w",
		t.Source.MantaStorageID, len(c.retries)+1, netErr)
}

// fsFailure is the outcome of a task that could not write to rel. A
// symbolic link on the way is logged as an error on its own: a Manta root
// holds none, so someone planted it.
func (c *copier) fsFailure(rel string, err error) outcome {
	if se, ok := errors.AsType[*symlinkError](err); ok {
		c.log.Error("refusing to write through a symbolic link", "path", c.tree.abs(se.rel), "object_path", c.tree.abs(rel))
	}
	return failure(rebalancer.SkipAgentFSError, "%s: %w", rel, err)
}

// receive streams a response into a temp file, verifies it and moves it
// to rel, in dir if inspect opened it. cancel cancels the response's
// request.
func (c *copier) receive(ctx context.Context, cancel context.CancelFunc, resp *http.Response, t rebalancer.Task, rel string, dir *dir) (out outcome) {
	defer cancel()
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return failure(rebalancer.SkipSourceObjectNotFound, "source %s answered 404 for %s", t.Source.MantaStorageID, resp.Request.URL)
	default:
		if loc := resp.Header.Get("Location"); loc != "" {
			return failure(rebalancer.SkipHTTPStatus(uint16(resp.StatusCode)), "source %s answered %s for %s, redirecting to %.200q (not followed)",
				t.Source.MantaStorageID, resp.Status, resp.Request.URL, loc)
		}
		return failure(rebalancer.SkipHTTPStatus(uint16(resp.StatusCode)), "source %s answered %s for %s",
			t.Source.MantaStorageID, resp.Status, resp.Request.URL)
	}

	f, tmpName, err := c.createTemp(t.ObjectID)
	if err != nil {
		return failure(rebalancer.SkipAgentFSError, "create temp file: %w", err)
	}
	committed := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !committed {
			if err := c.tree.tmp.remove(tmpName); err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.log.Error("cannot remove temp file", "path", c.tree.abs(TempDirName+"/"+tmpName), "err", err)
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
	// A source that sends just often enough to beat c.idle must still
	// send c.minRate bytes a second, measured over periods of at least
	// c.rateWindow.
	winStart, winBytes := time.Now(), int64(0)
	for eof := false; !eof; {
		// Fill the buffer before writing, so that a large object costs a
		// few large writes rather than one per network read.
		k := 0
		for k < len(buf) {
			r, err := resp.Body.Read(buf[k:])
			if r > 0 {
				timer.Reset(c.idle)
				k += r
				if now := time.Now(); now.Sub(winStart) >= c.rateWindow {
					got, took := n+int64(k)-winBytes, now.Sub(winStart)
					if float64(got) < float64(c.minRate)*took.Seconds() {
						return failure(rebalancer.SkipSourceOtherError, "source %s sent %d bytes in %v, less than the minimum rate of %d bytes/s (after %d bytes)",
							t.Source.MantaStorageID, got, took.Round(time.Millisecond), c.minRate, n+int64(k))
					}
					winStart, winBytes = now, n+int64(k)
				}
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
	if err := c.tree.sync(f, TempDirName+"/"+tmpName); err != nil {
		return failure(rebalancer.SkipAgentFSError, "fsync temp file: %w", err)
	}
	fi, err := statFile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	f = nil
	if err != nil {
		return failure(rebalancer.SkipAgentFSError, "close temp file: %w", err)
	}
	var pd *pendingDir
	pd, committed, err = c.commit(tmpName, fi, rel, dir)
	if err != nil {
		return c.fsFailure(rel, err)
	}
	return outcome{status: rebalancer.TaskStatus{State: rebalancer.TaskComplete}, bytes: n, dir: pd}
}

// commit moves the verified and fsynced temp file tmpName (described by
// tmp) to rel: it creates the missing directories (fsyncing the parent of
// each) unless dir is the destination directory already open, and renames
// the file into place. It returns the destination directory, open: until
// it is fsynced the new name may not survive a power loss, and the copy
// may not be reported. It reports whether the temp file was renamed, even
// when it then fails.
func (c *copier) commit(tmpName string, tmp stat, rel string, dir *dir) (pd *pendingDir, renamed bool, err error) {
	dirRel, name := splitRel(rel)
	if dir == nil {
		if dir, err = c.tree.openDir(dirRel, true); err != nil {
			return nil, false, err
		}
		defer func() {
			if pd == nil {
				dir.Close()
			}
		}()
	}
	if st, err := dir.lstat(name); err == nil && st.mode&fs.ModeSymlink != 0 {
		return nil, false, &symlinkError{rel: rel}
	}
	if err := rename(c.tree.tmp, tmpName, dir, name); err != nil {
		return nil, false, fmt.Errorf("move into place: %w", err)
	}
	// The file must be in the directory that was checked (where paths
	// are resolved again, a directory on the way may have been swapped).
	if st, err := dir.lstat(name); err != nil || !st.same(tmp) {
		return nil, true, fmt.Errorf("the renamed file is not at %s: a directory on the way was replaced during the commit", rel)
	}
	pd, err = pending(dir)
	return pd, true, err
}

// inspect looks at the destination rel before anything is downloaded. A
// symbolic link or a non-directory on the way is an error: the task fails
// without contacting the source. Otherwise it returns the destination
// directory, open, if it exists (the caller closes it), and whether rel
// already holds the object: a regular file with the expected MD5, fsynced
// (its directory is not yet). A problem reading the file means "no", and
// the object is downloaded again.
func (c *copier) inspect(rel, want string) (*dir, bool, error) {
	dirRel, name := splitRel(rel)
	dir, err := c.tree.openDir(dirRel, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	st, err := dir.lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return dir, false, nil
	case err != nil:
		c.log.Warn("cannot check existing destination; downloading again", "path", c.tree.abs(rel), "err", err)
		return dir, false, nil
	case st.mode&fs.ModeSymlink != 0:
		dir.Close()
		return nil, false, &symlinkError{rel: rel}
	case !st.mode.IsRegular():
		c.log.Warn("destination exists but is not a regular file; downloading again", "path", c.tree.abs(rel), "mode", st.mode.String())
		return dir, false, nil
	}
	return dir, c.present(dir, name, st, want), nil
}

// present reports whether the regular file name in dir (described by st)
// holds the object, and makes sure it is on stable storage.
func (c *copier) present(dir *dir, name string, st stat, want string) bool {
	rel := dir.rel + "/" + name
	f, err := dir.open(name)
	if err != nil {
		c.log.Warn("cannot open existing destination; downloading again", "path", c.tree.abs(rel), "err", err)
		return false
	}
	defer f.Close()
	// Only the file that was checked counts.
	if got, err := statFile(f); err != nil || !st.same(got) {
		c.log.Warn("existing destination changed while it was checked; downloading again", "path", c.tree.abs(rel), "err", err)
		return false
	}
	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	h := md5.New()
	if _, err := io.CopyBuffer(h, f, *bp); err != nil {
		c.log.Warn("cannot read existing destination; downloading again", "path", c.tree.abs(rel), "err", err)
		return false
	}
	if base64.StdEncoding.EncodeToString(h.Sum(nil)) != want {
		return false
	}
	// The file may have been written by an agent that never synced (the
	// legacy one did not): make sure it is on disk before it counts.
	if err := c.tree.sync(f, rel); err != nil {
		c.log.Warn("cannot fsync existing destination; downloading again", "path", c.tree.abs(rel), "err", err)
		return false
	}
	return true
}

// createTemp creates a uniquely named file in the temp directory, so that
// two downloads of one object never share a file, and returns it with its
// name there.
func (c *copier) createTemp(objectID string) (*os.File, string, error) {
	for range 10 {
		name := truncate(objectID, 64) + "." + rand.Text() + ".tmp"
		f, err := c.tree.tmp.create(name)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", errors.New("cannot find an unused temp file name")
}
