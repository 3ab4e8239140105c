package manager

import (
	"os"
	"strings"

	"github.com/TritonDataCenter/rebalancer/evacuate"
)

// MetricsConfig is the "metrics" block (new): the constant labels of every
// metric the manager exports. The SAPI template fills it from the zone's
// metadata (DATACENTER, SERVICE_NAME, auto.SERVER_UUID), as the agent's
// template fills the agent's. The legacy manager had no such keys and
// always labelled its metrics service="1.rebalancer.localhost",
// datacenter="development", server="127.0.0.1".
type MetricsConfig struct {
	Datacenter string `json:"datacenter"` // default "development", the legacy's
	// Service defaults to "rebalancer.<domain_name>", the SERVICE_NAME of
	// the rebalancer service.
	Service string `json:"service"`
	Server  string `json:"server"` // default "127.0.0.1", the legacy's
}

// MetricLabels are the constant labels of the manager's metrics under c:
// the metrics block, with service defaulting to rebalancer.<domain_name>
// and zonename to the host name (a zone's host name is its name).
func (c *Config) MetricLabels() evacuate.MetricLabels {
	l := evacuate.MetricLabels{
		Service:    strings.TrimSpace(c.Metrics.Service),
		Server:     strings.TrimSpace(c.Metrics.Server),
		Datacenter: strings.TrimSpace(c.Metrics.Datacenter),
	}
	if l.Service == "" && c.DomainName != "" {
		l.Service = "rebalancer." + c.DomainName
	}
	l.Zonename, _ = os.Hostname()
	return l // evacuate.NewMetrics fills what is still empty
}
