package tui

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/tui/prompt"
)

// updateGolden reports -update: the flag x/exp/golden registers (teatest
// imports it), so one -update rewrites every golden file of the package.
func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func render(t testing.TB, snap core.Snapshot, w, h int) string {
	t.Helper()
	o := testOptions()
	o.Width, o.Height = w, h
	m := newModel(engineWith(snap), o)
	t.Cleanup(m.sub.Close)
	return m.View().Content
}

// goldenState is a state of the live project the goldens show, reached
// by real commands, with keys pressed on the console at each size.
type goldenState struct {
	name  string
	reach func(*live) *live
	keys  []string
	sizes [][2]int
}

var (
	everySize = [][2]int{{80, 24}, {120, 40}, {160, 48}, {200, 50}}
	idle      = func(l *live) *live { return l }
)

var goldenStates = []goldenState{
	// The incident: the analysis failed, v1.43.0 still takes 25%.
	{"incident", (*live).incident, nil, everySize},
	{"help", (*live).incident, []string{"?"}, everySize},
	{"palette", (*live).incident, []string{":"}, everySize},
	{"idle", idle, nil, [][2]int{{80, 24}, {120, 40}}},
	{"ready", (*live).ready, nil, [][2]int{{80, 24}, {160, 48}}},
	{"canary", (*live).canary, nil, [][2]int{{80, 24}, {160, 48}}},
	{"paused", (*live).paused, nil, [][2]int{{80, 24}, {120, 40}}},
	{"rolled_back", (*live).rolledBack, nil, [][2]int{{80, 24}, {160, 48}}},
	{"rollback_picker", (*live).incident, []string{"r"}, [][2]int{{80, 24}, {120, 40}}},
	{"rollback_confirm", (*live).incident, []string{"r", "enter"}, [][2]int{{80, 24}, {120, 40}}},
}

// liveConsole reaches a golden state and presses its keys on a console of
// w×h, running the history read r starts as Bubble Tea would.
func liveConsole(t *testing.T, gs goldenState, w, h int) (*Model, *live) {
	t.Helper()
	l := gs.reach(newLive(t))
	m := l.console(w, h)
	for _, k := range gs.keys {
		if cmd := update(m, press(k)); cmd != nil {
			update(m, cmd())
		}
	}
	return m, l
}

func TestGoldenViews(t *testing.T) {
	for _, gs := range goldenStates {
		for _, size := range gs.sizes {
			name := fmt.Sprintf("%s_%dx%d", gs.name, size[0], size[1])
			t.Run(name, func(t *testing.T) {
				m, _ := liveConsole(t, gs, size[0], size[1])
				checkGolden(t, name, view(m), size[0], size[1])
			})
		}
	}
	// Below the minimum the console says so instead of breaking boxes.
	for _, size := range [][2]int{{59, 16}, {40, 10}} {
		name := fmt.Sprintf("too_small_%dx%d", size[0], size[1])
		t.Run(name, func(t *testing.T) {
			checkGolden(t, name, render(t, canarySnapshot(), size[0], size[1]), size[0], size[1])
		})
	}
}

