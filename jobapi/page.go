package jobapi

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate"
)

// The status page: a read-only view of the manager for people, served on
// the API's port. It is plain HTML from html/template with one embedded
// style sheet: no JavaScript, no framework, so that it works in any
// browser, behind any proxy, and in a text browser on the zone. Each page
// refreshes itself (meta refresh) every PageRefresh.
//
//	GET /                  the jobs, newest first, and the sharks
//	GET /ui/jobs/{uuid}    one job: progress, counts, breakdowns by reason
//	                       and by shark, options
//	GET /ui/style.css      the style sheet
//
// With an api_token, the pages ask for it as the API does; a browser, which
// cannot send a bearer token by itself, gets an HTTP Basic challenge whose
// password is the token (any user name).

//go:embed ui
var uiFiles embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"comma": humanize.Comma,
	"bytes": func(n int64) string { return humanize.IBytes(uint64(max(n, 0))) },
	"pct":   func(f float64) string { return fmt.Sprintf("%.1f%%", f) },
}).ParseFS(uiFiles, "ui/*.html"))

// PageRefresh is how often the status pages reload themselves.
const PageRefresh = 5 * time.Second

// SharkState is a shark as the status page lists it.
type SharkState struct {
	ID         string
	Datacenter string
	// State is what the manager makes of the shark: "in service",
	// "draining" (a job is evacuating it), "blocklisted"... as the
	// function that lists them says.
	State string
	// Job is the job evacuating it, if any.
	Job string
	// AvailableMB and PercentUsed are storinfo's figures (PercentUsed < 0:
	// unknown).
	AvailableMB int64
	PercentUsed float64
}

// isPage reports whether a request is for the status pages (which get a
// Basic challenge rather than a Bearer one).
func isPage(r *http.Request) bool {
	return r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/")
}

// pageJob is a job as the pages show it.
type pageJob struct {
	ID, Short, Shark, Datacenter string
	State, StateClass            string
	DryRun, Running              bool
	Error, RetryOf               string
	Created, Started, Finished   string

	Total, Done, Complete, Skipped, Errors, Duplicates int64
	DiscoveryRunning                                   bool
	BytesTotal, BytesMoved                             int64
	Percent                                            float64
	Rate, ETA                                          string
}

func newPageJob(st *JobStatus) pageJob {
	p := pageJob{
		ID: st.ID, Short: shortID(st.ID), Shark: st.Config.FromShark.MantaStorageID, Datacenter: st.Config.FromShark.Datacenter,
		State: st.State.Title(), DryRun: st.DryRun != nil || (st.Options != nil && st.Options.DryRun), Running: !st.State.Terminal(),
		Error: st.Error, RetryOf: st.RetryOf,
		Created: pageTime(st.Created), Started: pageTime(st.Started), Finished: pageTime(st.Finished),
		Complete: st.Results.Complete, Skipped: st.Results.Skipped, Errors: st.Results.Error, Duplicates: st.Results.Duplicates,
		ETA: "-", Rate: "-",
	}
	if st.Stopping {
		p.State = "Stopping"
	}
	p.StateClass = strings.ToLower(p.State)
	if pr := st.Progress; pr != nil {
		p.Total, p.Done, p.BytesTotal, p.BytesMoved = pr.Objects, pr.ObjectsDone, pr.Bytes, pr.BytesComplete
		p.DiscoveryRunning = !pr.DiscoveryDone && p.Running
		if p.Running && p.State == "Running" {
			p.Rate = fmt.Sprintf("%s objects/s, %s/s", humanize.CommafWithDigits(pr.ObjectsPerSecond, 1), humanize.IBytes(uint64(pr.BytesPerSecond)))
		}
		if pr.ETASeconds != nil && p.State == "Running" {
			p.ETA = FormatDuration(time.Duration(*pr.ETASeconds) * time.Second)
			if pr.ETAEstimated {
				p.ETA = "~" + p.ETA + " (estimate: discovery is running)"
			}
		}
	}
	if p.Total > 0 {
		p.Percent = math.Floor(1000*float64(p.Done)/float64(p.Total)) / 10
	}
	return p
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func pageTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// FormatDuration formats a duration for people, to the second and in at
// most two units: "45s", "3m05s", "2h04m", "3d04h". The status page and
// rebalancer-adm show ETAs and elapsed times this way.
func FormatDuration(d time.Duration) string {
	s := int64(math.Round(d.Seconds()))
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// pageCommon is what every page shows at its top.
type pageCommon struct {
	Title, Version, Now, Health string
	Healthy                     bool
	Refresh                     int
}

func (s *Server) common(title string) pageCommon {
	c := pageCommon{Title: title, Version: s.Version, Now: time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		Healthy: true, Health: "the job store works", Refresh: int(PageRefresh.Seconds())}
	if c.Version == "" {
		c.Version = "dev"
	}
	if err := s.Engine.StoreFailure(); err != nil {
		c.Healthy, c.Health = false, "the job store fails: "+err.Error()
	}
	return c
}

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		s.log().Error("cannot render the status page", "page", name, "err", err)
		writeText(w, http.StatusInternalServerError, "cannot render the page: "+err.Error())
		return
	}
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(b.String()))
}

