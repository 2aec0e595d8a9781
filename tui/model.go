// Package tui is the release console's terminal screen: a Bubble Tea model
// that renders a core.Snapshot, keeps it current from the engine's event
// stream, and sends core.Commands for the keys a release manager presses.
//
// The screen is a client of core.Client only, and it decides nothing the
// engine decides: which commands may run now, and why not, where a
// rollout really stands and what is held all come from the situation the
// engine publishes (core.Situation); the screen renders it.
//
// The root model routes and lays out. Each pane is a component with its
// own content and the event kinds that change it (pane.go); dialogs
// implement one small interface — handle a message, answer with an
// action, draw — on a stack the root owns (dialog.go).
package tui

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/themes"
)

// flushEvery is how often queued events are folded into the screen: one
// redraw per tick however many events arrived, so a flood of progress
// events cannot starve keypresses.
const flushEvery = 50 * time.Millisecond

// commandTimeout bounds one command sent from the screen.
const commandTimeout = 2 * time.Minute

// historyDepth is how many deployments the rollback picker reads.
const historyDepth = 20

// Options configures the console.
type Options struct {
	// Service is the service the screen watches; empty means the first
	// service of the project.
	Service string
	// Actor is the person every command is recorded against.
	Actor core.Actor
	// Theme colours the screen. When neither Theme nor ThemeName is set,
	// the console picks the dark or light built-in from the terminal's
	// background.
	Theme     themes.Theme
	ThemeName string
	// ReadOnly refuses every action key; ReadOnlyReason says why.
	ReadOnly       bool
	ReadOnlyReason string
	// Confirm is the confirmation policy per environment: ConfirmKey (the
	// default) or ConfirmTypeName.
	Confirm map[string]string
	// Production names the environments the config marks production:
	// they are named in the production colour.
	Production map[string]bool
	// Bell rings the terminal bell and Desktop sends a desktop
	// notification (OSC 9) when something newly needs a person. Callers
	// set them from config, where both default to on.
	Bell, Desktop bool
	// Mouse starts with mouse reporting on; m toggles it.
	Mouse bool
	// Clock is the time shown in the header and used for ages.
	Clock func() time.Time
	// Location is the zone clock times are shown in (default time.Local).
	Location *time.Location
	// NoColor renders plain text (tests, NO_COLOR, dumb terminals).
	NoColor bool
	// Width and Height are the size until the terminal reports one.
	Width, Height int
	// Input and Output replace the terminal (tests, SSH sessions).
	Input  io.Reader
	Output io.Writer
	// Permit, when set, is asked before the engine whether this person
	// may run kind in ref (a role on the SSH bastion): its error is the
	// reason the key is shown disabled. It is asked at every key press
	// and every frame, so a changed answer shows at once.
	Permit func(kind core.CommandKind, ref core.Ref) error
	// Program adds options to the terminal program (an SSH session's
	// input, output, environment and colour profile), applied last.
	Program []tea.ProgramOption
	// Resize carries window sizes from a terminal the program cannot
	// ask itself (an SSH session's window changes).
	Resize <-chan tea.WindowSizeMsg
}

// Model is the console's root model: it owns the snapshot, the panes and
// the dialog stack, routes each message to whoever should have it, and
// lays the screen out.
type Model struct {
	eng  core.Client
	sub  *core.Subscription
	snap core.Snapshot
	s    screen // what panes and dialogs draw from

	panes [paneCount]*paneView
	focus paneID
	// focusMoved says the person chose the focused pane: it then gets
	// its rows first when the screen is short.
	focusMoved bool
	dialogs    stack
	w, h       int

	msg        message
	msgKey     string // messageLines' cache
	msgW, msgH int
	msgLines   []string
	loading    core.Ref // rollback history being read
	running    int      // commands this console sent that have not answered
	// answered are the operations whose commands have answered here: over,
	// whatever the engine's record of them says until its event arrives
	// (the answer and the events travel apart).
	answered               map[string]bool
	att                    attention
	theme                  themes.Theme
	themeFixed, mouse      bool
	buf                    []core.Event
	flushQ                 bool   // a flush tick is scheduled
	gen                    uint64 // bumped by every change; keys the frame cache
	frameKey, frameContent string
	// rev is bumped when the snapshot changes; the header, strip and
	// body below are rebuilt only when it or their other inputs move.
	rev                uint64
	chromeKey          string
	chromeHead, chrome string
	bodyKey            string
	bodyLines          []string
}

