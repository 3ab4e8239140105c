package agent

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Defaults, as in the legacy agent and its SAPI template.
const (
	DefaultRoot                 = "/manta"
	DefaultDataDir              = "/var/tmp/rebalancer"
	DefaultPort                 = 7878
	DefaultMetricsPort          = 8878
	DefaultWorkers              = 4
	DefaultWorkersPerAssignment = 4
	DefaultDownloadTimeout      = 120 * time.Second
	DefaultConnectTimeout       = 10 * time.Second
	DefaultRetention            = 14 * 24 * time.Hour
	DefaultMaxBodyBytes         = 64 << 20
	DefaultShutdownGrace        = 30 * time.Second

	// Limits on clients of the API; see Config.
	DefaultHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout   = 2 * time.Minute
	DefaultIdleTimeout   = 2 * time.Minute

	// A source must send at least DefaultMinSourceRate bytes a second,
	// measured over DefaultMinSourceRateWindow: a shark healthy enough to
	// serve objects sends thousands of times more.
	DefaultMinSourceRate       = 4 << 10
	DefaultMinSourceRateWindow = time.Minute

	// QueuePerWorker is the legacy backpressure factor: an agent holds at
	// most Workers*QueuePerWorker scheduled and running assignments and
	// answers 503 beyond that.
	QueuePerWorker = 50

	// TempDirName is the directory under the Manta root that holds partial
	// downloads. It is on the same filesystem as every destination, so the
	// final rename is atomic, and its leading dot keeps it apart from every
	// valid owner name.
	TempDirName = ".rebalancer-tmp"

	// DBFileName is the agent's state database inside the data directory.
	DBFileName = "agent.db"
)

// Config configures a Server. The zero value of every field means its
// default; call WithDefaults to see the values in effect.
type Config struct {
	// Root is the Manta root: objects go to Root/{owner}/{object_id} and
	// Root/v2/... It must exist.
	Root string
	// DataDir holds the state database (and, on an upgraded node, the
	// legacy agent's scheduled/ and completed/ directories, imported at
	// startup).
	DataDir string

	// Workers is how many assignments run at once.
	Workers int
	// WorkersPerAssignment is how many downloads each running assignment
	// does at once.
	WorkersPerAssignment int
	// MaxQueued is how many scheduled plus running assignments the agent
	// holds before answering 503. Default Workers*QueuePerWorker.
	MaxQueued int

	// DownloadTimeout bounds the wait for a source's response headers and
	// for each piece of the body: a download fails when the source sends
	// nothing for this long. It is not a cap on the whole transfer, so large
	// objects from a slow but steady source still complete.
	DownloadTimeout time.Duration
	// ConnectTimeout bounds connecting (and a TLS handshake) to a source.
	ConnectTimeout time.Duration
	// MinSourceRate is the slowest a source may send, in bytes a second,
	// measured from its response headers over periods of at least
	// MinSourceRateWindow: a source that sends less in such a period fails
	// the download (SourceOtherError), so that a source dripping bytes
	// just often enough to beat DownloadTimeout cannot hold a download
	// forever. The end of a transfer, shorter than a window, is not
	// measured. Defaults: 4 KiB/s over a minute, generous enough that
	// only a source that is stuck or hostile ever trips it.
	MinSourceRate       int64
	MinSourceRateWindow time.Duration
	// AllowSources, when not empty, are the only sources the agent
	// downloads from; a task from any other is refused (the POST gets
	// 400). An entry that starts with a dot is a domain suffix matching
	// storage ids without a port (".stor.us-east.joyent.us" matches
	// "1.stor.us-east.joyent.us"); any other entry is a host or host:port
	// matching a storage id exactly. Case does not matter. Empty means any
	// source, as in the legacy agent.
	AllowSources []string
	// RetryDelays are the waits between attempts to reach a source that
	// fails before answering (connection refused, timeouts): one more
	// attempt than delays. nil means the legacy 1s, 2s, 4s; an empty
	// non-nil slice means a single attempt.
	RetryDelays []time.Duration

	// Retention is how long completed assignments are kept before they are
	// pruned. PruneInterval is how often the pruner looks (default
	// Retention/24, at most an hour).
	Retention     time.Duration
	PruneInterval time.Duration

	// MaxBodyBytes caps the size of a POST /assignments body.
	MaxBodyBytes int64
	// MaxBodyBytesInFlight caps the memory that POST /assignments bodies
	// being read take at once, over all requests (default
	// 2*MaxBodyBytes). A POST that would go over it gets 503, which
	// managers retry later. Decoding a body takes about as much again.
	MaxBodyBytesInFlight int64
	// HeaderTimeout is how long a client has to send a request's headers,
	// BodyTimeout how long it has to send a POST body once the headers
	// are in, and IdleTimeout how long a kept-alive connection may wait
	// for its next request. A client slower than that is disconnected.
	// The handler enforces BodyTimeout itself; the other two apply to the
	// server from APIServer. Defaults: 10s, 2m and 2m.
	HeaderTimeout time.Duration
	BodyTimeout   time.Duration
	IdleTimeout   time.Duration
	// Token, when set, is required as "Authorization: Bearer <Token>" on
	// every assignment route. Off by default: legacy managers send none.
	Token string

	// ShutdownGrace is how long in-flight downloads may run on after Run's
	// context ends before they are abandoned (their temp files removed,
	// their tasks left pending for the next start).
	ShutdownGrace time.Duration

	// RecordRetry bounds how long the agent keeps retrying a failed write
	// of a task result or of an assignment's completion before it gives up
	// for now; RequeueDelay is how long such an assignment waits before it
	// is run again. The assignment is never reported complete meanwhile.
	RecordRetry  time.Duration
	RequeueDelay time.Duration

	// Metrics are the constant labels on every metric.
	Metrics MetricLabels

	// SourceClient, if set, is used for downloads instead of a client built
	// from the timeouts above. Its transport should not decompress bodies.
	// The agent uses a copy that does not follow redirects.
	SourceClient *http.Client

	// SourceProxy, if set, is an HTTP proxy (http:// or https:// URL)
	// through which every download goes: for tests that run agents as
	// processes against sharks with made-up names, or unusual networks.
	// Proxies from the environment (HTTP_PROXY...) are ignored on purpose,
	// since sharks talk to each other directly. Unused with SourceClient.
	SourceProxy *url.URL
}

