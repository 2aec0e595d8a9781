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
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

// recorder registers handlers that record every command reaching the
// engine.
type recorder struct {
	got chan core.Command
	err error
}

func newConsole(t *testing.T, snap core.Snapshot, o Options, kinds ...core.CommandKind) (*Model, *core.Engine, *recorder) {
	t.Helper()
	eng := engineWith(snap)
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

func TestConfirmWithYSendsCommand(t *testing.T) {
	m, _, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdPromote)
	if cmd := update(m, press("p")); cmd != nil {
		t.Fatal("p must only open the confirmation, not send")
	}
	if v := m.View().Content; !strings.Contains(v, "Confirm promote") || !strings.Contains(v, "v1.43.0 (now 25% of traffic)") {
		t.Fatalf("no confirmation dialog:\n%s", v)
	}
	cmd := update(m, press("y"))
	if cmd == nil {
		t.Fatal("y did not send the command")
	}
	msg := cmd()
	select {
	case got := <-rec.got:
		want := core.Command{Kind: core.CmdPromote, Ref: production, Version: "v1.43.0", Actor: core.Actor{Name: "bob", Host: "laptop"}}
		if got.Kind != want.Kind || got.Ref != want.Ref || got.Version != want.Version || got.Actor != want.Actor {
			t.Fatalf("engine got %+v, want %+v", got, want)
		}
	default:
		t.Fatal("the promote handler was not called")
	}
	update(m, msg)
	if v := m.View().Content; !strings.Contains(v, "promote api/production: moved to step 2 (50%)") {
		t.Fatalf("result not shown in the status line:\n%s", v)
	}
}

// The dialog says exactly what will happen and who else is watching.
func TestRollbackDialogSaysWhatHappens(t *testing.T) {
	m, eng, _ := newConsole(t, canarySnapshot(), testOptions())
	_, other := eng.Subscribe()
	defer other.Close()
	update(m, press("r"))
	v := m.View().Content
	for _, want := range []string{"roll api/production back from v1.43.0 to v1.42.0", "as bob@laptop", "1 other console(s) watching", "y confirm"} {
		if !strings.Contains(v, want) {
			t.Errorf("dialog lacks %q:\n%s", want, v)
		}
	}
	if m.confirm.cmd.Version != "v1.42.0" {
		t.Errorf("rollback targets %q, want the stable v1.42.0", m.confirm.cmd.Version)
	}
}

func TestEnterAndEscCancel(t *testing.T) {
	for _, k := range []string{"enter", "esc"} {
		t.Run(k, func(t *testing.T) {
			m, _, rec := newConsole(t, canarySnapshot(), testOptions(), core.CmdRollback)
			update(m, press("r"))
			if m.confirm == nil {
				t.Fatal("r opened no confirmation")
			}
			// Stray keys while the dialog is open do nothing.
			if cmd := update(m, press("n")); cmd != nil || m.confirm == nil {
				t.Fatal("a key other than y, enter or esc acted on the dialog")
			}
			if cmd := update(m, press(k)); cmd != nil {
				t.Fatalf("%s returned a command; it must cancel", k)
			}
			if m.confirm != nil {
				t.Fatalf("%s left the dialog open", k)
			}
			if !strings.Contains(m.View().Content, "rollback cancelled") {
				t.Fatalf("no cancel notice:\n%s", m.View().Content)
			}
			if len(rec.got) != 0 {
				t.Fatal("a cancelled rollback reached the engine")
			}
		})
	}
}

func TestReadOnlyRefusesWithReason(t *testing.T) {
	o := testOptions()
	o.ReadOnly, o.ReadOnlyReason = true, "guest session over SSH"
	m, _, rec := newConsole(t, canarySnapshot(), o, core.CmdPromote, core.CmdRollback, core.CmdAbort, core.CmdPause)
	for _, k := range []string{"p", "r", "a", "space"} {
		if cmd := update(m, press(k)); cmd != nil {
			t.Fatalf("%s returned a command in read-only mode", k)
		}
		if m.confirm != nil {
			t.Fatalf("%s opened a confirmation in read-only mode", k)
		}
		if !strings.Contains(m.View().Content, "refused: guest session over SSH") {
			t.Fatalf("%s: refusal reason not shown:\n%s", k, m.View().Content)
		}
	}
	if len(rec.got) != 0 {
		t.Fatal("a read-only console reached the engine")
	}
	footer := strings.Split(m.View().Content, "\n")
	last := footer[len(footer)-1]
	if !strings.Contains(last, "read-only: guest session over SSH") || strings.Contains(last, "p promote") {
		t.Fatalf("read-only footer should give the reason and offer no actions: %q", last)
	}
}

func TestResizeSwitchesLayout(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	wide := strings.Split(m.View().Content, "\n")
	if len(wide) != 48 || !strings.Contains(wide[2], "Pipeline") || !strings.Contains(wide[2], "Errors") {
		t.Fatalf("160x48 should put Pipeline and Errors side by side; line 3 = %q", wide[2])
	}
	update(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	narrow := strings.Split(m.View().Content, "\n")
	if len(narrow) != 24 || strings.Contains(narrow[2], "Errors") {
		t.Fatalf("80x24 should stack panes; line 3 = %q", narrow[2])
	}
}

func TestThemeColoursTheView(t *testing.T) {
	o := testOptions()
	o.NoColor = false
	m, _, _ := newConsole(t, canarySnapshot(), o)
	if v := m.View().Content; !strings.Contains(v, "\x1b[") {
		t.Fatal("colour on, but the view has no colour sequences")
	}
	if v := (func() string { m2, _, _ := newConsole(t, canarySnapshot(), testOptions()); return m2.View().Content })(); strings.Contains(v, "\x1b") {
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
	if !m.statusBad || !strings.Contains(m.View().Content, "abort api/production failed: target unreachable") {
		t.Fatalf("error not shown:\n%s", m.View().Content)
	}
}

func TestUnhandledCommandSaysUnavailable(t *testing.T) {
	m, _, _ := newConsole(t, canarySnapshot(), testOptions())
	update(m, press("r"))
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
	if strings.Contains(m.View().Content, "v1.44.0") {
		t.Fatal("events applied before the flush tick")
	}
	flush := tick()
	if _, ok := flush.(flushMsg); !ok {
		t.Fatalf("tick produced %T", flush)
	}
	if next := update(m, flush); next == nil {
		t.Fatal("flush did not go back to waiting for events")
	}
	if v := m.View().Content; !strings.Contains(v, "▸ v1.44.0 25%") {
		t.Fatalf("header does not show the newest rollout state:\n%s", v)
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
