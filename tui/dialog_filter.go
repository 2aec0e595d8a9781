package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// filterDialog is the person typing the focused pane's filter: the pane
// narrows as they type; enter keeps the filter, esc clears it. It draws
// nothing over the panes — the status line shows what is typed.
type filterDialog struct {
	pane string
	text string
}

func (*filterDialog) overlay() bool { return true }

func (f *filterDialog) handle(s *screen, msg tea.Msg) action {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	switch {
	case key.Matches(k, s.keys.Choose):
		return setFilter{text: f.text, done: true}
	case key.Matches(k, s.keys.Back), key.Matches(k, s.keys.Interrupt):
		return setFilter{done: true}
	}
	editQuery(&f.text, k)
	return setFilter{text: f.text}
}

func (*filterDialog) view(*screen, int, int) []string { return nil }

func (f *filterDialog) statusLine(s *screen) string {
	return " " + s.st.accent.Render("filter "+f.pane+":") + " " + f.text + s.st.accent.Render("_")
}

func (*filterDialog) hints(*screen) []key.Binding {
	return []key.Binding{hint("enter", "keep filter"), hint("esc", "clear filter")}
}
