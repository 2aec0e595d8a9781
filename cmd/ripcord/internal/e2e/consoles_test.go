package e2e

import (
	"strings"
	"testing"
	"time"
)

// Two consoles in terminals and CLI commands, all clients of one server:
// bo's `r` rolls back the canary ana watches, and a rollback cy runs from
// the CLI while both consoles are open shows on both screens within a
// second, naming cy.
func TestTwoConsolesAndTheCLIAreClientsOfOneServer(t *testing.T) {
	p := newProject(t, "    rollout: [ {weight: 50}, {pause: judgment}, {weight: 100} ]\n")
	p.mustRun("promote", "api", "--to", "production", "--version", "v1", "--full", "--yes")
	pid := p.serverPid() // the promote started it

	ana := p.console("ana")
	bo := p.console("bo")
	for _, c := range []*terminal{ana, bo} {
		c.waitFor("production v1", 90*time.Second)
	}
	if got := p.serverPid(); got != pid {
		t.Fatalf("a console started a second server (%d, then %d)", pid, got)
	}
	p.mustRun("promote", "api", "--to", "production", "--version", "v2", "--yes")
	for _, c := range []*terminal{ana, bo} {
		c.waitFor("v1 ▸ v2 50%", 90*time.Second)
	}

	// bo rolls back from his console: history, last good preselected. He
	// presses r once his footer offers it: the header may show the canary
	// a moment before the engine's word on what it accepts arrives.
	bo.waitFor("· r rollback ·", 90*time.Second)
	bo.keys("r")
	bo.waitFor("▸ v1", 90*time.Second)
	bo.keys("Enter")
	bo.waitFor("rollback api in production: v2 → v1", 90*time.Second)
	bo.waitFor("also watching: ana", 90*time.Second)
	bo.keys("y")
	for _, c := range []*terminal{ana, bo} {
		c.waitFor("rolled back to v1", 90*time.Second)
	}
	ana.waitFor("bo via ", 90*time.Second) // his rollback in her Activity

	// A canary again, and cy rolls it back from the CLI while both
	// consoles are open.
	p.mustRun("promote", "api", "--to", "production", "--version", "v3", "--yes")
	for _, c := range []*terminal{ana, bo} {
		c.waitFor("v1 ▸ v3 50%", 90*time.Second)
	}
	code, out := p.runAs("cy", "rollback", "api", "--env", "production", "--yes", "--reason", "v3 is slow")
	if code != 0 {
		t.Fatalf("cy's rollback: exit %d\n%s", code, out)
	}
	// Both screens name cy's rollback within a second of the command's
	// answer.
	shown := time.Now().Add(time.Second)
	for _, c := range []*terminal{ana, bo} {
		scr := c.waitFor("cy via ", time.Until(shown))
		if !strings.Contains(scr, "rollback production v3→v1") {
			t.Fatalf("the screen names cy but not the rollback:\n%s", scr)
		}
	}
	var rollbacks []string
	for _, e := range p.audit() {
		if e.Action == "rollback" {
			rollbacks = append(rollbacks, e.Actor.Name+":"+e.From+"→"+e.To)
		}
	}
	if strings.Join(rollbacks, ",") != "bo:v2→v1,cy:v3→v1" {
		t.Fatalf("rollbacks in the audit = %v; want bo's from his console, then cy's from the CLI", rollbacks)
	}
	for _, c := range []*terminal{ana, bo} {
		c.keys("q")
		waitUntil(t, 30*time.Second, "the console to quit", func() bool { return !c.alive() })
	}
	if got := p.serverPid(); got != pid {
		t.Fatalf("the server changed while consoles came and went (%d, then %d)", pid, got)
	}
}