// MetricLabels are the legacy constant labels (docs/compatibility.md).
type MetricLabels struct {
	Service    string // SAPI SERVICE_NAME; default "1.rebalancer.localhost"
	Server     string // SAPI auto.SERVER_UUID; default "127.0.0.1"
	Datacenter string // SAPI DATACENTER; default "development"
	Zonename   string // default: the host name
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.WorkersPerAssignment == 0 {
		c.WorkersPerAssignment = DefaultWorkersPerAssignment
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = c.Workers * QueuePerWorker
	}
	if c.DownloadTimeout == 0 {
		c.DownloadTimeout = DefaultDownloadTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = min(DefaultConnectTimeout, c.DownloadTimeout)
	}
	if c.MinSourceRate == 0 {
		c.MinSourceRate = DefaultMinSourceRate
	}
	if c.MinSourceRateWindow == 0 {
		c.MinSourceRateWindow = DefaultMinSourceRateWindow
	}
	if c.RetryDelays == nil {
		c.RetryDelays = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = min(c.Retention/24, time.Hour)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBodyBytesInFlight == 0 {
		c.MaxBodyBytesInFlight = 2 * c.MaxBodyBytes
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = DefaultHeaderTimeout
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = DefaultBodyTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.RecordRetry == 0 {
		c.RecordRetry = time.Minute
	}
	if c.RequeueDelay == 0 {
		c.RequeueDelay = time.Minute
	}
	if c.Metrics.Service == "" {
		c.Metrics.Service = "1.rebalancer.localhost"
	}
	if c.Metrics.Server == "" {
		c.Metrics.Server = "127.0.0.1"
	}
	if c.Metrics.Datacenter == "" {
		c.Metrics.Datacenter = "development"
	}
	if c.Metrics.Zonename == "" {
		c.Metrics.Zonename, _ = os.Hostname()
	}
	return c
}

// Validate reports what New would refuse in c (with its defaults
// applied), such as a negative limit or a malformed AllowSources entry.
func (c Config) Validate() error {
	return c.WithDefaults().validate()
}

// validate checks a config that has its defaults applied.
func (c Config) validate() error {
	var errs []error
	if !filepath.IsAbs(c.Root) {
		errs = append(errs, fmt.Errorf("root %q is not an absolute path", c.Root))
	}
	if !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("data directory %q is not an absolute path", c.DataDir))
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"workers", int64(c.Workers)},
		{"workers per assignment", int64(c.WorkersPerAssignment)},
		{"max queued", int64(c.MaxQueued)},
		{"download timeout", int64(c.DownloadTimeout)},
		{"connect timeout", int64(c.ConnectTimeout)},
		{"retention", int64(c.Retention)},
		{"prune interval", int64(c.PruneInterval)},
		{"max body bytes", c.MaxBodyBytes},
		{"max body bytes in flight", c.MaxBodyBytesInFlight},
		{"header timeout", int64(c.HeaderTimeout)},
		{"body timeout", int64(c.BodyTimeout)},
		{"idle timeout", int64(c.IdleTimeout)},
		{"min source rate", c.MinSourceRate},
		{"min source rate window", int64(c.MinSourceRateWindow)},
		{"shutdown grace", int64(c.ShutdownGrace)},
		{"record retry", int64(c.RecordRetry)},
		{"requeue delay", int64(c.RequeueDelay)},
	}
	for _, p := range positive {
		if p.v < 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, is %d", p.name, p.v))
		}
	}
	if p := c.SourceProxy; p != nil && ((p.Scheme != "http" && p.Scheme != "https") || p.Host == "") {
		errs = append(errs, fmt.Errorf("source proxy %q is not an http:// or https:// URL with a host", p.Redacted()))
	}
	if c.MaxBodyBytesInFlight > 0 && c.MaxBodyBytesInFlight < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("max body bytes in flight (%d) is less than max body bytes (%d): the largest body could never be read",
			c.MaxBodyBytesInFlight, c.MaxBodyBytes))
	}
	if _, err := parseAllowSources(c.AllowSources); err != nil {
		errs = append(errs, err)
	}
	for i, d := range c.RetryDelays {
		if d < 0 {
			errs = append(errs, fmt.Errorf("retry delay %d is negative (%v)", i, d))
		}
	}
	return errors.Join(errs...)
}
