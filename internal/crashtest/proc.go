package crashtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// startTimeout bounds how long a process may take to start listening.
const startTimeout = 30 * time.Second

// proc is one binary running as a child process, its output appended to a
// log file that outlives restarts.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	addr    string // the API address it logged ("127.0.0.1:port")

	exited    chan struct{} // closed once Wait returned
	waitErr   error         // Wait's error, once exited is closed
	signalled atomic.Bool   // we signalled it: its exit is expected
}

// startProc starts bin and waits until it logs that it listens (both
// binaries log {"msg":"listening","addr":...} as JSON).
func startProc(name, bin string, args []string, logPath string) (*proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(lf, "### %s %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	w := &logWatcher{out: lf, listening: make(chan string, 1)}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: start: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait() // returns once the output is copied
		lf.Close()
		close(p.exited)
	}()
	select {
	case p.addr = <-w.listening:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before listening (%v); log %s:\n%s", name, p.waitErr, logPath, tail(logPath, 15))
	case <-time.After(startTimeout):
		p.kill()
		return nil, fmt.Errorf("%s not listening after %v; log %s:\n%s", name, startTimeout, logPath, tail(logPath, 15))
	}
}

// childEnv is this process's environment without the binaries' own
// variables (REBALANCER_*), which would override the flags given here.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REBALANCER_") {
			env = append(env, kv)
		}
	}
	return env
}

// kill SIGKILLs the process and waits until it is gone.
func (p *proc) kill() {
	p.signalled.Store(true)
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop SIGTERMs the process and waits up to grace for a clean exit; past
// that it is killed. It reports an exit that was not clean.
func (p *proc) stop(grace time.Duration) error {
	p.signalled.Store(true)
	select {
	case <-p.exited:
		return fmt.Errorf("%s had already exited: %v", p.name, p.waitErr)
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			return fmt.Errorf("%s: exit after SIGTERM: %v; log %s:\n%s", p.name, p.waitErr, p.logPath, tail(p.logPath, 10))
		}
		return nil
	case <-time.After(grace):
		p.kill()
		return fmt.Errorf("%s still running %v after SIGTERM; killed; log %s", p.name, grace, p.logPath)
	}
}

// unexpectedExit reports an exit nobody asked for (a crash, a fatal error).
func (p *proc) unexpectedExit() error {
	select {
	case <-p.exited:
		if !p.signalled.Load() {
			return fmt.Errorf("%s exited by itself (%v); log %s:\n%s", p.name, p.waitErr, p.logPath, tail(p.logPath, 15))
		}
	default:
	}
	return nil
}

// logWatcher copies a process's output to its log file and picks the
// listening address out of it. exec calls Write from one goroutine (the
// same writer serves stdout and stderr).
type logWatcher struct {
	mu        sync.Mutex
	out       *os.File
	partial   []byte
	listening chan string
	found     bool
}

func (w *logWatcher) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out.Write(b) // a lost log line must not block the process
	if w.found {
		return len(b), nil
	}
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i]
		w.partial = w.partial[i+1:]
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
			w.found = true
			w.partial = nil
			w.listening <- rec.Addr
			break
		}
	}
	return len(b), nil
}

// tail returns the last n lines of a file, for diagnostics.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// errProcesses reports every process of the list that exited by itself.
func errProcesses(ps []*proc) error {
	var errs []error
	for _, p := range ps {
		if p != nil {
			errs = append(errs, p.unexpectedExit())
		}
	}
	return errors.Join(errs...)
}
