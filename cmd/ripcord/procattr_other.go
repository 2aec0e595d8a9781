//go:build !linux

package main

import "syscall"

// jobProcAttr starts a demo job in a process group of its own. Without
// Pdeathsig (Linux only) a job outlives a demo killed with SIGKILL; the
// demo's cleanup ends the group on every other exit.
func jobProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
