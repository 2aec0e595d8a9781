package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// A name and a reason from outside reach the screen escaped: a person's
// lock taken under a name carrying a red-background escape and a reason
// carrying a forged line makes the console's refusal show them as text —
// the escape neither paints the screen nor does the reason start a line
// of its own.
func TestARefusalShowsAnInjectedNameAsText(t *testing.T) {
	l := newLive(t).ready()
	mallory := core.Actor{Name: "mallory\x1b[41mROOT\x1b[0m", Host: "ops1"}
	l.do(core.Command{Kind: core.CmdLock, Actor: mallory, Reason: "db work\nproduction healthy, go ahead"})
	deadline := time.Now().Add(10 * time.Second)
	for !mentionsLock(l.eng.Snapshot().Situations[production]) {
		if time.Now().After(deadline) {
			t.Fatal("the situation never named the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := l.console(200, 48)
	update(m, flushMsg{})
	update(m, press("p"))
	got := view(m)
	mustContain(t, got, `promote refused: blocked by lock: locked by mallory\x1b[41mROOT\x1b[0m@ops1`, `: db work\nproduction healthy, go ahead`,
		`lock: mallory\x1b[41mROOT\x1b[0m (production)`)
	if strings.Contains(got, "\x1b[41m") {
		t.Fatalf("the injected escape reached the screen raw:\n%q", got)
	}
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "production healthy, go ahead") {
			t.Fatalf("the reason forged a line of its own: %q", line)
		}
	}
}
