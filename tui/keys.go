package tui

import "charm.land/bubbles/v2/key"

// keyMap is every binding the console answers to; the footer and the full
// help are drawn from it so they cannot disagree with what the keys do.
type keyMap struct {
	Promote     key.Binding
	FullPromote key.Binding
	Rollback    key.Binding
	Abort       key.Binding
	Pause       key.Binding
	Backup      key.Binding
	Logs        key.Binding
	Filter      key.Binding
	// Palette and PaletteChord both open the command palette; they are
	// two bindings so the footer can show the short one and help both.
	Palette      key.Binding
	PaletteChord key.Binding
	Env          key.Binding
	Service      key.Binding
	Focus        key.Binding
	FocusBack    key.Binding
	Open         key.Binding
	Up           key.Binding
	Down         key.Binding
	PageUp       key.Binding
	PageDown     key.Binding
	Home         key.Binding
	End          key.Binding
	Theme        key.Binding
	Mouse        key.Binding
	Help         key.Binding
	Quit         key.Binding
	// Confirm and Cancel answer a confirmation dialog.
	Confirm key.Binding
	Cancel  key.Binding
	// Choose and Back answer the rollback history picker and close views.
	Choose key.Binding
	Back   key.Binding
	// Interrupt closes whatever has the keyboard where letters are text
	// (a search, a filter, a typed confirmation).
	Interrupt key.Binding
}

func defaultKeys() keyMap {
	return keyMap{
		Promote:     key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "promote")),
		FullPromote: key.NewBinding(key.WithKeys("P"), key.WithHelp("P", "full promote")),
		Rollback:    key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "rollback")),
		Abort:       key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "abort")),
		Pause:       key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "pause")),
		Backup:      key.NewBinding(key.WithKeys("b"), key.WithHelp("b", "back up now")),
		Logs:        key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "logs")),
		Filter:      key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		// ctrl+p only opens a list; no chord ever performs an action, so a
		// slip of the fingers (or a tmux prefix) cannot change production.
		Palette:      key.NewBinding(key.WithKeys(":"), key.WithHelp(":", "commands")),
		PaletteChord: key.NewBinding(key.WithKeys("ctrl+p"), key.WithHelp("ctrl+p", "commands")),
		Env:          key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "next environment")),
		Service:      key.NewBinding(key.WithKeys("1", "2", "3", "4", "5", "6", "7", "8", "9"), key.WithHelp("1-9", "service")),
		Focus:        key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next pane")),
		FocusBack:    key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous pane")),
		Open:         key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open the line in full")),
		Up:           key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:         key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:       key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup", "page up")),
		PageDown:     key.NewBinding(key.WithKeys("pgdown"), key.WithHelp("pgdn", "page down")),
		Home:         key.NewBinding(key.WithKeys("home"), key.WithHelp("home", "first")),
		End:          key.NewBinding(key.WithKeys("end"), key.WithHelp("end", "last")),
		Theme:        key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "next theme")),
		Mouse:        key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "mouse on/off")),
		Help:         key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:         key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		// Only y confirms: Enter is what a person presses by reflex, so on
		// a destructive action it must mean cancel.
		Confirm:   key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "confirm")),
		Cancel:    key.NewBinding(key.WithKeys("enter", "esc"), key.WithHelp("enter/esc", "cancel")),
		Choose:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "choose")),
		Back:      key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Interrupt: key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "close")),
	}
}

// ShortHelp is the footer's list of hints.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Promote, k.Rollback, k.Abort, k.Pause, k.Logs, k.Filter, k.Palette, k.Help, k.Quit}
}

// footerDropOrder is which hints a narrow footer gives up first; the
// actions, ? (which lists everything) and q always keep their place.
func (k keyMap) footerDropOrder() []key.Binding {
	return []key.Binding{k.Filter, k.Palette, k.Logs}
}

// FullHelp is the `?` screen, one column per group.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Promote, k.FullPromote, k.Rollback, k.Abort, k.Pause, k.Backup},
		{k.Logs, k.Filter, k.Palette, k.PaletteChord, k.Open, k.Up, k.Down, k.PageUp, k.PageDown, k.Focus, k.FocusBack},
		{k.Env, k.Service, k.Theme, k.Mouse, k.Help, k.Quit},
		{k.Confirm, k.Cancel, k.Choose, k.Back, k.Interrupt},
	}
}
