package evacuate

import (
	"math"
	"testing"
	"time"
)

func TestMeterRates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type obs struct {
		at             time.Duration
		objects, bytes int64
	}
	tests := []struct {
		name           string
		obs            []obs
		wantObj, wantB float64
		wantSpan       time.Duration // what the rate was measured over (the ETA's warm-up)
	}{
		{"one sample has no rate", []obs{{0, 10, 100}}, 0, 0, 0},
		{"two samples under a second apart", []obs{{0, 0, 0}, {500 * time.Millisecond, 50, 500}}, 100, 1000, 500 * time.Millisecond},
		{"updates within a second keep their own time", []obs{{0, 0, 0}, {200 * time.Millisecond, 10, 0}, {400 * time.Millisecond, 20, 0}}, 50, 0, 400 * time.Millisecond},
		{"steady rate over several seconds", []obs{{0, 0, 0}, {time.Second, 100, 0}, {1500 * time.Millisecond, 150, 0}, {2 * time.Second, 200, 0}}, 100, 0, 2 * time.Second},
		{"samples older than the window are dropped",
			[]obs{{0, 0, 0}, {30 * time.Second, 3000, 0}, {61 * time.Second, 3010, 0}, {91 * time.Second, 3020, 0}}, 10.0 / 30, 0, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMeter()
			for _, o := range tt.obs {
				m.observe(t0.Add(o.at), o.objects, o.bytes)
			}
			gotObj, gotB := m.rates()
			if math.Abs(gotObj-tt.wantObj) > 1e-9 || math.Abs(gotB-tt.wantB) > 1e-9 {
				t.Errorf("rates() = %v, %v; want %v, %v", gotObj, gotB, tt.wantObj, tt.wantB)
			}
			if got := m.span(); got != tt.wantSpan {
				t.Errorf("span() = %v, want %v", got, tt.wantSpan)
			}
		})
	}
}
