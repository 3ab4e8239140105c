package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// call sends one request and returns the status and body, or an error for
// a transport failure (safe to use from any goroutine).
func call(c *http.Client, method, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// An agent with hundreds of assignments queued while clients keep reading
// them: 300 assignments of 3 tasks on an agent with 2 workers (so at most
// 2 x QueuePerWorker = 100 held at once), and readers hammering GET
// /assignments/{id} and the paged list all along.
//
// While nothing can finish (downloads are held), the first 100 POSTs, sent
// concurrently, must all be accepted and every later one refused with 503:
// backpressure appears exactly at Workers x QueuePerWorker. Then downloads
// go on, the rest is posted again and again until accepted, as a manager
// would, and every assignment must complete with every file in place. No
// read may fail meanwhile.
func TestLoadQueuedAssignments(t *testing.T) {
	const (
		assignments = 300
		tasks       = 2
		posters     = 4
	)
	src := newSource(t)
	cfg := testConfig(t)
	cfg.Workers, cfg.WorkersPerAssignment = 2, 2
	limit := cfg.Workers * QueuePerWorker
	hold := newGate()
	t.Cleanup(hold.release)
	a := startAgent(t, cfg, func(s *Server) {
		s.beforeCopy = func(ctx context.Context, _ string) { hold.wait(ctx) }
	})

	type posted struct {
		id    string
		tasks []rebalancer.Task
		body  []byte
	}
	all := make([]posted, assignments)
	content := map[string][]byte{}
	for i := range all {
		p := posted{id: newID()}
		for k := range tasks {
			b := []byte(fmt.Sprintf("object %d of assignment %d", k, i))
			task := src.put("owner", newID(), b)
			content[task.ObjectID] = b
			p.tasks = append(p.tasks, task)
		}
		var err error
		if p.body, err = json.Marshal(rebalancer.AssignmentPayload{ID: p.id, Tasks: p.tasks}); err != nil {
			t.Fatal(err)
		}
		all[i] = p
	}

	// Readers, until the end of the test. accepted holds the ids known
	// to be accepted, for GETs that must answer 200.
	var (
		mu       sync.Mutex
		accepted []string
		reads    atomic.Int64
		readErrs = make(chan error, 100)
		stop     = make(chan struct{})
		readers  sync.WaitGroup
	)
	readErr := func(err error) {
		select {
		case readErrs <- err:
		default:
		}
	}
	client := &http.Client{Timeout: testutil.Timeout}
	for r := range 3 {
		readers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			after := ""
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				id := ""
				if len(accepted) > 0 {
					id = accepted[rng.IntN(len(accepted))]
				}
				mu.Unlock()
				if id != "" {
					code, body, err := call(client, http.MethodGet, a.url("/assignments/"+id), nil)
					var got rebalancer.Assignment
					switch {
					case err != nil:
						readErr(fmt.Errorf("GET %s: %w", id, err))
					case code != http.StatusOK:
						readErr(fmt.Errorf("GET %s: %d %s", id, code, body))
					case json.Unmarshal(body, &got) != nil || got.UUID != id || got.Stats.Total != tasks:
						readErr(fmt.Errorf("GET %s: %s", id, body))
					}
				}
				code, body, err := call(client, http.MethodGet, a.url("/assignments?limit=37&after="+after), nil)
				var page List
				switch {
				case err != nil:
					readErr(fmt.Errorf("list: %w", err))
				case code != http.StatusOK:
					readErr(fmt.Errorf("list after %q: %d %s", after, code, body))
				case json.Unmarshal(body, &page) != nil:
					readErr(fmt.Errorf("list after %q: %s", after, body))
				default:
					after = page.Next
				}
				reads.Add(1)
				// Steady rather than flat out: the point is reads
				// interleaved with the work, not starving it of CPU.
				time.Sleep(time.Millisecond)
			}
		})
	}
	stopReaders := sync.OnceFunc(func() {
		close(stop)
		readers.Wait()
	})
	t.Cleanup(stopReaders)

	// post sends the assignments from several goroutines and returns how
	// many each status answered; with retry, a 503 is sent again until
	// accepted.
	post := func(ps []posted, retry bool) (map[int]int, error) {
		var (
			pmu   sync.Mutex
			codes = map[int]int{}
			errs  []error
			next  atomic.Int64
			wg    sync.WaitGroup
		)
		for range posters {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(ps) {
						return
					}
					for {
						code, body, err := call(client, http.MethodPost, a.url("/assignments"), ps[i].body)
						pmu.Lock()
						codes[code]++
						if err != nil || (code != http.StatusOK && code != http.StatusServiceUnavailable) {
							errs = append(errs, fmt.Errorf("POST %s: %d %s %v", ps[i].id, code, body, err))
						}
						pmu.Unlock()
						if code == http.StatusOK {
							mu.Lock()
							accepted = append(accepted, ps[i].id)
							mu.Unlock()
						}
						if code != http.StatusServiceUnavailable || !retry {
							break
						}
						time.Sleep(2 * time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
		return codes, errors.Join(errs...)
	}

	// Nothing can finish: exactly limit accepted, then only 503.
	codes, err := post(all[:limit], false)
	if err != nil || codes[http.StatusOK] != limit {
		t.Fatalf("the first %d POSTs: %v, %v; want all accepted", limit, codes, err)
	}
	codes, err = post(all[limit:limit+50], false)
	if err != nil || codes[http.StatusServiceUnavailable] != 50 {
		t.Fatalf("50 POSTs over the limit of %d: %v, %v; want all 503", limit, codes, err)
	}
	code, body, err := call(client, http.MethodGet, a.url("/health"), nil)
	var h Health
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &h) != nil || h.Scheduled+h.Running != limit || h.MaxQueued != limit {
		t.Fatalf("health with the queue full: %d %s %v", code, body, err)
	}

	// Downloads go on; the rest is posted until accepted.
	hold.release()
	codes, err = post(all[limit:], true)
	if err != nil || codes[http.StatusOK] != assignments-limit {
		t.Fatalf("posting the rest: %v, %v", codes, err)
	}
	t.Logf("after the queue opened: %d POSTs accepted, %d answered 503", codes[http.StatusOK], codes[http.StatusServiceUnavailable])

	for _, p := range all {
		got := a.waitComplete(p.id)
		if got.Stats.Failed != 0 || got.Stats.Complete != tasks {
			t.Fatalf("assignment %s: %+v", p.id, got.Stats)
		}
		for _, task := range p.tasks {
			a.checkFile(task, content[task.ObjectID])
		}
	}
	a.checkTempEmpty()

	// Every assignment is listed once, complete.
	seen := map[string]bool{}
	for after := ""; ; {
		code, body, err := call(client, http.MethodGet, a.url("/assignments?state=complete&limit=100&after="+after), nil)
		var page List
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &page) != nil {
			t.Fatalf("list: %d %s %v", code, body, err)
		}
		for _, s := range page.Assignments {
			seen[s.UUID] = true
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if len(seen) != assignments {
		t.Fatalf("%d assignments listed complete, want %d", len(seen), assignments)
	}

	stopReaders()
	for len(readErrs) > 0 {
		t.Error(<-readErrs)
	}
	if n := reads.Load(); n == 0 {
		t.Error("the readers never read")
	} else {
		t.Logf("%d reads during the run", n)
	}
}
