package tui

import (
	"fmt"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

// dialog is a component that has the keyboard while it is open, drawn
// over the main screen: the rollback history, a confirmation, the log
// viewer, the help, the palette, a detail. It answers each message with
// an action for the root model, and draws from the screen it is given —
// never from the root. Dialogs stack: the root owns the stack and the top
// one gets the keys.
type dialog interface {
	// handle answers a message (a key, a mouse wheel) with an action, or
	// nil when it only changed the dialog itself.
	handle(s *screen, msg tea.Msg) action
	// view draws the dialog in the body's w×h.
	view(s *screen, w, h int) []string
	// hints are the footer's keys while the dialog is open.
	hints(s *screen) []key.Binding
}

// overlayer is a dialog drawn over the panes instead of in their place,
// so what a person is deciding about stays in view around it.
type overlayer interface{ overlay() bool }

// statusLiner is a dialog that speaks on the status line (what is being
// typed).
type statusLiner interface{ statusLine(s *screen) string }

// action is what a dialog asks the root model to do.
type action interface{}

type (
	// closeDialog closes the top dialog, saying msg on the status line
	// when it is set.
	closeDialog struct {
		msg string
		sev core.Severity
	}
	// openDialog opens d on top of the stack.
	openDialog struct{ d dialog }
	// replaceDialog closes the top dialog and opens d in its place.
	replaceDialog struct{ d dialog }
	// sendCommand closes the top dialog and sends cmd to the engine.
	sendCommand struct{ cmd core.Command }
	// quitConsole ends the console.
	quitConsole struct{}
	// pressKey closes the top dialog and presses k on the main screen, as
	// the person would (the palette runs an item this way, so it can do
	// neither more nor less than the key).
	pressKey struct{ k tea.KeyPressMsg }
	// setFilter sets the focused pane's filter; done ends the typing.
	setFilter struct {
		text string
		done bool
	}
)

// stack holds the open dialogs, the top one last.
type stack []dialog

func (st stack) top() dialog {
	if len(st) == 0 {
		return nil
	}
	return st[len(st)-1]
}

func (st *stack) push(d dialog) { *st = append(*st, d) }

func (st *stack) pop() {
	if len(*st) > 0 {
		(*st)[len(*st)-1] = nil
		*st = (*st)[:len(*st)-1]
	}
}

// scrollText draws lines (already wrapped to w-2) in a w×h box, from
// *off, clamping it; the borders count what is above and below.
func scrollText(s *screen, title string, lines []string, w, h int, off *int) []string {
	view := max(h-2, 0)
	*off = min(max(*off, 0), max(len(lines)-view, 0))
	end := min(*off+view, len(lines))
	return s.st.box(title, lines[*off:end], w, h, *off, len(lines)-end)
}

// scrollKey moves *off for the keys that scroll a text: ↑/↓, pgup/pgdn,
// home/end. It reports whether k was one of them.
func scrollKey(s *screen, k tea.KeyPressMsg, off *int, page int) bool {
	switch {
	case key.Matches(k, s.keys.Up):
		*off--
	case key.Matches(k, s.keys.Down):
		*off++
	case key.Matches(k, s.keys.PageUp):
		*off -= max(page, 1)
	case key.Matches(k, s.keys.PageDown):
		*off += max(page, 1)
	case key.Matches(k, s.keys.Home):
		*off = 0
	case key.Matches(k, s.keys.End):
		*off = 1 << 30
	default:
		return false
	}
	return true
}

// detailDialog shows one thing in full (an audit entry, a verdict, a
// backup set): what a row of a pane had no room for.
type detailDialog struct {
	title string
	lines []string
	off   int
	page  int
}

func newDetail(title string, lines []string) *detailDialog {
	return &detailDialog{title: title, lines: lines}
}

func (d *detailDialog) handle(s *screen, msg tea.Msg) action {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	if scrollKey(s, k, &d.off, d.page) {
		return nil
	}
	switch {
	case key.Matches(k, s.keys.Back), key.Matches(k, s.keys.Open), key.Matches(k, s.keys.Quit):
		return closeDialog{}
	}
	return nil
}

func (d *detailDialog) view(s *screen, w, h int) []string {
	d.page = h - 3
	return scrollText(s, d.title, wrapLines(d.lines, w-2), w, h, &d.off)
}

func (d *detailDialog) hints(s *screen) []key.Binding {
	return []key.Binding{hint("↑/↓ pgup/pgdn", "scroll"), hint("esc", "close")}
}

// quitDialog asks before quitting while an operation the person started
// still runs: it goes on in the engine, and the person should know.
type quitDialog struct{ running int }

func (q *quitDialog) handle(s *screen, msg tea.Msg) action {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	switch {
	case key.Matches(k, s.keys.Confirm), key.Matches(k, s.keys.Quit):
		return quitConsole{}
	case key.Matches(k, s.keys.Cancel):
		return closeDialog{}
	}
	return nil
}

func (q *quitDialog) view(s *screen, w, h int) []string {
	lines := wrapLines([]string{
		"",
		" " + s.st.warn.Render(fmt.Sprintf("%d operation(s) you started are still running.", q.running)),
		" They continue in the engine after you quit; any console can watch them.",
		"",
		" " + s.st.accent.Render("y/q") + " quit   " + s.st.accent.Render("enter/esc") + " stay",
	}, w-2)
	off := 0
	return scrollText(s, "Quit", lines, w, h, &off)
}

func (q *quitDialog) hints(*screen) []key.Binding {
	return []key.Binding{hint("y/q", "quit"), hint("enter/esc", "stay")}
}

// hint is a footer entry that is not a binding of its own.
func hint(k, desc string) key.Binding { return key.NewBinding(key.WithHelp(k, desc)) }
