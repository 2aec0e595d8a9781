//go:build !unix

package host

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
