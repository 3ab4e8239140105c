//go:build race

package main

// raceEnabled makes the test build the agent binary with -race too, which
// reuses the packages already compiled for the test.
const raceEnabled = true
