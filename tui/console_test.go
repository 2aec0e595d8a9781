package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

func paletteNames(t *testing.T, m *Model) []string {
	var out []string
	for _, it := range topIs[*paletteDialog](t, m).shown {
		out = append(out, it.name)
	}
	return out
}

func TestPaletteOpensWithColonAndCtrlP(t *testing.T) {
	l := newLive(t).incident()
	m := l.console(200, 50)
	before := audited(t, l.eng)
	for _, k := range []string{":", "ctrl+p"} {
		if cmd := update(m, press(k)); cmd != nil {
			t.Fatalf("%s did more than open the palette", k)
		}
		topIs[*paletteDialog](t, m)
		v := view(m)
		mustContain(t, v, "Commands", "promote", "full promote", "rollback", "abort", "pause", "back up now", "logs",
			"next environment", "service api", "service web", "next theme", "mouse on/off")
		update(m, press("esc"))
		onMain(t, m)
		if strings.Contains(view(m), "Commands") {
			t.Fatal("the palette is still drawn after esc")
		}
	}
	if got := audited(t, l.eng); len(got) != len(before) {
		t.Fatalf("opening and closing the palette reached the engine: %v", got[len(before):])
	}
}

func TestPaletteTypingFilters(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	update(m, press(":"))
	all := len(paletteNames(t, m))
	typeText(m, "ROLL")
	if got := paletteNames(t, m); len(got) != 1 || got[0] != "rollback" {
		t.Fatalf("ROLL shows %v, want just rollback", got)
	}
	mustContain(t, view(m), ": ROLL")
	for range 4 {
		update(m, press("backspace"))
	}
	if n := len(paletteNames(t, m)); n != all {
		t.Fatalf("clearing the query shows %d of %d items", n, all)
	}
	// Letters in order but not together still find an item; q, j and k
	// are text here, not quit or movement.
	typeText(m, "fp")
	if got := paletteNames(t, m); len(got) != 1 || got[0] != "full promote" {
		t.Fatalf("fp shows %v, want full promote", got)
	}
}

// Choosing rollback in the palette does what r does: read the history and
// open the picker; nothing reaches the engine.
func TestPaletteRollbackOpensPicker(t *testing.T) {
	l := newLive(t).incident()
	m := l.console(120, 40)
	update(m, press(":"))
	typeText(m, "rollback")
	cmd := update(m, press("enter"))
	onMain(t, m)
	run(t, m, cmd)
	topIs[*historyDialog](t, m)
	mustContain(t, view(m), "Rollback production · history")
}

// A destructive action chosen in the palette still asks first.
func TestPaletteAbortAsksFirst(t *testing.T) {
	l := newLive(t).incident()
	m := l.console(120, 40)
	update(m, press(":"))
	typeText(m, "abort")
	if cmd := update(m, press("enter")); cmd != nil {
		t.Fatal("enter on abort sent a command")
	}
	if c := topIs[*confirmDialog](t, m); c.cmd.Kind != core.CmdAbort {
		t.Fatalf("abort from the palette opened a %s confirmation", c.cmd.Kind)
	}
	update(m, press("enter"))
	l.await("still stopped", inPhase(core.PhaseDegraded))
}

func TestPaletteDisabledActionSaysWhy(t *testing.T) {
	l := newLive(t)
	m := l.console(200, 50)
	update(m, press(":"))
	v := view(m)
	mustContain(t, v, "(abort)", "nothing to abort: no rollout in flight in production", "rollback")
	typeText(m, "abort")
	mustContain(t, view(m), "abort is disabled: nothing to abort: no rollout in flight in production")
	if cmd := update(m, press("enter")); cmd != nil {
		t.Fatal("a disabled action returned a command")
	}
	onMain(t, m)
	mustContain(t, view(m), "abort refused: nothing to abort: no rollout in flight in production")
}

func TestPaletteRunsNonActionItems(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	update(m, press(":"))
	typeText(m, "service web")
	update(m, press("enter"))
	if m.s.service != "web" {
		t.Fatalf("service web chose %q", m.s.service)
	}
	update(m, press("ctrl+p"))
	typeText(m, "help")
	update(m, press("enter"))
	topIs[*helpDialog](t, m)
}

// auditSnapshot has a rollback and a promote in its activity.
func auditSnapshot() core.Snapshot {
	s := canarySnapshot()
	s.Audit = append(s.Audit, core.AuditEntry{Seq: 2, At: t0.Add(-time.Hour), Actor: core.Actor{Name: "carol"}, Action: "rollback",
		Ref: staging, From: "v1.43.0", To: "v1.42.0", Outcome: "rolled back"})
	return s
}

func focus(m *Model, p paneID) {
	for m.focus != p {
		update(m, press("tab"))
	}
}

