package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core/config"
)

// tmuxSessions numbers the sessions of one test process.
var tmuxSessions atomic.Int64

// tmuxSession is the real binary on a real terminal: tmux runs it, the
// test presses keys and reads the screen.
type tmuxSession struct {
	t    *testing.T
	name string
}

func newTmuxSession(t *testing.T, width, height int, command string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
			t.Fatal("tmux is required (Debian package tmux)")
		}
		t.Skip("tmux not installed (Debian package tmux)")
	}
	s := &tmuxSession{t: t, name: fmt.Sprintf("ripcord-e2e-%d-%d", os.Getpid(), tmuxSessions.Add(1))}
	cmd := exec.Command("tmux", "-L", s.name, "new-session", "-d", "-s", s.name, "-x", fmt.Sprint(width), "-y", fmt.Sprint(height), command)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", s.name, "kill-server").Run() })
	return s
}

func (s *tmuxSession) screen() string {
	out, _ := exec.Command("tmux", "-L", s.name, "capture-pane", "-p", "-t", s.name).Output()
	return string(out)
}

func (s *tmuxSession) keys(keys ...string) {
	s.t.Helper()
	if out, err := exec.Command("tmux", append([]string{"-L", s.name, "send-keys", "-t", s.name}, keys...)...).CombinedOutput(); err != nil {
		s.t.Fatalf("send-keys %v: %v\n%s", keys, err, out)
	}
}

// waitFor polls the screen until it shows text.
func (s *tmuxSession) waitFor(text string, within time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		scr := s.screen()
		if strings.Contains(scr, text) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the screen never showed %q within %v; it shows:\n%s", text, within, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitOffered waits until the footer offers key (its hint "key desc"
// shown plain, not in brackets): the engine accepts it now. A screen can
// show what calls for a key (a spike, a canary) a moment before the
// engine's word on what it accepts reaches the console.
func (s *tmuxSession) waitOffered(hint string, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		lines := strings.Split(strings.TrimRight(s.screen(), "\n "), "\n")
		foot := lines[len(lines)-1]
		if strings.Contains(foot, hint) && !strings.Contains(foot, "("+hint+")") {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the footer never offered %q within %v; it shows:\n%s", hint, within, s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *tmuxSession) alive() bool {
	return exec.Command("tmux", "-L", s.name, "has-session", "-t", s.name).Run() == nil
}

// The README's first command, played by a person at a terminal: wait for
// the promote prompt, p y, wait for SPIKE, r (history, last good
// preselected) enter y — production serves v1.4.2 again, the screen and
// the audit log say so, and q leaves nothing running.
func TestDemoInTmux(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Cleanups run last-registered first: this one runs after tmux is
	// killed (a failed test never pressed q) and before dir is removed, so
	// the demo's own cleanup can still read its release records. What it
	// leaves is stopped here, so a failure does not leave services behind.
	t.Cleanup(func() { stopProcessesIn(t, dir) })
	s := newTmuxSession(t, 160, 48, fmt.Sprintf("env RIPCORD_ACTOR=ana NO_COLOR=1 %s demo --dir %s 2>%s", self, dir, filepath.Join(dir, "stderr.log")))

	s.waitFor("ready to promote v1.5.0 to production", 90*time.Second)
	// bo opens a second console on the same config: the demo is the
	// project's server, so his console is its client and sees what the
	// demo's does.
	bo := newTmuxSession(t, 160, 48, fmt.Sprintf("env RIPCORD_TEST_CLI=1 RIPCORD_ACTOR=bo NO_COLOR=1 %s console -c %s 2>%s", self, filepath.Join(dir, "ripcord.yaml"), filepath.Join(dir, "bo.log")))
	bo.waitFor("production v1.4.2", 60*time.Second)
	s.keys("p")
	s.waitFor("promote api in production: v1.4.2 → v1.5.0", 10*time.Second)
	s.waitFor("also watching: bo", 30*time.Second)
	s.keys("y")
	s.waitFor("SPIKE", 60*time.Second)
	bo.waitFor("SPIKE production v1.5.0", 30*time.Second) // from the server
	s.waitOffered("r rollback", 30*time.Second)
	s.keys("r")
	s.waitFor("▸ v1.4.2", 10*time.Second) // the last good release, preselected
	s.keys("Enter")
	s.waitFor("rollback api in production: v1.5.0 → v1.4.2", 10*time.Second)
	s.keys("y")
	s.waitFor("rolled back to v1.4.2", 30*time.Second)
	bo.waitFor("rollback production v1.5.0→v1.4.2", 30*time.Second) // in his Activity, from the audit log
	bo.keys("q")

	f, err := config.Load(filepath.Join(dir, "ripcord.yaml"), config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	var url, webURL string
	for _, e := range f.Environments {
		if e.Name == "production" {
			url = fmt.Sprintf("http://127.0.0.1:%s/", toString(e.Placement("api").Target.Settings["port"]))
			webURL = fmt.Sprintf("http://127.0.0.1:%s/", toString(e.Placement("web").Target.Settings["port"]))
		}
	}
	for range 20 {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(body), "api v1.4.2") {
			t.Fatalf("after the rollback production answered %q", body)
		}
	}
	code, out, errs := ripcord(t, "audit", "-c", filepath.Join(dir, "ripcord.yaml"))
	if code != exitOK || !strings.Contains(out, "rollback") || !strings.Contains(out, "ana") {
		t.Fatalf("audit: exit %d\n%s%s", code, out, errs)
	}

	// The second service: 2 switches the console to web, which still runs
	// its own release in production, untouched by api's rollback.
	s.keys("2")
	s.waitFor("shop/web", 10*time.Second)
	s.waitFor("production v2.0.0", 10*time.Second)
	resp, err := http.Get(webURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "web v2.0.0") {
		t.Fatalf("web's production answered %q", body)
	}

	s.keys("q")
	deadline := time.Now().Add(30 * time.Second)
	for s.alive() {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not exit on q; screen:\n%s", s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if procs := processesIn(t, dir); len(procs) > 0 {
		t.Fatalf("processes left running after q: %v", procs)
	}
}

// stopProcessesIn waits up to 15 s for the processes working in dir to
// exit by themselves, then kills what is left.
func stopProcessesIn(t *testing.T, dir string) {
	deadline := time.Now().Add(15 * time.Second)
	for len(processesIn(t, dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range processesIn(t, dir) {
		pid, _, _ := strings.Cut(p, ":")
		if n, err := strconv.Atoi(pid); err == nil {
			_ = syscall.Kill(n, syscall.SIGKILL)
		}
	}
}