type (
	readyMsg  struct{}
	flushMsg  struct{}
	clockMsg  struct{}
	resultMsg struct {
		cmd core.Command
		res core.Result
		err error
	}
	historyMsg struct {
		ref  core.Ref
		deps []core.Deployment
		rels map[string]core.Release // the releases among them, for the schema crossing
		err  error
	}
)

// New subscribes to the engine and returns the console's model.
func New(eng core.Client, opts Options) tea.Model {
	return newModel(eng, opts)
}

func newModel(eng core.Client, opts Options) *Model {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.ReadOnlyReason == "" {
		opts.ReadOnlyReason = "this console is read-only"
	}
	if opts.Width <= 0 {
		opts.Width = 80
	}
	if opts.Height <= 0 {
		opts.Height = 24
	}
	snap, sub := eng.Subscribe()
	if opts.Service == "" && len(snap.Services) > 0 {
		opts.Service = snap.Services[0]
	}
	m := &Model{
		eng: eng, sub: sub, snap: snap, w: opts.Width, h: opts.Height, mouse: opts.Mouse,
		att: attention{bell: opts.Bell, desktop: opts.Desktop},
	}
	m.s = screen{snap: &m.snap, keys: defaultKeys(), opts: &opts, service: opts.Service, logs: newRing(logCap)}
	m.panes = [paneCount]*paneView{{pane: pipelinePane{}}, {pane: errorsPane{}}, {pane: backupsPane{}}, {pane: activityPane{}}}
	theme, fixed := opts.Theme, opts.Theme.Name != ""
	if !fixed && opts.ThemeName != "" {
		t, err := themes.Get(opts.ThemeName)
		if err != nil {
			m.say(err.Error(), core.SeverityWarn)
		} else {
			theme, fixed = t, true
		}
	}
	if theme.Name == "" {
		theme, _ = themes.Get(themes.Default)
	}
	m.themeFixed = fixed
	m.setTheme(theme)
	m.att.prime(&m.s)
	return m
}

func (m *Model) setTheme(t themes.Theme) {
	m.theme = t
	m.s.st = newStyles(t, m.s.opts.NoColor)
	m.invalidate()
}

// invalidate redraws every pane.
func (m *Model) invalidate() {
	for _, p := range m.panes {
		p.changed()
	}
	m.msgKey = ""
	m.rev++
}

// Init starts waiting for events and the header clock, and asks the
// terminal for its background unless a theme was chosen.
func (m *Model) Init() tea.Cmd {
	cmds := []tea.Cmd{m.waitReady(), clockTick()}
	if !m.themeFixed {
		cmds = append(cmds, tea.RequestBackgroundColor)
	}
	return tea.Batch(cmds...)
}

// waitReady blocks (in Bubble Tea's command goroutine) until the
// subscription has events; Close also wakes it.
func (m *Model) waitReady() tea.Cmd {
	ready := m.sub.Ready()
	return func() tea.Msg {
		<-ready
		return readyMsg{}
	}
}

func clockTick() tea.Cmd {
	return tea.Tick(time.Second, func(time.Time) tea.Msg { return clockMsg{} })
}

// Update routes one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if _, ok := msg.(readyMsg); !ok {
		m.gen++
	}
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case tea.BackgroundColorMsg:
		if !m.themeFixed {
			name := "dark"
			if !msg.IsDark() {
				name = "light"
			}
			if name != m.theme.Name {
				t, _ := themes.Get(name)
				m.setTheme(t)
			}
		}
	case readyMsg:
		if !m.flushQ {
			m.flushQ = true
			return m, tea.Tick(flushEvery, func(time.Time) tea.Msg { return flushMsg{} })
		}
	case flushMsg:
		m.flushQ = false
		alert := m.flush()
		return m, tea.Batch(m.waitReady(), rawCmd(alert))
	case clockMsg:
		return m, clockTick()
	case resultMsg:
		m.running = max(m.running-1, 0)
		if id := msg.res.OperationID; id != "" {
			if m.answered == nil {
				m.answered = map[string]bool{}
			}
			m.answered[id] = true
		}
		m.showResult(msg)
	case historyMsg:
		m.openHistory(msg)
	case logTailMsg:
		msg.d.lv.setTail(msg.res, msg.err, m.s.logs.gen)
	case tea.KeyPressMsg:
		if d := m.dialogs.top(); d != nil {
			return m, m.apply(d.handle(&m.s, msg))
		}
		return m, m.key(msg)
	case tea.MouseMsg:
		return m, m.mouseEvent(msg)
	}
	return m, nil
}

