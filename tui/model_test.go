package tui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

func press(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "shift+tab":
		return tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "ctrl+p":
		return tea.KeyPressMsg{Code: 'p', Mod: tea.ModCtrl}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

func typeText(m *Model, s string) {
	for _, r := range s {
		update(m, press(string(r)))
	}
}

// recorder registers handlers that record every command reaching the
// engine.
type recorder struct {
	got chan core.Command
	err error
}

func newConsole(t *testing.T, snap core.Snapshot, o Options, kinds ...core.CommandKind) (*Model, *core.Engine, *recorder) {
	t.Helper()
	return newConsoleWith(t, snap, history(), o, kinds...)
}

func newConsoleWith(t *testing.T, snap core.Snapshot, deps []core.Deployment, o Options, kinds ...core.CommandKind) (*Model, *core.Engine, *recorder) {
	t.Helper()
	eng := storeEngine(t, snap, deps, releases())
	rec := &recorder{got: make(chan core.Command, 10)}
	for _, k := range kinds {
		eng.Handle(k, func(_ context.Context, _ *core.Engine, cmd core.Command) (core.Result, error) {
			rec.got <- cmd
			if rec.err != nil {
				return core.Result{}, rec.err
			}
			return core.Result{Outcome: "done", Message: "moved to step 2 (50%)"}, nil
		})
	}
	m := newModel(eng, o)
	t.Cleanup(m.sub.Close)
	return m, eng, rec
}

func update(m *Model, msg tea.Msg) tea.Cmd {
	_, cmd := m.Update(msg)
	return cmd
}

// run runs a command the way Bubble Tea would and feeds its message back.
func run(t *testing.T, m *Model, cmd tea.Cmd) {
	t.Helper()
	if cmd == nil {
		t.Fatal("expected a command")
	}
	update(m, cmd())
}

func view(m *Model) string { return m.View().Content }

// wide gives long messages room: at 80 columns the status line is cut.
func wide(m *Model) { update(m, tea.WindowSizeMsg{Width: 200, Height: 50}) }

func mustContain(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("view lacks %q:\n%s", w, got)
		}
	}
}

func received(t *testing.T, rec *recorder) core.Command {
	t.Helper()
	select {
	case got := <-rec.got:
		return got
	default:
		t.Fatal("the handler was not called")
	}
	return core.Command{}
}

func TestConfirmWithYSendsCommand(t *testing.T) {
	m, _, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdPromote)
	if cmd := update(m, press("p")); cmd != nil {
		t.Fatal("p must only open the confirmation, not send")
	}
	mustContain(t, view(m), "Confirm promote", "promote api in production: v1.42.0 → v1.43.0", "v1.43.0 now has 25% of traffic",
		"✗ errors SPIKE: v1.43.0 6.2× baseline (p=3e-09)", "✗ backups uploads backup 26h old", "✗ lock held by alice@ops1")
	cmd := update(m, press("y"))
	if cmd == nil {
		t.Fatal("y did not send the command")
	}
	msg := cmd()
	got := received(t, rec)
	want := core.Command{Kind: core.CmdPromote, Ref: production, Version: "v1.43.0", Actor: core.Actor{Name: "bob", Host: "laptop"}}
	if got.Kind != want.Kind || got.Ref != want.Ref || got.Version != want.Version || got.Actor != want.Actor {
		t.Fatalf("engine got %+v, want %+v", got, want)
	}
	update(m, msg)
	mustContain(t, view(m), "promote api/production: moved to step 2 (50%)")
}

