//go:build !linux

package testbed

// memDir returns "" (the system temp directory) outside Linux.
func memDir() string { return "" }
