package evacuate

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The per-job series. Their job label is bounded: a job has series while
// it runs here and, once it ended, for as long as it is one of the last
// recentJobs jobs that ended, so that a dashboard shows how each ended;
// then its series go. A manager that ran a thousand jobs exports a dozen
// jobs' series, not a thousand.

// recentJobs is how many ended jobs keep their series.
const recentJobs = 10

// jobSnapshot is what the per-job series say of a job: its monitor takes
// one at each look at the counters.
type jobSnapshot struct {
	id, shark, state string
	objects, bytes   map[string]int64 // by object status
	remaining        int64
	// posting, copying, metadata are its assignments by stage.
	posting, copying, metadata int
	eta                        float64
	etaOK                      bool
}

// setJob records the latest snapshot of a running job.
func (m *Metrics) setJob(s *jobSnapshot) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[s.id] = s
}

// endJob forgets a job that no longer runs here. A job that ended (its
// last snapshot final non-nil) keeps its series among the recent ones; a
// job interrupted (the manager stopping) has none until it runs again.
func (m *Metrics) endJob(id string, final *jobSnapshot) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.jobs, id)
	if final == nil {
		return
	}
	kept := m.recent[:0]
	for _, s := range m.recent {
		if s.id != id {
			kept = append(kept, s)
		}
	}
	m.recent = append(kept, final)
	if n := len(m.recent) - recentJobs; n > 0 {
		m.recent = append(m.recent[:0], m.recent[n:]...)
	}
}

// snapshots returns the jobs that have series: the running ones, then the
// recent ones.
func (m *Metrics) snapshots() []*jobSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*jobSnapshot, 0, len(m.jobs)+len(m.recent))
	for _, s := range m.jobs {
		out = append(out, s)
	}
	for _, s := range m.recent {
		if m.jobs[s.id] == nil {
			out = append(out, s)
		}
	}
	return out
}

// jobCollector exports the snapshots.
type jobCollector struct {
	m                                           *Metrics
	info, objects, bytes, remaining, stage, eta *prometheus.Desc
}

func newJobCollector(m *Metrics, constLabels prometheus.Labels) *jobCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, constLabels)
	}
	return &jobCollector{
		m:    m,
		info: d("rebalancer_job_info", "1 for each job with series: running here, or among the last 10 that ended; state is its state (Stopping: stopping).", "job", "shark", "state"),
		objects: d("rebalancer_job_objects", "A job's objects by status (unprocessed, assigned, post_processing, complete, skipped, error).",
			"job", "status"),
		bytes:     d("rebalancer_job_bytes", "The bytes of a job's objects by status; status complete is the bytes moved.", "job", "status"),
		remaining: d("rebalancer_job_remaining_objects", "A job's objects not in a final status yet (more may be found while discovery runs).", "job"),
		stage: d("rebalancer_job_assignments", "A running job's assignments by stage: posting (stored, not yet accepted by their agent), copying (accepted, polled until their agent reports), metadata (copies verified, waiting for a metadata thread).",
			"job", "stage"),
		eta: d("rebalancer_job_eta_seconds", "Seconds a running job should still take, smoothed; an estimate while discovery runs; absent while it cannot be told, paused or stopping.", "job"),
	}
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.objects, c.bytes, c.remaining, c.stage, c.eta} {
		ch <- d
	}
}

// statusOrder are the object statuses the per-job series always have.
var statusOrder = []string{"unprocessed", "assigned", "post_processing", "complete", "skipped", "error"}

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, s := range c.m.snapshots() {
		gauge(c.info, 1, s.id, s.shark, s.state)
		for _, st := range statusOrder {
			gauge(c.objects, float64(s.objects[st]), s.id, st)
			gauge(c.bytes, float64(s.bytes[st]), s.id, st)
		}
		gauge(c.remaining, float64(s.remaining), s.id)
		gauge(c.stage, float64(s.posting), s.id, "posting")
		gauge(c.stage, float64(s.copying), s.id, "copying")
		gauge(c.stage, float64(s.metadata), s.id, "metadata")
		if s.etaOK {
			gauge(c.eta, s.eta, s.id)
		}
	}
}

// stages returns the assignments stored and not yet accepted by their
// agent (posting) and those accepted and polled (copying).
func (f *flight) stages() (posting, copying int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.all) - len(f.watched), len(f.watched)
}

// len returns the number of ids waiting.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
