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
	case "pgdown":
		return tea.KeyPressMsg{Code: tea.KeyPgDown}
	case "pgup":
		return tea.KeyPressMsg{Code: tea.KeyPgUp}
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

// fixtureConsole opens a console on an engine holding snap, with the
// store holding history() and releases(). It has no rollout controller:
// for what the screen draws, not for what it may do.
func fixtureConsole(t *testing.T, snap core.Snapshot, o Options) (*Model, *core.Engine) {
	t.Helper()
	eng := storeEngine(t, snap, history(), releases())
	m := newModel(eng, o)
	t.Cleanup(m.sub.Close)
	return m, eng
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

// wide gives long messages room.
func wide(m *Model) { update(m, tea.WindowSizeMsg{Width: 200, Height: 50}) }

func mustContain(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("view lacks %q:\n%s", w, got)
		}
	}
}

// topIs returns the open dialog as a T, failing when another (or none)
// has the keyboard.
func topIs[T dialog](t *testing.T, m *Model) T {
	t.Helper()
	d, ok := m.dialogs.top().(T)
	if !ok {
		var want T
		t.Fatalf("the top dialog is %T, want %T; the screen:\n%s", m.dialogs.top(), want, view(m))
	}
	return d
}

func onMain(t *testing.T, m *Model) {
	t.Helper()
	if d := m.dialogs.top(); d != nil {
		t.Fatalf("a %T is still open:\n%s", d, view(m))
	}
}

func lastLine(m *Model) string {
	lines := strings.Split(view(m), "\n")
	return lines[len(lines)-1]
}

func stripLine(m *Model) string { return strings.Split(view(m), "\n")[1] }

// audited lists the audit log's actions, oldest first.
func audited(t *testing.T, eng *core.Engine) []string {
	t.Helper()
	entries, err := eng.Store().Audit(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Action+":"+e.Actor.Name)
	}
	return out
}

// With a release ready, the strip says so and p starts exactly that
// rollout, after a confirmation that lists the gates as the engine
// evaluates them.
func TestReadyToPromote(t *testing.T) {
	l := newLive(t).ready()
	m := l.console(160, 48)
	mustContain(t, stripLine(m), "ready to promote v1.43.0 to production")
	if cmd := update(m, press("p")); cmd != nil {
		t.Fatal("p must only open the confirmation, not send")
	}
	topIs[*confirmDialog](t, m)
	mustContain(t, view(m), "Confirm promote", "promote api in production: v1.42.0 → v1.43.0", "starts the rollout of v1.43.0 in production",
		"gates, as the engine evaluates them now:", "✓ pipeline pipeline for v1.43.0 is green", "✓ errors", "✓ backups", "✓ lock",
		"lock: free", "as bob@laptop", "also watching: carol@bastion-2 (12m)", "y confirm   enter/esc cancel")
	cmd := update(m, press("y"))
	if cmd == nil {
		t.Fatal("y did not send the command")
	}
	update(m, cmd())
	mustContain(t, view(m), "promote api/production: v1.43.0 is taking 25% of api/production")
	l.settle(m, "the canary runs", inPhase(core.PhaseRolling))
	mustContain(t, view(m), "production v1.42.0 ▸ v1.43.0 25%", "rollout production · v1.43.0 · in flight at 25%")
}

// A promote during the canary moves it a step; the confirmation says the
// gates were checked when it started.
func TestPromoteAdvancesTheCanary(t *testing.T) {
	l := newLive(t).canary()
	m := l.console(160, 48)
	update(m, press("p"))
	mustContain(t, view(m), "promote api in production: v1.42.0 → v1.43.0", "v1.43.0 now has 25% of traffic; promote ends the current step",
		"gates: checked when the rollout of v1.43.0 started")
	update(m, update(m, press("y"))())
	mustContain(t, view(m), "advanced one step")
	l.settle(m, "the rollout completes", func(s core.Situation) bool { return s.Phase == core.PhaseIdle && s.Stable == "v1.43.0" })
	mustContain(t, view(m), "production v1.43.0", "rollout production · v1.43.0 · complete 0s ago")
}

