package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/tui/prompt"
)

// Confirmation policies for Options.Confirm.
const (
	ConfirmKey      = "y"         // press y
	ConfirmTypeName = "type-name" // type the service name, then enter
)

// confirmDialog is the last word before a command goes to the engine. It
// states what will happen — the same statement the CLI prints (package
// prompt) — and only y (or, by policy, typing the service name) confirms:
// enter is what a person presses by reflex, so it cancels.
type confirmDialog struct {
	cmd core.Command
	// crossing is what a rollback does to the schema, as the engine works
	// it out.
	crossing *core.RollbackCrossing
	typeName string // the text to type, when policy asks for it
	typed    string
	off      int
	page     int
}

func newConfirm(s *screen, cmd core.Command, crossing *core.RollbackCrossing) *confirmDialog {
	c := &confirmDialog{cmd: cmd, crossing: crossing}
	if s.opts.Confirm[cmd.Ref.Env] == ConfirmTypeName {
		c.typeName = cmd.Ref.Service
	}
	return c
}

func (c *confirmDialog) handle(s *screen, msg tea.Msg) action {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	if k.Code == tea.KeyUp || k.Code == tea.KeyDown || k.Code == tea.KeyPgUp || k.Code == tea.KeyPgDown {
		scrollKey(s, k, &c.off, c.page)
		return nil
	}
	cancelled := closeDialog{msg: string(c.cmd.Kind) + " cancelled"}
	if why := c.statement(s).Refused; why != "" {
		// The engine would refuse it as it stands: nothing to confirm.
		switch {
		case key.Matches(k, s.keys.Confirm), k.Code == tea.KeyEnter:
			return closeDialog{msg: fmt.Sprintf("%s refused: %s", c.cmd.Kind, why), sev: core.SeverityWarn}
		case key.Matches(k, s.keys.Back), key.Matches(k, s.keys.Interrupt):
			return cancelled
		}
		return nil
	}
	if c.typeName == "" {
		switch {
		case key.Matches(k, s.keys.Confirm):
			return sendCommand{cmd: c.cmd}
		case key.Matches(k, s.keys.Cancel), key.Matches(k, s.keys.Interrupt):
			return cancelled
		}
		return nil
	}
	switch {
	case key.Matches(k, s.keys.Back), key.Matches(k, s.keys.Interrupt):
		return cancelled
	case k.Code == tea.KeyEnter:
		if c.typed == c.typeName {
			return sendCommand{cmd: c.cmd}
		}
		return closeDialog{msg: fmt.Sprintf("%s refused: %q is not the service name %q", c.cmd.Kind, c.typed, c.typeName), sev: core.SeverityWarn}
	}
	editQuery(&c.typed, k)
	return nil
}

func (c *confirmDialog) statement(s *screen) prompt.Statement {
	return prompt.For(prompt.Input{Cmd: c.cmd, Snapshot: *s.snap, Crossing: c.crossing, Self: s.self, Now: s.now()})
}

// view draws the statement: the title and how to answer always show; the
// detail between them scrolls when the terminal is short. Who else is
// watching is read at every frame, so someone who opens a console while
// the question is open appears in it.
func (c *confirmDialog) view(s *screen, w, h int) []string {
	st := s.st
	stmt := c.statement(s)
	inner := w - 2
	head := wrapLines([]string{"", " " + st.warn.Render(stmt.Title), ""}, inner)
	var body []string
	for _, l := range stmt.Lines {
		body = append(body, wrapLine(st.paintLine(l), inner)...)
	}
	var foot []string
	if stmt.Refused != "" {
		foot = []string{"", " " + st.danger.Render("the engine would refuse this") + "   " + st.accent.Render("esc") + " back"}
	} else if c.typeName != "" {
		foot = wrapLines([]string{"",
			" type " + st.accent.Render(c.typeName) + " and press enter to confirm · " + st.accent.Render("esc") + " cancels",
			" > " + c.typed + st.accent.Render("_")}, inner)
	} else {
		foot = []string{"", " " + st.accent.Render("y") + " confirm   " + st.accent.Render("enter/esc") + " cancel"}
	}
	room := h - 2 - len(head) - len(foot)
	if room < len(body) {
		// Short terminal: the spacing goes first, then the detail scrolls.
		head, foot = nonBlank(head), nonBlank(foot)
		room = h - 2 - len(head) - len(foot)
	}
	room = max(room, 1)
	c.page = max(room-2, 1)
	var shown []string
	if len(body) <= room {
		c.off, shown = 0, body
	} else {
		// A row each for "above" and "below" marks where they apply.
		c.off = min(max(c.off, 0), len(body)-max(room-1, 1))
		avail := room
		if c.off > 0 {
			avail--
			shown = append(shown, st.warn.Render(fmt.Sprintf(" ↑ %d more above (↑ scrolls)", c.off)))
		}
		end := min(c.off+max(avail, 1), len(body))
		if end < len(body) && avail > 1 {
			end--
		}
		shown = append(shown, body[c.off:end]...)
		if end < len(body) {
			shown = append(shown, st.warn.Render(fmt.Sprintf(" ↓ %d more (↓ scrolls)", len(body)-end)))
		}
	}
	lines := append(append(append([]string{}, head...), shown...), foot...)
	return st.box("Confirm "+string(c.cmd.Kind), lines, w, h, 0, 0)
}

func nonBlank(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.TrimSpace(ansi.Strip(l)) != "" {
			out = append(out, l)
		}
	}
	return out
}

func (c *confirmDialog) hints(s *screen) []key.Binding {
	if c.statement(s).Refused != "" {
		return []key.Binding{hint("esc", "back")}
	}
	if c.typeName != "" {
		return []key.Binding{hint("enter", "confirm the typed name"), hint("esc", "cancel")}
	}
	return []key.Binding{s.keys.Confirm, s.keys.Cancel}
}

func (c *confirmDialog) statusLine(s *screen) string {
	if c.statement(s).Refused != "" {
		return " " + s.st.danger.Render(string(c.cmd.Kind)+" would be refused: see why above")
	}
	if c.typeName != "" {
		return " " + s.st.warn.Render("confirm "+string(c.cmd.Kind)+"? type "+c.typeName+" then enter; esc cancels")
	}
	return " " + s.st.warn.Render("confirm "+string(c.cmd.Kind)+"? y confirms, enter or esc cancels")
}
