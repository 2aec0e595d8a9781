package e2e

import (
	"testing"
	"time"
)

// A lock taken from the CLI while a console is open shows on that console
// at once, and its rollback meets it naming the holder and the reason; the
// unlock shows as well.
func TestConsoleFollowsALockTakenFromTheCLI(t *testing.T) {
	p := newProject(t, "")
	p.serve()
	p.mustRun("promote", "api", "--to", "production", "--version", "v1", "--full", "--yes")
	p.mustRun("promote", "api", "--to", "production", "--version", "v2", "--full", "--yes")
	ana := p.console("ana")
	ana.waitFor("lock: free", 90*time.Second)

	if code, out := p.runAs("bo", "lock", "api", "--env", "production", "--reason", "release freeze until Monday"); code != 0 {
		t.Fatalf("bo's lock: exit %d\n%s", code, out)
	}
	ana.waitFor("lock: bo (production)", 10*time.Second)
	ana.keys("r")
	ana.waitFor("release freeze until Monday", 30*time.Second)
	ana.keys("Escape")

	if code, out := p.runAs("bo", "unlock", "api", "--env", "production"); code != 0 {
		t.Fatalf("bo's unlock: exit %d\n%s", code, out)
	}
	ana.waitFor("lock: free", 10*time.Second)
	ana.keys("q")
	waitUntil(t, 30*time.Second, "the console to quit", func() bool { return !ana.alive() })
}
