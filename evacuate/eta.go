package evacuate

import (
	"math"
	"sync"
	"time"
)

// A job's ETA is worked out by its monitor at every look at the counters
// (progressOf), from the completion rate over the last minute:
//
//   - once discovery is done, the objects not yet final over the objects
//     completed per second: exact counts, a measured rate;
//   - while discovery runs, the job cannot know how many objects are left
//     to find. It estimates the bytes the shark holds from what storinfo
//     says of it (used = available x percent used / percent free: minnow's
//     figures, so to within 1% of the disk), never less than the bytes
//     already found, and divides what is not yet done by the bytes
//     completed per second. That ETA is marked as an estimate.
//
// Either raw figure jumps: the rate moves with object sizes, the estimate
// gives way to exact counts when discovery ends. What is shown is smoothed
// (etaFilter): it counts down by itself as time passes and moves towards
// each new raw figure by a share that grows with the time since the last
// one (a time constant of etaSmoothing, shorter for an ETA of less than a
// minute, whose jumps are small), so that a single odd reading moves it
// little and a lasting change takes over within a minute. No ETA is given
// before the rate was measured over etaWarmUp: a job's first seconds
// (setting up, the first copies) would give a rate far too low.
//
// A paused or stopping job has no ETA: nothing says when it goes on.

// etaSmoothing is the time constant of the ETA's smoothing.
const etaSmoothing = 20 * time.Second

// etaWarmUp is how long the rate is measured before an ETA is given.
const etaWarmUp = 5 * time.Second

// etaFilter smooths a job's ETA. Its zero value has no ETA.
type etaFilter struct {
	mu        sync.Mutex
	at        time.Time
	seconds   float64
	estimated bool
	ok        bool
}

// update takes a raw ETA in seconds (ok false: none can be told now) and
// returns the smoothed one.
func (f *etaFilter) update(now time.Time, raw float64, estimated, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !ok || math.IsNaN(raw) || math.IsInf(raw, 0) {
		// No rate yet, or paused: forget, so that a resumed job does not
		// start from a figure the pause made stale.
		f.ok = false
		return
	}
	raw = max(raw, 0)
	if !f.ok {
		f.at, f.seconds, f.estimated, f.ok = now, raw, estimated, true
		return
	}
	dt := now.Sub(f.at).Seconds()
	if dt <= 0 {
		return
	}
	predicted := max(f.seconds-dt, 0)
	tau := min(max(predicted/3, 1), etaSmoothing.Seconds())
	k := 1 - math.Exp(-dt/tau)
	f.at, f.seconds, f.estimated = now, predicted+k*(raw-predicted), estimated
}

// value returns the smoothed ETA.
func (f *etaFilter) value() (eta time.Duration, estimated, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ok {
		return 0, false, false
	}
	return time.Duration(math.Round(f.seconds)) * time.Second, f.estimated, true
}

// usedBytes estimates the bytes a shark holds from storinfo's figures for
// it: availableMB free, and percentUsed of the filesystem used.
func usedBytes(availableMB int64, percentUsed float64) (int64, bool) {
	if percentUsed <= 0 || percentUsed >= 100 || availableMB < 0 {
		return 0, false
	}
	return int64(float64(availableMB) * percentUsed / (100 - percentUsed) * (1 << 20)), true
}

// rawETA is a job's ETA before smoothing, from its counters and rates:
// see the comment at the top of this file. sharkBytes is the estimate of
// what the evacuated shark holds (0: none).
func rawETA(c jobCounts, discoveryDone bool, objRate, byteRate float64, sharkBytes int64) (seconds float64, estimated, ok bool) {
	if discoveryDone {
		if objRate <= 0 {
			return 0, false, false
		}
		return float64(c.remaining()) / objRate, false, true
	}
	if sharkBytes <= 0 || byteRate <= 0 {
		return 0, false, false
	}
	total := max(sharkBytes, c.bytes)
	return float64(total-c.doneBytes) / byteRate, true, true
}

// jobCounts are a job's counters summed up by status.
type jobCounts struct {
	objects, bytes          int64 // everything recorded
	doneBytes               int64 // objects in a final status
	byStatus, bytesByStatus map[string]int64
}

func sumCounts(counts []Count) jobCounts {
	c := jobCounts{byStatus: map[string]int64{}, bytesByStatus: map[string]int64{}}
	for _, n := range counts {
		c.objects += n.N
		c.bytes += n.Bytes
		c.byStatus[n.Status] += n.N
		c.bytesByStatus[n.Status] += n.Bytes
		switch n.Status {
		case "complete", "skipped", "error":
			c.doneBytes += n.Bytes
		}
	}
	return c
}

// remaining is the number of objects not in a final status.
func (c jobCounts) remaining() int64 {
	return c.byStatus["unprocessed"] + c.byStatus["assigned"] + c.byStatus["post_processing"]
}
