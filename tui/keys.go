package tui

import "charm.land/bubbles/v2/key"

// keyMap is every binding the console answers to; the footer's hints are
// drawn from it so they cannot disagree with what the keys do.
type keyMap struct {
	Promote  key.Binding
	Rollback key.Binding
	Abort    key.Binding
	Pause    key.Binding
	Help     key.Binding
	Quit     key.Binding
	Confirm  key.Binding
	Cancel   key.Binding
}

func defaultKeys() keyMap {
	return keyMap{
		Promote:  key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "promote")),
		Rollback: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "rollback")),
		Abort:    key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "abort")),
		Pause:    key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "pause")),
		Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:     key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		// Only y confirms: Enter is what a person presses by reflex, so on
		// a destructive action it must mean cancel.
		Confirm: key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "confirm")),
		Cancel:  key.NewBinding(key.WithKeys("enter", "esc"), key.WithHelp("enter/esc", "cancel")),
	}
}

// ShortHelp is the footer's list of hints.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Promote, k.Rollback, k.Abort, k.Pause, k.Help, k.Quit}
}
