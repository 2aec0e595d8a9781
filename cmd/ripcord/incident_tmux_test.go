package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core/config"
)

// startDemo runs the demo in tmux at w×h as ana, with extra flags, and
// returns the session and the demo's workspace.
func startDemo(t *testing.T, w, h int, flags string) (*tmuxSession, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Cleanup(func() { stopProcessesIn(t, dir) })
	s := newTmuxSession(t, w, h, fmt.Sprintf("env RIPCORD_ACTOR=ana NO_COLOR=1 %s demo --dir %s %s 2>%s", self, dir, flags, filepath.Join(dir, "stderr.log")))
	return s, dir
}

// productionServes asks the demo's production twenty times and fails
// unless every answer comes from version.
func productionServes(t *testing.T, dir, version string) {
	t.Helper()
	f, err := config.Load(filepath.Join(dir, "ripcord.yaml"), config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	var url string
	for _, e := range f.Environments {
		if e.Name == "production" {
			url = fmt.Sprintf("http://127.0.0.1:%s/", toString(e.Placement("api").Target.Settings["port"]))
		}
	}
	for range 20 {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(body), "api "+version) {
			t.Fatalf("production answered %q, want every answer from %s", body, version)
		}
	}
}

// row is line y of the screen.
func (s *tmuxSession) row(y int) string {
	lines := strings.Split(s.screen(), "\n")
	if y < len(lines) {
		return lines[y]
	}
	return ""
}

// waitRow waits until line y of the screen satisfies ok.
func (s *tmuxSession) waitRow(y int, what string, ok func(string) bool, within time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if r := s.row(y); ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("line %d never showed %s within %v; the screen:\n%s", y+1, what, within, s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The incident at 80×24, as a release manager meets it: the canary's
// analysis calls a spike and the rollout stops with v1.5.0 still taking
// 25%. a is offered and works — every request is served by v1.4.2 again —
// and the screen says it was aborted, by whom. r then rolls v1.5.0 back
// for good, and the screen settles: the strip says what happened, by whom
// and what is held, instead of still leading with the spike.
func TestIncidentAbortThenCalmInTmux(t *testing.T) {
	s, dir := startDemo(t, 80, 24, "")
	s.waitFor("ready: v1.5.0 → production", 90*time.Second)
	s.keys("p")
	s.waitFor("promote api in production: v1.4.2 → v1.5.0", 10*time.Second)
	s.keys("y")
	s.waitFor("STOPPED at 25%", 90*time.Second)
	s.waitRow(1, "the stopped canary in the strip", func(r string) bool { return strings.Contains(r, "production stopped 25%") }, 10*time.Second)
	// The promote that started the canary may still hold the lock for a
	// moment: a is offered once the engine says it may run.
	s.waitRow(23, "a, ? and q offered", func(r string) bool {
		return strings.Contains(r, " a abort") && !strings.Contains(r, "(a abort)") && strings.Contains(r, "? help") && strings.Contains(r, "q quit")
	}, 10*time.Second)

	s.keys("a")
	s.waitFor("abort api in production: v1.5.0 → v1.4.2", 10*time.Second)
	s.waitFor("traffic goes back to v1.4.2; v1.5.0 is kept for inspection", 5*time.Second)
	s.keys("y")
	s.waitFor("aborted: v1.4.2 serves all traffic", 30*time.Second)
	productionServes(t, dir, "v1.4.2")
	s.waitRow(1, "the abort in the strip", func(r string) bool { return strings.Contains(r, "production aborted") }, 10*time.Second)

	s.waitOffered("r rollback", 10*time.Second) // once the abort has let go of the lock
	s.keys("r")
	s.waitFor("▸ v1.4.2", 10*time.Second)
	s.keys("Enter")
	s.waitFor("rollback api in production: v1.5.0 → v1.4.2", 10*time.Second)
	s.keys("y")
	strip := s.waitRow(1, "the calm strip", func(r string) bool {
		return strings.Contains(r, "✓ production rolled back") && strings.Contains(r, "v1.5.0 held")
	}, 30*time.Second)
	if strings.Contains(strip, "SPIKE") || strings.Contains(strip, "stopped") {
		t.Fatalf("after the rollback the strip still reads as an emergency: %q", strip)
	}
	// The verdict belongs to a release no longer serving, and says so.
	s.waitFor("v1.5.0 no longer serves: rolled back to v1.4.2 by ana", 10*time.Second)
	productionServes(t, dir, "v1.4.2")
	code, out, errs := ripcord(t, "audit", "-c", filepath.Join(dir, "ripcord.yaml"))
	if code != exitOK || !strings.Contains(out, "abort") || !strings.Contains(out, "rollback") {
		t.Fatalf("audit: exit %d\n%s%s", code, out, errs)
	}
	quitDemo(t, s, dir)
}

// A pause shows on the rollout line at once, with who paused it; promote
// waits for a resume (dimmed, with the engine's reason), and the resume
// lets the canary go on. One request a second keeps the spike away long
// enough for a person to pause first.
func TestPauseVisibleInTmux(t *testing.T) {
	s, dir := startDemo(t, 120, 40, "--rate 1")
	s.waitFor("ready to promote v1.5.0 to production", 90*time.Second)
	s.keys("p")
	s.waitFor("promote api in production: v1.4.2 → v1.5.0", 10*time.Second)
	s.keys("y")
	s.waitFor("in flight at 25%", 30*time.Second)
	s.keys("Space")
	s.waitFor("pause api in production: the rollout of v1.5.0 at 25%", 10*time.Second)
	s.keys("y")
	s.waitFor("PAUSED at 25% by ana", 10*time.Second)
	s.waitFor("space resume", 5*time.Second)
	if foot := s.row(39); !strings.Contains(foot, "(p promote)") {
		t.Fatalf("promote is offered while the rollout is paused: %q", foot)
	}
	s.keys("p")
	s.waitFor("promote refused: the rollout of v1.5.0 is paused by ana: resume it first", 10*time.Second)
	s.keys("Space")
	s.waitFor("resume api in production", 10*time.Second)
	s.keys("y")
	s.waitFor("in flight at 25%", 10*time.Second)
	quitDemo(t, s, dir)
}

// quitDemo presses q and waits for the demo to leave nothing running.
func quitDemo(t *testing.T, s *tmuxSession, dir string) {
	t.Helper()
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
