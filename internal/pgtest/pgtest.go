package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// EnvURL names the environment variable holding the test server's URL.
const EnvURL = "REBALANCER_TEST_POSTGRES"

// EnvLog names a file to which every test that gets a database appends its
// name, so the test command can show that PostgreSQL tests really ran.
const EnvLog = "REBALANCER_TEST_POSTGRES_LOG"

var (
	mu      sync.Mutex
	started *Cluster // a cluster this process started itself
	baseURL string
	baseErr error
	once    sync.Once
)

func server() (string, error) {
	once.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			baseURL = u
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := Start(ctx)
		if err != nil {
			baseErr = err
			return
		}
		mu.Lock()
		started = c
		mu.Unlock()
		baseURL = c.URL
	})
	return baseURL, baseErr
}

// Main runs the tests and then stops a cluster the process started. Use it
// as: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops and removes a cluster the process started, as Main does after
// the tests; for a TestMain that does more than Main (a leak check that
// must see the cluster's goroutine gone first).
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if started != nil {
		started.Stop()
		started = nil
	}
}

// NewDatabase creates an empty database for t and returns its URL. The
// database is dropped when t ends. Without PostgreSQL the test is skipped
// with a loud message, or fails when the CI environment variable is "true".
func NewDatabase(t testing.TB) string {
	t.Helper()
	base, err := server()
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL unavailable, %s NOT TESTED: %v (set %s or install PostgreSQL)", t.Name(), err, EnvURL)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, "!!!", msg)
		t.Skip(msg)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name)); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	url, err := WithDatabase(base, name)
	if err != nil {
		t.Fatal(err)
	}
	if logPath := os.Getenv(EnvLog); logPath != "" {
		if f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o666); err == nil {
			fmt.Fprintln(f, t.Name())
			f.Close()
		}
	}
	t.Cleanup(func() {
		admin, err := sql.Open("postgres", base)
		if err != nil {
			t.Errorf("pgtest: drop database: %v", err)
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return url
}

// Available reports why no PostgreSQL can be had for tests (nil when one
// can), for code without a testing.TB: a TestMain deciding whether to run
// the Examples that need one.
func Available() error {
	_, err := server()
	return err
}

// CreateDatabase creates an empty database as NewDatabase does, for code
// without a testing.TB (such as an Example, named by who in the log of
// databases created), and returns its URL and a function that drops it.
func CreateDatabase(ctx context.Context, who string) (url string, drop func(), err error) {
	base, err := server()
	if err != nil {
		return "", nil, err
	}
	var b [6]byte
	rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("postgres", base)
	if err != nil {
		return "", nil, err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name)); err != nil {
		return "", nil, fmt.Errorf("pgtest: create database: %w", err)
	}
	if url, err = WithDatabase(base, name); err != nil {
		return "", nil, err
	}
	if logPath := os.Getenv(EnvLog); logPath != "" {
		if f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o666); err == nil {
			fmt.Fprintln(f, who)
			f.Close()
		}
	}
	return url, func() {
		admin, err := sql.Open("postgres", base)
		if err != nil {
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)")
	}, nil
}