// r opens the history with the last good release preselected; the
// confirmation then says exactly what will happen.
func TestRollbackPickerAndConfirmation(t *testing.T) {
	m, eng, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdRollback)
	wide(m)
	_, other := eng.Subscribe()
	defer other.Close()
	cmd := update(m, press("r"))
	if m.mode != modeMain {
		t.Fatal("the picker opened before the history was read")
	}
	run(t, m, cmd)
	if m.mode != modePicker {
		t.Fatalf("no picker after the history arrived; status %q", m.status)
	}
	v := view(m)
	mustContain(t, v, "Rollback production · history", "roll api in production back from v1.43.0 to:", "▸ v1.42.0", "v1.41.2")
	for _, it := range m.picker.items {
		if it.version == "v1.43.0" {
			t.Fatal("the release being rolled back is offered as a target")
		}
	}
	update(m, press("j"))
	if m.picker.chosen().version != "v1.41.2" {
		t.Fatalf("j moved to %s", m.picker.chosen().version)
	}
	update(m, press("k"))
	update(m, press("enter"))
	if m.mode != modeConfirm {
		t.Fatal("enter in the picker did not open the confirmation")
	}
	mustContain(t, view(m),
		"rollback api in production: v1.43.0 → v1.42.0",
		"✗ 0043_drop_legacy_cart contract: drop table legacy_cart — v1.42.0 may fail on the schema it leaves, and rows written since may be lost",
		"✓ 0042_add_cart_owner expand: add column carts.owner_id — safe to keep", "blocked: the engine refuses this rollback across a contract migration",
		"newest backups: media unknown · postgres 3h ago · uploads 26h ago STALE",
		"✗ errors SPIKE", "✗ lock held by alice@ops1",
		"lock: held by alice@ops1 for 3m",
		"as bob@laptop",
		"y confirm   enter/esc cancel")
	cmd = update(m, press("y"))
	if cmd == nil {
		t.Fatal("y sent nothing")
	}
	cmd()
	got := received(t, rec)
	if got.Kind != core.CmdRollback || got.Ref != production || got.Version != "v1.42.0" || got.Actor.Name != "bob" {
		t.Fatalf("engine got %+v", got)
	}
}

func TestRollbackToAnOlderRelease(t *testing.T) {
	m, _, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdRollback)
	run(t, m, update(m, press("r")))
	update(m, press("down"))
	update(m, press("enter"))
	mustContain(t, view(m), "rollback api in production: v1.43.0 → v1.41.2")
	update(m, press("y"))()
	if got := received(t, rec); got.Version != "v1.41.2" {
		t.Fatalf("rolled back to %q, want the chosen v1.41.2", got.Version)
	}
}

// An idle environment rolls back from what it runs to the release before.
func TestRollbackFromIdlePreselectsPrevious(t *testing.T) {
	m, _, _ := newConsoleWith(t, idleSnapshot(), history()[:2], testOptions())
	run(t, m, update(m, press("r")))
	if m.picker == nil || m.picker.from != "v1.42.0" || m.picker.chosen().version != "v1.41.2" {
		t.Fatalf("picker = %+v", m.picker)
	}
	update(m, press("enter"))
	mustContain(t, view(m), "rollback api in production: v1.42.0 → v1.41.2", "migrations v1.42.0 carries over v1.41.2 (they stay applied):", "✓ 0041_add_cart_index expand: create index carts — safe to keep", "failing gates: none")
}

func TestRollbackWithNothingToRollBackTo(t *testing.T) {
	m, _, _ := newConsoleWith(t, idleSnapshot(), history()[1:2], testOptions())
	wide(m)
	run(t, m, update(m, press("r")))
	if m.mode != modeMain {
		t.Fatal("a picker with nothing in it opened")
	}
	mustContain(t, view(m), "rollback refused: nothing to roll back to in production: no other release ran there")
}

func TestEnterAndEscCancel(t *testing.T) {
	for _, k := range []string{"enter", "esc"} {
		t.Run(k, func(t *testing.T) {
			m, _, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdRollback)
			run(t, m, update(m, press("r")))
			update(m, press("enter"))
			if m.confirm == nil {
				t.Fatal("no confirmation")
			}
			// Stray keys while the dialog is open do nothing.
			if cmd := update(m, press("n")); cmd != nil || m.confirm == nil {
				t.Fatal("a key other than y, enter or esc acted on the dialog")
			}
			if cmd := update(m, press(k)); cmd != nil {
				t.Fatalf("%s returned a command; it must cancel", k)
			}
			if m.confirm != nil || m.mode != modeMain {
				t.Fatalf("%s left the dialog open", k)
			}
			mustContain(t, view(m), "rollback cancelled")
			if len(rec.got) != 0 {
				t.Fatal("a cancelled rollback reached the engine")
			}
		})
	}
}

