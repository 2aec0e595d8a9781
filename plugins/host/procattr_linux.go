//go:build linux

package host

import "syscall"

// procAttr puts each plugin in its own session (no controlling terminal,
// so its children cannot open /dev/tty over the screen and Ctrl-C does not
// reach it) and has the kernel SIGKILL it when the host dies, even by
// SIGKILL, which no deferred cleanup survives.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
}
