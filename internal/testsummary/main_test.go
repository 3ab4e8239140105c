package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeModule lays out a module whose packages pass, fail, skip, panic,
// do not build, and have no tests.
func writeModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.22\n",
		"a/a_test.go": `package a

import "testing"

func TestPass(t *testing.T) {}
func TestSkip(t *testing.T) { t.Skip("needs a unicorn") }
func TestSub(t *testing.T) {
	t.Run("ok", func(t *testing.T) {})
	t.Run("bad", func(t *testing.T) { t.Error("sub boom") })
}
func TestFail(t *testing.T) { t.Log("context"); t.Error("boom") }
`,
		"b/b_test.go": "package b\n\nimport \"testing\"\n\nfunc TestB(t *testing.T) {}\n",
		"c/c.go":      "package c\n\nfunc F() int { return undefinedThing }\n",
		"c/c_test.go": "package c\n\nimport \"testing\"\n\nfunc TestC(t *testing.T) { F() }\n",
		"d/d.go":      "package d\n",
		"e/e_test.go": "package e\n\nimport \"testing\"\n\nfunc TestPanic(t *testing.T) { panic(\"kaboom\") }\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The real go test, on a module with every kind of outcome.
func TestRealGoTest(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the go command is needed:", err)
	}
	t.Chdir(writeModule(t))
	t.Setenv("GOWORK", "off")
	t.Setenv("GOFLAGS", "")
	var out, errOut bytes.Buffer
	code := run([]string{"--", "go", "test", "-json", "-count=1", "./..."}, &out, &errOut)
	text := out.String()
	lines := strings.Split(strings.TrimSpace(text), "\n")
	last := lines[len(lines)-1]
	if code != 1 || !strings.HasPrefix(last, "3 passed, 4 failed, 1 skipped (5 packages, ") ||
		!strings.Contains(last, "1 package(s) failed outside their tests: example.com/m/c") {
		t.Fatalf("exit %d, last line %q\nstdout:\n%s\nstderr:\n%s", code, last, text, errOut.String())
	}
	for _, want := range []string{
		"boom", "context", "sub boom", "--- FAIL: TestSub/bad", // failed tests' output
		"skipped TestSkip: needs a unicorn",
		"ok   example.com/m/b\t", "1 passed",
		"FAIL example.com/m/a\t", "2 passed, 3 failed, 1 skipped",
		"undefinedThing", "FAIL example.com/m/c\t", "build failed",
		"kaboom", "FAIL example.com/m/e\t",
		"?    example.com/m/d\t[no test files]",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "=== RUN") || strings.Contains(text, `"Action"`) {
		t.Errorf("raw events or progress markers in the output:\n%s", text)
	}

	// All passing: exit 0.
	out.Reset()
	if code := run([]string{"go", "test", "-json", "-count=1", "./b/"}, &out, &errOut); code != 0 ||
		!strings.HasPrefix(lastLine(out.String()), "1 passed, 0 failed, 0 skipped (1 packages, ") {
		t.Errorf("exit %d:\n%s", code, out.String())
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// A failure the command does not report in its status still fails the
// run; a command that cannot start is a usage error; lines that are not
// events pass through.
func TestStatus(t *testing.T) {
	var out, errOut bytes.Buffer
	script := `echo 'not json'; echo '{"Action":"start","Package":"p"}'; echo '{"Action":"run","Package":"p","Test":"T"}'; ` +
		`echo '{"Action":"fail","Package":"p","Test":"T"}'; echo '{"Action":"fail","Package":"p","Elapsed":0.5}'`
	if code := run([]string{"sh", "-c", script}, &out, &errOut); code != 1 ||
		!strings.HasPrefix(out.String(), "not json\n") || !strings.Contains(out.String(), "0 passed, 1 failed, 0 skipped") {
		t.Errorf("exit %d:\n%s", code, out.String())
	}
	out.Reset()
	script = `echo '{"Action":"start","Package":"p"}'; echo '{"Action":"run","Package":"p","Test":"T"}'; exit 3`
	if code := run([]string{"sh", "-c", script}, &out, &errOut); code != 3 || !strings.Contains(out.String(), "1 package(s) never finished: p") {
		t.Errorf("interrupted run: exit %d:\n%s", code, out.String())
	}
	if code := run([]string{"/nonexistent/go"}, &out, &errOut); code != 2 {
		t.Errorf("missing command: exit %d", code)
	}
	if code := run(nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage") {
		t.Errorf("no command: exit %d, %s", code, errOut.String())
	}
}

// After a quiet while, the packages still running are named; not before.
func TestHeartbeat(t *testing.T) {
	var out bytes.Buffer
	s := newSummary(&out)
	s.line([]byte(`{"Action":"start","Package":"example.com/slow"}`))
	s.line([]byte(`{"Action":"start","Package":"example.com/done"}`))
	s.line([]byte(`{"Action":"pass","Package":"example.com/done","Elapsed":1}`))
	out.Reset()
	s.beat(time.Now().Add(heartbeat / 2))
	if out.Len() != 0 {
		t.Errorf("beat too early: %q", out.String())
	}
	s.beat(time.Now().Add(heartbeat + time.Second))
	if got := out.String(); !strings.Contains(got, "still running: example.com/slow (") || strings.Contains(got, "done") {
		t.Errorf("beat: %q", got)
	}
}
