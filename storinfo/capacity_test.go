package storinfo_test

import (
	"fmt"
	"testing"

	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// The vectors of the legacy calculate_available_mb tests (docs/golden.md).
func TestAvailableMBLegacyVectors(t *testing.T) {
	tests := []struct {
		avail    int64
		pct      float64
		assigned int64
		maxFill  int
		want     int64
	}{
		{900, 10, 300, 80, 400},
		{900, 10, 0, 80, 700},
		{900, 10, 0, 100, 900},
		{900, 10, 100, 80, 600},
		{900, 10, 800, 80, 0},
		{100, 90, 0, 80, 0},
		{5000, 50, 0, 80, 3000},
		{10000, 0, 0, 80, 8000},
		{4000, 20, 1000, 90, 2500},
		{20, 80, 11, 90, 0},
		{20, 80, 9, 90, 1},
		{0, 100, 9, 100, 0},
		{100, 100, 9, 100, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("A=%d,P=%v,S=%d,M=%d", tt.avail, tt.pct, tt.assigned, tt.maxFill), func(t *testing.T) {
			if got := storinfo.AvailableMB(tt.avail, tt.pct, tt.maxFill, tt.assigned); got != tt.want {
				t.Errorf("AvailableMB = %d, want %d", got, tt.want)
			}
		})
	}
}

// Inputs the legacy asserts on or cannot represent give no room instead of
// a panic.
func TestAvailableMBOutOfRange(t *testing.T) {
	tests := []struct {
		name    string
		avail   int64
		pct     float64
		maxFill int
		want    int64
	}{
		{"max fill above 100", 900, 10, 101, 0},
		{"max fill zero", 900, 10, 0, 0},
		{"negative available", -1, 10, 80, 0},
		{"fractional percent", 900, 10.5, 100, 900},
		{"percent above 100", 900, 120, 100, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := storinfo.AvailableMB(tt.avail, tt.pct, tt.maxFill, 0); got != tt.want {
				t.Errorf("AvailableMB = %d, want %d", got, tt.want)
			}
		})
	}
}
