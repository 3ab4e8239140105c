package evacuate

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// The ETA counts down by itself, follows a lasting change within a
// minute, hardly moves for one odd reading, and is forgotten on a pause.
func TestETAFilter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var f etaFilter
	if _, _, ok := f.value(); ok {
		t.Fatal("an ETA before any reading")
	}
	f.update(t0, 300, true, true)
	if eta, est, ok := f.value(); !ok || eta != 300*time.Second || !est {
		t.Fatalf("first reading: %v %v %v", eta, est, ok)
	}
	// A reading that agrees with the countdown changes nothing.
	f.update(t0.Add(10*time.Second), 290, true, true)
	if eta, _, _ := f.value(); eta != 290*time.Second {
		t.Fatalf("agreeing reading: %v", eta)
	}
	// Discovery ends and the exact figure says 60 s left rather than 280:
	// a second later the ETA has moved a little towards it, not jumped.
	f.update(t0.Add(11*time.Second), 60, false, true)
	eta, est, _ := f.value()
	if est || eta < 260*time.Second || eta > 285*time.Second {
		t.Fatalf("a second after the exact figure: %v (estimated %v), want between 260s and 285s", eta, est)
	}
	// A minute of readings that agree with each other: the ETA is theirs.
	now := t0.Add(11 * time.Second)
	for i := 1; i <= 60; i++ {
		now = now.Add(time.Second)
		f.update(now, math.Max(60-float64(i)*0.5, 0), false, true)
	}
	if eta, _, _ := f.value(); eta < 25*time.Second || eta > 40*time.Second {
		t.Fatalf("after a minute of readings near 30s: %v", eta)
	}
	f.update(now.Add(time.Second), 0, false, false)
	if _, _, ok := f.value(); ok {
		t.Fatal("an ETA after a reading without one (paused)")
	}
	f.update(now.Add(2*time.Second), 42, false, true)
	if eta, _, _ := f.value(); eta != 42*time.Second {
		t.Fatalf("after a pause the first reading is taken as it is: %v", eta)
	}
}

func TestRawETA(t *testing.T) {
	counts := sumCounts([]Count{
		{Status: "unprocessed", N: 50, Bytes: 5000}, {Status: "assigned", N: 30, Bytes: 3000},
		{Status: "complete", N: 15, Bytes: 1500}, {Status: "skipped", N: 5, Bytes: 500},
	})
	for _, tt := range []struct {
		name                string
		discovered          bool
		objRate, byteRate   float64
		sharkBytes          int64
		want                float64
		estimated, ok, none bool
	}{
		{name: "exact", discovered: true, objRate: 10, byteRate: 1000, want: 8, ok: true},
		{name: "exact without a rate", discovered: true, none: true},
		{name: "estimate from the shark's use", sharkBytes: 100_000, byteRate: 1000, want: 98, estimated: true, ok: true},
		// The shark holds less than what was found already (storinfo's
		// figures are stale or coarse): what was found is the floor.
		{name: "estimate below what was found", sharkBytes: 10, byteRate: 1000, want: 8, estimated: true, ok: true},
		{name: "no estimate", byteRate: 1000, none: true},
		{name: "no rate yet", sharkBytes: 100_000, none: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, est, ok := rawETA(counts, tt.discovered, tt.objRate, tt.byteRate, tt.sharkBytes)
			if tt.none {
				if ok {
					t.Fatalf("an ETA of %v", got)
				}
				return
			}
			if !ok || math.Abs(got-tt.want) > 1e-9 || est != tt.estimated {
				t.Fatalf("got %v (estimated %v, ok %v), want %v (estimated %v)", got, est, ok, tt.want, tt.estimated)
			}
		})
	}
}

func TestUsedBytes(t *testing.T) {
	for _, tt := range []struct {
		avail int64
		pct   float64
		want  int64
		ok    bool
	}{
		{900, 10, 100 << 20, true},
		{500_000, 50, 500_000 << 20, true},
		{1000, 0, 0, false},
		{0, 100, 0, false},
	} {
		got, ok := usedBytes(tt.avail, tt.pct)
		if got != tt.want || ok != tt.ok {
			t.Errorf("usedBytes(%d, %v) = %d, %v; want %d, %v", tt.avail, tt.pct, got, ok, tt.want, tt.ok)
		}
	}
}

// Ended jobs keep their series while they are among the last recentJobs;
// a job interrupted keeps none.
func TestJobSeriesBounded(t *testing.T) {
	m := NewMetrics(MetricLabels{})
	for i := range 15 {
		id := fmt.Sprintf("j%d", i)
		m.setJob(&jobSnapshot{id: id})
		m.endJob(id, &jobSnapshot{id: id, state: "Complete"})
	}
	m.setJob(&jobSnapshot{id: "running"})
	m.setJob(&jobSnapshot{id: "interrupted"})
	m.endJob("interrupted", nil)
	got := map[string]bool{}
	for _, s := range m.snapshots() {
		got[s.id] = true
	}
	if len(got) != recentJobs+1 || !got["running"] || got["interrupted"] || got["j4"] || !got["j5"] || !got["j14"] {
		t.Fatalf("jobs with series: %v", got)
	}
}