// apply does what a dialog asked.
func (m *Model) apply(a action) tea.Cmd {
	switch a := a.(type) {
	case closeDialog:
		m.dialogs.pop()
		if a.msg != "" {
			m.say(a.msg, a.sev)
		}
	case openDialog:
		m.dialogs.push(a.d)
	case replaceDialog:
		m.dialogs.pop()
		m.dialogs.push(a.d)
	case sendCommand:
		m.dialogs.pop()
		m.say(fmt.Sprintf("%s %s: sent…", a.cmd.Kind, a.cmd.Ref), core.SeverityInfo)
		m.running++
		return m.send(a.cmd)
	case quitConsole:
		return m.quit()
	case pressKey:
		m.dialogs.pop()
		return m.key(a.k)
	case setFilter:
		v := m.panes[m.focus]
		v.filter = a.text
		if a.done {
			m.dialogs.pop()
			if a.text == "" {
				m.msg = message{}
			} else {
				m.say(fmt.Sprintf("%s filtered by %q; esc clears", v.name(), a.text), core.SeverityInfo)
			}
		}
	}
	return nil
}

// mouseEvent focuses the pane a person clicks and scrolls with the wheel.
// With the mouse off the terminal should send nothing, and whatever
// arrives anyway is ignored.
func (m *Model) mouseEvent(msg tea.MouseMsg) tea.Cmd {
	if !m.mouse {
		return nil
	}
	if d := m.dialogs.top(); d != nil {
		if _, ok := msg.(tea.MouseWheelMsg); ok {
			return m.apply(d.handle(&m.s, msg))
		}
		return nil
	}
	switch msg := msg.(type) {
	case tea.MouseClickMsg:
		if msg.Button != tea.MouseLeft {
			return nil
		}
		if p, ok := m.layout().paneAt(msg.X, msg.Y); ok {
			m.focus, m.focusMoved = p, true
		}
	case tea.MouseWheelMsg:
		r := m.layout().panes[m.focus]
		switch msg.Button {
		case tea.MouseWheelUp:
			m.panes[m.focus].move(&m.s, -1, r.w, r.h)
		case tea.MouseWheelDown:
			m.panes[m.focus].move(&m.s, 1, r.w, r.h)
		}
	}
	return nil
}

// flush folds every queued event into the snapshot, marks the panes whose
// kinds the events are, and returns what to write to the terminal for
// things that newly need a person.
func (m *Model) flush() string {
	m.buf = m.sub.Drain(m.buf[:0])
	if len(m.buf) == 0 {
		return ""
	}
	m.rev++
	for _, ev := range m.buf {
		if ev.Kind == core.EvLog {
			if ev.Log != nil {
				m.s.logs.add(logEntry{ref: ev.Ref, source: ev.Log.Source, text: ev.Log.Text})
			}
			continue
		}
		for _, p := range m.panes {
			if p.affectedBy(ev.Kind) {
				p.changed()
			}
		}
		if ev.Kind == core.EvNotice && (ev.Ref.Service == "" || ev.Ref.Service == m.s.service) {
			m.say(ev.Notice, ev.Severity)
			m.s.logs.add(logEntry{ref: ev.Ref, source: "engine", text: ev.Notice})
		}
		m.snap.Apply(ev)
	}
	clear(m.buf)
	return m.att.check(&m.s)
}

