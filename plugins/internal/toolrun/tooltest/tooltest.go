// Package tooltest holds what the backup providers' tests share: finding a
// real tool or deciding whether its absence fails or skips the test.
package tooltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Require returns the path of binary. When it is missing the test fails if
// RIPCORD_REQUIRE_TOOLS=1 (CI, where the tools must be installed) and is
// skipped otherwise, naming the Debian package that provides it.
func Require(t testing.TB, binary, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(binary)
	if err == nil {
		return path
	}
	if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found in PATH and RIPCORD_REQUIRE_TOOLS=1: install the Debian package %s", binary, debianPackage)
	}
	t.Skipf("%s not found in PATH: install the Debian package %s to run this test", binary, debianPackage)
	return ""
}

// LargestFile returns the biggest file under dir: in a restic or borg
// repository, the pack or segment holding the backed-up data.
func LargestFile(t testing.TB, dir string) string {
	t.Helper()
	var best string
	var size int64 = -1
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if info, err := d.Info(); err == nil && info.Size() > size {
			best, size = path, info.Size()
		}
		return nil
	})
	if err != nil || best == "" {
		t.Fatalf("no file under %s: %v", dir, err)
	}
	return best
}
