// Package tui is the release console's terminal screen: a Bubble Tea model
// that renders a core.Snapshot, keeps it current from the engine's event
// stream, and sends core.Commands for the keys a release manager presses.
//
// The screen is a client of core.Engine only: Subscribe for state and
// events, Do for commands and Store for history reads.
package tui

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
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

// Confirmation policies for Options.Confirm.
const (
	ConfirmKey      = "y"         // press y
	ConfirmTypeName = "type-name" // type the service name, then enter
)

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
}

// mode is what has the keyboard.
type mode int

const (
	modeMain mode = iota
	modePicker
	modeConfirm
	modeLogs
	modeHelp
	modeQuit
	modePalette
	modeSetPicker // which backup set to back up now
)

// pane is one of the main screen's panes, in tab order.
type pane int

const (
	panePipeline pane = iota
	paneErrors
	paneBackups
	paneActivity
	paneCount
)

// paneNames are the panes' names as titles and the status line say them.
var paneNames = [paneCount]string{"Pipeline", "Errors", "Backups", "Activity"}

// Model is the console's root model: it owns the snapshot and routes
// keys to whichever component has the keyboard.
type Model struct {
	eng    core.Client
	sub    *core.Subscription
	snap   core.Snapshot
	opts   Options
	st     styles
	keys   keyMap
	help   help.Model
	buf    []core.Event
	w, h   int
	flushQ bool // a flush tick is scheduled

	service string
	env     string // chosen with e; "" follows the rollout in flight
	focus   pane
	stepSel string // the pipeline row selected for enter

	mode    mode
	picker  *picker
	sets    *setPicker
	confirm *confirmDialog
	logView *logView
	palette *palette
	loading core.Ref // rollback history being read

	// filter narrows each pane's lines; filtering means the person is
	// typing the focused pane's. helpQuery narrows the help.
	filter    [paneCount]string
	filtering bool
	helpQuery string

	status    string
	statusBad bool

	theme      themes.Theme
	themeFixed bool   // chosen by the person or config, not the background
	self       string // this console's watcher id (Engine.Watch)
	mouse      bool

	logs    *ring
	att     attention
	running int // commands this console sent that have not answered

	caches [paneCount]paneCache
	rev    [paneCount]uint64
	gen    uint64 // bumped by every change; keys the frame cache
	frame  paneCache
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
		rel  map[string]core.Release
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
		eng: eng, sub: sub, snap: snap, opts: opts, keys: defaultKeys(), help: help.New(),
		w: opts.Width, h: opts.Height, service: opts.Service, mouse: opts.Mouse,
		logs: newRing(logCap), att: attention{bell: opts.Bell, desktop: opts.Desktop},
	}
	theme, fixed := opts.Theme, opts.Theme.Name != ""
	if !fixed && opts.ThemeName != "" {
		t, err := themes.Get(opts.ThemeName)
		if err != nil {
			m.setStatus(err.Error(), true)
		} else {
			theme, fixed = t, true
		}
	}
	if theme.Name == "" {
		theme, _ = themes.Get(themes.Default)
	}
	m.themeFixed = fixed
	m.setTheme(theme)
	m.att.prime(snap)
	return m
}

func (m *Model) setTheme(t themes.Theme) {
	m.theme = t
	m.st = newStyles(t, m.opts.NoColor)
	m.help.Styles = helpStyles(t, m.opts.NoColor)
	m.invalidate()
}

// invalidate drops every cached pane.
func (m *Model) invalidate() {
	for i := range m.rev {
		m.rev[i]++
	}
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

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if _, ok := msg.(readyMsg); !ok {
		m.gen++
	}
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
		m.help.SetWidth(msg.Width - 2)
		m.refreshLogs()
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
		// Running steps count their time on screen.
		if run, ok := m.snap.Pipelines[m.service]; ok && !run.State.Terminal() {
			m.rev[panePipeline]++
		}
		return m, clockTick()
	case resultMsg:
		m.running = max(m.running-1, 0)
		m.showResult(msg)
	case historyMsg:
		m.openPicker(msg)
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case tea.MouseMsg:
		return m, m.mouseEvent(msg)
	}
	return m, nil
}

