package storinfo

import "math"

// AvailableMB is the legacy calculate_available_mb: how many MiB may still
// be written to a shark that reports availableMB free at percentUsed
// percent, without taking it past maxFillPercentage percent, once assignedMB
// MiB already promised to it are accounted for.
//
// The shark's size is inferred as availableMB/(1-percentUsed/100), so the
// result is only as precise as minnow's rounded percentUsed. A shark at or
// past the limit has no room (0). maxFillPercentage must be in 1..100; the
// legacy asserts it, and so does NewPlacement, so callers outside this
// package get 0 for anything else rather than a panic.
//
// The floating-point steps are those of the legacy, so that both rebalancers
// agree to the MiB on the same input.
func AvailableMB(availableMB int64, percentUsed float64, maxFillPercentage int, assignedMB int64) int64 {
	if maxFillPercentage < 1 || maxFillPercentage > 100 || availableMB < 0 {
		return 0
	}
	p := percentUsed / 100
	m := float64(maxFillPercentage) / 100
	if p >= m {
		return 0
	}
	total := float64(availableMB) / (1 - p)
	maxFill := math.Floor(total * m)
	used := math.Floor(total - float64(availableMB))
	if used > maxFill {
		return 0
	}
	remaining := int64(maxFill - used)
	if assignedMB < 0 {
		assignedMB = 0
	}
	if assignedMB > remaining {
		return 0
	}
	return remaining - assignedMB
}