// key answers a key on the main screen.
func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	keys := m.s.keys
	r := m.layout().panes[m.focus]
	v := m.panes[m.focus]
	switch {
	case key.Matches(k, keys.Quit):
		if n := m.ownRunning(); n > 0 {
			m.dialogs.push(&quitDialog{running: n})
			return nil
		}
		return m.quit()
	case key.Matches(k, keys.Help):
		m.dialogs.push(&helpDialog{})
	case key.Matches(k, keys.Promote):
		m.act(core.CmdPromote)
	case key.Matches(k, keys.FullPromote):
		m.act(core.CmdFullPromote)
	case key.Matches(k, keys.Rollback):
		return m.startRollback()
	case key.Matches(k, keys.Abort):
		m.act(core.CmdAbort)
	case key.Matches(k, keys.Pause):
		m.act(m.s.pauseKind())
	case key.Matches(k, keys.Backup):
		m.startBackup()
	case key.Matches(k, keys.Palette), key.Matches(k, keys.PaletteChord):
		m.dialogs.push(newPalette(&m.s))
	case key.Matches(k, keys.Filter):
		m.dialogs.push(&filterDialog{pane: v.name(), text: v.filter})
	case key.Matches(k, keys.Back):
		if v.filter != "" {
			v.filter = ""
			m.say("filter cleared", core.SeverityInfo)
		}
	case key.Matches(k, keys.Logs):
		ref := m.s.focusRef()
		m.dialogs.push(newLogDialog(logFilter{title: "Logs · " + ref.String(), ref: ref}))
	case key.Matches(k, keys.Env):
		m.cycleEnv()
	case key.Matches(k, keys.Service):
		m.pickService(int(k.Code - '1'))
	case key.Matches(k, keys.Focus):
		m.focus, m.focusMoved = (m.focus+1)%paneCount, true
	case key.Matches(k, keys.FocusBack):
		m.focus, m.focusMoved = (m.focus+paneCount-1)%paneCount, true
	case key.Matches(k, keys.Up):
		v.move(&m.s, -1, r.w, r.h)
	case key.Matches(k, keys.Down):
		v.move(&m.s, 1, r.w, r.h)
	case key.Matches(k, keys.PageUp):
		v.move(&m.s, -max(r.h-3, 1), r.w, r.h)
	case key.Matches(k, keys.PageDown):
		v.move(&m.s, max(r.h-3, 1), r.w, r.h)
	case key.Matches(k, keys.Open):
		row, ok := v.chosen(&m.s, r.w, r.h)
		if !ok {
			m.say(fmt.Sprintf("nothing to open in %s", v.name()), core.SeverityInfo)
			return nil
		}
		d := row.open(&m.s)
		m.dialogs.push(d)
		return m.fetchLog(d)
	case key.Matches(k, keys.Theme):
		m.cycleTheme()
	case key.Matches(k, keys.Mouse):
		m.mouse = !m.mouse
		m.say("mouse "+onOff(m.mouse), core.SeverityInfo)
	}
	return nil
}

// act opens the confirmation for a command the engine would run now, or
// says why it would not.
func (m *Model) act(kind core.CommandKind) {
	p := m.s.possible(kind)
	if !p.Allowed {
		m.say(fmt.Sprintf("%s refused: %s", kind, p.Why), core.SeverityWarn)
		return
	}
	cmd := core.Command{Kind: kind, Ref: m.s.focusRef(), Version: p.To, Actor: m.s.opts.Actor}
	m.dialogs.push(newConfirm(&m.s, cmd, nil))
}

// startBackup backs up one set of the focused environment now: straight
// to the confirmation when one set can, through a picker when several.
func (m *Model) startBackup() {
	p := m.s.possible(core.CmdBackupNow)
	if !p.Allowed {
		m.say(fmt.Sprintf("%s refused: %s", core.CmdBackupNow, p.Why), core.SeverityWarn)
		return
	}
	ref := m.s.focusRef()
	if len(p.Options) == 1 {
		m.dialogs.push(newConfirm(&m.s, backupCommand(&m.s, ref, p.Options[0]), nil))
		return
	}
	m.dialogs.push(&setsDialog{ref: ref, sets: p.Options})
}

