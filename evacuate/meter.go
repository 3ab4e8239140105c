package evacuate

import (
	"sync"
	"time"
)

// meter keeps a minute of (time, objects, bytes) samples of a running job's
// completed totals, for rates and ETAs.
type meter struct {
	mu      sync.Mutex
	samples []sample
}

type sample struct {
	t              time.Time
	objects, bytes int64
}

const meterWindow = time.Minute

func newMeter() *meter { return &meter{} }

func (m *meter) observe(t time.Time, objects, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Samples are kept a second apart, except the last, which always
	// holds the latest totals at their own time: overwriting it (rather
	// than keeping the older time with newer totals) keeps rates honest.
	if n := len(m.samples); n > 1 && t.Sub(m.samples[n-2].t) < time.Second {
		m.samples[n-1] = sample{t, objects, bytes}
		return
	}
	m.samples = append(m.samples, sample{t, objects, bytes})
	cut := 0
	for cut < len(m.samples)-2 && t.Sub(m.samples[cut].t) > meterWindow {
		cut++
	}
	m.samples = m.samples[cut:]
}

// rates returns objects and bytes per second over the last minute.
func (m *meter) rates() (objects, bytes float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) < 2 {
		return 0, 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	dt := last.t.Sub(first.t).Seconds()
	if dt <= 0 {
		return 0, 0
	}
	return float64(last.objects-first.objects) / dt, float64(last.bytes-first.bytes) / dt
}

// span returns the time the meter's samples cover.
func (m *meter) span() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) < 2 {
		return 0
	}
	return m.samples[len(m.samples)-1].t.Sub(m.samples[0].t)
}
