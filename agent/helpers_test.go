package agent

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// The package's tests leave no goroutine running: agents stopped, servers
// closed, downloads and commits ended.
func TestMain(m *testing.M) { os.Exit(testutil.CheckMain(m)) }

func md5b64(b []byte) string {
	sum := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func content(seed string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed[i%len(seed)] + byte(i/len(seed))
	}
	return b
}

func newID() string { return uuid.NewString() }

// source is a fake shark serving objects by path. Handlers can be
// replaced per path to misbehave.
type source struct {
	srv *httptest.Server

	mu       sync.Mutex
	objects  map[string][]byte
	handlers map[string]http.HandlerFunc
	hits     map[string]int
	inflight int
	maxIn    int
}

func newSource(t *testing.T) *source {
	t.Helper()
	s := &source{objects: map[string][]byte{}, handlers: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *source) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	s.inflight++
	s.maxIn = max(s.maxIn, s.inflight)
	h := s.handlers[r.URL.Path]
	body, ok := s.objects[r.URL.Path]
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}()
	switch {
	case h != nil:
		h(w, r)
	case ok:
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	default:
		http.NotFound(w, r)
	}
}

// host is the storage id of the source.
func (s *source) host() string { return strings.TrimPrefix(s.srv.URL, "http://") }

func (s *source) node() rebalancer.StorageNode {
	return rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: s.host()}
}

// put serves body for a v1 object and returns its task.
func (s *source) put(owner, objectID string, body []byte) rebalancer.Task {
	t := rebalancer.Task{ObjectID: objectID, Owner: owner, MD5Sum: md5b64(body), Source: s.node()}
	s.mu.Lock()
	s.objects["/"+relPath(t)] = body
	s.mu.Unlock()
	return t
}

func (s *source) handle(t rebalancer.Task, h http.HandlerFunc) {
	s.mu.Lock()
	s.handlers["/"+relPath(t)] = h
	s.mu.Unlock()
}

func (s *source) hitCount(t rebalancer.Task) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits["/"+relPath(t)]
}

func (s *source) maxInflight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxIn
}

// testAgent is an agent running in process over a test HTTP server.
type testAgent struct {
	t       *testing.T
	s       *Server
	srv     *httptest.Server
	root    string
	dataDir string
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// testConfig is a config with short timeouts and retries, in fresh
// directories.
func testConfig(t *testing.T) Config {
	base := t.TempDir()
	root := filepath.Join(base, "manta")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return Config{
		Root:            root,
		DataDir:         filepath.Join(base, "data"),
		DownloadTimeout: 5 * time.Second,
		RetryDelays:     []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond},
		RecordRetry:     200 * time.Millisecond,
		RequeueDelay:    20 * time.Millisecond,
		ShutdownGrace:   5 * time.Second,
		Metrics:         MetricLabels{Zonename: "testzone"},
	}
}

// startAgent starts an agent with cfg; setup, if given, runs after New and
// before Run (to install test hooks).
func startAgent(t *testing.T, cfg Config, setup ...func(*Server)) *testAgent {
	t.Helper()
	return startAgentLog(t, cfg, nil, setup...)
}

