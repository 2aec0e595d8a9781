//go:build !linux && unix

package host

import "syscall"

// procAttr: no Pdeathsig outside Linux; the SDK's parent watchdog makes a
// plugin exit when its host is gone.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}