func TestFilterActivity(t *testing.T) {
	m, _ := fixtureConsole(t, auditSnapshot(), testOptions())
	wide(m)
	focus(m, paneActivity)
	before := view(m)
	update(m, press("/"))
	mustContain(t, view(m), "Activity /", "filter Activity:")
	typeText(m, "roll")
	update(m, press("enter"))
	act := paneText(m, paneActivity)
	mustContain(t, act, "▸ Activity /roll", "carol", "rollback staging v1.43.0→v1.42.0")
	if strings.Contains(act, "promote") {
		t.Fatalf("the filter kept a promote line:\n%s", act)
	}
	if len(m.snap.Audit) != 2 {
		t.Fatalf("filtering changed the audit log: %d entries", len(m.snap.Audit))
	}
	// Other keys work again once enter kept the filter.
	update(m, press("tab"))
	if m.focus == paneActivity {
		t.Fatal("tab was typed into the kept filter")
	}
	focus(m, paneActivity)
	update(m, press("esc"))
	if m.panes[paneActivity].filter != "" {
		t.Fatal("esc did not clear the filter")
	}
	// The panes, above the status line, are as they were.
	panes := func(v string) string { return v[:strings.LastIndex(v[:strings.LastIndex(v, "\n")], "\n")] }
	if got := view(m); panes(got) != panes(before) {
		t.Fatalf("clearing the filter did not bring the pane back as it was:\n%s", got)
	}
}

// Esc while typing drops the filter at once.
func TestFilterEscWhileTyping(t *testing.T) {
	m, _ := fixtureConsole(t, auditSnapshot(), testOptions())
	wide(m)
	focus(m, paneActivity)
	update(m, press("/"))
	typeText(m, "zzz")
	mustContain(t, view(m), "nothing matches /zzz")
	update(m, press("esc"))
	if m.dialogs.top() != nil || m.panes[paneActivity].filter != "" {
		t.Fatal("esc while typing kept the filter")
	}
	mustContain(t, view(m), "carol", "alice")
}

// Each pane filters its own lines, and a pane rebuilds when its filter
// changes even though no event touched it.
func TestFilterPipelineBackupsErrors(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	wide(m)
	_ = view(m)
	builds := m.panes[panePipeline].builds
	update(m, press("/"))
	typeText(m, "analysis")
	update(m, press("enter"))
	_ = view(m)
	if m.panes[panePipeline].builds == builds {
		t.Fatal("the pipeline pane was not rebuilt for its filter")
	}
	pipe := paneText(m, panePipeline)
	mustContain(t, pipe, "Pipeline v1.43.0 /analysis", "◐ canary", "· analysis")
	for _, gone := range []string{"canary 25%", "rollout", "build", "100%"} {
		if strings.Contains(pipe, gone) {
			t.Errorf("pipeline filter kept %q:\n%s", gone, pipe)
		}
	}
	// The selection moves among the rows the filter shows: unfiltered,
	// two downs would reach rollout.
	update(m, press("down"))
	update(m, press("down"))
	if sel := m.panes[panePipeline].sel; sel != "canary/analysis" {
		t.Fatalf("selection went to %q, outside the filtered rows", sel)
	}

	focus(m, paneBackups)
	update(m, press("/"))
	typeText(m, "UP")
	update(m, press("enter"))
	back := paneText(m, paneBackups)
	mustContain(t, back, "Backups /UP", "uploads")
	if strings.Contains(back, "media") || strings.Contains(back, "postgres") {
		t.Fatalf("backup filter kept other sets:\n%s", back)
	}

	focus(m, paneErrors)
	update(m, press("/"))
	typeText(m, "cart")
	update(m, press("enter"))
	errs := paneText(m, paneErrors)
	mustContain(t, errs, "Errors · production /cart", "new: TypeError: cart is undefined (97)")
	if strings.Contains(errs, "v1.42.0") || strings.Contains(errs, "v1.43.0") {
		t.Fatalf("errors filter kept release rows:\n%s", errs)
	}
	update(m, press("/"))
	for range 4 {
		update(m, press("backspace"))
	}
	typeText(m, "v1.42")
	update(m, press("enter"))
	errs = paneText(m, paneErrors)
	mustContain(t, errs, "v1.42.0", "12/min")
	if strings.Contains(errs, "v1.43.0") || strings.Contains(errs, "TypeError") {
		t.Fatalf("errors filter v1.42 kept the candidate:\n%s", errs)
	}
	// The pipeline keeps its own filter while others change.
	mustContain(t, paneText(m, panePipeline), "Pipeline v1.43.0 /analysis")
}

