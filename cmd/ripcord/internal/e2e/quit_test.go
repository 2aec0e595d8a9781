package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// keepsRunning is what a console that started the server says on quit.
const keepsRunning = "the ripcord server keeps running rollouts and traffic; `ripcord server stop` stops it"

// A console that started the server says once, when it quits, that the
// server keeps running, and the server does; a console that attached to a
// running server says nothing of the kind.
func TestConsoleThatStartedTheServerSaysItKeepsRunning(t *testing.T) {
	p := newProject(t, "")
	ana := p.console("ana") // no server runs: her console starts one
	ana.waitFor("production", 90*time.Second)
	pid := p.serverPid()
	ana.keys("q")
	waitUntil(t, 30*time.Second, "ana's console to quit", func() bool { return !ana.alive() })
	said, err := os.ReadFile(filepath.Join(p.dir, "ana.console.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(said), keepsRunning); n != 1 {
		t.Fatalf("ana's console said %d times that the server keeps running; want once:\n%s", n, said)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the server (pid %d) ended with the console that started it: %v", pid, err)
	}
	p.waitReady()

	bo := p.console("bo") // attaches to the server ana's console started
	bo.waitFor("production", 90*time.Second)
	bo.keys("q")
	waitUntil(t, 30*time.Second, "bo's console to quit", func() bool { return !bo.alive() })
	said, _ = os.ReadFile(filepath.Join(p.dir, "bo.console.log"))
	if strings.Contains(string(said), keepsRunning) {
		t.Fatalf("bo's console, which started nothing, said:\n%s", said)
	}
	if got := p.serverPid(); got != pid {
		t.Fatalf("the server changed (%d, then %d)", pid, got)
	}
}
