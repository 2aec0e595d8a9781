// Package tui is the release console's terminal screen: a Bubble Tea model
// that renders a core.Snapshot, keeps it current from the engine's event
// stream, and sends core.Commands for the keys a release manager presses.
package tui

import (
	"context"
	"fmt"
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

// Options configures the console.
type Options struct {
	// Service is the service the screen watches; empty means the first
	// service of the project.
	Service string
	// Actor is the person every command is recorded against.
	Actor core.Actor
	// Theme colours the screen; the zero Theme means themes.Default.
	Theme themes.Theme
	// ReadOnly refuses every action key; ReadOnlyReason says why.
	ReadOnly       bool
	ReadOnlyReason string
	// Clock is the time shown in the header and used for ages.
	Clock func() time.Time
	// Location is the zone clock times are shown in (default time.Local).
	Location *time.Location
	// NoColor renders plain text (tests, NO_COLOR, dumb terminals).
	NoColor bool
	// Width and Height are the size until the terminal reports one.
	Width, Height int
}

// Model is the console's root model.
type Model struct {
	eng    *core.Engine
	sub    *core.Subscription
	snap   core.Snapshot
	opts   Options
	st     styles
	keys   keyMap
	buf    []core.Event
	w, h   int
	flushQ bool // a flush tick is scheduled

	confirm   *pending // the action waiting for y, if any
	status    string
	statusBad bool
	help      bool
}

// pending is an action shown in the confirmation dialog.
type pending struct {
	cmd     core.Command
	summary string
	// watchers counts the other consoles on this engine, so a person
	// knows whether someone else may act at the same time.
	watchers int
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
)

// New subscribes to the engine and returns the console's model.
func New(eng *core.Engine, opts Options) tea.Model {
	return newModel(eng, opts)
}

func newModel(eng *core.Engine, opts Options) *Model {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Theme.Name == "" {
		opts.Theme, _ = themes.Get(themes.Default)
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
	return &Model{
		eng: eng, sub: sub, snap: snap, opts: opts,
		st: newStyles(opts.Theme, opts.NoColor), keys: defaultKeys(),
		w: opts.Width, h: opts.Height,
	}
}

// Init starts waiting for events and the header clock.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.waitReady(), clockTick())
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
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case readyMsg:
		if !m.flushQ {
			m.flushQ = true
			return m, tea.Tick(flushEvery, func(time.Time) tea.Msg { return flushMsg{} })
		}
	case flushMsg:
		m.flushQ = false
		m.flush()
		return m, m.waitReady()
	case clockMsg:
		return m, clockTick()
	case resultMsg:
		m.showResult(msg)
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	return m, nil
}

// flush folds every queued event into the snapshot.
func (m *Model) flush() {
	m.buf = m.sub.Drain(m.buf[:0])
	for _, ev := range m.buf {
		m.snap.Apply(ev)
	}
	clear(m.buf)
}

func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	if m.confirm != nil {
		switch {
		case key.Matches(k, m.keys.Confirm):
			p := m.confirm
			m.confirm = nil
			m.setStatus(fmt.Sprintf("%s %s: sent…", p.cmd.Kind, p.cmd.Ref), false)
			return m.send(p.cmd)
		case key.Matches(k, m.keys.Cancel):
			m.setStatus(fmt.Sprintf("%s cancelled", m.confirm.cmd.Kind), false)
			m.confirm = nil
		}
		return nil
	}
	switch {
	case key.Matches(k, m.keys.Quit):
		m.sub.Close()
		return tea.Quit
	case key.Matches(k, m.keys.Help):
		m.help = !m.help
	case key.Matches(k, m.keys.Promote):
		m.ask(core.CmdPromote)
	case key.Matches(k, m.keys.Rollback):
		m.ask(core.CmdRollback)
	case key.Matches(k, m.keys.Abort):
		m.ask(core.CmdAbort)
	case key.Matches(k, m.keys.Pause):
		kind := core.CmdPause
		if d, ok := m.snap.Deployments[m.focusRef()]; ok && d.State == core.DeployPaused {
			kind = core.CmdResume
		}
		m.ask(kind)
	}
	return nil
}

// ask opens the confirmation dialog for an action, or refuses it with the
// reason when the console is read-only.
func (m *Model) ask(kind core.CommandKind) {
	if m.opts.ReadOnly {
		m.setStatus(fmt.Sprintf("%s refused: %s", kind, m.opts.ReadOnlyReason), true)
		return
	}
	ref := m.focusRef()
	cmd := core.Command{Kind: kind, Ref: ref, Actor: m.opts.Actor}
	d, hasDep := m.snap.Deployments[ref]
	summary := fmt.Sprintf("%s %s", kind, ref)
	switch kind {
	case core.CmdPromote:
		if hasDep {
			cmd.Version = d.Version
			summary = fmt.Sprintf("promote %s %s (now %d%% of traffic) to its next step", ref, d.Version, d.Weight)
		}
	case core.CmdRollback:
		if hasDep && d.From != "" {
			cmd.Version = d.From
			summary = fmt.Sprintf("roll %s back from %s to %s", ref, d.Version, d.From)
		}
	case core.CmdAbort:
		if hasDep {
			summary = fmt.Sprintf("abort %s %s: traffic back to %s, candidate kept", ref, d.Version, d.From)
		}
	case core.CmdPause, core.CmdResume:
		if hasDep {
			summary = fmt.Sprintf("%s the rollout of %s %s at %d%%", kind, ref, d.Version, d.Weight)
		}
	}
	m.confirm = &pending{cmd: cmd, summary: summary, watchers: max(m.eng.Subscribers()-1, 0)}
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

// focusRef is the environment actions apply to: the latest environment in
// promotion order with a rollout in flight, else the last environment.
func (m *Model) focusRef() core.Ref {
	envs := m.snap.Envs
	for i := len(envs) - 1; i >= 0; i-- {
		ref := core.Ref{Service: m.opts.Service, Env: envs[i]}
		if d, ok := m.snap.Deployments[ref]; ok && !d.State.Terminal() {
			return ref
		}
	}
	for i := len(envs) - 1; i >= 0; i-- {
		ref := core.Ref{Service: m.opts.Service, Env: envs[i]}
		if _, ok := m.snap.Verdicts[ref]; ok {
			return ref
		}
	}
	if len(envs) == 0 {
		return core.Ref{Service: m.opts.Service}
	}
	return core.Ref{Service: m.opts.Service, Env: envs[len(envs)-1]}
}