// Finding 1: after the analysis failed, a is offered and works — traffic
// goes back to the stable release — and the screen says so.
func TestAbortAfterAFailedAnalysis(t *testing.T) {
	l := newLive(t).incident()
	m := l.console(120, 40)
	mustContain(t, view(m), "rollout production · v1.43.0 · STOPPED at 25%", "its analysis failed", "25% of traffic still goes to v1.43.0", "or roll back")
	if strings.Contains(lastLine(m), "(a abort)") || !strings.Contains(lastLine(m), "a abort") {
		t.Fatalf("the footer does not offer abort after the failed analysis: %q", lastLine(m))
	}
	update(m, press("a"))
	mustContain(t, view(m), "abort api in production: v1.43.0 → v1.42.0", "traffic goes back to v1.42.0; v1.43.0 is kept for inspection")
	update(m, update(m, press("y"))())
	mustContain(t, view(m), "abort api/production: aborted: v1.42.0 serves all traffic; v1.43.0 kept for inspection")
	if st, _ := l.prod.Status(context.Background(), production); st.Current != "v1.42.0" || st.Weight != 0 {
		t.Fatalf("target after abort = %+v; want all traffic on v1.42.0", st)
	}
	l.settle(m, "aborted", inPhase(core.PhaseAborted))
	mustContain(t, view(m), "production aborted by bob 0s ago: v1.42.0 serves, v1.43.0 kept", "aborted by bob 0s ago: all", "v1.43.0 takes no traffic: aborted by bob")
	if !strings.Contains(lastLine(m), "(a abort)") {
		t.Fatalf("abort is still offered after it ran: %q", lastLine(m))
	}
}

// Finding 2: a pause shows at once on the rollout line; promote waits for
// a resume, and space offers the resume.
func TestPauseShowsAtOnce(t *testing.T) {
	l := newLive(t).canary()
	m := l.console(160, 48)
	update(m, press("space"))
	mustContain(t, view(m), "pause api in production: the rollout of v1.43.0 at 25%", "holds before its next step until someone resumes it")
	update(m, update(m, press("y"))())
	l.settle(m, "paused", inPhase(core.PhasePaused))
	mustContain(t, view(m), "rollout production · v1.43.0 · PAUSED at 25% by bob (0s)", "production v1.43.0 paused at 25% by bob")
	mustContain(t, lastLine(m), "space resume", "(p promote)")
	update(m, press("p"))
	mustContain(t, view(m), "promote refused: the rollout of v1.43.0 is paused by bob: resume it first")
	update(m, press("space"))
	mustContain(t, view(m), "resume api in production: the rollout of v1.43.0 at 25%")
	update(m, update(m, press("y"))())
	l.settle(m, "going on", inPhase(core.PhaseRolling))
	mustContain(t, view(m), "in flight at 25%")
}

// Finding 3: after a rollback the screen settles: the strip says what
// happened, by whom, and what is held; the spike is marked past.
func TestCalmAfterRollback(t *testing.T) {
	l := newLive(t).rolledBack()
	m := l.console(160, 48)
	strip := stripLine(m)
	mustContain(t, strip, "✓ production rolled back to v1.42.0 by ana 0s ago · v1.43.0 held")
	if strings.Contains(strip, "SPIKE") || strings.Contains(strip, "needs you") {
		t.Fatalf("the strip still reads as an emergency: %q", strip)
	}
	mustContain(t, view(m), "SPIKE (past)", "v1.43.0 no longer serves: rolled back to v1.42.0 by ana 0s ago",
		"rollout production · v1.43.0 · rolled back to v1.42.0 by ana 0s ago")
	if !strings.Contains(lastLine(m), "(a abort)") || !strings.Contains(lastLine(m), "(p promote)") {
		t.Fatalf("abort or promote offered after the rollback: %q", lastLine(m))
	}
	update(m, press("p"))
	mustContain(t, view(m), "promote refused: blocked by errors: error spike in production")
}

