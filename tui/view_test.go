package tui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/ripcordhq/ripcord/core"
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

// goldenState drives a console into one of the states the goldens show,
// at goldenSizes unless it names its own sizes.
type goldenState struct {
	name  string
	snap  func() core.Snapshot
	keys  []string
	sizes [][2]int
}

var goldenSizes = [][2]int{{80, 24}, {120, 40}, {160, 48}}

var goldenStates = []goldenState{
	{"idle", idleSnapshot, nil, nil},
	{"canary_spike", canarySnapshot, nil, nil},
	{"rollback_picker", canarySnapshot, []string{"r"}, nil},
	{"rollback_confirm", canarySnapshot, []string{"r", "enter"}, nil},
	{"help", canarySnapshot, []string{"?"}, nil},
	// The palette over an idle screen shows the disabled actions dimmed,
	// with their reasons.
	{"palette_open", idleSnapshot, []string{":"}, [][2]int{{80, 24}, {120, 40}}},
	{"idle", idleSnapshot, nil, [][2]int{{200, 60}}},
}

func renderState(t *testing.T, gs goldenState, w, h int) string {
	t.Helper()
	o := testOptions()
	o.Width, o.Height = w, h
	m := newModel(storeEngine(t, gs.snap(), history(), releases()), o)
	t.Cleanup(m.sub.Close)
	for _, k := range gs.keys {
		if cmd := update(m, press(k)); cmd != nil {
			// The history read: run it as Bubble Tea would.
			update(m, cmd())
		}
	}
	return m.View().Content
}

