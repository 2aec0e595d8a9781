package local

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// inheritedFiles lists this process's descriptors above stderr that were
// handed down by its parent without close-on-exec (Go opens every file
// of its own with it): a shell's redirections, a lock a script holds.
func inheritedFiles() []int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var fds []int
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			fds = append(fds, fd)
		}
	}
	return fds
}

// CloseInheritedFiles closes what inheritedFiles lists. A process that
// runs on its own for a long time (the project's server, a proxy) calls it
// first, as daemons do: otherwise it would hold whatever its starter held
// — a lock file, a pipe a script waits on — for as long as it runs.
func CloseInheritedFiles() {
	for _, fd := range inheritedFiles() {
		_ = unix.Close(fd)
	}
}

// keepInheritedFiles marks inherited descriptors close-on-exec, so the
// processes this one starts (releases, a proxy) do not carry them.
func keepInheritedFiles() {
	for _, fd := range inheritedFiles() {
		unix.CloseOnExec(fd)
	}
}