// r opens the history with the engine's choice preselected; the
// confirmation then says exactly what will happen, and y does it.
func TestRollbackPickerAndConfirmation(t *testing.T) {
	l := newLive(t).incident()
	m := l.console(200, 50)
	cmd := update(m, press("r"))
	onMain(t, m) // the history is read first
	run(t, m, cmd)
	p := topIs[*historyDialog](t, m)
	mustContain(t, view(m), "Rollback production · history", "roll api in production back from v1.43.0 to:", "▸ v1.42.0", "v1.41.2")
	for _, it := range p.items {
		if it.version == "v1.43.0" {
			t.Fatal("the release being rolled back is offered as a target")
		}
	}
	update(m, press("j"))
	if p.chosen().version != "v1.41.2" {
		t.Fatalf("j moved to %s", p.chosen().version)
	}
	update(m, press("k"))
	update(m, press("enter"))
	topIs[*confirmDialog](t, m)
	mustContain(t, view(m),
		"rollback api in production: v1.43.0 → v1.42.0",
		"v1.42.0 serves all of production at once (no steps, no analysis)",
		"migrations v1.43.0 carries over v1.42.0 (they stay applied):",
		"✓ 0042_add_cart_owner expand: add column carts.owner_id — safe to keep",
		"newest backups: postgres 3h ago · uploads 30h ago",
		"v1.43.0 will be held: automation will not promote it again until a person clears it",
		"lock: free", "as bob@laptop", "also watching: carol@bastion-2 (12m)",
		"y confirm   enter/esc cancel")
	update(m, update(m, press("y"))())
	mustContain(t, view(m), "rollback api/production: rolled back to v1.42.0")
	if st, _ := l.prod.Status(context.Background(), production); st.Current != "v1.42.0" || st.Weight != 0 {
		t.Fatalf("target after rollback = %+v", st)
	}
}

// A rollback across a contract migration is one the engine refuses
// without a person's override: r says so, with how to go ahead from the
// CLI, and opens nothing.
func TestRollbackAcrossAContractSaysHow(t *testing.T) {
	l := newLiveWith(t, releases()).incident()
	m := l.console(200, 50)
	if cmd := update(m, press("r")); cmd != nil {
		t.Fatal("r read the history of a rollback the engine refuses")
	}
	onMain(t, m)
	mustContain(t, view(m), "rollback refused: rolling back to v1.42.0 crosses contract migration 0043_drop_legacy_cart")
	if !strings.Contains(m.msg.text, `ripcord rollback api --env production --to v1.42.0 --override migrations --reason "why"`) {
		t.Fatalf("the refusal does not say how to go ahead: %q", m.msg.text)
	}
	if !strings.Contains(lastLine(m), "(r rollback)") {
		t.Fatalf("the footer offers a rollback the engine refuses: %q", lastLine(m))
	}
}

func TestRollbackToAnOlderRelease(t *testing.T) {
	l := newLive(t).incident()
	m := l.console(120, 40)
	run(t, m, update(m, press("r")))
	update(m, press("down"))
	update(m, press("enter"))
	mustContain(t, view(m), "rollback api in production: v1.43.0 → v1.41.2", "v1.41.2 serves all of production at once")
	update(m, update(m, press("y"))())
	if st, _ := l.prod.Status(context.Background(), production); st.Current != "v1.41.2" {
		t.Fatalf("rolled back to %q, want the chosen v1.41.2", st.Current)
	}
}

// An idle environment rolls back from what it runs to the release before.
func TestRollbackFromIdlePreselectsPrevious(t *testing.T) {
	l := newLive(t)
	m := l.console(160, 48)
	run(t, m, update(m, press("r")))
	p := topIs[*historyDialog](t, m)
	if p.from != "v1.42.0" || p.chosen().version != "v1.41.2" {
		t.Fatalf("picker from %s, chosen %s", p.from, p.chosen().version)
	}
	update(m, press("enter"))
	mustContain(t, view(m), "rollback api in production: v1.42.0 → v1.41.2", "migrations v1.42.0 carries over v1.41.2 (they stay applied):", "✓ 0041_add_cart_index expand: create index carts — safe to keep")
}

