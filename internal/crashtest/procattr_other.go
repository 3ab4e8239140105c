//go:build !linux

package crashtest

import "syscall"

// sysProcAttr is empty outside Linux: children outlive a harness that is
// itself killed.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
