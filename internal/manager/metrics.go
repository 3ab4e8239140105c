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

// sharkStates lists the sharks for the status page: those storinfo lists,
// and those running jobs evacuate, each with what the manager makes of
// it. Shark states kept in the job store (issue 18) replace this when
// they exist.
func (m *Manager) sharkStates(ctx context.Context) ([]jobapi.SharkState, error) {
	jobs, err := m.engine.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	draining := map[string]string{} // shark -> job
	for _, j := range jobs {
		if !j.State.Terminal() && m.engine.Running(j.ID) {
			draining[j.From.MantaStorageID] = j.ID
		}
	}
	cfg := m.config()
	var out []jobapi.SharkState
	seen := map[string]bool{}
	if snap := m.view.Snapshot(); snap != nil {
		for _, n := range snap.Nodes {
			s := jobapi.SharkState{ID: n.MantaStorageID, Datacenter: n.Datacenter, State: "in service",
				AvailableMB: n.AvailableMB, PercentUsed: n.PercentUsed}
			switch {
			case draining[n.MantaStorageID] != "":
				s.State, s.Job = "draining", draining[n.MantaStorageID]
			case slices.Contains(cfg.BlocklistSharks, n.MantaStorageID):
				s.State = "blocklisted (blocklist_sharks)"
			case slices.Contains(cfg.BlocklistDatacenters, n.Datacenter):
				s.State = "blocklisted (blocklist_datacenters)"
			}
			seen[n.MantaStorageID] = true
			out = append(out, s)
		}
	}
	for shark, job := range draining {
		if !seen[shark] {
			out = append(out, jobapi.SharkState{ID: shark, State: "draining (not listed by storinfo)", Job: job, PercentUsed: -1})
		}
	}
	slices.SortFunc(out, func(a, b jobapi.SharkState) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