// startRollback reads the environment's history off the event loop; the
// picker opens when it arrives.
func (m *Model) startRollback() tea.Cmd {
	p := m.s.possible(core.CmdRollback)
	if !p.Allowed {
		m.say("rollback refused: "+p.Why, core.SeverityWarn)
		return nil
	}
	ref := m.s.focusRef()
	m.loading = ref
	m.say("rollback: reading the history of "+ref.String()+"…", core.SeverityInfo)
	eng, from := m.eng, p.From
	return func() tea.Msg {
		msg := historyMsg{ref: ref, rels: map[string]core.Release{}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		msg.deps, msg.err = eng.Deployments(ctx, ref, historyDepth)
		// Every release the picker offers, so the confirmation can say
		// which migrations a rollback to it leaves in place.
		versions := []string{from}
		for _, d := range msg.deps {
			versions = append(versions, d.Version)
		}
		for _, v := range versions {
			if _, seen := msg.rels[v]; seen || v == "" {
				continue
			}
			if r, err := eng.Release(ctx, ref.Service, v); err == nil {
				msg.rels[v] = r
			}
		}
		return msg
	}
}

func (m *Model) openHistory(msg historyMsg) {
	if msg.ref != m.loading || m.dialogs.top() != nil {
		return
	}
	m.loading = core.Ref{}
	if msg.err != nil {
		m.say(fmt.Sprintf("rollback: could not read the history of %s: %v", msg.ref, msg.err), core.SeverityWarn)
		return
	}
	p := m.s.possibleIn(msg.ref, core.CmdRollback)
	if !p.Allowed {
		m.say("rollback refused: "+p.Why, core.SeverityWarn)
		return
	}
	d := newHistory(msg.ref, p.From, p.To, msg.deps, p.Options)
	d.rels = msg.rels
	if len(msg.deps) > 0 {
		d.since = msg.deps[0].StartedAt // the deployment a rollback leaves, as the engine takes it
	}
	if len(d.items) == 0 {
		m.say(fmt.Sprintf("rollback refused: nothing to roll back to in %s: no other release ran there", msg.ref.Env), core.SeverityWarn)
		return
	}
	m.dialogs.push(d)
	m.msg = message{}
}

// send runs the command off the event loop; the result comes back as a
// message.
func (m *Model) send(cmd core.Command) tea.Cmd {
	eng := m.eng
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		res, err := eng.Do(ctx, cmd)
		return resultMsg{cmd: cmd, res: res, err: err}
	}
}

// fetchLog reads a step log dialog's lines from the pipeline source off
// the event loop; they arrive as a logTailMsg. It only reads, so a
// read-only console asks too.
func (m *Model) fetchLog(d dialog) tea.Cmd {
	ld, ok := d.(*logDialog)
	if !ok || ld.fetch == nil {
		return nil
	}
	eng, cmd := m.eng, *ld.fetch
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		res, err := eng.Do(ctx, cmd)
		return logTailMsg{d: ld, res: res, err: err}
	}
}

func (m *Model) showResult(r resultMsg) {
	if r.err != nil {
		m.say(fmt.Sprintf("%s %s failed: %v", r.cmd.Kind, r.cmd.Ref, r.err), core.SeverityCritical)
	} else {
		text := r.res.Message
		if text == "" {
			text = r.res.Outcome
		}
		m.say(fmt.Sprintf("%s %s: %s", r.cmd.Kind, r.cmd.Ref, text), core.SeverityInfo)
	}
	m.s.logs.add(logEntry{ref: r.cmd.Ref, source: "console", text: m.msg.text})
}

// say puts text in the message area.
func (m *Model) say(text string, sev core.Severity) { m.msg = message{text: text, sev: sev} }

func (m *Model) quit() tea.Cmd {
	m.sub.Close()
	return tea.Quit
}

// ownRunning counts operations this person started that have not
// finished: commands still waiting for an answer, and journaled
// operations in the engine under this actor.
func (m *Model) ownRunning() int {
	n := m.running
	me := m.s.opts.Actor
	for _, op := range m.snap.Operations {
		if (op.State == core.OpIntent || op.State == core.OpRunning) && op.Actor.Name == me.Name && op.Actor.Host == me.Host && !m.answered[op.ID] {
			n++
		}
	}
	return n
}

func (m *Model) cycleEnv() {
	envs := m.snap.Envs
	if len(envs) == 0 {
		return
	}
	cur := m.s.focusRef().Env
	next := envs[0]
	for i, e := range envs {
		if e == cur {
			next = envs[(i+1)%len(envs)]
		}
	}
	m.s.env = next
	m.invalidate()
	m.say("environment: "+next, core.SeverityInfo)
}

func (m *Model) pickService(i int) {
	if i < 0 || i >= len(m.snap.Services) {
		m.say(fmt.Sprintf("no service %d: this project has %d", i+1, len(m.snap.Services)), core.SeverityWarn)
		return
	}
	m.s.service = m.snap.Services[i]
	for _, p := range m.panes {
		p.sel, p.off = "", 0
	}
	m.invalidate()
	m.say("service: "+m.s.service, core.SeverityInfo)
}

func (m *Model) cycleTheme() {
	names := themes.Names()
	next := names[0]
	for i, n := range names {
		if n == m.theme.Name {
			next = names[(i+1)%len(names)]
		}
	}
	t, _ := themes.Get(next)
	m.themeFixed = true
	m.setTheme(t)
	m.say("theme: "+next, core.SeverityInfo)
}

