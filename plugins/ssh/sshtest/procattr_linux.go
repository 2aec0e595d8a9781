package sshtest

import "syscall"

// sshdProcAttr puts sshd in its own process group, killed with the test
// process even when the test's cleanup never runs.
func sshdProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
