//go:build !linux

package sshtest

import "syscall"

// sshdProcAttr puts sshd in its own process group. Without Linux's
// parent-death signal a killed test's sshd outlives it; the next lab's
// sweep stops it. (The test hosts need Linux network namespaces as root;
// elsewhere this only keeps the package building.)
func sshdProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
