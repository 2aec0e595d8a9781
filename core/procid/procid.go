// Package procid identifies a process beyond its pid. The kernel reuses
// pids, so a pid alone may name an unrelated process once the first one has
// ended: a lock whose holder died, or a pidfile left by a release, must not
// be mistaken for a live owner (nor such a process signalled). An ID adds
// the host, the boot and the process's start time to the pid.
package procid

import (
	"os"
	"sync"
)

// ID names one process on one host during one boot.
type ID struct {
	Host string `json:"host,omitempty"`
	// Boot is the kernel's boot id; pids and start times restart at boot.
	Boot string `json:"boot,omitempty"`
	PID  int    `json:"pid,omitempty"`
	// Start is when the process started, in clock ticks since boot
	// (field 22 of /proc/PID/stat); 0 where the platform does not say.
	Start uint64 `json:"start,omitempty"`
}

// IsZero reports whether the ID names no process.
func (id ID) IsZero() bool { return id.PID == 0 }

var (
	selfOnce sync.Once
	self     ID
)

// Self is this process's ID.
func Self() ID {
	selfOnce.Do(func() {
		self, _ = Of(os.Getpid())
		self.PID = os.Getpid()
	})
	return self
}

// Of reads the ID of a running process on this host.
func Of(pid int) (ID, error) {
	host, _ := os.Hostname()
	id := ID{Host: host, Boot: bootID(), PID: pid}
	start, err := startTime(pid)
	if err != nil {
		return id, err
	}
	id.Start = start
	return id, nil
}

// Liveness is what can be known about a process from here.
type Liveness int

const (
	// Unknown: the process runs on another host (or another boot of
	// this one cannot be told apart); only its heartbeat can say.
	Unknown Liveness = iota
	// Running: this exact process still runs here.
	Running
	// Gone: the process has ended (its pid is free or names another
	// process that started later).
	Gone
)

func (l Liveness) String() string {
	switch l {
	case Running:
		return "running"
	case Gone:
		return "gone"
	}
	return "unknown"
}

// Check says whether the process named by id still runs.
func (id ID) Check() Liveness {
	if id.IsZero() {
		return Unknown
	}
	host, _ := os.Hostname()
	if id.Host != host {
		return Unknown
	}
	if b := bootID(); id.Boot != "" && b != "" && id.Boot != b {
		return Gone // the machine restarted since
	}
	start, err := startTime(id.PID)
	if err != nil {
		if exists(id.PID) {
			return Unknown
		}
		return Gone
	}
	if id.Start != 0 && start != id.Start {
		return Gone // the pid now names a process that started later
	}
	if zombie(id.PID) {
		return Gone
	}
	return Running
}
