package main

import "syscall"

// jobProcAttr starts a demo job in a process group of its own, killed with
// this process.
func jobProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