// overview is GET /.
func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	data := struct {
		pageCommon
		Jobs       []pageJob
		JobsError  string
		Sharks     []SharkState
		SharkError string
		HasSharks  bool
	}{pageCommon: s.common("Rebalancer manager")}
	jobs, err := s.Engine.Jobs(ctx)
	if err != nil {
		data.JobsError = err.Error()
	}
	slices.Reverse(jobs) // newest first
	for _, j := range jobs {
		st, err := s.Engine.JobStatus(ctx, j.ID)
		if err != nil {
			data.JobsError = err.Error()
			continue
		}
		doc := newJobStatus(st)
		data.Jobs = append(data.Jobs, newPageJob(&doc))
	}
	if s.Sharks != nil {
		data.HasSharks = true
		if data.Sharks, err = s.Sharks(ctx); err != nil {
			data.SharkError = err.Error()
		}
	}
	s.render(w, "overview.html", data)
}

// jobPage is GET /ui/jobs/{uuid}.
func (s *Server) jobPage(w http.ResponseWriter, r *http.Request) {
	st, ok := s.pathJobStatus(w, r)
	if !ok {
		return
	}
	ctx, id := r.Context(), st.Job.ID
	doc := newJobStatus(st)
	data := struct {
		pageCommon
		Job            pageJob
		Counts         []reasonCount
		Skips, Errs    []reasonCount
		Dests, Sources []evacuate.SharkCount
		DestsErr       string
		Options        []reasonText
		DryRun         *evacuate.DryRunReport
		DryDests       []dryDest
		SourcesKnown   bool
	}{pageCommon: s.common("Job " + shortID(id)), Job: newPageJob(&doc), DryRun: st.DryRun}
	for _, status := range []rebalancer.ObjectStatus{rebalancer.ObjectUnprocessed, rebalancer.ObjectAssigned,
		rebalancer.ObjectPostProcessing, rebalancer.ObjectComplete, rebalancer.ObjectSkipped, rebalancer.ObjectError} {
		data.Counts = append(data.Counts, reasonCount{status.Title(), doc.Results.Count(status)})
	}
	if doc.Results.Duplicates > 0 {
		data.Counts = append(data.Counts, reasonCount{"Duplicates", doc.Results.Duplicates})
	}
	for reason, n := range doc.Results.SkipBreakdown {
		data.Skips = append(data.Skips, reasonCount{reason, n})
	}
	for group, reasons := range doc.Results.ErrorBreakdown {
		for reason, n := range reasons {
			if group != "other" {
				reason = group + "_" + reason
			}
			data.Errs = append(data.Errs, reasonCount{reason, n})
		}
	}
	sortReasons(data.Skips)
	sortReasons(data.Errs)
	var err error
	if data.Dests, err = s.Engine.JobDestinations(ctx, id); err != nil {
		data.DestsErr = err.Error()
	}
	data.Sources = s.Engine.JobSources(id)
	data.SourcesKnown = data.Sources != nil
	data.Options = optionRows(doc.Options)
	if d := st.DryRun; d != nil {
		for name, v := range d.Destinations {
			dd := dryDest{Shark: name, Objects: v.Objects, Bytes: v.Bytes, Used: "-", Projected: "-"}
			if v.PercentUsed != nil {
				dd.Used = fmt.Sprintf("%.1f%%", *v.PercentUsed)
			}
			if v.ProjectedPercentUsed != nil {
				dd.Projected = fmt.Sprintf("%.1f%%", *v.ProjectedPercentUsed)
			}
			data.DryDests = append(data.DryDests, dd)
		}
		sort.Slice(data.DryDests, func(i, j int) bool { return data.DryDests[i].Shark < data.DryDests[j].Shark })
	}
	s.render(w, "job.html", data)
}

type reasonCount struct {
	Name string
	N    int64
}

type reasonText struct{ Name, Value string }

type dryDest struct {
	Shark           string
	Objects, Bytes  int64
	Used, Projected string
}

func sortReasons(rs []reasonCount) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].N != rs[j].N {
			return rs[i].N > rs[j].N
		}
		return rs[i].Name < rs[j].Name
	})
}

// optionRows are a job's options by their JSON names, in their order.
func optionRows(o *evacuate.Options) []reasonText {
	if o == nil {
		return nil
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	var rows []reasonText
	if _, err := dec.Token(); err != nil { // {
		return nil
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return rows
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return rows
		}
		val := string(v)
		var str string
		if json.Unmarshal(v, &str) == nil {
			val = str
		}
		rows = append(rows, reasonText{fmt.Sprint(k), val})
	}
	return rows
}

// style is GET /ui/style.css.
func (s *Server) style(w http.ResponseWriter, r *http.Request) {
	b, err := uiFiles.ReadFile("ui/style.css")
	if err != nil {
		writeText(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=300")
	w.Write(b)
}
