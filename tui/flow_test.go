package tui

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/teatest/v2"
	"github.com/charmbracelet/x/vt"

	"github.com/ripcordhq/ripcord/core"
)

// The flows below run the real Bubble Tea program (teatest) and read what
// it draws through a terminal emulator, so every assertion is about the
// screen a person sees, never about escape sequences or frame timing.

const flowW, flowH = 120, 40

// screen is a running console and the emulated terminal it draws on.
type screen struct {
	t   *testing.T
	tm  *teatest.TestModel
	emu *vt.Emulator
	out io.Reader // the program's output, copied into emu as it is read
}

func startScreen(t *testing.T, eng *core.Engine, o Options) *screen {
	t.Helper()
	o.Width, o.Height = flowW, flowH
	emu := vt.NewEmulator(flowW, flowH)
	// The program asks the terminal questions at start; the emulator
	// answers on its input pipe, and an unread answer blocks Write.
	go func() { _, _ = io.Copy(io.Discard, emu) }()
	// No tty layer turns LF into CRLF here: line feed/new line mode does.
	_, _ = emu.WriteString("\x1b[20h")
	tm := teatest.NewTestModel(t, New(eng, o), teatest.WithInitialTermSize(flowW, flowH))
	s := &screen{t: t, tm: tm, emu: emu, out: io.TeeReader(tm.Output(), emu)}
	// A test that stops early still ends its program. The emulator is not
	// closed: Close races with the reader above.
	t.Cleanup(func() {
		_ = tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	})
	s.waitFor("the first frame", func() bool { return s.row(0) != "" })
	return s
}

// press sends keys as a person types them.
func (s *screen) press(keys ...string) {
	for _, k := range keys {
		s.tm.Send(press(k))
	}
}

// row is line y of the screen, trailing blanks trimmed.
func (s *screen) row(y int) string { return s.region(0, flowW, y) }

// region is the text of cells [x0, x1) on line y, trailing blanks trimmed.
func (s *screen) region(x0, x1, y int) string {
	var b strings.Builder
	for x := x0; x < x1; x++ {
		c := s.emu.CellAt(x, y)
		switch {
		case c == nil:
		case c.Content == "" && c.Width == 0:
			// the second half of a wide character
		case c.Content == "":
			b.WriteByte(' ')
		default:
			b.WriteString(c.Content)
		}
	}
	return strings.TrimRight(b.String(), " ")
}

func (s *screen) text() string {
	rows := make([]string, flowH)
	for y := range rows {
		rows[y] = s.row(y)
	}
	return strings.Join(rows, "\n")
}

// find is the first line holding want, or -1.
func (s *screen) find(want string) int {
	for y := range flowH {
		if strings.Contains(s.row(y), want) {
			return y
		}
	}
	return -1
}

// onMain says whether the main screen's four panes are drawn.
func (s *screen) onMain() bool {
	return strings.Contains(s.row(2), "Pipeline") && strings.Contains(s.row(2), "─ Errors · ") && s.shows("─ Activity ", "─ Backups ")
}

func (s *screen) shows(wants ...string) bool {
	txt := s.text()
	for _, w := range wants {
		if !strings.Contains(txt, w) {
			return false
		}
	}
	return true
}

// waitFor reads the program's output into the emulator until cond holds
// for the screen; on timeout it fails with the screen as drawn.
func (s *screen) waitFor(what string, cond func() bool) {
	s.t.Helper()
	teatest.WaitFor(screenTB{s.t, s, what}, s.out, func([]byte) bool { return cond() },
		teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

func (s *screen) waitShows(wants ...string) {
	s.t.Helper()
	s.waitFor(fmt.Sprintf("%q", wants), func() bool { return s.shows(wants...) })
}

// finished waits for the program to end.
func (s *screen) finished() {
	s.t.Helper()
	s.tm.WaitFinished(s.t, teatest.WithFinalTimeout(5*time.Second))
}

// screenTB reports a failed wait with the screen rather than the raw
// bytes teatest would print.
type screenTB struct {
	testing.TB
	s    *screen
	what string
}

func (w screenTB) Fatal(args ...any) {
	w.TB.Helper()
	why, _, _ := strings.Cut(fmt.Sprint(args...), "\n")
	w.TB.Fatalf("the screen never showed %s (%s); it shows:\n%s", w.what, why, w.s.text())
}

// world is a fake deployment world behind the engine: handlers that
// record each command and publish what a real provider would.
type world struct {
	eng *core.Engine
	mu  sync.Mutex
	got []core.Command
}

func (w *world) record(cmd core.Command) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, cmd)
}