// mouseEvent focuses the pane a person clicks and scrolls the log viewer
// with the wheel. With the mouse off the terminal should send nothing,
// and whatever arrives anyway is ignored.
func (m *Model) mouseEvent(msg tea.MouseMsg) tea.Cmd {
	if !m.mouse {
		return nil
	}
	switch msg := msg.(type) {
	case tea.MouseClickMsg:
		if msg.Button != tea.MouseLeft || m.mode != modeMain || m.filtering {
			return nil
		}
		if p, ok := m.layout().paneAt(msg.X, msg.Y); ok && p != m.focus {
			m.setFocus(p)
		}
	case tea.MouseWheelMsg:
		if m.mode == modeLogs && m.logView != nil {
			return m.logView.update(msg)
		}
	}
	return nil
}

// flush folds every queued event into the snapshot and returns what to
// write to the terminal for things that newly need a person.
func (m *Model) flush() string {
	m.buf = m.sub.Drain(m.buf[:0])
	if len(m.buf) == 0 {
		return ""
	}
	for _, ev := range m.buf {
		switch ev.Kind {
		case core.EvLog:
			if ev.Log != nil {
				m.logs.add(logEntry{ref: ev.Ref, source: ev.Log.Source, text: ev.Log.Text})
			}
			continue
		case core.EvPipeline:
			m.rev[panePipeline]++
		case core.EvErrors, core.EvVerdict:
			m.rev[paneErrors]++
		case core.EvBackup:
			m.rev[paneBackups]++
		case core.EvAudit, core.EvProvider:
			m.rev[paneActivity]++
		case core.EvDeployment, core.EvTarget, core.EvPlan:
			// The errors pane follows the environment with a rollout; the
			// pipeline pane shows the rollout's steps.
			m.rev[paneErrors]++
			m.rev[panePipeline]++
		case core.EvNotice:
			if ev.Ref.Service == "" || ev.Ref.Service == m.service {
				bad := strings.Contains(ev.Notice, "fail") || strings.Contains(ev.Notice, "spike") || strings.Contains(ev.Notice, "degraded")
				m.setStatus(ev.Notice, bad)
			}
		case core.EvResync:
			m.invalidate()
		}
		m.snap.Apply(ev)
	}
	clear(m.buf)
	m.refreshLogs()
	return m.att.check(m.snap)
}

func (m *Model) refreshLogs() {
	if m.logView != nil {
		m.logView.refresh(m.logs, max(m.w-2, 1), max(m.h-6, 1))
	}
}

