package jobapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/internal/fakes"
	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// fuzzEngine is an engine over the fakes, with a few objects on shark 1,
// for fuzzing the API; any shark can be looked up.
func fuzzEngine(tb testing.TB, st *evacuate.Store, agents *fakes.Agents) *evacuate.Engine {
	fl := newFleet(5)
	fl.agents = agents
	return fl.engine(tb, st, func(ctx context.Context, id string) (rebalancer.StorageNode, error) {
		return rebalancer.StorageNode{Datacenter: "dc1", MantaStorageID: id}, nil
	})
}

func serve(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	return w
}

// FuzzCreateJobBody posts arbitrary bodies to POST /jobs of a real engine
// (over the fakes): the answer is 2xx or 4xx, never 5xx, and nothing
// panics, not even later in the job the body started (each job runs for a
// while before its engine is closed). A refused body stores nothing; an
// accepted one stores exactly one job, with the options it gave. The seed
// corpus (testdata/fuzz/FuzzCreateJobBody) holds the legacy bodies of
// docs/golden.md and rebalancer-adm's, with options.
func FuzzCreateJobBody(f *testing.F) {
	st := openStore(f)
	f.Add(`{"action":"evacuate","params":{"from_shark":"1.stor","max_objects":null}}`)
	f.Fuzz(func(t *testing.T, body string) {
		// A fresh engine per body: a job started by one body does not make
		// the next one a 409, and closing it ends the job.
		e := fuzzEngine(t, st, fakes.NewAgents())
		defer e.Close()
		before, err := e.Jobs(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		api := &Server{Engine: e, Domain: "test", Logger: testutil.Discard()}
		w := serve(api.Handler(), http.MethodPost, "/jobs", body)
		if w.Code >= 500 {
			t.Fatalf("POST /jobs %q: %d %s", body, w.Code, w.Body)
		}
		after, err := e.Jobs(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusOK {
			if len(after) != len(before) {
				t.Fatalf("POST /jobs %q refused with %d %s, but stored a job", body, w.Code, w.Body)
			}
			return
		}
		id := strings.TrimSpace(w.Body.String())
		if len(after) != len(before)+1 {
			t.Fatalf("POST /jobs %q accepted: %d jobs stored, want %d", body, len(after), len(before)+1)
		}
		j, err := e.Job(t.Context(), id)
		if err != nil {
			t.Fatalf("POST /jobs %q answered %q: %v", body, id, err)
		}
		checkStoredJob(t, body, j)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		e.Wait(ctx, id)
	})
}

// checkStoredJob checks a job created by body against what body asked for,
// reading body on its own terms: the shark, max_objects, dry_run, and every
// option given, which must be stored as given.
func checkStoredJob(t *testing.T, body string, j evacuate.JobRecord) {
	t.Helper()
	var req struct {
		Params struct {
			FromShark  string                     `json:"from_shark"`
			MaxObjects *int64                     `json:"max_objects"`
			DryRun     bool                       `json:"dry_run"`
			Options    map[string]json.RawMessage `json:"options"`
		} `json:"params"`
	}
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatalf("POST /jobs %q accepted, but it does not parse: %v", body, err)
	}
	p := req.Params
	if want := strings.TrimSpace(p.FromShark); j.From.MantaStorageID != want && j.From.MantaStorageID != want+".test" {
		t.Errorf("POST /jobs %q: shark %q stored", body, j.From.MantaStorageID)
	}
	if err := j.Options.Validate(); err != nil {
		t.Errorf("POST /jobs %q: stored options out of range: %v", body, err)
	}
	inRange := func(path ...string) {
		if err := strictRange(j.Options, path...); err != nil {
			t.Errorf("POST /jobs %q accepted: %v", body, err)
		}
	}
	stored := jsonObject(t, j.Options)
	optType := reflect.TypeFor[evacuate.Options]()
	for key, given := range p.Options {
		if string(given) == "null" {
			continue
		}
		field, _ := optType.FieldByName(fieldOf(optType, key))
		if field.Type.Kind() == reflect.Struct {
			var sub map[string]json.RawMessage
			json.Unmarshal(given, &sub)
			storedSub := map[string]json.RawMessage{}
			json.Unmarshal(stored[key], &storedSub)
			for sk, sv := range sub {
				sf, _ := field.Type.FieldByName(fieldOf(field.Type, sk))
				if string(sv) != "null" && !sameJSON(sv, storedSub[sk], sf.Type) {
					t.Errorf("POST /jobs %q: %s.%s given %s, stored %s", body, key, sk, sv, storedSub[sk])
				}
				inRange(key, sk)
			}
			continue
		}
		if key == "max_objects" && p.MaxObjects != nil || key == "dry_run" {
			continue // params override it, checked below
		}
		if !sameJSON(given, stored[key], field.Type) {
			t.Errorf("POST /jobs %q: %s given %s, stored %s", body, key, given, stored[key])
		}
		inRange(key)
	}
	if p.MaxObjects != nil && int64(j.Options.MaxObjects) != *p.MaxObjects {
		t.Errorf("POST /jobs %q: max_objects %d stored", body, j.Options.MaxObjects)
	}
	var optDry bool
	json.Unmarshal(p.Options["dry_run"], &optDry)
	if j.Options.DryRun != (p.DryRun || optDry) {
		t.Errorf("POST /jobs %q: dry_run %v stored", body, j.Options.DryRun)
	}
}

// strictRange checks the option at path (JSON names: "etag_retries", or
// "busy_backoff" then "tries") of o against its documented range, the one
// the API holds requests to: the value alone, on DefaultOptions (which are
// in range), must pass Options.ValidateStrict.
func strictRange(o evacuate.Options, path ...string) error {
	d := evacuate.DefaultOptions()
	from, to := reflect.ValueOf(o), reflect.ValueOf(&d).Elem()
	for _, key := range path {
		name := fieldOf(from.Type(), key)
		if name == "" {
			return nil // not an option: the API refuses it
		}
		from, to = from.FieldByName(name), to.FieldByName(name)
	}
	to.Set(from)
	return d.ValidateStrict()
}

// fieldOf returns the name of t's field whose JSON name is key.
func fieldOf(t reflect.Type, key string) string {
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name == key {
			return t.Field(i).Name
		}
	}
	return ""
}

