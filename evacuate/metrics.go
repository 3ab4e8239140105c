package evacuate

import (
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/evacuate/internal/jobstore"
)

// MetricLabels are the constant labels the legacy manager puts on every
// metric; the zero value gives the legacy defaults (the legacy manager
// always used them; the Go manager fills them from its configuration).
type MetricLabels struct {
	Service    string // default "1.rebalancer.localhost"
	Server     string // default "127.0.0.1"
	Datacenter string // default "development"
	Zonename   string // default: the host name
}

// Metrics are the manager's Prometheus metrics: the legacy names and labels
// (request_count, object_count, error_count, skip_count, md_thread_gauge,
// bytes_count, assignment_time), where every labelled increment also counts
// under "total" as the legacy does, plus rebalancer_* series the legacy
// lacks: per job (jobmetrics.go), per source and destination shark, and
// the Go runtime's and the process's. docs/api.md lists every family; a
// test holds the list and a live scrape together. A nil *Metrics is valid
// and records nothing.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	objects     *prometheus.CounterVec
	errors      *prometheus.CounterVec
	skips       *prometheus.CounterVec
	mdThreads   prometheus.Gauge
	bytes       prometheus.Counter
	assignTime  prometheus.Histogram
	discoveredN prometheus.Counter
	duplicatesN prometheus.Counter
	posted      prometheus.Counter
	requeued    prometheus.Counter
	jobsRunning prometheus.Gauge

	destObjects, destBytes     *prometheus.CounterVec
	sourceObjects, sourceBytes *prometheus.CounterVec
	sourceFailures             *prometheus.CounterVec

	mu      sync.Mutex
	mdByJob map[string]int
	jobs    map[string]*jobSnapshot // running jobs, by id
	recent  []*jobSnapshot          // the last jobs that ended, oldest first
	sharks  map[string]bool         // shark label values given out
}

// NewMetrics creates the metrics in a registry of their own.
func NewMetrics(l MetricLabels) *Metrics {
	if l.Service == "" {
		l.Service = "1.rebalancer.localhost"
	}
	if l.Server == "" {
		l.Server = "127.0.0.1"
	}
	if l.Datacenter == "" {
		l.Datacenter = "development"
	}
	if l.Zonename == "" {
		l.Zonename, _ = os.Hostname()
	}
	c := prometheus.Labels{"service": l.Service, "server": l.Server, "datacenter": l.Datacenter, "zonename": l.Zonename}
	m := &Metrics{reg: prometheus.NewRegistry(), mdByJob: map[string]int{}, jobs: map[string]*jobSnapshot{}, sharks: map[string]bool{}}
	counterVec := func(name, help, label string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: c}, []string{label})
		m.reg.MustRegister(v)
		return v
	}
	counter := func(name, help string) prometheus.Counter {
		v := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: c})
		m.reg.MustRegister(v)
		return v
	}
	gauge := func(name, help string) prometheus.Gauge {
		v := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: c})
		m.reg.MustRegister(v)
		return v
	}
	m.requests = counterVec("request_count", "Manager API requests, by kind (get_job, list_jobs, evacuate).", "req")
	m.objects = counterVec("object_count", "Objects evacuated (metadata updated).", "type")
	m.errors = counterVec("error_count", "Objects ended in error, by error.", "error")
	m.skips = counterVec("skip_count", "Objects skipped, by reason.", "reason")
	m.mdThreads = gauge("md_thread_gauge", "Metadata update workers running, all jobs together.")
	m.bytes = counter("bytes_count", "Bytes of objects evacuated.")
	m.assignTime = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "assignment_time",
		Help: "Seconds from an assignment's first task to its recorded results.", ConstLabels: c,
		Buckets: DurationBuckets})
	m.reg.MustRegister(m.assignTime)
	m.discoveredN = counter("rebalancer_objects_discovered_total", "Objects discovered and recorded by evacuation jobs.")
	m.duplicatesN = counter("rebalancer_duplicates_total", "Object ids found under more than one key or shard.")
	m.posted = counter("rebalancer_assignments_posted_total", "Assignments accepted by agents.")
	m.requeued = counter("rebalancer_objects_requeued_total", "Objects placed again after a failed copy or a lost agent.")
	m.jobsRunning = gauge("rebalancer_jobs_running", "Evacuation jobs running.")
	m.destObjects = counterVec("rebalancer_destination_objects_total", "Copies an agent verified on the destination shark.", "shark")
	m.destBytes = counterVec("rebalancer_destination_bytes_total", "Bytes of the copies an agent verified on the destination shark.", "shark")
	m.sourceObjects = counterVec("rebalancer_source_objects_total", "Copies read from the source shark and verified.", "shark")
	m.sourceBytes = counterVec("rebalancer_source_bytes_total", "Bytes of the copies read from the source shark and verified.", "shark")
	m.sourceFailures = counterVec("rebalancer_source_failures_total", "Copies from the source shark that an agent reported failed (any reason).", "shark")
	m.reg.MustRegister(newJobCollector(m, c),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The legacy series are there from the start, as the legacy's are
	// once anything happened: a dashboard finds them before the first job.
	for _, v := range []*prometheus.CounterVec{m.requests, m.objects, m.errors, m.skips} {
		v.WithLabelValues("total")
	}
	return m
}

