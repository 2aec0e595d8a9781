//go:build linux || darwin

package host

import (
	"os"
	"syscall"
)

// sysFacts are the inode and change time of a file: a rename puts another
// inode there, any write moves the change time (which no one can set).
func sysFacts(fi os.FileInfo) (dev, ino uint64, ctime int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0
	}
	return uint64(st.Dev), uint64(st.Ino), ctimeOf(st)
}
