//go:build unix

package sdk

import (
	"os"

	"golang.org/x/sys/unix"
)

// detachStdin points fd 0 at /dev/null: go-plugin passes the host's stdin
// (the console's terminal) to every plugin, and a plugin reading it would
// steal keystrokes from the screen.
func detachStdin() {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return
	}
	if err := unix.Dup2(int(null.Fd()), 0); err == nil {
		os.Stdin = os.NewFile(0, os.DevNull)
	}
	_ = null.Close()
}