// Staging has never run anything but v1.42.0: nothing to roll back to,
// and r says so without opening anything.
func TestRollbackWithNothingToRollBackTo(t *testing.T) {
	l := newLive(t)
	m := l.console(200, 50)
	update(m, press("e"))
	if cmd := update(m, press("r")); cmd != nil {
		t.Fatal("r read history with nothing to roll back to")
	}
	onMain(t, m)
	mustContain(t, view(m), "rollback refused: nothing to roll back to: no release ran in staging before v1.42.0")
}

// Enter, the key pressed by reflex, and esc cancel a confirmation; any
// other key does nothing; nothing reaches the engine.
func TestEnterAndEscCancel(t *testing.T) {
	for _, k := range []string{"enter", "esc"} {
		t.Run(k, func(t *testing.T) {
			l := newLive(t).incident()
			m := l.console(120, 40)
			run(t, m, update(m, press("r")))
			update(m, press("enter"))
			topIs[*confirmDialog](t, m)
			if cmd := update(m, press("n")); cmd != nil {
				t.Fatal("a key other than y, enter or esc acted on the dialog")
			}
			topIs[*confirmDialog](t, m)
			if cmd := update(m, press(k)); cmd != nil {
				t.Fatalf("%s returned a command; it must cancel", k)
			}
			onMain(t, m)
			mustContain(t, view(m), "rollback cancelled")
			for _, a := range audited(t, l.eng) {
				if strings.HasPrefix(a, "rollback") {
					t.Fatal("a cancelled rollback reached the engine")
				}
			}
		})
	}
}

func TestEscCancelsPicker(t *testing.T) {
	l := newLive(t).incident()
	m := l.console(120, 40)
	run(t, m, update(m, press("r")))
	update(m, press("esc"))
	onMain(t, m)
	mustContain(t, view(m), "rollback cancelled")
}

// With the type-name policy, y is just a letter; only the service name
// and enter confirm, and a wrong name refuses.
func TestTypeNameConfirmation(t *testing.T) {
	l := newLive(t).incident()
	m := l.console(120, 40)
	m.s.opts.Confirm = map[string]string{"production": ConfirmTypeName}
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

	run(t, m, update(m, press("r")))
	update(m, press("enter"))
	typeText(m, "api")
	cmd := update(m, press("enter"))
	if cmd == nil {
		t.Fatal("the right name did not confirm")
	}
	update(m, cmd())
	if st, _ := l.prod.Status(context.Background(), production); st.Current != "v1.42.0" || st.Candidate != "" {
		t.Fatalf("target after the typed rollback = %+v", st)
	}
}

// Other environments keep the y policy.
func TestTypeNameOnlyWhereConfigured(t *testing.T) {
	l := newLive(t).incident()
	m := l.console(120, 40)
	m.s.opts.Confirm = map[string]string{"staging": ConfirmTypeName}
	update(m, press("a"))
	if c := topIs[*confirmDialog](t, m); c.typeName != "" {
		t.Fatalf("production should confirm with y: %+v", c)
	}
}

func TestReadOnlyRefusesWithReason(t *testing.T) {
	l := newLive(t).incident()
	m := l.console(200, 50)
	m.s.opts.ReadOnly, m.s.opts.ReadOnlyReason = true, "guest session over SSH"
	for _, k := range []string{"p", "P", "r", "a", "space", "b"} {
		if cmd := update(m, press(k)); cmd != nil {
			t.Fatalf("%s returned a command in read-only mode", k)
		}
		onMain(t, m)
		mustContain(t, view(m), "refused: guest session over SSH")
	}
	for _, want := range []string{"read-only", "(p promote)", "(r rollback)", "(a abort)", "l logs", "? help", "q quit"} {
		if !strings.Contains(lastLine(m), want) {
			t.Errorf("read-only footer lacks %q: %q", want, lastLine(m))
		}
	}
}