// paneText is what the view draws inside pane p's rectangle.
func paneText(m *Model, p paneID) string {
	r := m.layout().panes[p]
	lines := strings.Split(view(m), "\n")
	var out []string
	for y := r.y; y < r.y+r.h; y++ {
		row := []rune(lines[y])
		out = append(out, string(row[r.x:r.x+r.w]))
	}
	return strings.Join(out, "\n")
}

func TestLogViewerFilter(t *testing.T) {
	m, eng := fixtureConsole(t, canarySnapshot(), testOptions())
	wide(m)
	for _, l := range []string{"GET /cart 200", "error: cart is undefined", "GET /health 200", "ERROR: retry budget spent"} {
		eng.Publish(logEvent(production, production.String(), l))
	}
	update(m, flushMsg{})
	update(m, press("l"))
	update(m, press("/"))
	typeText(m, "error")
	update(m, press("enter"))
	v := view(m)
	mustContain(t, v, "Logs · api/production /error · 2 lines", "error: cart is undefined", "ERROR: retry budget spent")
	if strings.Contains(v, "GET /health") {
		t.Fatal("the log filter kept a line without the text")
	}
	if m.s.logs.len() != 4 {
		t.Fatalf("filtering changed the kept log: %d lines", m.s.logs.len())
	}
	update(m, press("esc"))
	topIs[*logDialog](t, m)
	mustContain(t, view(m), "4 lines", "GET /health 200")
	update(m, press("esc"))
	onMain(t, m)
}

func TestHelpIsSearchable(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	wide(m)
	update(m, press("?"))
	mustContain(t, view(m), "next theme", "rollback")
	typeText(m, "roll")
	v := view(m)
	mustContain(t, v, "search: roll", "rollback")
	for _, gone := range []string{"next theme", "mouse on/off", "promote"} {
		if strings.Contains(v, gone) {
			t.Errorf("searching roll still shows %q", gone)
		}
	}
	// Keys match too: ctrl finds the palette's chord.
	for range 4 {
		update(m, press("backspace"))
	}
	typeText(m, "ctrl")
	mustContain(t, view(m), "ctrl+p")
	// q is a letter while searching, not a way out.
	typeText(m, "q")
	topIs[*helpDialog](t, m)
	mustContain(t, view(m), `no key, description or reason holds "ctrlq"`)
	update(m, press("esc"))
	onMain(t, m)
	update(m, press("?"))
	if d := topIs[*helpDialog](t, m); d.query != "" {
		t.Fatal("the help remembered the last search")
	}
}

func TestBackupNowPicksSetThenConfirms(t *testing.T) {
	l := newLive(t)
	media := fresh("media", "borg", core.FreshOK, time.Hour, 24*time.Hour, "media: newest backup 1h old (expected every 24h)")
	media.Facts.Unreadable, media.Facts.CanRunNow = "", true
	l.eng.Publish(core.Event{Kind: core.EvBackup, Ref: production, Final: true, Backup: &media})
	l.await("two sets can back up now", func(s core.Situation) bool { return len(s.Command(core.CmdBackupNow).Options) == 2 })
	m := l.console(200, 50)
	if cmd := update(m, press("b")); cmd != nil {
		t.Fatal("b sent something before a set was chosen")
	}
	sets := topIs[*setsDialog](t, m)
	mustContain(t, view(m), "Back up now · production", "back up api in production now: which set?", "media", "postgres")
	if strings.Join(sets.sets, ",") != "media,postgres" {
		t.Fatalf("the set picker offers %v; uploads' provider cannot back it up", sets.sets)
	}
	update(m, press("down"))
	update(m, press("enter"))
	topIs[*confirmDialog](t, m)
	mustContain(t, view(m), "Confirm backup-now", "back up now api in production: postgres",
		"runs the backup now through its provider (audited)", "newest postgres backup: 3h ago ok", "as bob@laptop")
	cmd := update(m, press("y"))
	if cmd == nil {
		t.Fatal("y sent nothing")
	}
	update(m, cmd())
	if got := l.backedUp(); len(got) != 1 || got[0] != "postgres" {
		t.Fatalf("backed up %v, want postgres once", got)
	}
	mustContain(t, view(m), "backup-now api/production: backed up postgres")
}

// With one set that can, there is nothing to choose; enter in the
// confirmation cancels like everywhere else.
func TestBackupNowSingleSetAndCancel(t *testing.T) {
	l := newLive(t)
	m := l.console(200, 50)
	update(m, press("b"))
	if c := topIs[*confirmDialog](t, m); c.cmd.Version != "postgres" {
		t.Fatalf("b with one set should go straight to its confirmation, got %+v", c.cmd)
	}
	if cmd := update(m, press("enter")); cmd != nil {
		t.Fatal("enter confirmed a backup")
	}
	onMain(t, m)
	mustContain(t, view(m), "backup-now cancelled")
	if len(l.backedUp()) != 0 {
		t.Fatal("a cancelled backup ran")
	}
}