// DurationBuckets are the buckets of the histograms of durations, the
// manager's and the agent's assignment_time: an assignment takes from
// about a second (a few small objects) to hours (fifty objects of 16 GiB
// from a slow source; the manager gives up after assignment_timeout, two
// hours by default, at most 720).
var DurationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400}

// maxSharkLabels bounds the shark label values of the per-shark series.
// Destinations come from storinfo and sources from the objects' metadata,
// so in a real fleet there are as many as it has storage nodes (hundreds);
// the bound only guards against metadata naming sharks that do not exist.
// Beyond it, sharks are counted under "other".
const maxSharkLabels = 4096

// sharkLabel returns the label value for shark.
func (m *Metrics) sharkLabel(shark string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.sharks[shark] {
		if len(m.sharks) >= maxSharkLabels {
			return "other"
		}
		m.sharks[shark] = true
	}
	return shark
}

// copied counts a copy an agent verified.
func (m *Metrics) copied(dest, source string, bytes int64) {
	if m == nil {
		return
	}
	d, s := m.sharkLabel(dest), m.sharkLabel(source)
	m.destObjects.WithLabelValues(d).Inc()
	m.destBytes.WithLabelValues(d).Add(float64(bytes))
	m.sourceObjects.WithLabelValues(s).Inc()
	m.sourceBytes.WithLabelValues(s).Add(float64(bytes))
}

// copyFailed counts a copy an agent reported failed.
func (m *Metrics) copyFailed(source string) {
	if m != nil {
		m.sourceFailures.WithLabelValues(m.sharkLabel(source)).Inc()
	}
}

// Handler serves the metrics in the Prometheus text format, at any path as
// the legacy does.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry returns the registry, to add more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func inc(v *prometheus.CounterVec, label string, n float64) {
	v.WithLabelValues(label).Add(n)
	v.WithLabelValues("total").Add(n)
}

// Request counts an API request of kind req.
func (m *Metrics) Request(req string) {
	if m != nil {
		inc(m.requests, req, 1)
	}
}

func (m *Metrics) objectEnded(c jobstore.Change) {
	if m == nil {
		return
	}
	switch c.To {
	case rebalancer.ObjectComplete:
		inc(m.objects, "evacuate", 1)
		m.bytes.Add(float64(c.Bytes))
	case rebalancer.ObjectSkipped:
		inc(m.skips, c.Skip.Label(), 1)
	case rebalancer.ObjectError:
		inc(m.errors, c.Error.String(), 1)
	case rebalancer.ObjectUnprocessed:
		m.requeued.Inc()
	}
}

func (m *Metrics) discovered(n, dups int) {
	if m != nil {
		m.discoveredN.Add(float64(n))
		m.duplicatesN.Add(float64(dups))
	}
}

func (m *Metrics) assignmentPosted() {
	if m != nil {
		m.posted.Inc()
	}
}

func (m *Metrics) assignmentDone(d time.Duration) {
	if m != nil {
		m.assignTime.Observe(d.Seconds())
	}
}

func (m *Metrics) setMetadataThreads(job string, n int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n == 0 {
		delete(m.mdByJob, job)
	} else {
		m.mdByJob[job] = n
	}
	total := 0
	for _, v := range m.mdByJob {
		total += v
	}
	m.mdThreads.Set(float64(total))
}

func (m *Metrics) jobStarted() {
	if m != nil {
		m.jobsRunning.Inc()
	}
}

func (m *Metrics) jobEnded() {
	if m != nil {
		m.jobsRunning.Dec()
	}
}