func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	switch m.mode {
	case modePicker:
		switch m.picker.update(k, m.keys) {
		case pickChoose:
			p := m.picker
			m.picker = nil
			m.openConfirm(m.rollbackDialog(p))
		case pickCancel:
			m.picker, m.mode = nil, modeMain
			m.setStatus("rollback cancelled", false)
		}
		return nil
	case modeConfirm:
		c := m.confirm
		switch c.update(k, m.keys) {
		case confirmYes:
			m.confirm, m.mode = nil, modeMain
			m.setStatus(fmt.Sprintf("%s %s: sent…", c.cmd.Kind, c.cmd.Ref), false)
			m.running++
			return m.send(c.cmd)
		case confirmCancel:
			m.confirm, m.mode = nil, modeMain
			m.setStatus(fmt.Sprintf("%s cancelled", c.cmd.Kind), false)
		case confirmWrong:
			m.confirm, m.mode = nil, modeMain
			m.setStatus(fmt.Sprintf("%s refused: %q is not the service name %q", c.cmd.Kind, c.typed, c.typeName), true)
		}
		return nil
	case modeSetPicker:
		switch m.sets.update(k, m.keys) {
		case pickChoose:
			p := m.sets
			m.sets = nil
			m.openConfirm(m.backupDialog(p.ref, p.chosen()))
		case pickCancel:
			m.sets, m.mode = nil, modeMain
			m.setStatus(string(core.CmdBackupNow)+" cancelled", false)
		}
		return nil
	case modeLogs:
		return m.logKey(k)
	case modeHelp:
		// Letters search, so only ?, esc and ctrl+c close the help.
		switch {
		case key.Matches(k, m.keys.Help), key.Matches(k, m.keys.Back), k.Keystroke() == "ctrl+c":
			m.mode, m.helpQuery = modeMain, ""
		default:
			editQuery(&m.helpQuery, k)
		}
		return nil
	case modePalette:
		switch m.palette.update(k, m.keys) {
		case paletteRun:
			it := m.palette.chosen()
			m.palette, m.mode = nil, modeMain
			return m.key(it.press)
		case paletteClose:
			m.palette, m.mode = nil, modeMain
		}
		return nil
	case modeQuit:
		switch {
		case key.Matches(k, m.keys.Confirm), key.Matches(k, m.keys.Quit):
			return m.quit()
		case key.Matches(k, m.keys.Cancel):
			m.mode = modeMain
		}
		return nil
	}
	if m.filtering {
		m.filterKey(k)
		return nil
	}
	switch {
	case key.Matches(k, m.keys.Quit):
		if m.ownRunning() > 0 {
			m.mode = modeQuit
			return nil
		}
		return m.quit()
	case key.Matches(k, m.keys.Help):
		m.mode = modeHelp
	case key.Matches(k, m.keys.Promote):
		m.act(core.CmdPromote)
	case key.Matches(k, m.keys.FullPromote):
		m.act(core.CmdFullPromote)
	case key.Matches(k, m.keys.Rollback):
		return m.startRollback()
	case key.Matches(k, m.keys.Abort):
		m.act(core.CmdAbort)
	case key.Matches(k, m.keys.Pause):
		kind := core.CmdPause
		if d, ok := m.snap.Deployments[m.focusRef()]; ok && d.State == core.DeployPaused {
			kind = core.CmdResume
		}
		m.act(kind)
	case key.Matches(k, m.keys.Backup):
		m.startBackup()
	case key.Matches(k, m.keys.Palette), key.Matches(k, m.keys.PaletteChord):
		m.palette, m.mode = newPalette(m.paletteItems()), modePalette
	case key.Matches(k, m.keys.Filter):
		m.filtering = true
	case key.Matches(k, m.keys.Back):
		if m.filter[m.focus] != "" {
			m.filter[m.focus] = ""
			m.setStatus("filter cleared", false)
		}
	case key.Matches(k, m.keys.Logs):
		ref := m.focusRef()
		m.openLogs(logFilter{title: "Logs · " + ref.String(), ref: ref})
	case key.Matches(k, m.keys.Env):
		m.cycleEnv()
	case key.Matches(k, m.keys.Service):
		m.pickService(int(k.Code - '1'))
	case key.Matches(k, m.keys.Focus):
		m.setFocus((m.focus + 1) % paneCount)
	case key.Matches(k, m.keys.FocusBack):
		m.setFocus((m.focus + paneCount - 1) % paneCount)
	case key.Matches(k, m.keys.Up), key.Matches(k, m.keys.Down):
		if m.focus == panePipeline {
			m.moveStep(key.Matches(k, m.keys.Down))
		}
	case key.Matches(k, m.keys.Open):
		if m.focus == panePipeline {
			m.openStepLog()
		}
	case key.Matches(k, m.keys.Theme):
		m.cycleTheme()
	case key.Matches(k, m.keys.Mouse):
		m.mouse = !m.mouse
		m.setStatus("mouse "+onOff(m.mouse), false)
	}
	return nil
}

// filterKey edits the focused pane's filter: enter keeps it, esc clears
// it. The pane re-renders as the person types; the cache key carries the
// filter, so nothing stale is shown.
func (m *Model) filterKey(k tea.KeyPressMsg) {
	switch {
	case key.Matches(k, m.keys.Choose):
		m.filtering = false
		if m.filter[m.focus] == "" {
			m.status = ""
		} else {
			m.setStatus(fmt.Sprintf("%s filtered by %q; esc clears", paneNames[m.focus], m.filter[m.focus]), false)
		}
	case key.Matches(k, m.keys.Back), k.Keystroke() == "ctrl+c":
		m.filtering, m.filter[m.focus] = false, ""
		m.status = ""
	default:
		editQuery(&m.filter[m.focus], k)
	}
}

