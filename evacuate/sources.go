package evacuate

import (
	"context"
	"sort"
	"sync"

	"github.com/TritonDataCenter/rebalancer"
)

// SharkCount is what a job did with one shark: as a destination, the
// copies made there; as a source, the copies read from it and those that
// failed.
type SharkCount struct {
	Shark   string
	Objects int64 // copies verified (a destination's: recorded by the job store)
	Bytes   int64
	Failed  int64 // copies that failed (sources only)
}

// sourceCounts counts a job's copies per source shark, in memory: the job
// store does not record which copy an agent read.
type sourceCounts struct {
	mu     sync.Mutex
	sharks map[string]*SharkCount
}

func (s *sourceCounts) add(shark string, bytes int64, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sharks == nil {
		s.sharks = map[string]*SharkCount{}
	}
	c := s.sharks[shark]
	if c == nil {
		c = &SharkCount{Shark: shark}
		s.sharks[shark] = c
	}
	if failed {
		c.Failed++
		return
	}
	c.Objects++
	c.Bytes += bytes
}

func (s *sourceCounts) list() []SharkCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SharkCount, 0, len(s.sharks))
	for _, c := range s.sharks {
		out = append(out, *c)
	}
	sortCounts(out)
	return out
}

func sortCounts(cs []SharkCount) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Objects+cs[i].Failed != cs[j].Objects+cs[j].Failed {
			return cs[i].Objects+cs[i].Failed > cs[j].Objects+cs[j].Failed
		}
		return cs[i].Shark < cs[j].Shark
	})
}

// JobSources returns the copies of a job per source shark, largest first,
// as counted since the job last started in this engine (the job store does
// not record sources); nil for a job that has not run here. The counts of
// the last jobs that ended are kept.
func (e *Engine) JobSources(id string) []SharkCount {
	e.mu.Lock()
	r := e.running[id]
	e.mu.Unlock()
	if r != nil {
		return r.sources.list()
	}
	e.recentMu.Lock()
	defer e.recentMu.Unlock()
	for _, rs := range e.recentSources {
		if rs.id == id {
			return rs.counts
		}
	}
	return nil
}

// JobDestinations returns, per destination shark, a job's objects copied
// there (complete, or copied and waiting for their metadata update),
// largest first.
func (e *Engine) JobDestinations(ctx context.Context, id string) ([]SharkCount, error) {
	dests, err := e.store.Destinations(ctx, id, rebalancer.ObjectComplete, rebalancer.ObjectPostProcessing)
	if err != nil {
		return nil, err
	}
	out := make([]SharkCount, 0, len(dests))
	for d, v := range dests {
		out = append(out, SharkCount{Shark: d, Objects: v[0], Bytes: v[1]})
	}
	sortCounts(out)
	return out, nil
}

// recentSources are the source counts of a job that ended.
type recentSources struct {
	id     string
	counts []SharkCount
}

// keepSources keeps the source counts of a runner that no longer runs,
// for the last recentJobs jobs.
func (e *Engine) keepSources(r *runner) {
	e.recentMu.Lock()
	defer e.recentMu.Unlock()
	kept := e.recentSources[:0]
	for _, rs := range e.recentSources {
		if rs.id != r.job.ID {
			kept = append(kept, rs)
		}
	}
	e.recentSources = append(kept, recentSources{id: r.job.ID, counts: r.sources.list()})
	if n := len(e.recentSources) - recentJobs; n > 0 {
		e.recentSources = append(e.recentSources[:0], e.recentSources[n:]...)
	}
}