func TestEscCancelsPicker(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	run(t, m, update(m, press("r")))
	update(m, press("esc"))
	if m.mode != modeMain || m.picker != nil {
		t.Fatal("esc left the picker open")
	}
	mustContain(t, view(m), "rollback cancelled")
}

// With the type-name policy, y is just a letter; only the service name
// and enter confirm, and a wrong name refuses.
func TestTypeNameConfirmation(t *testing.T) {
	o := testOptions()
	o.Confirm = map[string]string{"production": ConfirmTypeName}
	m, _, rec := newConsole(t, canarySnapshot(), o, core.CmdRollback)
	run(t, m, update(m, press("r")))
	update(m, press("enter"))
	mustContain(t, view(m), "type api and press enter to confirm")
	if cmd := update(m, press("y")); cmd != nil {
		t.Fatal("y confirmed under the type-name policy")
	}
	update(m, press("backspace"))
	typeText(m, "apj")
	if cmd := update(m, press("enter")); cmd != nil {
		t.Fatal("a wrong name confirmed")
	}
	mustContain(t, view(m), `rollback refused: "apj" is not the service name "api"`)
	if len(rec.got) != 0 {
		t.Fatal("a refused rollback reached the engine")
	}

	run(t, m, update(m, press("r")))
	update(m, press("enter"))
	typeText(m, "api")
	cmd := update(m, press("enter"))
	if cmd == nil {
		t.Fatal("the right name did not confirm")
	}
	cmd()
	if got := received(t, rec); got.Version != "v1.42.0" {
		t.Fatalf("got %+v", got)
	}
}

// Other environments keep the y policy.
func TestTypeNameOnlyWhereConfigured(t *testing.T) {
	o := testOptions()
	o.Confirm = map[string]string{"staging": ConfirmTypeName}
	m, _, _ := newConsole(t, canarySnapshot(), o)
	update(m, press("a"))
	if m.confirm == nil || m.confirm.typeName != "" {
		t.Fatalf("production should confirm with y: %+v", m.confirm)
	}
}

func TestReadOnlyRefusesWithReason(t *testing.T) {
	o := testOptions()
	o.ReadOnly, o.ReadOnlyReason = true, "guest session over SSH"
	m, _, rec := newConsole(t, canarySnapshot(), o, core.CmdPromote, core.CmdRollback, core.CmdAbort, core.CmdPause, core.CmdBackupNow)
	wide(m)
	for _, k := range []string{"p", "P", "r", "a", "space", "b"} {
		if cmd := update(m, press(k)); cmd != nil {
			t.Fatalf("%s returned a command in read-only mode", k)
		}
		if m.mode != modeMain {
			t.Fatalf("%s opened a dialog in read-only mode", k)
		}
		mustContain(t, view(m), "refused: guest session over SSH")
	}
	if len(rec.got) != 0 {
		t.Fatal("a read-only console reached the engine")
	}
	lines := strings.Split(view(m), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"read-only: guest session over SSH", "(p promote)", "(r rollback)", "(a abort)", "l logs", "? help"} {
		if !strings.Contains(last, want) {
			t.Errorf("read-only footer lacks %q: %q", want, last)
		}
	}
}

// Keys for actions that make no sense now stay visible, dimmed, and say
// why when pressed.
func TestDisabledActionsSayWhy(t *testing.T) {
	m, _, _ := newConsole(t, idleSnapshot(), testOptions())
	wide(m)
	for k, want := range map[string]string{
		"p":     "promote refused: nothing to promote: production already runs v1.42.0, as staging does",
		"P":     "full-promote refused: nothing to promote: production already runs v1.42.0, as staging does",
		"a":     "abort refused: nothing to abort: no rollout in flight in production",
		"space": "pause refused: nothing to pause: no rollout in flight in production",
	} {
		if cmd := update(m, press(k)); cmd != nil || m.mode != modeMain {
			t.Fatalf("%s acted with nothing to act on", k)
		}
		mustContain(t, view(m), want)
	}
	lines := strings.Split(view(m), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "(p promote)") || !strings.Contains(last, "(a abort)") || !strings.Contains(last, " r rollback") {
		t.Fatalf("footer should dim promote and abort and offer rollback: %q", last)
	}
	update(m, press("?"))
	mustContain(t, view(m), "promote (disabled: nothing to promote: production already runs v1.42.0, as staging does)")
}