// logKey answers a key in the log viewer: / types a filter over the log
// lines; esc clears a filter before it closes the viewer.
func (m *Model) logKey(k tea.KeyPressMsg) tea.Cmd {
	lv := m.logView
	if lv.typing {
		q := lv.filter.text
		switch {
		case key.Matches(k, m.keys.Choose):
			lv.typing = false
		case key.Matches(k, m.keys.Back), k.Keystroke() == "ctrl+c":
			lv.typing, q = false, ""
		default:
			editQuery(&q, k)
		}
		lv.setText(q)
		m.refreshLogs()
		return nil
	}
	switch {
	case key.Matches(k, m.keys.Filter):
		lv.typing = true
		return nil
	case key.Matches(k, m.keys.Back) && lv.filter.text != "":
		lv.setText("")
		m.refreshLogs()
		return nil
	case key.Matches(k, m.keys.Back), key.Matches(k, m.keys.Quit), key.Matches(k, m.keys.Logs):
		m.logView, m.mode = nil, modeMain
		return nil
	}
	return lv.update(k)
}

// startBackup backs up one set of the focused environment now: straight
// to the confirmation when it has one set, through a picker when several.
func (m *Model) startBackup() {
	if why := m.disabled(core.CmdBackupNow); why != "" {
		m.setStatus(fmt.Sprintf("%s refused: %s", core.CmdBackupNow, why), true)
		return
	}
	ref := m.focusRef()
	sets := m.backupSets(ref)
	if len(sets) == 1 {
		m.openConfirm(m.backupDialog(ref, sets[0]))
		return
	}
	m.sets, m.mode = &setPicker{ref: ref, sets: sets}, modeSetPicker
	m.status = ""
}

func (m *Model) quit() tea.Cmd {
	m.sub.Close()
	return tea.Quit
}

// ownRunning counts operations this person started that have not
// finished: commands still waiting for an answer, and journaled
// operations in the engine under this actor.
func (m *Model) ownRunning() int {
	n := m.running
	for _, op := range m.snap.Operations {
		if (op.State == core.OpIntent || op.State == core.OpRunning) && op.Actor.Name == m.opts.Actor.Name && op.Actor.Host == m.opts.Actor.Host {
			n++
		}
	}
	return n
}

func (m *Model) setFocus(p pane) {
	m.rev[m.focus]++
	m.focus = p
	m.rev[p]++
}

func (m *Model) cycleEnv() {
	envs := m.snap.Envs
	if len(envs) == 0 {
		return
	}
	cur := m.focusRef().Env
	next := envs[0]
	for i, e := range envs {
		if e == cur {
			next = envs[(i+1)%len(envs)]
		}
	}
	m.env = next
	m.invalidate()
	m.setStatus("environment: "+next, false)
}

func (m *Model) pickService(i int) {
	if i < 0 || i >= len(m.snap.Services) {
		m.setStatus(fmt.Sprintf("no service %d: this project has %d", i+1, len(m.snap.Services)), true)
		return
	}
	m.service = m.snap.Services[i]
	m.stepSel = ""
	m.invalidate()
	m.setStatus("service: "+m.service, false)
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
	m.setStatus("theme: "+next, false)
}

func (m *Model) openLogs(f logFilter) {
	m.logView = newLogView(f)
	m.mode = modeLogs
	m.refreshLogs()
}

// act opens the confirmation for an action, or refuses it with the reason
// it is not allowed now.
func (m *Model) act(kind core.CommandKind) {
	if why := m.disabled(kind); why != "" {
		m.setStatus(fmt.Sprintf("%s refused: %s", kind, why), true)
		return
	}
	m.openConfirm(m.actionDialog(kind))
}

func (m *Model) openConfirm(c *confirmDialog) {
	if m.opts.Confirm[c.cmd.Ref.Env] == ConfirmTypeName {
		c.typeName = c.cmd.Ref.Service
	}
	m.confirm, m.mode = c, modeConfirm
	m.status = ""
}