func checkGolden(t *testing.T, name, got string, w, h int) {
	t.Helper()
	lines := strings.Split(got, "\n")
	if len(lines) != h {
		t.Errorf("view is %d lines, terminal is %d", len(lines), h)
	}
	for i, l := range lines {
		if lw := lipgloss.Width(l); lw > w {
			t.Errorf("line %d is %d cells wide, terminal is %d: %q", i+1, lw, w, l)
		}
	}
	path := filepath.Join("testdata", name+".golden")
	if updateGolden() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./tui -run TestGoldenViews -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("view differs from %s (rerun with -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// actionKeys are the keys that ask the engine for something, with the
// command each asks for in the state it is pressed in.
var actionKeys = []string{"p", "P", "r", "a", "space", "b"}

func keyKind(m *Model, k string) core.CommandKind {
	switch k {
	case "p":
		return core.CmdPromote
	case "P":
		return core.CmdFullPromote
	case "r":
		return core.CmdRollback
	case "a":
		return core.CmdAbort
	case "space":
		return m.s.pauseKind()
	}
	return core.CmdBackupNow
}

// offered reports whether the console offers key k now: in the footer
// (not dimmed), or, for keys the footer has no room for, in the palette.
func offered(t *testing.T, m *Model, k string) bool {
	t.Helper()
	foot := lastLine(m)
	kind := keyKind(m, k)
	for _, it := range paletteItems(&m.s) {
		if it.key != k {
			continue
		}
		enabled := m.s.possible(kind).Allowed
		if desc := k + " " + footerWord(kind); strings.Contains(foot, desc) {
			dimmed := strings.Contains(foot, "("+desc+")")
			if dimmed == enabled {
				t.Fatalf("the footer shows %q %s, the engine says allowed=%v", desc, map[bool]string{true: "dimmed", false: "offered"}[dimmed], enabled)
			}
		}
		return enabled
	}
	t.Fatalf("no palette item for %s", k)
	return false
}

func footerWord(k core.CommandKind) string {
	switch k {
	case core.CmdPromote:
		return "promote"
	case core.CmdRollback:
		return "rollback"
	case core.CmdAbort:
		return "abort"
	}
	return string(k)
}

// Every action key the console offers in each golden state is one the
// engine accepts right now: pressed and confirmed the way a person would,
// on a fresh project in the same state, it runs without error. Every
// other action key says the engine's own reason when pressed, and help
// shows it.
func TestEveryOfferedKeyIsAccepted(t *testing.T) {
	for _, gs := range goldenStates {
		if len(gs.keys) > 0 {
			continue // a dialog is open: the footer offers its keys
		}
		t.Run(gs.name, func(t *testing.T) {
			offers := map[string]bool{}
			for _, size := range gs.sizes {
				m, l := liveConsole(t, gs, size[0], size[1])
				for _, k := range actionKeys {
					kind := keyKind(m, k)
					if offered(t, m, k) {
						offers[k] = true
						continue
					}
					why := l.eng.Snapshot().Situations[production].Command(kind).Why
					if why == "" {
						t.Fatalf("%dx%d: %s (%s) is disabled without a reason", size[0], size[1], k, kind)
					}
					before := len(audited(t, l.eng))
					if cmd := update(m, press(k)); cmd != nil {
						t.Fatalf("disabled %s returned a command", k)
					}
					onMain(t, m)
					if want := fmt.Sprintf("%s refused: %s", kind, why); m.msg.text != want {
						t.Fatalf("%s said %q, want the engine's reason %q", k, m.msg.text, want)
					}
					if len(audited(t, l.eng)) != before {
						t.Fatalf("disabled %s reached the engine", k)
					}
				}
			}
			// What is offered does not depend on the size: each offered
			// key is pressed once, on a fresh project in the same state.
			for _, k := range actionKeys {
				if offers[k] {
					t.Run(k, func(t *testing.T) { pressAndConfirm(t, gs, gs.sizes[0], k) })
				}
			}
		})
	}
}

// pressAndConfirm presses k in a fresh project in state gs, confirms it
// as a person would, and checks the engine ran it.
func pressAndConfirm(t *testing.T, gs goldenState, size [2]int, k string) {
	m, _ := liveConsole(t, gs, size[0], size[1])
	cmd := update(m, press(k))
	if k == "r" {
		if cmd == nil {
			t.Fatal("r read no history")
		}
		update(m, cmd())
		topIs[*historyDialog](t, m)
		update(m, press("enter"))
	}
	if _, ok := m.dialogs.top().(*setsDialog); ok {
		update(m, press("enter"))
	}
	c := topIs[*confirmDialog](t, m)
	send := update(m, press("y"))
	if send == nil {
		t.Fatalf("y on %s sent nothing", c.cmd.Kind)
	}
	res, ok := send().(resultMsg)
	if !ok {
		t.Fatalf("%s answered with %T", c.cmd.Kind, res)
	}
	if res.err != nil {
		t.Fatalf("the console offered %s (%s) and the engine refused it: %v", k, c.cmd.Kind, res.err)
	}
}

// At 80×24 the footer always keeps ? and q, whatever state the project
// is in and however many actions it lists.
func TestFooterKeepsHelpAndQuit(t *testing.T) {
	for _, gs := range goldenStates[:8] {
		if len(gs.keys) > 0 {
			continue
		}
		m, _ := liveConsole(t, gs, 80, 24)
		mustContain(t, lastLine(m), "? help", "q quit")
		m.s.opts.ReadOnly, m.s.opts.ReadOnlyReason = true, "a long explanation of why this console may not act, which must not push q out"
		update(m, tea.WindowSizeMsg{Width: 80, Height: 24})
		mustContain(t, lastLine(m), "? help", "q quit")
	}
}

// A pane that cannot show everything says how much more there is, and the
// focused pane scrolls to it.
func TestPanesThatDoNotFitSayHowMuchMore(t *testing.T) {
	m, _ := fixtureConsole(t, fullSnapshot(), testOptions())
	update(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	act := paneText(m, paneActivity)
	if !regexp.MustCompile(`↓ \d+ more`).MatchString(act) {
		t.Fatalf("Activity hides entries without a mark:\n%s", act)
	}
	back := paneText(m, paneBackups)
	if !regexp.MustCompile(`↓ \d+ more`).MatchString(back) {
		t.Fatalf("Backups hides sets without a mark:\n%s", back)
	}
	focus(m, paneBackups)
	for range 20 {
		update(m, press("down"))
	}
	back = paneText(m, paneBackups)
	mustContain(t, back, "↑ ")
	if !strings.Contains(back, "set11") {
		t.Fatalf("scrolling down did not reach the last set:\n%s", back)
	}
}

// Each pane keeps at least one line of content down to the minimum size:
// no empty boxes.
func TestNoEmptyBoxesDownToTheMinimum(t *testing.T) {
	for _, size := range [][2]int{{60, 16}, {60, 18}, {80, 24}} {
		m, _ := fixtureConsole(t, fullSnapshot(), testOptions())
		update(m, tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		for p := range paneCount {
			r := m.layout().panes[p]
			if r.h < 3 {
				t.Fatalf("%dx%d: %s is %d rows: no room for a line", size[0], size[1], m.panes[p].name(), r.h)
			}
			if body := strings.Split(paneText(m, p), "\n")[1]; strings.Trim(body, "│ ") == "" {
				t.Fatalf("%dx%d: %s shows an empty first line:\n%s", size[0], size[1], m.panes[p].name(), paneText(m, p))
			}
		}
	}
}

// An Activity line cut at the pane's edge opens in full: the reason, the
// gates and the outcome.
func TestActivityLinesOpenInFull(t *testing.T) {
	snap := canarySnapshot()
	snap.Audit = append(snap.Audit, core.AuditEntry{Seq: 2, At: t0.Add(-time.Minute), Actor: core.Actor{Name: "dana"}, Action: "promote", Ref: production,
		From: "v1.42.0", To: "v1.43.0", Reason: "hotfix for the checkout timeout, approved in the incident channel by the on-call lead",
		Overrides: []string{"backups"}, Outcome: "deployed at 25%", Duration: 3 * time.Second,
		Gates: []core.GateResult{{Gate: "backups", Status: core.GateFail, Reason: "uploads backup 26h old", Overridden: true}, {Gate: "pipeline", Status: core.GatePass, Reason: "green"}}})
	m, _ := fixtureConsole(t, snap, testOptions())
	wide(m)
	focus(m, paneActivity)
	update(m, press("enter"))
	topIs[*detailDialog](t, m)
	mustContain(t, view(m), "promote api/production v1.42.0 → v1.43.0", "who: dana", "outcome: deployed at 25%",
		"reason: hotfix for the checkout timeout, approved in the incident channel by the on-call lead",
		"overridden gates: backups", "! overridden: backups uploads backup 26h old", "✓ pipeline green", "took: 3s")
	update(m, press("esc"))
	onMain(t, m)
	// The next line down is alice's older promote.
	update(m, press("down"))
	update(m, press("enter"))
	mustContain(t, view(m), "who: alice", "promote api/production v1.41.2 → v1.42.0")
}

// The help reads in full at any size: where its columns do not fit it
// turns into pages, and every binding is on one of them.
func TestHelpPagesAtAnySize(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	update(m, tea.WindowSizeMsg{Width: 60, Height: 16})
	update(m, press("?"))
	v := view(m)
	mustContain(t, v, "page 1 of")
	pages, _ := strconv.Atoi(regexp.MustCompile(`page 1 of (\d+)`).FindStringSubmatch(v)[1])
	seen := v
	for range pages {
		update(m, press("pgdown"))
		seen += view(m)
	}
	for _, g := range m.s.keys.FullHelp() {
		for _, b := range g {
			if want := b.Help().Desc; !strings.Contains(seen, want) {
				t.Errorf("no page of the help shows %q", want)
			}
		}
	}
	for i, l := range strings.Split(v, "\n")[2:] {
		if strings.Contains(l, "…") {
			t.Errorf("help line %d is cut: %q", i+3, l)
		}
	}
}

// The palette at 80×24 scrolls to every item and marks what is below.
func TestPaletteScrollsToEveryItem(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	update(m, press(":"))
	mustContain(t, view(m), "more")
	if strings.Contains(view(m), "  quit ") {
		t.Skip("everything fits: nothing to scroll")
	}
	p := topIs[*paletteDialog](t, m)
	for range len(p.shown) {
		update(m, press("down"))
	}
	mustContain(t, view(m), "▸ quit", "↑ ")
}

// Below the minimum size the console says so, and q still quits.
func TestTooSmallSaysSoAndQuits(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	update(m, tea.WindowSizeMsg{Width: 50, Height: 12})
	mustContain(t, view(m), "terminal too small", "50×12; ripcord needs 60×16")
	cmd := update(m, press("q"))
	if cmd == nil {
		t.Fatal("q did nothing below the minimum size")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("q did not quit")
	}
}

// At large sizes the space goes where the content is: the three bounded
// panes are as tall as the tallest needs and nothing in them is cut;
// Activity takes the rest.
func TestLargeScreenGivesPanesWhatTheyNeed(t *testing.T) {
	m, _ := fixtureConsole(t, fullSnapshot(), testOptions())
	update(m, tea.WindowSizeMsg{Width: 200, Height: 50})
	l := m.layout()
	for _, p := range []paneID{panePipeline, paneErrors, paneBackups} {
		if strings.Contains(paneText(m, p), "more ─") {
			t.Errorf("%s is cut at 200×50:\n%s", m.panes[p].name(), paneText(m, p))
		}
	}
	top := l.panes[panePipeline].h
	if want := max(m.panes[panePipeline].need(&m.s, l.panes[panePipeline].w), m.panes[paneErrors].need(&m.s, l.panes[paneErrors].w), m.panes[paneBackups].need(&m.s, l.panes[paneBackups].w)); top != want {
		t.Errorf("the top row is %d rows, its tallest pane needs %d", top, want)
	}
	if a := l.panes[paneActivity]; a.y != l.body.y+top || a.h != l.body.h-top {
		t.Errorf("Activity at %+v does not take the rest of the body %+v", a, l.body)
	}
}

// The incident screen carries what a person needs to decide at every
// size: what stopped, the spike and its evidence, what runs where.
func TestIncidentViewShowsWhatNeedsDeciding(t *testing.T) {
	for _, size := range everySize {
		m, _ := liveConsole(t, goldenStates[0], size[0], size[1])
		v := view(m)
		for _, want := range []string{"SPIKE", "stopped", "▸ v1.43.0 25%", "21:14:05", "a abort", "r rollback", "? help", "q quit"} {
			if !strings.Contains(v, want) {
				t.Errorf("%dx%d view lacks %q:\n%s", size[0], size[1], want, v)
			}
		}
	}
	m, _ := liveConsole(t, goldenStates[0], 160, 48)
	for _, want := range []string{"SPIKE p=3e-09 · 112 vs 18 events at 25% share · 6.2× (CI 3.1–12.4) · 5m", "TypeError: cart is undefined (97)", "sha256:9f3c1a2b7d4e…", "WARN"} {
		if !strings.Contains(view(m), want) {
			t.Errorf("160x48 view lacks %q", want)
		}
	}
}

func TestFullPanesStayInsideTheTerminal(t *testing.T) {
	for _, color := range []bool{false, true} {
		for _, size := range [][2]int{{60, 16}, {80, 24}, {100, 30}, {120, 40}, {160, 48}, {200, 50}, {200, 60}, {200, 16}, {240, 70}} {
			o := testOptions()
			o.NoColor = !color
			o.Width, o.Height = size[0], size[1]
			m := newModel(engineWith(fullSnapshot()), o)
			got := m.View().Content
			m.sub.Close()
			lines := strings.Split(got, "\n")
			if len(lines) != size[1] {
				t.Errorf("%dx%d colour=%v: %d lines", size[0], size[1], color, len(lines))
			}
			for i, l := range lines {
				if w := lipgloss.Width(l); w > size[0] {
					t.Errorf("%dx%d colour=%v line %d is %d wide", size[0], size[1], color, i+1, w)
				}
			}
		}
	}
}

func TestSparkline(t *testing.T) {
	got := sparkline([]core.ErrorBucket{{Count: 0}, {Count: 1}, {Count: 4}, {Count: 8}}, 4)
	if got != "▁▂▄█" {
		t.Fatalf("sparkline = %q, want ▁▂▄█", got)
	}
}

// BenchmarkViewFull160x48 renders the whole screen with every pane full
// and every cache dropped first, as after a flush that touched all panes.
func BenchmarkViewFull160x48(b *testing.B) {
	o := testOptions()
	o.NoColor = false
	o.Width, o.Height = 160, 48
	m := newModel(engineWith(fullSnapshot()), o)
	defer m.sub.Close()
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		m.invalidate()
		m.gen++
		_ = m.View()
		lat = append(lat, time.Since(start))
	}
	reportPercentiles(b, lat)
}

// BenchmarkViewUnchanged160x48 is View after a message that changed
// nothing on screen: what every keypress and tick costs between flushes.
func BenchmarkViewUnchanged160x48(b *testing.B) {
	o := testOptions()
	o.NoColor = false
	o.Width, o.Height = 160, 48
	m := newModel(engineWith(fullSnapshot()), o)
	defer m.sub.Close()
	_ = m.View()
	b.ReportAllocs()
	for b.Loop() {
		m.gen++
		_ = m.View()
	}
}

// A confirmation that cannot fit keeps its title and how to answer, and
// scrolls the detail between them, saying how much is below.
func TestShortTerminalKeepsTheAnswer(t *testing.T) {
	m, _ := liveConsole(t, goldenState{"short", (*live).incident, []string{"r", "enter"}, nil}, 80, 16)
	got := view(m)
	for _, want := range []string{"rollback api in production: v1.43.0 → v1.42.0", "more (↓ scrolls)", "y confirm   enter/esc cancel"} {
		if !strings.Contains(got, want) {
			t.Errorf("short view lacks %q:\n%s", want, got)
		}
	}
	for range 30 {
		update(m, press("down"))
	}
	mustContain(t, view(m), "also watching: carol@bastion-2 (12m)", "more above", "y confirm")
}

// A flush rebuilds the panes its events touched, and only those.
func TestPanesRebuildOnlyOnChange(t *testing.T) {
	m, eng := fixtureConsole(t, canarySnapshot(), testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	_ = view(m)
	builds := func() [paneCount]int {
		var b [paneCount]int
		for i, p := range m.panes {
			b[i] = p.builds
		}
		return b
	}
	before := builds()
	eng.Publish(core.Event{Kind: core.EvLog, Ref: production, Log: &core.LogLine{Source: "x", Text: "y"}})
	update(m, flushMsg{})
	_ = view(m)
	if builds() != before {
		t.Fatalf("a log line rebuilt panes: %v -> %v", before, builds())
	}
	eng.Publish(core.Event{Kind: core.EvAudit, Ref: production, Final: true, Audit: &core.AuditEntry{At: t0, Actor: core.Actor{Name: "carol"}, Action: "lock", Ref: production, Outcome: "taken"}})
	update(m, flushMsg{})
	_ = view(m)
	mid := builds()
	if mid[paneActivity] == before[paneActivity] || mid[paneErrors] != before[paneErrors] || mid[paneBackups] != before[paneBackups] {
		t.Fatalf("builds %v -> %v: an audit entry should rebuild Activity alone", before, mid)
	}
	if !strings.Contains(view(m), "carol") {
		t.Error("the new audit entry is not on screen")
	}
	f := fresh("archive", "borg", core.FreshOK, time.Hour, 24*time.Hour, "")
	eng.Publish(core.Event{Kind: core.EvBackup, Ref: production, Final: true, Backup: &f})
	update(m, flushMsg{})
	if !strings.Contains(view(m), "archive") {
		t.Error("the new backup set is not on screen")
	}
	if after := builds(); after[paneBackups] == mid[paneBackups] || after[paneErrors] != mid[paneErrors] || after[paneActivity] != mid[paneActivity] {
		t.Fatalf("builds %v -> %v: a backup should rebuild Backups, not Errors", mid, after)
	}
}

// Each pane says which event kinds change it; the root redraws a pane for
// those and no others.
func TestPanesListTheEventsThatChangeThem(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	want := map[paneID][]core.EventKind{
		panePipeline: {core.EvPipeline, core.EvDeployment, core.EvPlan, core.EvSituation, core.EvTarget},
		paneErrors:   {core.EvErrors, core.EvVerdict, core.EvSituation, core.EvDeployment},
		paneBackups:  {core.EvBackup},
		paneActivity: {core.EvAudit, core.EvProvider},
	}
	for p, kinds := range want {
		for _, k := range []core.EventKind{core.EvPipeline, core.EvDeployment, core.EvErrors, core.EvVerdict, core.EvBackup, core.EvAudit, core.EvLog, core.EvWatchers, core.EvNotice} {
			in := false
			for _, w := range kinds {
				in = in || w == k
			}
			if got := m.panes[p].affectedBy(k); got != in {
				t.Errorf("%s affected by %s = %v, want %v", m.panes[p].name(), k, got, in)
			}
		}
	}
}

// Two environments backing up a set of the same name are told apart.
func TestBackupsOfSeveralEnvironmentsNameTheEnvironment(t *testing.T) {
	snap := idleSnapshot()
	st := fresh("postgres", "pgbackrest", core.FreshWarn, 30*time.Hour, 24*time.Hour, "")
	st.Ref = staging
	snap.Backups[staging] = map[string]core.Freshness{"postgres": st}
	m, _ := fixtureConsole(t, snap, testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	mustContain(t, paneText(m, paneBackups), "staging    postgres", "production postgres")
	// The strip names the environment of each backup that needs a person.
	mustContain(t, stripLine(m), "staging postgres backup 30h old (expected 24h)")
}

// The rate is the last minute's: sixteen errors in the newest 10 s of a
// quiet half hour read as a burst, not as half an error a minute.
func TestErrorRateIsTheLastMinutes(t *testing.T) {
	var w core.ErrorWindow
	for i := range 180 {
		w.Buckets = append(w.Buckets, core.ErrorBucket{Start: t0.Add(time.Duration(i) * 10 * time.Second)})
	}
	w.Buckets[179].Count = 16
	w.Buckets[0].Count = 100 // half an hour ago: not now
	if got := rate(w); got != "16/min" {
		t.Fatalf("rate = %s, want 16/min", got)
	}
	short := core.ErrorWindow{Buckets: w.Buckets[176:]} // 40 s of data
	if got := rate(short); got != "24/min" {
		t.Fatalf("rate over 40 s = %s, want 24/min (16 in 40 s)", got)
	}
}

// The pipeline pane shows the canary under the build: every configured
// step, the current one timed, and the analysis's progress.
func TestRolloutStepsUnderThePipeline(t *testing.T) {
	l := newLive(t).canary()
	m := l.console(160, 48)
	mustContain(t, paneText(m, panePipeline), "rollout production · v1.43.0 · in flight at 25%", "✓ 25%", "◐ analysis 10m", "0:00   ░░░░░░░░░░", "· 100%")
}

// A rolled-back release is held, and the screen says so until a person
// clears the hold.
func TestHeldReleaseShowsUntilCleared(t *testing.T) {
	l := newLive(t).rolledBack()
	m := l.console(160, 48)
	mustContain(t, stripLine(m), "v1.43.0 held")
	l.do(core.Command{Kind: core.CmdClearHold, Version: "v1.43.0", Reason: "fixed forward in v1.43.1"})
	l.settle(m, "the hold cleared", func(s core.Situation) bool { return len(s.Holds) == 0 })
	if line := stripLine(m); strings.Contains(line, "held") {
		t.Fatalf("the hold was cleared but the strip says %q", line)
	}
}

// A confirmation names the others watching, never the person's own
// console, and says so when nobody else is.
func TestConfirmationNamesWhoElseIsWatching(t *testing.T) {
	ws := []core.Watcher{
		{ID: "w-carol", Actor: core.Actor{Name: "carol", Host: "bastion-2"}, Since: t0.Add(-12 * time.Minute)},
		{ID: "w-me", Actor: bob, Since: t0.Add(-time.Hour)},
	}
	if got := prompt.Watching(ws, "w-me", t0).Text(); got != "also watching: carol@bastion-2 (12m)" {
		t.Fatalf("watching line %q; want carol only, not this console's own person", got)
	}
	if got := prompt.Watching(ws[1:], "w-me", t0).Text(); got != "nobody else is watching" {
		t.Fatalf("watching line %q", got)
	}
}

// Each backup set says when its repository was last verified, and a
// failed verify is shown with what the tool found.
func TestBackupsShowTheLastVerify(t *testing.T) {
	snap := idleSnapshot()
	bad := fresh("uploads", "restic", core.FreshOK, time.Hour, 24*time.Hour, "")
	bad.Facts.VerifiedAt, bad.Facts.VerifyOK, bad.Facts.VerifyMessage = t0.Add(-2*time.Hour), false, "pack damaged"
	snap.Backups[production]["uploads"] = bad
	snap.Backups[production]["media"] = fresh("media", "borg", core.FreshOK, time.Hour, 24*time.Hour, "")
	m, _ := fixtureConsole(t, snap, testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	mustContain(t, paneText(m, paneBackups), "verified 26h ago", "✗ verify 2h ago: pack damaged", "unverified")
}

// A target that runs on several hosts lists them under the pipeline: which
// host runs which release, and why a host is not ok; a smaller terminal
// gets one line that counts them and names the hosts that are not ok.
func TestHostsOfAFleetUnderThePipeline(t *testing.T) {
	snap := canarySnapshot()
	ts := snap.Targets[production]
	ts.Hosts = []core.HostStatus{
		{Name: "web-1", Address: "10.0.0.11:22", Release: "v1.43.0", State: core.HostOK},
		{Name: "web-2", Address: "10.0.0.12:22", Release: "v1.43.0", State: core.HostOK},
		{Name: "web-3", Address: "10.0.0.13:22", Release: "v1.42.0", State: core.HostUnreachable, Message: "connect: i/o timeout"},
		{Name: "web-4", Address: "10.0.0.14:22", Release: "v1.42.0", State: core.HostOK},
	}
	snap.Targets[production] = ts
	m, _ := fixtureConsole(t, snap, testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	mustContain(t, paneText(m, panePipeline), "hosts · production", "web-1  v1.43.0 ok", "web-3  v1.42.0 unreachable: connect: i/o timeout", "web-4  v1.42.0 ok")

	// Short of room, the pane says it in one row.
	var compact []string
	for _, r := range (pipelinePane{}).rows(&m.s, 78, 6, "") {
		compact = append(compact, r.text)
	}
	mustContain(t, strings.Join(compact, "\n"), "hosts: 2 on v1.43.0, 2 on v1.42.0 · web-3 unreachable")
}