func TestRollbackRefusedWhenNothingRuns(t *testing.T) {
	snap := core.NewSnapshot("shop", []string{"api"}, []string{"staging", "production"})
	m, _, _ := newConsoleWith(t, snap, nil, testOptions())
	if cmd := update(m, press("r")); cmd != nil {
		t.Fatal("r read history with nothing running")
	}
	mustContain(t, view(m), "rollback refused: nothing to roll back: no release runs in production")
}

// When staging runs a release production does not, the strip says so and
// p offers exactly that promotion.
func TestReadyToPromote(t *testing.T) {
	snap := idleSnapshot()
	snap.Targets[staging] = core.TargetStatus{Ref: staging, Current: "v1.43.0", Healthy: true}
	m, _, rec := newConsole(t, snap, testOptions(), core.CmdPromote)
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	mustContain(t, view(m), "ready to promote v1.43.0 to production")
	update(m, press("p"))
	mustContain(t, view(m), "promote api in production: v1.42.0 → v1.43.0", "starts the rollout of v1.43.0 in production")
	update(m, press("y"))()
	if got := received(t, rec); got.Version != "v1.43.0" {
		t.Fatalf("promote sent %+v", got)
	}
}

func TestFullPromoteAndAbortDialogs(t *testing.T) {
	m, _, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdFullPromote, core.CmdAbort)
	update(m, press("P"))
	mustContain(t, view(m), "full promote api in production: v1.42.0 → v1.43.0", "100% of traffic now, skipping the remaining steps")
	update(m, press("y"))()
	if got := received(t, rec); got.Kind != core.CmdFullPromote || got.Version != "v1.43.0" {
		t.Fatalf("got %+v", got)
	}
	update(m, press("a"))
	mustContain(t, view(m), "abort api in production: v1.43.0 → v1.42.0", "traffic goes back to v1.42.0; v1.43.0 is kept for inspection")
	update(m, press("y"))()
	if got := received(t, rec); got.Kind != core.CmdAbort {
		t.Fatalf("got %+v", got)
	}
}

func TestResizeSwitchesLayout(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	wide := strings.Split(view(m), "\n")
	if len(wide) != 48 || !strings.Contains(wide[2], "Pipeline") || !strings.Contains(wide[2], "Errors") {
		t.Fatalf("160x48 should put Pipeline and Errors side by side; line 3 = %q", wide[2])
	}
	update(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	narrow := strings.Split(view(m), "\n")
	if len(narrow) != 24 || strings.Contains(narrow[2], "Errors") {
		t.Fatalf("80x24 should stack panes; line 3 = %q", narrow[2])
	}
}

func TestThemeColoursTheView(t *testing.T) {
	o := testOptions()
	o.NoColor = false
	m, _, _ := newConsole(t, canarySnapshot(), o)
	if !strings.Contains(view(m), "\x1b[") {
		t.Fatal("colour on, but the view has no colour sequences")
	}
	m2, _, _ := newConsole(t, canarySnapshot(), testOptions())
	if strings.Contains(view(m2), "\x1b") {
		t.Fatal("NoColor view contains escape sequences")
	}
}

func TestSpacePausesAndResumes(t *testing.T) {
	snap := canarySnapshot()
	m, _, _ := newConsole(t, snap, testOptions())
	update(m, press("space"))
	if m.confirm == nil || m.confirm.cmd.Kind != core.CmdPause {
		t.Fatalf("space on a running rollout should ask to pause, got %+v", m.confirm)
	}
	update(m, press("esc"))

	d := snap.Deployments[production]
	d.State = core.DeployPaused
	snap.Deployments[production] = d
	m, _, _ = newConsole(t, snap, testOptions())
	update(m, press("space"))
	if m.confirm == nil || m.confirm.cmd.Kind != core.CmdResume {
		t.Fatalf("space on a paused rollout should ask to resume, got %+v", m.confirm)
	}
}

func TestCommandErrorIsShown(t *testing.T) {
	m, _, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdAbort)
	rec.err = errors.New("target unreachable")
	update(m, press("a"))
	update(m, update(m, press("y"))())
	if !m.statusBad || !strings.Contains(view(m), "abort api/production failed: target unreachable") {
		t.Fatalf("error not shown:\n%s", view(m))
	}
}