// startRollback reads the environment's history off the event loop; the
// picker opens when it arrives.
func (m *Model) startRollback() tea.Cmd {
	if why := m.disabled(core.CmdRollback); why != "" {
		m.setStatus("rollback refused: "+why, true)
		return nil
	}
	ref := m.focusRef()
	m.loading = ref
	m.setStatus("rollback: reading the history of "+ref.String()+"…", false)
	eng := m.eng
	from := m.rollbackFrom(ref)
	return func() tea.Msg {
		msg := historyMsg{ref: ref, rel: map[string]core.Release{}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		msg.deps, msg.err = eng.Deployments(ctx, ref, historyDepth)
		if from == "" && len(msg.deps) > 0 {
			from = msg.deps[0].Version
		}
		// Every release the picker offers, so the confirmation can say which
		// migrations a rollback to it leaves in place.
		versions := []string{from}
		for _, d := range msg.deps {
			versions = append(versions, d.Version)
		}
		for _, v := range versions {
			if _, seen := msg.rel[v]; seen || v == "" {
				continue
			}
			if r, err := eng.Release(ctx, ref.Service, v); err == nil {
				msg.rel[v] = r
			}
		}
		return msg
	}
}

// rollbackFrom is the release a rollback would leave: the rollout in
// flight, else what the target runs.
func (m *Model) rollbackFrom(ref core.Ref) string {
	if d, ok := m.snap.Deployments[ref]; ok && !d.State.Terminal() {
		return d.Version
	}
	cur, _, _ := m.versions(ref)
	return cur
}

func (m *Model) openPicker(msg historyMsg) {
	if msg.ref != m.loading || m.mode != modeMain {
		return
	}
	m.loading = core.Ref{}
	if msg.err != nil {
		m.setStatus(fmt.Sprintf("rollback: could not read the history of %s: %v", msg.ref, msg.err), true)
		return
	}
	from := m.rollbackFrom(msg.ref)
	if d, ok := m.snap.Deployments[msg.ref]; (!ok || d.State.Terminal()) && len(msg.deps) > 0 {
		// The engine rolls back from the newest deployment.
		from = msg.deps[0].Version
	}
	p := newPicker(msg.ref, from, msg.deps, m.snap.Targets[msg.ref].Kept)
	if r, ok := msg.rel[from]; ok {
		p.rel = &r
	}
	p.rels = msg.rel
	for _, d := range msg.deps {
		if d.Version == from {
			p.since = d.StartedAt
			break
		}
	}
	if len(p.items) == 0 {
		m.setStatus(fmt.Sprintf("rollback refused: nothing to roll back to in %s: no other release ran there", msg.ref.Env), true)
		return
	}
	m.picker, m.mode = p, modePicker
	m.status = ""
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

func (m *Model) showResult(r resultMsg) {
	if r.err != nil {
		m.setStatus(fmt.Sprintf("%s %s failed: %v", r.cmd.Kind, r.cmd.Ref, r.err), true)
		return
	}
	msg := r.res.Message
	if msg == "" {
		msg = r.res.Outcome
	}
	m.setStatus(fmt.Sprintf("%s %s: %s", r.cmd.Kind, r.cmd.Ref, msg), false)
}

func (m *Model) setStatus(s string, bad bool) { m.status, m.statusBad = s, bad }

// focusRef is the environment actions apply to: the one chosen with e,
// else the latest environment in promotion order with a rollout in
// flight, else the latest one a release is ready to be promoted into,
// else the last with a verdict, else the last environment.
func (m *Model) focusRef() core.Ref {
	envs := m.snap.Envs
	if m.env != "" {
		return core.Ref{Service: m.service, Env: m.env}
	}
	for i := len(envs) - 1; i >= 0; i-- {
		ref := core.Ref{Service: m.service, Env: envs[i]}
		if d, ok := m.snap.Deployments[ref]; ok && !d.State.Terminal() {
			return ref
		}
	}
	for i := len(envs) - 1; i >= 0; i-- {
		ref := core.Ref{Service: m.service, Env: envs[i]}
		if m.readyToPromote(ref) != "" {
			return ref
		}
	}
	for i := len(envs) - 1; i >= 0; i-- {
		ref := core.Ref{Service: m.service, Env: envs[i]}
		if _, ok := m.snap.Verdicts[ref]; ok {
			return ref
		}
	}
	if len(envs) == 0 {
		return core.Ref{Service: m.service}
	}
	return core.Ref{Service: m.service, Env: envs[len(envs)-1]}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
