package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

func paletteNames(m *Model) []string {
	var out []string
	for _, it := range m.palette.shown {
		out = append(out, it.name)
	}
	return out
}

func TestPaletteOpensWithColonAndCtrlP(t *testing.T) {
	m, _, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdPromote, core.CmdRollback, core.CmdAbort)
	wide(m)
	for _, k := range []string{":", "ctrl+p"} {
		if cmd := update(m, press(k)); cmd != nil {
			t.Fatalf("%s did more than open the palette", k)
		}
		if m.mode != modePalette {
			t.Fatalf("%s did not open the palette", k)
		}
		v := view(m)
		mustContain(t, v, "Commands", "promote", "full promote", "rollback", "abort", "pause", "back up now", "logs",
			"next environment", "service api", "service web", "next theme", "mouse on/off")
		update(m, press("esc"))
		if m.mode != modeMain || m.palette != nil {
			t.Fatalf("esc left the palette open after %s", k)
		}
		if strings.Contains(view(m), "Commands") {
			t.Fatal("the palette is still drawn after esc")
		}
	}
	if len(rec.got) != 0 {
		t.Fatal("opening and closing the palette reached the engine")
	}
}

func TestPaletteTypingFilters(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	update(m, press(":"))
	all := len(m.palette.shown)
	typeText(m, "ROLL")
	if got := paletteNames(m); len(got) != 1 || got[0] != "rollback" {
		t.Fatalf("ROLL shows %v, want just rollback", got)
	}
	mustContain(t, view(m), ": ROLL")
	for range 4 {
		update(m, press("backspace"))
	}
	if len(m.palette.shown) != all {
		t.Fatalf("clearing the query shows %d of %d items", len(m.palette.shown), all)
	}
	// Letters in order but not together still find an item; q, j and k
	// are text here, not quit or movement.
	typeText(m, "fp")
	if got := paletteNames(m); len(got) != 1 || got[0] != "full promote" {
		t.Fatalf("fp shows %v, want full promote", got)
	}
	if m.mode != modePalette {
		t.Fatal("typing closed the palette")
	}
}

// Choosing rollback in the palette does what r does: read the history and
// open the picker; nothing reaches the engine.
func TestPaletteRollbackOpensPicker(t *testing.T) {
	m, _, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdRollback)
	update(m, press(":"))
	typeText(m, "rollback")
	cmd := update(m, press("enter"))
	if m.palette != nil {
		t.Fatal("the palette stayed open after enter")
	}
	run(t, m, cmd)
	if m.mode != modePicker {
		t.Fatalf("rollback from the palette did not open the history picker; mode %d, status %q", m.mode, m.status)
	}
	mustContain(t, view(m), "Rollback production · history")
	if len(rec.got) != 0 {
		t.Fatal("the palette rolled back without the picker and confirmation")
	}
}

// A destructive action chosen in the palette still asks first.
func TestPaletteAbortAsksFirst(t *testing.T) {
	m, _, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdAbort)
	update(m, press(":"))
	typeText(m, "abort")
	if cmd := update(m, press("enter")); cmd != nil {
		t.Fatal("enter on abort sent a command")
	}
	if m.mode != modeConfirm || m.confirm.cmd.Kind != core.CmdAbort {
		t.Fatalf("abort from the palette did not open its confirmation: mode %d", m.mode)
	}
	update(m, press("enter"))
	if len(rec.got) != 0 {
		t.Fatal("enter in the confirmation aborted")
	}
}

func TestPaletteDisabledActionSaysWhy(t *testing.T) {
	m, _, rec := newConsole(t, idleSnapshot(), testOptions(), core.CmdAbort)
	wide(m)
	update(m, press(":"))
	v := view(m)
	mustContain(t, v, "(abort)", "nothing to abort: no rollout in flight in production", "rollback")
	typeText(m, "abort")
	mustContain(t, view(m), "abort is disabled: nothing to abort: no rollout in flight in production")
	if cmd := update(m, press("enter")); cmd != nil {
		t.Fatal("a disabled action returned a command")
	}
	if m.mode != modeMain {
		t.Fatalf("a disabled action opened mode %d", m.mode)
	}
	mustContain(t, view(m), "abort refused: nothing to abort: no rollout in flight in production")
	if len(rec.got) != 0 {
		t.Fatal("a disabled action reached the engine")
	}
}

