// Package pgtest gives tests a real PostgreSQL.
//
// Tests call NewDatabase for a fresh, empty database that is dropped when the
// test ends. The server comes from REBALANCER_TEST_POSTGRES (a URL, as
// exported by scripts/test.sh); when that is unset and PostgreSQL's binaries
// are installed, the test process starts a throwaway cluster of its own
// (initdb into a temporary directory, loopback only). Only when neither is
// available do tests skip, loudly, and under CI=true they fail instead.
//
// A package whose tests use NewDatabase should call Main from its TestMain so
// that a cluster started by the process is stopped and removed at exit.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"database/sql"

	_ "github.com/lib/pq" // the PostgreSQL driver
)

// Cluster is a throwaway PostgreSQL server listening on loopback.
type Cluster struct {
	URL string // superuser URL of the "postgres" database

	dir  string
	proc *exec.Cmd
	done chan error
}

// ErrNoBinaries is returned by Start when PostgreSQL is not installed.
var ErrNoBinaries = errors.New("pgtest: no PostgreSQL server binaries (initdb, postgres) found")

// findBinary looks in PATH and then in Debian's versioned directories.
func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	return "", ErrNoBinaries
}

// Start creates and starts a cluster in a new temporary directory. PostgreSQL
// refuses to run as root, so when the caller is root the server runs as the
// "postgres" user (or "nobody").
func Start(ctx context.Context) (*Cluster, error) {
	initdb, err := findBinary("initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := findBinary("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rebalancer-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, done: make(chan error, 1)}
	cred, err := serverCredential(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	cmd := exec.CommandContext(ctx, initdb, "-D", data, "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--locale=C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	// A free port can be taken between choosing it and binding it; try a few.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if err := c.startServer(ctx, postgres, data, port, cred); err != nil {
			lastErr = err
			continue
		}
		c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		return c, nil
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func (c *Cluster) startServer(ctx context.Context, postgres, data string, port int, cred *syscall.Credential) error {
	logf, err := os.Create(filepath.Join(c.dir, "server.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// Durability is pointless for a throwaway test cluster.
	cmd := exec.Command(postgres, "-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-k", c.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig stops the server if this process dies without cleaning up. It
	// fires when the creating OS thread exits, so the thread stays locked.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGTERM}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.done <- cmd.Wait()
		// The thread stays locked: this goroutine ends here and takes the
		// thread with it only once the server has exited.
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	c.proc = cmd
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-c.done:
			c.proc = nil
			log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
			return fmt.Errorf("pgtest: postgres exited: %v\n%s", err, log)
		case <-ctx.Done():
			c.kill()
			return ctx.Err()
		default:
		}
		if db, err := sql.Open("postgres", url); err == nil {
			err = db.PingContext(ctx)
			db.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.kill()
	return errors.New("pgtest: postgres did not accept connections within 30s")
}

// Stop shuts the server down and removes its directory.
func (c *Cluster) Stop() {
	c.kill()
	os.RemoveAll(c.dir)
}

func (c *Cluster) kill() {
	if c.proc != nil && c.proc.Process != nil {
		// SIGQUIT is PostgreSQL's immediate shutdown.
		c.proc.Process.Signal(syscall.SIGQUIT)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			c.proc.Process.Kill()
			<-c.done
		}
		c.proc = nil
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverCredential returns nil unless running as root, in which case the
// server must run as an unprivileged user who owns dir.
func serverCredential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root and no unprivileged user to run postgres as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// WithDatabase returns base with its database name replaced.
func WithDatabase(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