func TestGoldenViews(t *testing.T) {
	for _, gs := range goldenStates {
		sizes := gs.sizes
		if sizes == nil {
			sizes = goldenSizes
		}
		for _, size := range sizes {
			name := fmt.Sprintf("%s_%dx%d", gs.name, size[0], size[1])
			t.Run(name, func(t *testing.T) {
				got := renderState(t, gs, size[0], size[1])
				lines := strings.Split(got, "\n")
				if len(lines) != size[1] {
					t.Errorf("view is %d lines, terminal is %d", len(lines), size[1])
				}
				for i, l := range lines {
					if w := lipgloss.Width(l); w > size[0] {
						t.Errorf("line %d is %d cells wide, terminal is %d: %q", i+1, w, size[0], l)
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
			})
		}
	}
}

// The canary screen must carry what a person needs to decide, at both
// sizes: the spike, its evidence, the stale backup and the unfinished
// operation.
func TestCanaryViewShowsWhatNeedsJudgment(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {160, 48}} {
		got := render(t, canarySnapshot(), size[0], size[1])
		for _, want := range []string{"SPIKE", "judgment", "uploads backup 26h", "▸ v1.43.0 25%", "lock: alice", "21:14:05", "p promote"} {
			if !strings.Contains(got, want) {
				t.Errorf("%dx%d view lacks %q:\n%s", size[0], size[1], want, got)
			}
		}
	}
	wide := render(t, canarySnapshot(), 160, 48)
	for _, want := range []string{"SPIKE p=3e-09 · 112 vs 18 events at 25% share · 6.2× (CI 3.1–12.4) · 5m", "TypeError: cart is undefined (97)", "sha256:9f3c1a2b7d4e…", "STALE", "UNKNOWN"} {
		if !strings.Contains(wide, want) {
			t.Errorf("160x48 view lacks %q", want)
		}
	}
}

func TestFullPanesStayInsideTheTerminal(t *testing.T) {
	for _, color := range []bool{false, true} {
		for _, size := range [][2]int{{80, 24}, {100, 30}, {120, 40}, {160, 48}, {200, 60}, {200, 12}, {240, 70}} {
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

// TestShortTerminalKeepsTheAnswer: a confirmation that cannot fit keeps
// its title and how to answer, and says what it left out.
func TestShortTerminalKeepsTheAnswer(t *testing.T) {
	got := renderState(t, goldenState{"short", canarySnapshot, []string{"r", "enter"}, nil}, 80, 14)
	lines := strings.Split(got, "\n")
	if len(lines) != 14 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, want := range []string{"rollback api in production: v1.43.0 → v1.42.0", "more line(s): a taller terminal shows them", "y confirm   enter/esc cancel"} {
		if !strings.Contains(got, want) {
			t.Errorf("short view lacks %q:\n%s", want, got)
		}
	}
}

// A flush rebuilds the panes its events touched, and only those.
func TestPanesRebuildOnlyOnChange(t *testing.T) {
	m, eng, _ := newConsole(t, canarySnapshot(), testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	_ = view(m)
	builds := func() [paneCount]int {
		var b [paneCount]int
		for i := range m.caches {
			b[i] = m.caches[i].builds
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
	if mid[paneActivity] != before[paneActivity]+1 || mid[paneErrors] != before[paneErrors] || mid[paneBackups] != before[paneBackups] || mid[panePipeline] != before[panePipeline] {
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
	if after := builds(); after[paneBackups] != mid[paneBackups]+1 || after[panePipeline] != mid[panePipeline] {
		t.Fatalf("builds %v -> %v: a backup should rebuild Backups, not Pipeline", mid, after)
	}
}

// Two environments backing up a set of the same name are told apart.
func TestBackupsOfSeveralEnvironmentsNameTheEnvironment(t *testing.T) {
	snap := idleSnapshot()
	st := fresh("postgres", "pgbackrest", core.FreshWarn, 30*time.Hour, 24*time.Hour, "")
	st.Ref = staging
	snap.Backups[staging] = map[string]core.Freshness{"postgres": st}
	m, _, _ := newConsole(t, snap, testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	pane := paneText(m, paneBackups)
	mustContain(t, pane, "staging    postgres", "production postgres")
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

// The pipeline pane shows the rollout in flight under the build: every
// configured step, the current one with its timer and, for an analysis,
// how much of its window has passed; at 80×24 it folds into one line.
func TestRolloutStepsUnderThePipeline(t *testing.T) {
	snap := canarySnapshot()
	snap.Plans[production] = []core.RolloutStep{
		{Kind: core.StepWeight, Weight: 25}, {Kind: core.StepAnalysis, For: 10 * time.Minute}, {Kind: core.StepPause}, {Kind: core.StepWeight, Weight: 100},
	}
	d := snap.Deployments[production]
	d.State, d.Step, d.StepStartedAt = core.DeployProgressing, 1, t0.Add(-5*time.Minute)
	snap.Deployments[production] = d
	m, _, _ := newConsole(t, snap, testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	pane := paneText(m, panePipeline)
	mustContain(t, pane, "rollout production · v1.43.0 · progressing", "✓ 25%", "◐ analysis 10m", "5:00   █████░░░░░", "· pause: judgment", "· 100%")

	// As in the demo, the build is done by the time production rolls out.
	snap.Pipelines["api"] = pipeline("v1.43.0", core.RunSucceeded, 1)
	m, _, _ = newConsole(t, snap, testOptions())
	update(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	mustContain(t, paneText(m, panePipeline), "rollout production: ✓25% · ◐analysis 10m 5:00 · ·pause: judgment · ·100%")
}

// After a rollback the restored release is not a rollout: no steps shown.
func TestNoRolloutStepsForARestoredRelease(t *testing.T) {
	snap := canarySnapshot()
	snap.Plans[production] = []core.RolloutStep{{Kind: core.StepWeight, Weight: 25}, {Kind: core.StepWeight, Weight: 100}}
	snap.Deployments[production] = core.Deployment{ID: 8, Ref: production, Version: "v1.42.0", State: core.DeployHealthy, Weight: 100, Step: 2, StartedAt: t0, FinishedAt: t0}
	m, _, _ := newConsole(t, snap, testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	if pane := paneText(m, panePipeline); strings.Contains(pane, "rollout production") {
		t.Fatalf("a restored release shows rollout steps:\n%s", pane)
	}
}

// A build that was rolled back is held, and the strip says so until a
// person clears the hold.
func TestHeldReleaseNeedsYou(t *testing.T) {
	snap := canarySnapshot()
	delete(snap.Verdicts, production)
	snap.Audit = append(snap.Audit, core.AuditEntry{Seq: 2, At: t0, Actor: core.Actor{Name: "bob"}, Action: "rollback", Ref: production, From: "v1.43.0", To: "v1.42.0", Outcome: "rolled back to v1.42.0"})
	m, eng, _ := newConsole(t, snap, testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	mustContain(t, strings.Split(view(m), "\n")[1], "v1.43.0 held: rolled back in production")

	if _, err := eng.Audit(context.Background(), core.AuditEntry{Actor: core.Actor{Name: "bob"}, Action: string(core.CmdClearHold), Ref: production, To: "v1.43.0", Outcome: "hold cleared"}); err != nil {
		t.Fatal(err)
	}
	update(m, flushMsg{})
	if line := strings.Split(view(m), "\n")[1]; strings.Contains(line, "held") {
		t.Fatalf("the hold was cleared but the strip says %q", line)
	}
}

// A confirmation names the others watching, never the person's own
// console, and says so when nobody else is.
func TestConfirmationNamesWhoElseIsWatching(t *testing.T) {
	snap := canarySnapshot()
	snap.Watchers = append(snap.Watchers, core.Watcher{ID: "w-me", Actor: core.Actor{Name: "bob", Host: "laptop"}, Since: t0.Add(-time.Hour)})
	m, _, _ := newConsole(t, snap, testOptions())
	m.self = "w-me"
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	if got := m.othersWatching(); !strings.HasSuffix(got, "also watching: carol@bastion-2 (12m)") {
		t.Fatalf("watching line %q; want carol only, not this console's own person", got)
	}
	m.snap.Watchers = m.snap.Watchers[1:]
	mustContain(t, m.othersWatching(), "nobody else is watching")
}

// Each backup set says when its repository was last verified, and a
// failed verify is shown with what the tool found.
func TestBackupsShowTheLastVerify(t *testing.T) {
	snap := idleSnapshot()
	bad := fresh("uploads", "restic", core.FreshOK, time.Hour, 24*time.Hour, "")
	bad.Facts.VerifiedAt, bad.Facts.VerifyOK, bad.Facts.VerifyMessage = t0.Add(-2*time.Hour), false, "pack damaged"
	snap.Backups[production]["uploads"] = bad
	snap.Backups[production]["media"] = fresh("media", "borg", core.FreshOK, time.Hour, 24*time.Hour, "")
	m, _, _ := newConsole(t, snap, testOptions())
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
	m, _, _ := newConsole(t, snap, testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	mustContain(t, paneText(m, panePipeline), "hosts · production", "web-1  v1.43.0 ok", "web-3  v1.42.0 unreachable: connect: i/o timeout", "web-4  v1.42.0 ok")

	m, _, _ = newConsole(t, snap, testOptions())
	update(m, tea.WindowSizeMsg{Width: 120, Height: 30})
	mustContain(t, paneText(m, panePipeline), "hosts: 2 on v1.43.0, 2 on v1.42.0 · web-3 unreachable")
}
