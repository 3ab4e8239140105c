// Command withpg runs a command with a throwaway PostgreSQL server: it starts
// a cluster on loopback, exports its URL in REBALANCER_TEST_POSTGRES, runs the
// command, stops the server and exits with the command's status. It then
// lists the tests that used the server, so a run shows that the PostgreSQL
// tests ran rather than skipped.
//
//	go run ./internal/pgtest/withpg -- go test ./...
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: withpg -- command [args...]")
		return 2
	}
	c, err := pgtest.Start(context.Background())
	if err != nil {
		if errors.Is(err, pgtest.ErrNoBinaries) && os.Getenv("CI") != "true" {
			fmt.Fprintln(os.Stderr, "!!! withpg:", err, "- PostgreSQL tests will be SKIPPED")
			return runCommand(args, nil)
		}
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}
	defer c.Stop()
	fmt.Fprintf(os.Stderr, "withpg: PostgreSQL running at %s\n", c.URL)

	logPath := filepath.Join(os.TempDir(), fmt.Sprintf("rebalancer-pgtests-%d.log", os.Getpid()))
	os.Remove(logPath)
	defer os.Remove(logPath)
	code := runCommand(args, []string{pgtest.EnvURL + "=" + c.URL, pgtest.EnvLog + "=" + logPath})

	var used []string
	if f, err := os.Open(logPath); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			used = append(used, s.Text())
		}
		f.Close()
	}
	fmt.Fprintf(os.Stderr, "withpg: %d test database(s) created on the real PostgreSQL server", len(used))
	if len(used) > 0 {
		fmt.Fprintf(os.Stderr, ", by tests including %v", used[:min(len(used), 8)])
	}
	fmt.Fprintln(os.Stderr)
	return code
}

func runCommand(args, env []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}
	return 0
}