func TestBackupNowRefusals(t *testing.T) {
	l := newLive(t)
	m := l.console(200, 50)
	m.s.opts.ReadOnly, m.s.opts.ReadOnlyReason = true, "guest session over SSH"
	if cmd := update(m, press("b")); cmd != nil {
		t.Fatal("b acted in read-only mode")
	}
	onMain(t, m)
	mustContain(t, view(m), "backup-now refused: guest session over SSH")
	update(m, press("?"))
	mustContain(t, view(m), "disabled: guest session over SSH")

	// web has no backup sets anywhere.
	m2 := l.console(200, 50)
	update(m2, press("2"))
	update(m2, press("b"))
	mustContain(t, view(m2), "backup-now refused: nothing to back up: no backup sets reported in production")
}

// titleAt finds where a pane's title is drawn: the row, and the column in
// cells, of its first occurrence in the view.
func titleAt(t *testing.T, v, title string) (x, y int) {
	t.Helper()
	for i, l := range strings.Split(v, "\n") {
		if j := strings.Index(l, title); j >= 0 {
			return len([]rune(l[:j])), i
		}
	}
	t.Fatalf("no %q on screen:\n%s", title, v)
	return 0, 0
}

func click(x, y int) tea.MouseClickMsg {
	return tea.MouseClickMsg{X: x, Y: y, Button: tea.MouseLeft}
}

// A click inside a pane, found where the view draws it, focuses that pane
// at every layout.
func TestClickFocusesPane(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {160, 48}, {200, 60}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
			update(m, tea.WindowSizeMsg{Width: size[0], Height: size[1]})
			update(m, press("m"))
			x, y := titleAt(t, view(m), "Backups")
			update(m, click(x+2, y+1))
			if m.focus != paneBackups {
				t.Fatalf("click at %d,%d focused pane %d, not Backups", x+2, y+1, m.focus)
			}
			mustContain(t, view(m), "▸ Backups")
			x, y = titleAt(t, view(m), "Activity")
			update(m, click(x, y+1))
			if m.focus != paneActivity {
				t.Fatalf("click at %d,%d focused pane %d, not Activity", x, y+1, m.focus)
			}
			// The header is no pane.
			update(m, click(3, 0))
			if m.focus != paneActivity {
				t.Fatal("a click on the header moved the focus")
			}
		})
	}
}

func TestClicksIgnoredWithMouseOff(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	x, y := titleAt(t, view(m), "Backups")
	update(m, click(x+2, y+1))
	if m.focus != panePipeline {
		t.Fatal("a click with the mouse off moved the focus")
	}
}

func TestWheelScrollsLogViewer(t *testing.T) {
	m, eng := fixtureConsole(t, canarySnapshot(), testOptions())
	for i := range 200 {
		eng.Publish(logEvent(production, production.String(), fmt.Sprint("line ", i)))
	}
	update(m, flushMsg{})
	update(m, press("m"))
	update(m, press("l"))
	mustContain(t, view(m), "line 199")
	update(m, tea.MouseWheelMsg{X: 10, Y: 10, Button: tea.MouseWheelUp})
	v := view(m)
	mustContain(t, v, "scrolled")
	if strings.Contains(v, "line 199") {
		t.Fatal("the wheel did not scroll away from the newest line")
	}
}

// Every pane's title is drawn at the top left of the rectangle the layout
// gives it, at each size: clicks and drawing agree.
func TestLayoutMatchesView(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {100, 30}, {120, 40}, {160, 48}, {200, 60}, {240, 70}} {
		m, _ := fixtureConsole(t, fullSnapshot(), testOptions())
		update(m, tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		lines := strings.Split(view(m), "\n")
		l := m.layout()
		for p, r := range l.panes {
			row := []rune(lines[r.y])
			if string(row[r.x:r.x+2]) != "┌─" || row[r.x+r.w-1] != '┐' {
				t.Errorf("%dx%d: pane %s is not drawn at %+v: %q", size[0], size[1], m.panes[p].name(), r, lines[r.y])
			}
			if !strings.Contains(string(row[r.x:r.x+r.w]), m.panes[p].name()) {
				t.Errorf("%dx%d: %s title not inside %+v", size[0], size[1], m.panes[p].name(), r)
			}
		}
	}
}

// Each palette item replays the very key help shows for it, so running
// it from the palette and pressing the key cannot differ.
func TestPaletteItemsReplayTheirKeys(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	for _, it := range paletteItems(&m.s) {
		if got := it.press.String(); got != it.key {
			t.Errorf("palette item %q presses %q, help says %q", it.name, got, it.key)
		}
	}
}