// Keys for actions the engine would refuse stay visible, dimmed, and say
// the engine's reason when pressed and in help.
func TestDisabledActionsSayWhy(t *testing.T) {
	l := newLive(t)
	m := l.console(200, 50)
	for k, want := range map[string]string{
		"p":     "promote refused: nothing to promote: production already runs v1.42.0, as staging does",
		"P":     "full-promote refused: nothing to promote: production already runs v1.42.0, as staging does",
		"a":     "abort refused: nothing to abort: no rollout in flight in production",
		"space": "pause refused: nothing to pause: no rollout in flight in production",
	} {
		if cmd := update(m, press(k)); cmd != nil {
			t.Fatalf("%s acted with nothing to act on", k)
		}
		onMain(t, m)
		mustContain(t, view(m), want)
	}
	last := lastLine(m)
	if !strings.Contains(last, "(p promote)") || !strings.Contains(last, "(a abort)") || !strings.Contains(last, " r rollback") {
		t.Fatalf("footer should dim promote and abort and offer rollback: %q", last)
	}
	update(m, press("?"))
	mustContain(t, view(m), "disabled: nothing to promote:", "disabled: nothing to abort:")
}

// A console whose engine cannot act (its providers did not start) offers
// no action, and every refusal names the cause.
func TestUnavailableEngineSaysWhy(t *testing.T) {
	m, eng := fixtureConsole(t, canarySnapshot(), testOptions())
	eng.SetUnavailable("providers not started: another ripcord runs them; act from there")
	update(m, flushMsg{})
	wide(m)
	update(m, press("r"))
	mustContain(t, view(m), "rollback refused: providers not started: another ripcord runs them; act from there")
	for _, want := range []string{"(p promote)", "(r rollback)", "(a abort)"} {
		if !strings.Contains(lastLine(m), want) {
			t.Errorf("footer offers an action the engine cannot run: %q", lastLine(m))
		}
	}
}

func TestFullPromoteAndAbortDialogs(t *testing.T) {
	l := newLive(t).canary()
	m := l.console(120, 40)
	update(m, press("P"))
	mustContain(t, view(m), "full promote api in production: v1.42.0 → v1.43.0", "100% of traffic now, skipping the remaining steps")
	update(m, press("esc"))
	update(m, press("a"))
	mustContain(t, view(m), "abort api in production: v1.43.0 → v1.42.0", "traffic goes back to v1.42.0; v1.43.0 is kept for inspection")
	update(m, update(m, press("y"))())
	l.settle(m, "aborted", inPhase(core.PhaseAborted))
}

func TestCommandErrorIsShown(t *testing.T) {
	l := newLive(t).incident()
	m := l.console(200, 50)
	l.prod.mu.Lock()
	l.prod.failNext = errors.New("target unreachable")
	l.prod.mu.Unlock()
	update(m, press("a"))
	update(m, update(m, press("y"))())
	if m.msg.sev != core.SeverityCritical || !strings.Contains(view(m), "abort api/production failed:") || !strings.Contains(view(m), "target unreachable") {
		t.Fatalf("error not shown:\n%s", view(m))
	}
}