func TestPaletteRunsNonActionItems(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	update(m, press(":"))
	typeText(m, "service web")
	update(m, press("enter"))
	if m.service != "web" {
		t.Fatalf("service web chose %q", m.service)
	}
	update(m, press("ctrl+p"))
	typeText(m, "help")
	update(m, press("enter"))
	if m.mode != modeHelp {
		t.Fatal("help from the palette did not open the help")
	}
}

// auditSnapshot has a rollback and a promote in its activity.
func auditSnapshot() core.Snapshot {
	s := canarySnapshot()
	s.Audit = append(s.Audit, core.AuditEntry{Seq: 2, At: t0.Add(-time.Hour), Actor: core.Actor{Name: "carol"}, Action: "rollback",
		Ref: staging, From: "v1.43.0", To: "v1.42.0", Outcome: "rolled back"})
	return s
}

func focus(m *Model, p pane) {
	for m.focus != p {
		update(m, press("tab"))
	}
}

func TestFilterActivity(t *testing.T) {
	m, _, _ := newConsole(t, auditSnapshot(), testOptions())
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
	if m.filter[paneActivity] != "" {
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
	m, _, _ := newConsole(t, auditSnapshot(), testOptions())
	wide(m)
	focus(m, paneActivity)
	update(m, press("/"))
	typeText(m, "zzz")
	mustContain(t, view(m), "nothing matches /zzz")
	update(m, press("esc"))
	if m.filtering || m.filter[paneActivity] != "" {
		t.Fatal("esc while typing kept the filter")
	}
	mustContain(t, view(m), "carol", "alice")
}

// Each pane filters its own lines, and a pane rebuilds when its filter
// changes even though no event touched it.
func TestFilterPipelineBackupsErrors(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	wide(m)
	_ = view(m)
	builds := m.caches[panePipeline].builds
	update(m, press("/"))
	typeText(m, "analysis")
	update(m, press("enter"))
	_ = view(m)
	if m.caches[panePipeline].builds == builds {
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
	if m.stepSel != "canary/analysis" {
		t.Fatalf("selection went to %q, outside the filtered rows", m.stepSel)
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
func paneText(m *Model, p pane) string {
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
	m, eng, _ := newConsole(t, canarySnapshot(), testOptions())
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
	if m.logs.len() != 4 {
		t.Fatalf("filtering changed the kept log: %d lines", m.logs.len())
	}
	update(m, press("esc"))
	if m.mode != modeLogs {
		t.Fatal("esc with a filter closed the log instead of clearing the filter")
	}
	mustContain(t, view(m), "4 lines", "GET /health 200")
	update(m, press("esc"))
	if m.mode != modeMain {
		t.Fatal("esc without a filter did not close the log")
	}
}

func TestHelpIsSearchable(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
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
	if m.mode != modeHelp {
		t.Fatal("q closed the help while searching")
	}
	mustContain(t, view(m), `no key or description holds "ctrlq"`)
	update(m, press("esc"))
	if m.mode != modeMain || m.helpQuery != "" {
		t.Fatal("esc did not close the help and forget the search")
	}
}

func TestBackupNowPicksSetThenConfirms(t *testing.T) {
	m, _, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdBackupNow)
	wide(m)
	if cmd := update(m, press("b")); cmd != nil {
		t.Fatal("b sent something before a set was chosen")
	}
	if m.mode != modeSetPicker {
		t.Fatalf("b with three sets opened mode %d, not the set picker", m.mode)
	}
	mustContain(t, view(m), "Back up now · production", "back up api in production now: which set?", "media", "postgres", "uploads")
	update(m, press("down"))
	update(m, press("enter"))
	if m.mode != modeConfirm {
		t.Fatal("choosing a set did not open the confirmation")
	}
	mustContain(t, view(m), "Confirm backup-now", "back up now api in production: postgres",
		"runs the postgres backup (pgbackrest) now", "newest postgres backup: 3h ago ok", "as bob@laptop")
	cmd := update(m, press("y"))
	if cmd == nil {
		t.Fatal("y sent nothing")
	}
	update(m, cmd())
	got := received(t, rec)
	want := core.Command{Kind: core.CmdBackupNow, Ref: production, Version: "postgres", Actor: core.Actor{Name: "bob", Host: "laptop"}}
	if got.Kind != want.Kind || got.Ref != want.Ref || got.Version != want.Version || got.Actor != want.Actor {
		t.Fatalf("engine got %+v, want %+v", got, want)
	}
	if len(rec.got) != 0 {
		t.Fatal("backup now sent more than one command")
	}
	mustContain(t, view(m), "backup-now api/production: moved to step 2")
}

// With one set there is nothing to choose; enter in the confirmation
// cancels like everywhere else.
func TestBackupNowSingleSetAndCancel(t *testing.T) {
	m, _, rec := newConsole(t, idleSnapshot(), testOptions(), core.CmdBackupNow)
	wide(m)
	update(m, press("b"))
	if m.mode != modeConfirm || m.confirm.cmd.Version != "postgres" {
		t.Fatalf("b with one set should go straight to its confirmation: mode %d", m.mode)
	}
	if cmd := update(m, press("enter")); cmd != nil {
		t.Fatal("enter confirmed a backup")
	}
	if m.mode != modeMain || len(rec.got) != 0 {
		t.Fatal("enter did not cancel")
	}
	mustContain(t, view(m), "backup-now cancelled")

	// esc leaves the set picker without a word to the engine.
	m2, _, rec2 := newConsole(t, canarySnapshot(), testOptions(), core.CmdBackupNow)
	update(m2, press("b"))
	update(m2, press("esc"))
	if m2.mode != modeMain || len(rec2.got) != 0 {
		t.Fatal("esc in the set picker did not cancel")
	}
}

func TestBackupNowRefusals(t *testing.T) {
	o := testOptions()
	o.ReadOnly, o.ReadOnlyReason = true, "guest session over SSH"
	m, _, rec := newConsole(t, canarySnapshot(), o, core.CmdBackupNow)
	wide(m)
	if cmd := update(m, press("b")); cmd != nil || m.mode != modeMain {
		t.Fatal("b acted in read-only mode")
	}
	mustContain(t, view(m), "backup-now refused: guest session over SSH")
	update(m, press("?"))
	mustContain(t, view(m), "back up now (disabled: guest session over SSH)")
	if len(rec.got) != 0 {
		t.Fatal("a read-only console reached the engine")
	}

	// Staging reports no backup sets.
	m2, _, _ := newConsole(t, canarySnapshot(), testOptions())
	wide(m2)
	update(m2, press("e"))
	update(m2, press("b"))
	mustContain(t, view(m2), "backup-now refused: nothing to back up: no backup sets reported in staging")
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
			m, _, _ := newConsole(t, canarySnapshot(), testOptions())
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
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	x, y := titleAt(t, view(m), "Backups")
	update(m, click(x+2, y+1))
	if m.focus != panePipeline {
		t.Fatal("a click with the mouse off moved the focus")
	}
}

func TestWheelScrollsLogViewer(t *testing.T) {
	m, eng, _ := newConsole(t, canarySnapshot(), testOptions())
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
		m, _, _ := newConsole(t, fullSnapshot(), testOptions())
		update(m, tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		lines := strings.Split(view(m), "\n")
		l := m.layout()
		for p, r := range l.panes {
			row := []rune(lines[r.y])
			if string(row[r.x:r.x+2]) != "┌─" || row[r.x+r.w-1] != '┐' {
				t.Errorf("%dx%d: pane %s is not drawn at %+v: %q", size[0], size[1], paneNames[p], r, lines[r.y])
			}
			if !strings.Contains(string(row[r.x:r.x+r.w]), paneNames[p]) {
				t.Errorf("%dx%d: %s title not inside %+v", size[0], size[1], paneNames[p], r)
			}
		}
	}
}

// At 200x60 the three bounded panes share a row sized to what they hold,
// and the history gets the room: more of it is visible than at 160x48.
func TestWideScreenUsesTheSpace(t *testing.T) {
	count := func(w, h int) (audit int, v string) {
		v = render(t, fullSnapshot(), w, h)
		return strings.Count(v, "promote production v1.42.0→v1.43.0"), v
	}
	mid, _ := count(160, 48)
	big, v := count(200, 60)
	if big <= mid+10 {
		t.Fatalf("200x60 shows %d history lines, 160x48 %d: the extra room went elsewhere", big, mid)
	}
	for i := range 12 {
		mustContain(t, v, fmt.Sprintf("set%02d", i))
	}
	mustContain(t, v, "SPIKE p=3e-09", "TypeError: cart is undefined", "◐ canary 25%")
}

// Each palette item replays the very key help shows for it, so running
// it from the palette and pressing the key cannot differ.
func TestPaletteItemsReplayTheirKeys(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	for _, it := range m.paletteItems() {
		if got := it.press.String(); got != it.key {
			t.Errorf("palette item %q presses %q, help says %q", it.name, got, it.key)
		}
	}
}
