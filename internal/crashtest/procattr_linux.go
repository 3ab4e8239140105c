package crashtest

import "syscall"

// sysProcAttr makes a child die with the harness: a harness killed or
// crashing must not leave agents and managers running. (The signal follows
// the death of the thread that started the child; the Go runtime does not
// end threads under running code, so in practice it is the process.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