func TestResizeSwitchesLayout(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	wideLines := strings.Split(view(m), "\n")
	if len(wideLines) != 48 || !strings.Contains(wideLines[2], "Pipeline") || !strings.Contains(wideLines[2], "Errors") {
		t.Fatalf("160x48 should put Pipeline and Errors side by side; line 3 = %q", wideLines[2])
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
	m, _ := fixtureConsole(t, canarySnapshot(), o)
	if !strings.Contains(view(m), "\x1b[") {
		t.Fatal("colour on, but the view has no colour sequences")
	}
	m2, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	if strings.Contains(view(m2), "\x1b") {
		t.Fatal("NoColor view contains escape sequences")
	}
}

// Events published to the engine reach the screen on the next flush tick,
// all of them in one redraw.
func TestEventsAppliedOnFlush(t *testing.T) {
	m, eng := fixtureConsole(t, idleSnapshot(), testOptions())
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

// The engine's notices reach the message area with their severity, only
// for the service on screen, and are kept for the log viewer.
func TestNoticeReachesTheMessageArea(t *testing.T) {
	m, eng := fixtureConsole(t, canarySnapshot(), testOptions())
	eng.Publish(core.Event{Kind: core.EvNotice, Ref: production, Final: true, Severity: core.SeverityCritical, Notice: "error spike in api/production: v1.43.0 failed analysis"})
	eng.Publish(core.Event{Kind: core.EvNotice, Ref: core.Ref{Service: "web", Env: "production"}, Final: true, Notice: "web: something else"})
	update(m, flushMsg{})
	mustContain(t, view(m), " error spike in api/production: v1.43.0 failed analysis")
	if m.msg.sev != core.SeverityCritical {
		t.Fatalf("severity %q, want critical", m.msg.sev)
	}
	if strings.Contains(view(m), "something else") {
		t.Fatal("another service's notice took the message area")
	}
}

// A long message wraps in the message area instead of being cut, and says
// where to read it all when even that is not enough.
func TestLongMessagesWrap(t *testing.T) {
	m, eng := fixtureConsole(t, canarySnapshot(), testOptions())
	long := "providers not started: sentry-ingest: listen tcp 127.0.0.1:8765: bind: address already in use (another ripcord process on this machine, such as an open console, probably runs this config's providers; act from there, or stop it)"
	eng.Publish(core.Event{Kind: core.EvNotice, Ref: production, Final: true, Severity: core.SeverityWarn, Notice: long})
	update(m, flushMsg{})
	v := view(m)
	mustContain(t, v, "act from there, or stop it)")
	for i, l := range strings.Split(v, "\n") {
		if w := width(l); w > 80 {
			t.Fatalf("line %d is %d wide", i, w)
		}
	}
	eng.Publish(core.Event{Kind: core.EvNotice, Ref: production, Final: true, Notice: strings.Repeat("very long words ", 60) + "the end"})
	update(m, flushMsg{})
	mustContain(t, view(m), "… l shows it all")
	update(m, press("l"))
	mustContain(t, view(m), "the end")
}

func TestQuitClosesSubscription(t *testing.T) {
	m, eng := fixtureConsole(t, idleSnapshot(), testOptions())
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
	snap.Operations["op2"] = core.Operation{ID: "op2", Ref: production, Kind: "rollback", State: core.OpRunning, Actor: bob}
	m, eng := fixtureConsole(t, snap, testOptions())
	if cmd := update(m, press("q")); cmd != nil {
		t.Fatal("q quit while the person's rollback runs")
	}
	mustContain(t, view(m), "1 operation(s) you started are still running", "continue in the engine after you quit")
	update(m, press("esc"))
	onMain(t, m)
	if eng.Subscribers() != 1 {
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
	m, _ := fixtureConsole(t, snap, testOptions())
	if cmd := update(m, press("q")); cmd == nil {
		t.Fatal("q asked although the operation is not the person's")
	}
}

func TestHelpFromKeymap(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	update(m, press("?"))
	mustContain(t, view(m), "Help", "P", "full promote", "next theme", "mouse on/off", "1-9", "service", "shift+tab", "q", "quit")
	update(m, press("?"))
	onMain(t, m)
}

func TestFocusCycles(t *testing.T) {
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
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
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
	if m.s.focusRef() != production {
		t.Fatalf("focus = %v", m.s.focusRef())
	}
	update(m, press("e"))
	if m.s.focusRef() != staging {
		t.Fatalf("e moved to %v", m.s.focusRef())
	}
	mustContain(t, view(m), "Errors · staging")
	update(m, press("e"))
	if m.s.focusRef() != production {
		t.Fatalf("e did not wrap: %v", m.s.focusRef())
	}
	update(m, press("2"))
	if m.s.service != "web" {
		t.Fatalf("2 chose %q", m.s.service)
	}
	mustContain(t, view(m), " web ")
	update(m, press("9"))
	mustContain(t, view(m), "no service 9: this project has 2")
	update(m, press("1"))
	if m.s.service != "api" {
		t.Fatal("1 did not go back to api")
	}
}

func TestThemeAndMouseKeys(t *testing.T) {
	o := testOptions()
	o.NoColor = false
	m, _ := fixtureConsole(t, canarySnapshot(), o)
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
	m, _ := fixtureConsole(t, canarySnapshot(), testOptions())
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
	m2, _ := fixtureConsole(t, canarySnapshot(), o)
	update(m2, tea.BackgroundColorMsg{Color: bg{0xffff, 0xffff, 0xffff}})
	if m2.theme.Name != "okabe-ito" {
		t.Fatalf("a chosen theme was replaced by %q", m2.theme.Name)
	}
}

// Where nothing reads the service's migrations (the situation says why),
// the rollback picker's confirmation says they were not checked, never
// that the release carries none.
func TestRollbackPickerSaysUncheckedMigrations(t *testing.T) {
	p := &historyDialog{ref: production, from: "v1.43.0", rels: map[string]core.Release{
		"v1.43.0": {Service: "api", Version: "v1.43.0"}, "v1.42.0": {Service: "api", Version: "v1.42.0"}}}
	snap := core.Snapshot{Situations: map[core.Ref]core.Situation{production: {Ref: production, MigrationsUnread: "api's pipeline, github-actions, does not read a release's migrations"}}}
	lines := strings.Join(p.crossing(&screen{snap: &snap}, "v1.42.0").Lines(), "\n")
	if !strings.Contains(lines, "migrations: not checked: api's pipeline, github-actions, does not read") || strings.Contains(lines, "carries none") {
		t.Fatalf("the picker's crossing where nothing reads migrations:\n%s", lines)
	}
	snap.Situations[production] = core.Situation{Ref: production}
	if lines := strings.Join(p.crossing(&screen{snap: &snap}, "v1.42.0").Lines(), "\n"); !strings.Contains(lines, "v1.43.0 carries none over v1.42.0") {
		t.Fatalf("the picker's crossing where migrations are read:\n%s", lines)
	}
}

// The history picker follows the engine: a lock another person takes
// while it is open turns it into the refusal, naming the holder and the
// reason, and enter closes it without reaching the engine.
func TestHistoryPickerFollowsALockTakenWhileOpen(t *testing.T) {
	l := newLive(t)
	m := l.console(160, 48)
	run(t, m, update(m, press("r")))
	topIs[*historyDialog](t, m)
	bo := core.Actor{Name: "bo", Host: "bastion-2"}
	l.do(core.Command{Kind: core.CmdLock, Ref: production, Actor: bo, Reason: "release freeze until Monday"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		sit := l.eng.Snapshot().Situations[production]
		if p := sit.CommandFor(core.CmdRollback, alice); !p.Allowed && strings.Contains(p.Why, "release freeze until Monday") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the engine never refused a rollback under bo's lock: %+v", sit.Command(core.CmdRollback))
		}
		time.Sleep(2 * time.Millisecond)
	}
	update(m, flushMsg{})
	topIs[*historyDialog](t, m)
	mustContain(t, view(m), "release freeze until Monday", "esc back")
	if strings.Contains(lastLine(m), "enter choose") {
		t.Fatalf("the footer offers a choice the engine refuses: %q", lastLine(m))
	}
	if cmd := update(m, press("enter")); cmd != nil {
		t.Fatal("enter on a refused rollback reached the engine")
	}
	onMain(t, m)
	mustContain(t, view(m), "rollback refused:", "release freeze until Monday")
}

// An operation whose answer this console has had is over, even while the
// engine's record of it has not reached the console yet (the answer and
// the events travel apart): q quits without asking about it.
func TestQuitDoesNotAskAboutAnOperationAlreadyAnswered(t *testing.T) {
	snap := canarySnapshot()
	snap.Operations["op2"] = core.Operation{ID: "op2", Ref: production, Kind: "rollback", State: core.OpRunning, Actor: bob}
	m, _ := fixtureConsole(t, snap, testOptions())
	m.running = 1
	update(m, resultMsg{cmd: core.Command{Kind: core.CmdRollback, Ref: production}, res: core.Result{OperationID: "op2", Outcome: "failed", Message: "unreachable: web-3"},
		err: errors.New("rollback api/production: unreachable: web-3")})
	cmd := update(m, press("q"))
	if cmd == nil {
		t.Fatalf("q asked about an operation already answered:\n%s", view(m))
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("q did not quit")
	}
}