// sameJSON reports whether given and stored are the same value of type t;
// an absent stored value (omitempty) is t's zero value.
func sameJSON(given, stored json.RawMessage, t reflect.Type) bool {
	norm := func(b json.RawMessage) string {
		v := reflect.New(t)
		if len(b) > 0 {
			if err := json.Unmarshal(b, v.Interface()); err != nil {
				return "unparsable: " + err.Error()
			}
		}
		if v.Elem().Kind() == reflect.Slice && v.Elem().Len() == 0 {
			return "[]"
		}
		out, _ := json.Marshal(v.Interface())
		return string(out)
	}
	return norm(given) == norm(stored)
}

func jsonObject(t *testing.T, v any) map[string]json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// FuzzUpdateJobBody sends arbitrary bodies to PUT /jobs/{uuid} of a running
// job: the answer is 200, 400, 413 or 422, never 5xx, and nothing panics;
// a 200 stores the metadata threads the body asked for, anything else
// leaves the stored options as they were. The seed corpus
// (testdata/fuzz/FuzzUpdateJobBody) holds the legacy set_metadata_threads
// messages.
func FuzzUpdateJobBody(f *testing.F) {
	agents := fakes.NewAgents()
	agents.SetSlow(true) // the job never ends
	e := fuzzEngine(f, openStore(f), agents)
	f.Cleanup(e.Close)
	j, err := e.CreateJob(context.Background(), fakes.Shark(1).MantaStorageID, evacuate.Options{})
	if err != nil {
		f.Fatal(err)
	}
	testutil.Eventually(f, "the job running", func() bool {
		cur, err := e.Job(context.Background(), j.ID)
		return err == nil && cur.State == rebalancer.JobRunning
	})
	h := (&Server{Engine: e, Logger: testutil.Discard()}).Handler()
	f.Add(`{"action":"set_metadata_threads","params":30}`)
	f.Fuzz(func(t *testing.T, body string) {
		prev, err := e.Job(t.Context(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		w := serve(h, http.MethodPut, "/jobs/"+j.ID, body)
		cur, err := e.Job(t.Context(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch w.Code {
		case http.StatusOK:
			var msg struct {
				Params int64 `json:"params"`
			}
			if err := json.Unmarshal([]byte(body), &msg); err != nil {
				t.Fatalf("PUT /jobs/{uuid} %q accepted, but it does not parse: %v", body, err)
			}
			want := prev.Options
			want.MetadataThreads = int(msg.Params)
			if !reflect.DeepEqual(cur.Options, want) {
				t.Fatalf("PUT /jobs/{uuid} %q accepted: stored %+v, want %+v", body, cur.Options, want)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			if !reflect.DeepEqual(cur.Options, prev.Options) {
				t.Fatalf("PUT /jobs/{uuid} %q refused with %d, but the options changed: %+v", body, w.Code, cur.Options)
			}
		default:
			t.Fatalf("PUT /jobs/{uuid} %q: %d %s", body, w.Code, w.Body)
		}
	})
}