// startAgentLog is startAgent with a logger.
func startAgentLog(t *testing.T, cfg Config, log *slog.Logger, setup ...func(*Server)) *testAgent {
	t.Helper()
	s, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, f := range setup {
		f(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &testAgent{t: t, s: s, srv: httptest.NewServer(s.Handler()), root: s.cfg.Root, dataDir: s.cfg.DataDir,
		cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- s.Run(ctx) }()
	t.Cleanup(a.stop)
	return a
}

// stop shuts the agent down and waits for it.
func (a *testAgent) stop() {
	if a.stopped {
		return
	}
	a.stopped = true
	a.srv.Close()
	a.cancel()
	if err := <-a.done; err != nil {
		a.t.Errorf("Run: %v", err)
	}
	if err := a.s.Close(); err != nil {
		a.t.Errorf("Close: %v", err)
	}
}

func (a *testAgent) url(path string) string { return a.srv.URL + path }

// request sends a request and returns the status and body.
func request(t *testing.T, method, url string, body io.Reader, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// post posts v (marshalled unless it is a string) to /assignments.
func (a *testAgent) post(v any) (int, string) {
	a.t.Helper()
	var b []byte
	if s, ok := v.(string); ok {
		b = []byte(s)
	} else {
		var err error
		if b, err = json.Marshal(v); err != nil {
			a.t.Fatal(err)
		}
	}
	return request(a.t, http.MethodPost, a.url("/assignments"), bytes.NewReader(b))
}

// mustPost posts an assignment and fails the test unless it is accepted.
func (a *testAgent) mustPost(id string, tasks ...rebalancer.Task) {
	a.t.Helper()
	if tasks == nil {
		tasks = []rebalancer.Task{}
	}
	code, body := a.post(rebalancer.AssignmentPayload{ID: id, Tasks: tasks})
	if code != http.StatusOK {
		a.t.Fatalf("POST %s: %d %s", id, code, body)
	}
}

func (a *testAgent) get(id string) (int, rebalancer.Assignment, string) {
	a.t.Helper()
	code, body := request(a.t, http.MethodGet, a.url("/assignments/"+id), nil)
	var out rebalancer.Assignment
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			a.t.Fatalf("GET %s: %v in %s", id, err, body)
		}
	}
	return code, out, body
}

// waitUntil polls GET until cond holds for the assignment.
func (a *testAgent) waitUntil(id string, what string, cond func(rebalancer.Assignment) bool) rebalancer.Assignment {
	a.t.Helper()
	var got rebalancer.Assignment
	testutil.Poll(a.t, "assignment "+id+" "+what, func() error {
		code, reply, body := a.get(id)
		if code == http.StatusOK && cond(reply) {
			got = reply
			return nil
		}
		return fmt.Errorf("last reply %d %s", code, body)
	})
	return got
}

func (a *testAgent) waitComplete(id string) rebalancer.Assignment {
	a.t.Helper()
	return a.waitUntil(id, "complete", func(got rebalancer.Assignment) bool {
		return got.Stats.State.Phase == rebalancer.AssignmentComplete
	})
}

// dest is where t's object lands.
func (a *testAgent) dest(t rebalancer.Task) string {
	p, err := destPath(a.root, t)
	if err != nil {
		a.t.Fatal(err)
	}
	return p
}

func (a *testAgent) checkFile(t rebalancer.Task, want []byte) {
	a.t.Helper()
	got, err := os.ReadFile(a.dest(t))
	if err != nil {
		a.t.Fatalf("object %s: %v", t.ObjectID, err)
	}
	if !bytes.Equal(got, want) {
		a.t.Fatalf("object %s: %d bytes on disk differ from the %d expected", t.ObjectID, len(got), len(want))
	}
}

func (a *testAgent) checkNoFile(t rebalancer.Task) {
	a.t.Helper()
	if _, err := os.Lstat(a.dest(t)); !os.IsNotExist(err) {
		a.t.Fatalf("object %s: expected no file at %s, got err=%v", t.ObjectID, a.dest(t), err)
	}
}

// checkTempEmpty checks that no partial download is left behind.
func (a *testAgent) checkTempEmpty() {
	a.t.Helper()
	entries, err := os.ReadDir(filepath.Join(a.root, TempDirName))
	if err != nil {
		a.t.Fatal(err)
	}
	if len(entries) != 0 {
		a.t.Fatalf("temp directory holds %d entries, e.g. %s", len(entries), entries[0].Name())
	}
}

// failedReasons maps the object id of each failed task to its reason.
func failedReasons(a rebalancer.Assignment) map[string]rebalancer.SkipReason {
	out := map[string]rebalancer.SkipReason{}
	for _, t := range a.Stats.State.Failed {
		out[t.ObjectID] = t.Status.Reason
	}
	return out
}

// gate blocks handlers until opened.
type gate struct {
	entered chan struct{}
	open    chan struct{}
	once    sync.Once
	n       atomic.Int64
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 1000), open: make(chan struct{})} }

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// wait records an arrival and blocks until the gate opens or ctx ends.
func (g *gate) wait(ctx context.Context) {
	g.n.Add(1)
	g.entered <- struct{}{}
	select {
	case <-g.open:
	case <-ctx.Done():
	}
}

// arrivals waits until n callers have reached the gate.
func (g *gate) arrivals(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		testutil.Receive(t, fmt.Sprintf("arrival %d of %d at the gate", i+1, n), g.entered)
	}
}

// stored is an assignment as its rows in the state database hold it.
type stored struct {
	state               string
	total, done, failed int
	tasks               []storedTask
}

type storedTask struct {
	task      rebalancer.Task // without its status
	state     string
	reason    sql.NullString
	detail    sql.NullString
	doneOrder sql.NullInt64
}

// storedAssignment reads assignment id straight from the agent's database,
// tasks in payload order; false if it is not there.
func storedAssignment(t testing.TB, s *Server, id string) (stored, bool) {
	t.Helper()
	ctx := context.Background()
	var (
		a   stored
		seq int64
	)
	err := s.store.db.QueryRowContext(ctx, "SELECT seq, state, total, done, failed FROM assignments WHERE id = ?", id).
		Scan(&seq, &a.state, &a.total, &a.done, &a.failed)
	if errors.Is(err, sql.ErrNoRows) {
		return a, false
	}
	if err != nil {
		t.Fatalf("read assignment %s: %v", id, err)
	}
	rows, err := s.store.db.QueryContext(ctx, `SELECT object_id, owner, md5sum, datacenter, manta_storage_id,
		coalesce(bucket_id, ''), coalesce(object_name_hash, ''), state, reason, detail, done_order
		FROM tasks WHERE aseq = ? ORDER BY idx`, seq)
	if err != nil {
		t.Fatalf("read tasks of %s: %v", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var st storedTask
		tk := &st.task
		if err := rows.Scan(&tk.ObjectID, &tk.Owner, &tk.MD5Sum, &tk.Source.Datacenter, &tk.Source.MantaStorageID,
			&tk.BucketID, &tk.ObjectNameHash, &st.state, &st.reason, &st.detail, &st.doneOrder); err != nil {
			t.Fatalf("read tasks of %s: %v", id, err)
		}
		a.tasks = append(a.tasks, st)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read tasks of %s: %v", id, err)
	}
	return a, true
}

// logBuffer collects an agent's JSON log lines.
type logBuffer struct{ testutil.Buffer }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the log records at level whose msg is msg.
func (b *logBuffer) records(level, msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.SplitSeq(b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["level"] == level && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// treeSnapshot describes every file under dir: its type, and its target
// or content. Comparing two tells whether anything under dir changed.
func treeSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "symlink -> " + target
		case d.IsDir():
			out[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = "file " + md5b64(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// metricValue returns the value of the series name (without labels
// besides the constant ones) as the metrics handler shows it.
func metricValue(t *testing.T, s *Server, name string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.SplitSeq(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, name+"{") {
			return line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	t.Fatalf("no series %s", name)
	return ""
}