// View renders the whole screen. The frame is rebuilt only when a message
// changed something or the clock ticked; panes keep their own caches.
func (m *Model) View() tea.View {
	now := m.s.now()
	key := fmt.Sprint(m.gen, m.w, m.h, now.Unix())
	if key != m.frameKey {
		m.frameKey, m.frameContent = key, m.render(now)
	}
	v := tea.NewView(m.frameContent)
	v.AltScreen = true
	if m.mouse {
		v.MouseMode = tea.MouseModeCellMotion
	}
	return v
}

func (m *Model) render(now time.Time) string {
	w, h := m.w, m.h
	if tooSmall(w, h) {
		return tooSmallScreen(w, h)
	}
	l := m.layout()
	lines := make([]string, 0, h)
	if key := fmt.Sprint(m.rev, w, now.Unix(), m.s.service, m.s.env, m.theme.Name); key != m.chromeKey {
		m.chromeKey, m.chromeHead, m.chrome = key, fit(header(&m.s, now, w), w), fit(strip(&m.s, now, w), w)
	}
	lines = append(lines, m.chromeHead, m.chrome)
	top := m.dialogs.top()
	if ov, ok := top.(overlayer); top == nil || (ok && ov.overlay()) {
		lines = m.appendPanes(lines, l)
		if top != nil {
			overlay(lines, top.view(&m.s, w, l.body.h), w, l.body)
		}
	} else {
		for _, line := range top.view(&m.s, w, l.body.h) {
			lines = append(lines, fit(line, w))
		}
		for len(lines) < l.body.y+l.body.h {
			lines = append(lines, blank(w))
		}
	}
	for _, line := range m.messageLines(w) {
		lines = append(lines, fit(line, w))
	}
	lines = append(lines, fit(footer(&m.s, w, top), w))
	if len(lines) > h {
		lines = lines[:h]
	}
	return strings.Join(lines, "\n")
}

// appendPanes draws the panes where the layout puts them, row by row.
func (m *Model) appendPanes(lines []string, l screenLayout) []string {
	var drawn [paneCount][]string
	_, typing := m.dialogs.top().(*filterDialog)
	key := fmt.Sprint(l.panes)
	for p, r := range l.panes {
		drawn[p] = m.panes[p].draw(&m.s, r.w, r.h, paneID(p) == m.focus, typing && paneID(p) == m.focus)
		key += m.panes[p].boxKey
	}
	if key == m.bodyKey {
		return append(lines, m.bodyLines...)
	}
	// Left to right, so a row's segments join in screen order.
	order := [paneCount]paneID{panePipeline, paneErrors, paneBackups, paneActivity}
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && l.panes[order[j]].x < l.panes[order[j-1]].x; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	for y := l.body.y; y < l.body.y+l.body.h; y++ {
		var b strings.Builder
		for _, p := range order {
			r := l.panes[p]
			if y < r.y || y >= r.y+r.h {
				continue
			}
			if i := y - r.y; i < len(drawn[p]) {
				b.WriteString(drawn[p][i])
			} else {
				b.WriteString(blank(r.w))
			}
		}
		lines = append(lines, b.String())
	}
	m.bodyKey, m.bodyLines = key, append(m.bodyLines[:0], lines[len(lines)-l.body.h:]...)
	return lines
}

// overlay draws box over the body's lines, centred, one row below its top.
func overlay(lines, box []string, w int, body rect) {
	if len(box) == 0 {
		return
	}
	bw := width(box[0])
	x := max((w-bw)/2, 0)
	for i, row := range box {
		y := body.y + 1 + i
		if y >= body.y+body.h || y >= len(lines) {
			break
		}
		under := lines[y]
		lines[y] = truncateCells(under, x) + row + cutCells(under, x+bw)
	}
}

// tooSmallScreen is what the console says below its minimum size.
func tooSmallScreen(w, h int) string {
	msg := []string{
		"terminal too small",
		fmt.Sprintf("%d×%d; ripcord needs %d×%d", w, h, minWidth, minHeight),
		"enlarge it, or press q to quit",
	}
	lines := make([]string, max(h, 1))
	top := max((h-len(msg))/2, 0)
	for i := range lines {
		line := ""
		if j := i - top; j >= 0 && j < len(msg) {
			line = blank(max((w-width(msg[j]))/2, 0)) + msg[j]
		}
		lines[i] = fit(line, w)
	}
	return strings.Join(lines, "\n")
}
