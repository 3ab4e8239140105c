package jobapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

// With an api_token the status pages ask for it as a browser can give
// it: HTTP Basic, the token as the password. The API's routes still want
// the bearer token.
func TestStatusPageAuth(t *testing.T) {
	h := newHarness(t, 0)
	api := &Server{Engine: h.engine, Version: "9.9.9", Logger: testutil.Discard(), Token: "s3cret"}
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	for _, tt := range []struct {
		path, user, pass, bearer string
		code                     int
		challenge, body          string
	}{
		{path: "/", code: 401, challenge: "Basic realm="},
		{path: "/ui/style.css", code: 401, challenge: "Basic realm="},
		{path: "/", user: "ops", pass: "wrong", code: 401},
		{path: "/", user: "ops", pass: "s3cret", code: 200, body: "<h2>Jobs</h2>"},
		{path: "/", bearer: "s3cret", code: 200, body: "No jobs yet."},
		{path: "/ui/style.css", user: "", pass: "s3cret", code: 200, body: ".bar"},
		{path: "/ui/jobs/7d0cf4ad-0d35-4a53-9d4e-9d1e2a0d3f3b", pass: "s3cret", code: 404, body: "Could not find job UUID"},
		{path: "/ui/jobs/nope", pass: "s3cret", code: 400, body: "Invalid UUID"},
		{path: "/jobs", user: "ops", pass: "s3cret", code: 401, challenge: "Bearer realm="},
		{path: "/jobs", bearer: "s3cret", code: 200},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
		if tt.pass != "" {
			req.SetBasicAuth(tt.user, tt.pass)
		}
		if tt.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+tt.bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(b)
		if resp.StatusCode != tt.code || !strings.Contains(resp.Header.Get("WWW-Authenticate"), tt.challenge) || !strings.Contains(body, tt.body) {
			t.Errorf("GET %s (basic %q:%q, bearer %q): %d, challenge %q, body %.200q", tt.path, tt.user, tt.pass, tt.bearer,
				resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
		if tt.code == 200 && tt.path == "/" && resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("GET /: Content-Type %q", resp.Header.Get("Content-Type"))
		}
	}
}

// The pages work without a shark lister, and say so.
func TestStatusPageWithoutSharks(t *testing.T) {
	h := newHarness(t, 10)
	body := h.get("/")
	if !strings.Contains(body, "This manager does not list its sharks.") || !strings.Contains(body, `<meta http-equiv="refresh" content="5">`) {
		t.Errorf("overview: %s", body)
	}
}