func (w *world) commands(kind core.CommandKind) []core.Command {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []core.Command
	for _, c := range w.got {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	return out
}

// canaryReady: staging runs v1.43.0, production still v1.42.0, and the
// store remembers production's two healthy releases.
func canaryReady(t *testing.T) *world {
	snap := idleSnapshot()
	snap.Targets[staging] = core.TargetStatus{Ref: staging, Current: "v1.43.0", Healthy: true}
	return &world{eng: storeEngine(t, snap, history()[:2], releases())}
}

// handlePromote starts the canary at 25%, as a rollout provider would.
func (w *world) handlePromote(t *testing.T) {
	w.eng.Handle(core.CmdPromote, func(ctx context.Context, e *core.Engine, cmd core.Command) (core.Result, error) {
		w.record(cmd)
		d := core.Deployment{Ref: cmd.Ref, Version: cmd.Version, From: "v1.42.0", State: core.DeployProgressing,
			Weight: 25, Step: 1, StartedAt: e.Now(), Actor: cmd.Actor}
		id, err := e.Store().AddDeployment(ctx, d)
		if err != nil {
			t.Errorf("store the deployment: %v", err)
			return core.Result{}, err
		}
		d.ID = id
		e.Publish(core.Event{Kind: core.EvDeployment, Ref: cmd.Ref, Final: true, Deployment: &d})
		return core.Result{Outcome: "started", Message: cmd.Version + " at 25%"}, nil
	})
}

// handleRollback moves traffic back and appends the audit entry, as the
// engine's rollback does.
func (w *world) handleRollback(t *testing.T) {
	w.eng.Handle(core.CmdRollback, func(ctx context.Context, e *core.Engine, cmd core.Command) (core.Result, error) {
		w.record(cmd)
		from := e.Snapshot().Deployments[cmd.Ref]
		d := from
		d.State, d.Weight = core.DeployRolledBack, 0
		e.Publish(core.Event{Kind: core.EvDeployment, Ref: cmd.Ref, Final: true, Deployment: &d})
		if _, err := e.Audit(ctx, core.AuditEntry{Actor: cmd.Actor, Action: "rollback", Ref: cmd.Ref,
			From: from.Version, To: cmd.Version, Outcome: "done"}); err != nil {
			t.Errorf("audit: %v", err)
			return core.Result{}, err
		}
		return core.Result{Outcome: "rolled back", Message: "traffic on " + cmd.Version}, nil
	})
}

func spikeVerdict(ref core.Ref) core.Event {
	v := core.SpikeVerdict{Ref: ref, Candidate: "v1.43.0", Baseline: "v1.42.0", Kind: core.VerdictSpike, At: t0,
		Evidence: core.Evidence{CandidateCount: 112, BaselineCount: 18, Share: 0.25, RateRatio: 6.2, RateRatioLow: 3.1,
			RateRatioHigh: 12.4, PValue: 3e-9, Elapsed: 5 * time.Minute}}
	return core.Event{Kind: core.EvVerdict, Ref: ref, Final: true, Verdict: &v}
}

// A person promotes, sees the spike, rolls back to the last good release
// after reading what the rollback will do, and finds it in Activity under
// their name.
func TestFlowPromoteSpikeRollback(t *testing.T) {
	w := canaryReady(t)
	w.handlePromote(t)
	w.handleRollback(t)
	s := startScreen(t, w.eng, testOptions())
	s.waitShows("ready to promote v1.43.0 to production")

	s.press("p")
	s.waitShows("Confirm promote", "promote api in production: v1.42.0 → v1.43.0", "y confirm   enter/esc cancel")
	if n := len(w.commands(core.CmdPromote)); n != 0 {
		t.Fatalf("p alone sent %d promote(s): it must only ask", n)
	}
	s.press("y")
	s.waitShows("production v1.42.0 ▸ v1.43.0 25%")
	promotes := w.commands(core.CmdPromote)
	want := core.Command{Kind: core.CmdPromote, Ref: production, Version: "v1.43.0", Actor: core.Actor{Name: "bob", Host: "laptop"}}
	if len(promotes) != 1 || promotes[0].Kind != want.Kind || promotes[0].Ref != want.Ref ||
		promotes[0].Version != want.Version || promotes[0].Actor != want.Actor {
		t.Fatalf("engine got promotes %+v, want one %+v", promotes, want)
	}

	w.eng.Publish(spikeVerdict(production))
	s.waitFor("SPIKE in the needs-you strip", func() bool {
		return strings.Contains(s.row(1), "needs you:") && strings.Contains(s.row(1), "SPIKE production v1.43.0 6.2× baseline")
	})

	s.press("r")
	s.waitShows("Rollback production · history", "roll api in production back from v1.43.0 to:")
	if y := s.find("v1.42.0    healthy"); y < 0 || !strings.Contains(s.row(y), "▸ v1.42.0") {
		t.Fatalf("the last good release v1.42.0 is not preselected:\n%s", s.text())
	}
	if y := s.find("v1.41.2    healthy"); y < 0 || strings.Contains(s.row(y), "▸") {
		t.Fatalf("v1.41.2 should be listed, unselected:\n%s", s.text())
	}
	if len(w.commands(core.CmdRollback)) != 0 {
		t.Fatal("r sent a rollback before anything was chosen")
	}

	s.press("enter")
	s.waitShows("Confirm rollback", "rollback api in production: v1.43.0 → v1.42.0",
		"✗ 0043_drop_legacy_cart contract: drop table legacy_cart", "as bob@laptop")
	if len(w.commands(core.CmdRollback)) != 0 {
		t.Fatal("choosing in the picker sent the rollback without confirmation")
	}

	s.press("y")
	// Activity is the lower left pane: its newest line names the person.
	s.waitFor("the rollback in Activity", func() bool {
		top := -1
		for y := range flowH {
			if strings.Contains(s.region(0, flowW/2, y), "─ Activity ") {
				top = y
				break
			}
		}
		return top >= 0 && strings.Contains(s.region(0, flowW/2, top+1), "bob      rollback production v1.43.0→v1.42.0")
	})
	s.waitShows("rollback api/production: traffic on v1.42.0")

	rollbacks := w.commands(core.CmdRollback)
	if len(rollbacks) != 1 {
		t.Fatalf("engine got %d rollbacks, want exactly one: %+v", len(rollbacks), rollbacks)
	}
	if rb := rollbacks[0]; rb.Ref != production || rb.Version != "v1.42.0" || rb.Actor != want.Actor {
		t.Fatalf("rollback = %+v, want production to v1.42.0 by bob@laptop", rb)
	}
	goldenScreen(t, "flow_after_rollback_120x40", s.text())

	s.press("q")
	s.finished()
	if n := len(w.commands(core.CmdRollback)); n != 1 {
		t.Fatalf("%d rollbacks reached the engine by the end, want one", n)
	}
	if w.eng.Subscribers() != 0 {
		t.Fatal("the console left its subscription open")
	}
}

// Enter, the key pressed by reflex, and Esc both cancel a rollback at
// its confirmation: nothing reaches the engine and the main screen is back.
func TestFlowEnterAndEscCancelRollback(t *testing.T) {
	for _, k := range []string{"enter", "esc"} {
		t.Run(k, func(t *testing.T) {
			snap := canarySnapshot()
			w := &world{eng: storeEngine(t, snap, history(), releases())}
			w.handleRollback(t)
			s := startScreen(t, w.eng, testOptions())

			s.press("r")
			s.waitShows("Rollback production · history", "▸ v1.42.0")
			s.press("enter")
			s.waitShows("Confirm rollback", "rollback api in production: v1.43.0 → v1.42.0")
			s.press(k)
			s.waitFor("the main screen", func() bool {
				return s.onMain() && s.shows("rollback cancelled") && s.find("Rollback production") < 0 && s.find("Confirm rollback") < 0
			})
			s.press("q")
			s.finished()
			if got := w.commands(core.CmdRollback); len(got) != 0 {
				t.Fatalf("%s at the confirmation sent %+v", k, got)
			}
		})
	}
}

// Quitting while a command the person sent is still running asks first;
// after quitting, the operation goes on in the engine, uncancelled.
func TestFlowQuitWhileOwnOperationRuns(t *testing.T) {
	w := canaryReady(t)
	release, done := make(chan struct{}), make(chan error, 1)
	w.eng.Handle(core.CmdPromote, func(ctx context.Context, e *core.Engine, cmd core.Command) (core.Result, error) {
		w.record(cmd)
		select {
		case <-release:
		case <-ctx.Done():
		}
		// What a provider does once the canary is up.
		d := core.Deployment{Ref: cmd.Ref, Version: cmd.Version, From: "v1.42.0", State: core.DeployProgressing, Weight: 25, Step: 1, Actor: cmd.Actor}
		e.Publish(core.Event{Kind: core.EvDeployment, Ref: cmd.Ref, Final: true, Deployment: &d})
		done <- ctx.Err()
		return core.Result{Outcome: "started"}, ctx.Err()
	})
	s := startScreen(t, w.eng, testOptions())
	s.press("p")
	s.waitShows("Confirm promote")
	s.press("y")
	s.waitShows("promote api/production: sent…")
	s.waitFor("the promote to reach the engine", func() bool { return len(w.commands(core.CmdPromote)) == 1 })

	s.press("q")
	s.waitShows("─ Quit ", "1 operation(s) you started are still running.", "They continue in the engine after you quit")
	s.press("esc")
	s.waitFor("the main screen after esc", func() bool { return s.onMain() && s.find("─ Quit ") < 0 })

	s.press("q")
	s.waitShows("─ Quit ")
	s.press("y")
	s.finished()
	if w.eng.Subscribers() != 0 {
		t.Fatal("the console left its subscription open")
	}
	select {
	case err := <-done:
		t.Fatalf("the promote ended when the console quit (ctx: %v)", err)
	default:
	}

	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the promote's context was cancelled by quitting: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the promote did not finish after it was released")
	}
	if d := w.eng.Snapshot().Deployments[production]; d.Version != "v1.43.0" || d.Weight != 25 {
		t.Fatalf("the promote's effect did not land in the engine: %+v", d)
	}
}

// goldenScreen compares an emulated screen with testdata/name.golden
// (-update rewrites it).
func goldenScreen(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if updateGolden() {
		if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./tui -run %s -update to create it)", err, t.Name())
	}
	if got+"\n" != string(want) {
		t.Errorf("screen differs from %s (rerun with -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