func TestUnhandledCommandSaysUnavailable(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	run(t, m, update(m, press("r")))
	update(m, press("enter"))
	update(m, update(m, press("y"))())
	if !strings.Contains(m.status, "not available in this configuration") {
		t.Fatalf("status = %q", m.status)
	}
}

// Events published to the engine reach the screen on the next flush tick,
// all of them in one redraw.
func TestEventsAppliedOnFlush(t *testing.T) {
	m, eng, _ := newConsole(t, idleSnapshot(), testOptions())
	for w := 5; w <= 25; w += 10 {
		eng.Publish(core.Event{Kind: core.EvDeployment, Ref: production, Key: "dep", Deployment: &core.Deployment{
			Ref: production, Version: "v1.44.0", From: "v1.42.0", State: core.DeployProgressing, Weight: w}})
	}
	got := make(chan tea.Msg, 1)
	go func() { got <- m.waitReady()() }()
	var msg tea.Msg
	select {
	case msg = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no ready message after events were published")
	}
	tick := update(m, msg)
	if tick == nil {
		t.Fatal("ready scheduled no flush")
	}
	if again := update(m, readyMsg{}); again != nil {
		t.Fatal("a second ready before the flush scheduled a second flush")
	}
	if strings.Contains(view(m), "v1.44.0") {
		t.Fatal("events applied before the flush tick")
	}
	flush := tick()
	if _, ok := flush.(flushMsg); !ok {
		t.Fatalf("tick produced %T", flush)
	}
	if next := update(m, flush); next == nil {
		t.Fatal("flush did not go back to waiting for events")
	}
	mustContain(t, view(m), "▸ v1.44.0 25%")
}

// After a rollback the engine's notice is what the status line says.
func TestNoticeReachesStatusLine(t *testing.T) {
	m, eng, _ := newConsole(t, canarySnapshot(), testOptions())
	eng.Publish(core.Event{Kind: core.EvNotice, Ref: production, Final: true, Notice: "rolled back to v1.42.0"})
	eng.Publish(core.Event{Kind: core.EvNotice, Ref: core.Ref{Service: "web", Env: "production"}, Final: true, Notice: "web: something else"})
	update(m, flushMsg{})
	mustContain(t, view(m), " rolled back to v1.42.0")
	if strings.Contains(view(m), "something else") {
		t.Fatal("another service's notice took the status line")
	}
}

func TestQuitClosesSubscription(t *testing.T) {
	m, eng, _ := newConsole(t, idleSnapshot(), testOptions())
	if eng.Subscribers() != 1 {
		t.Fatalf("subscribers = %d", eng.Subscribers())
	}
	cmd := update(m, press("q"))
	if cmd == nil {
		t.Fatal("q returned no command")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("q did not quit")
	}
	if eng.Subscribers() != 0 {
		t.Fatal("quitting left the subscription open")
	}
}

// Quitting while an operation the person started still runs asks first,
// and says the operation continues in the engine.
func TestQuitAsksWhileOwnOperationRuns(t *testing.T) {
	snap := canarySnapshot()
	snap.Operations["op2"] = core.Operation{ID: "op2", Ref: production, Kind: "rollback", State: core.OpRunning, Actor: core.Actor{Name: "bob", Host: "laptop"}}
	m, eng, _ := newConsole(t, snap, testOptions())
	if cmd := update(m, press("q")); cmd != nil {
		t.Fatal("q quit while the person's rollback runs")
	}
	mustContain(t, view(m), "1 operation(s) you started are still running", "continue in the engine after you quit")
	update(m, press("esc"))
	if m.mode != modeMain || eng.Subscribers() != 1 {
		t.Fatal("esc should stay")
	}
	update(m, press("q"))
	cmd := update(m, press("y"))
	if cmd == nil {
		t.Fatal("y did not quit")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("y did not quit")
	}
}

