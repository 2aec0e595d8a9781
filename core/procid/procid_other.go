//go:build !linux

package procid

import (
	"errors"
	"syscall"
)

// Without /proc the start time is unknown: a process is told apart only by
// its pid, and Check answers Unknown for a pid in use.
func bootID() string { return "" }

var errNoProc = errors.New("process start times are not available on this platform")

func startTime(pid int) (uint64, error) { return 0, errNoProc }

func zombie(int) bool { return false }

func exists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Exe is unknown without /proc.
func Exe(int) string { return "" }

// Group is the process group id of pid, or -1.
func Group(pid int) int {
	g, err := syscall.Getpgid(pid)
	if err != nil {
		return -1
	}
	return g
}

// Cwd is unknown without /proc.
func Cwd(int) string { return "" }
