package agent

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/TritonDataCenter/rebalancer"
)

// metrics are the legacy agent metrics (docs/compatibility.md), with their
// names, labels and "total" series unchanged so that existing dashboards
// keep working, plus a few new series under rebalancer_agent_*.
type metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec // request_count{req}
	objects  *prometheus.CounterVec // object_count{type}
	errors   *prometheus.CounterVec // error_count{error}
	bytes    prometheus.Counter     // bytes_count
	assignT  prometheus.Histogram   // assignment_time

	present      prometheus.Counter   // objects already on disk with the right checksum
	retries      prometheus.Counter   // source connection attempts retried
	recordFails  prometheus.Counter   // failed writes of task results
	active       *prometheus.GaugeVec // assignments by state
	downloadTime prometheus.Histogram
}

// Label values of error_count beyond the snake-case skip reasons. The set
// is fixed: raw error text never becomes a label (the legacy agent put
// deserializer messages there, without bound).
const (
	errLabelTotal      = "total"
	errLabelConflict   = "conflict"
	errLabelBadRequest = "bad_request"
)

// newMetrics makes the metrics; bodyBytes reads the bytes held by POST
// bodies being read.
func newMetrics(l MetricLabels, bodyBytes func() float64) *metrics {
	reg := prometheus.NewRegistry()
	constLabels := prometheus.Labels{
		"service":    l.Service,
		"server":     l.Server,
		"datacenter": l.Datacenter,
		"zonename":   l.Zonename,
	}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "request_count", Help: "Agent requests", ConstLabels: constLabels,
		}, []string{"req"}),
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "object_count", Help: "Objects processed", ConstLabels: constLabels,
		}, []string{"type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "error_count", Help: "Errors encountered", ConstLabels: constLabels,
		}, []string{"error"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytes_count", Help: "Bytes downloaded", ConstLabels: constLabels,
		}),
		assignT: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "assignment_time", Help: "Time spent processing an assignment (seconds)", ConstLabels: constLabels,
			// From a second (a few small objects) to hours (fifty large
			// ones from a slow source); the legacy's default buckets
			// stopped at 10 s. The manager's assignment_time has the same.
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400},
		}),
		present: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rebalancer_agent_objects_already_present_total", ConstLabels: constLabels,
			Help: "Objects not downloaded because the destination already held them with the right checksum.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rebalancer_agent_source_retries_total", ConstLabels: constLabels,
			Help: "Download attempts retried after the source could not be reached.",
		}),
		recordFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rebalancer_agent_record_failures_total", ConstLabels: constLabels,
			Help: "Failed attempts to write a task result or an assignment completion to the state database.",
		}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rebalancer_agent_assignments", ConstLabels: constLabels,
			Help: "Assignments held by the agent that are not complete, by state.",
		}, []string{"state"}),
		downloadTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rebalancer_agent_download_duration_seconds", ConstLabels: constLabels,
			Help:    "Time to download, verify and commit one object.",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600},
		}),
	}
	bodies := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rebalancer_agent_post_body_bytes", ConstLabels: constLabels,
		Help: "Memory reserved by POST /assignments bodies being read (at most Config.MaxBodyBytesInFlight).",
	}, bodyBytes)
	reg.MustRegister(m.requests, m.objects, m.errors, m.bytes, m.assignT,
		m.present, m.retries, m.recordFails, m.active, m.downloadTime, bodies,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Make the legacy series visible from the start.
	for _, v := range []string{"total", "GET", "POST"} {
		m.requests.WithLabelValues(v)
	}
	for _, v := range []string{"total", "complete", "failed"} {
		m.objects.WithLabelValues(v)
	}
	m.errors.WithLabelValues(errLabelTotal)
	return m
}

// Every increment of a legacy counter vector also counts in its "total"
// series, as the legacy agent does.

func (m *metrics) request(method string) {
	m.requests.WithLabelValues("total").Inc()
	m.requests.WithLabelValues(method).Inc()
}

func (m *metrics) error(label string) {
	m.errors.WithLabelValues(errLabelTotal).Inc()
	m.errors.WithLabelValues(label).Inc()
}

func (m *metrics) task(st rebalancer.TaskStatus) {
	m.objects.WithLabelValues("total").Inc()
	if st.State == rebalancer.TaskFailed {
		m.objects.WithLabelValues("failed").Inc()
		m.error(st.Reason.Label())
		return
	}
	m.objects.WithLabelValues("complete").Inc()
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