// Someone else's operation does not hold the person back.
func TestQuitIgnoresOthersOperations(t *testing.T) {
	snap := canarySnapshot()
	snap.Operations["op2"] = core.Operation{ID: "op2", Ref: production, Kind: "rollback", State: core.OpRunning, Actor: core.Actor{Name: "alice"}}
	m, _, _ := newConsole(t, snap, testOptions())
	if cmd := update(m, press("q")); cmd == nil {
		t.Fatal("q asked although the operation is not the person's")
	}
}

func TestHelpFromKeymap(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	update(m, press("?"))
	mustContain(t, view(m), "Help", "P", "full promote", "next theme", "mouse on/off", "1-9", "service", "shift+tab")
	update(m, press("?"))
	if m.mode != modeMain {
		t.Fatal("? did not close help")
	}
}

func TestFocusCycles(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	mustContain(t, view(m), "▸ Pipeline")
	update(m, press("tab"))
	mustContain(t, view(m), "▸ Errors")
	update(m, press("tab"))
	update(m, press("tab"))
	mustContain(t, view(m), "▸ Activity")
	update(m, press("tab"))
	mustContain(t, view(m), "▸ Pipeline")
	update(m, press("shift+tab"))
	mustContain(t, view(m), "▸ Activity")
	if strings.Contains(view(m), "▸ Pipeline") {
		t.Fatal("two panes focused")
	}
}

func TestEnvironmentAndServiceKeys(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	if m.focusRef() != production {
		t.Fatalf("focus = %v", m.focusRef())
	}
	update(m, press("e"))
	if m.focusRef() != staging {
		t.Fatalf("e moved to %v", m.focusRef())
	}
	mustContain(t, view(m), "Errors · staging")
	update(m, press("e"))
	if m.focusRef() != production {
		t.Fatalf("e did not wrap: %v", m.focusRef())
	}
	update(m, press("2"))
	if m.service != "web" {
		t.Fatalf("2 chose %q", m.service)
	}
	mustContain(t, view(m), " web ")
	update(m, press("9"))
	mustContain(t, view(m), "no service 9: this project has 2")
	update(m, press("1"))
	if m.service != "api" {
		t.Fatal("1 did not go back to api")
	}
}

func TestThemeAndMouseKeys(t *testing.T) {
	o := testOptions()
	o.NoColor = false
	m, _, _ := newConsole(t, canarySnapshot(), o)
	before := view(m)
	update(m, press("t"))
	if m.theme.Name != "high-contrast" {
		t.Fatalf("t chose %q after dark", m.theme.Name)
	}
	if view(m) == before {
		t.Fatal("the theme changed but the screen did not")
	}
	mustContain(t, view(m), "theme: high-contrast")
	if m.View().MouseMode != tea.MouseModeNone {
		t.Fatal("mouse on by default")
	}
	update(m, press("m"))
	if m.View().MouseMode != tea.MouseModeCellMotion {
		t.Fatal("m did not turn the mouse on")
	}
	update(m, press("m"))
	if m.View().MouseMode != tea.MouseModeNone {
		t.Fatal("m did not turn the mouse off")
	}
}

type bg struct{ r, g, b uint32 }

func (c bg) RGBA() (r, g, b, a uint32) { return c.r, c.g, c.b, 0xffff }

func TestBackgroundPicksTheme(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	update(m, tea.BackgroundColorMsg{Color: bg{0xffff, 0xffff, 0xffff}})
	if m.theme.Name != "light" {
		t.Fatalf("light background gave %q", m.theme.Name)
	}
	update(m, tea.BackgroundColorMsg{Color: bg{0, 0, 0}})
	if m.theme.Name != "dark" {
		t.Fatalf("dark background gave %q", m.theme.Name)
	}
	o := testOptions()
	o.ThemeName = "okabe-ito"
	m2, _, _ := newConsole(t, canarySnapshot(), o)
	update(m2, tea.BackgroundColorMsg{Color: bg{0xffff, 0xffff, 0xffff}})
	if m2.theme.Name != "okabe-ito" {
		t.Fatalf("a chosen theme was replaced by %q", m2.theme.Name)
	}
}
