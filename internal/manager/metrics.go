package manager

import (
	"context"
	"os"
	"slices"
	"strings"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/jobapi"
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

// sharkStates lists the sharks for the status page: the engine's (those
// storinfo lists, those with a stored state, those blocklisted), each with
// its lifecycle state and storinfo's figures.
func (m *Manager) sharkStates(ctx context.Context) ([]jobapi.SharkState, error) {
	all, err := m.engine.Sharks(ctx)
	if err != nil {
		return nil, err
	}
	cfg := m.config()
	snap := m.view.Snapshot()
	out := make([]jobapi.SharkState, 0, len(all))
	for _, sh := range all {
		s := jobapi.SharkState{ID: sh.Shark, Datacenter: sh.Datacenter, State: strings.ReplaceAll(string(sh.State), "_", " "),
			Job: sh.Job, PercentUsed: -1}
		if sh.Running != "" {
			s.State, s.Job = "draining", sh.Running
		}
		if snap != nil {
			if n, ok := snap.Node(sh.Shark); ok {
				s.AvailableMB, s.PercentUsed = n.AvailableMB, n.PercentUsed
			}
		}
		switch {
		case sh.Blocklisted:
			s.State += ", blocklisted (blocklist_sharks)"
		case s.Datacenter != "" && slices.Contains(cfg.BlocklistDatacenters, s.Datacenter):
			s.State += ", blocklisted (blocklist_datacenters)"
		case !sh.Listed:
			s.State += " (not listed by storinfo)"
		}
		out = append(out, s)
	}
	return out, nil
}
