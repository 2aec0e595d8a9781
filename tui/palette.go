package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/ripcordhq/ripcord/core"
)

// paletteItem is one action the palette offers. Choosing it replays
// press through the same key handler the key itself goes to, so the
// palette can never do more, or less, than the key: a destructive action
// still opens its confirmation, a refused one still says why.
type paletteItem struct {
	name  string
	key   string // what the person would press, as help shows it
	press tea.KeyPressMsg
	kind  core.CommandKind // the command it leads to, for the disabled check
}

// palette is the command palette: every action of the keymap, narrowed by
// what the person types.
type palette struct {
	query string
	all   []paletteItem
	shown []paletteItem
	sel   int
}

// paletteItems lists the actions in the order the help lists them.
func (m *Model) paletteItems() []paletteItem {
	k := m.keys
	pressOf := func(b key.Binding) tea.KeyPressMsg { return keyPress(b.Keys()[0]) }
	item := func(b key.Binding, name string, kind core.CommandKind) paletteItem {
		return paletteItem{name: name, key: b.Help().Key, press: pressOf(b), kind: kind}
	}
	pause := "pause"
	if d, ok := m.snap.Deployments[m.focusRef()]; ok && d.State == core.DeployPaused {
		pause = "resume"
	}
	items := []paletteItem{
		item(k.Promote, "promote", core.CmdPromote),
		item(k.FullPromote, "full promote", core.CmdFullPromote),
		item(k.Rollback, "rollback", core.CmdRollback),
		item(k.Abort, "abort", core.CmdAbort),
		item(k.Pause, pause, core.CmdPause),
		item(k.Backup, "back up now", core.CmdBackupNow),
		item(k.Logs, "logs", ""),
		item(k.Filter, "filter", ""),
		item(k.Env, "next environment", ""),
		item(k.Focus, "next pane", ""),
	}
	for i, svc := range m.snap.Services {
		if i == 9 {
			break // only 1-9 have keys
		}
		d := fmt.Sprint(i + 1)
		items = append(items, paletteItem{name: "service " + svc, key: d, press: keyPress(d)})
	}
	return append(items,
		item(k.Theme, "next theme", ""),
		item(k.Mouse, "mouse on/off", ""),
		item(k.Help, "help", ""),
		item(k.Quit, "quit", ""),
	)
}

// keyPress is the keypress a terminal sends for a binding's key name.
func keyPress(s string) tea.KeyPressMsg {
	switch s {
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

func newPalette(items []paletteItem) *palette {
	p := &palette{all: items}
	p.narrow()
	return p
}

// narrow keeps the items that match the query, best first: a name or
// one of its words starting with it, or the item's key itself; then a
// name merely containing it; then its letters in order ("fp" for full
// promote). Within each rank the keymap's order holds.
func (p *palette) narrow() {
	p.shown = p.shown[:0]
	p.sel = 0
	if p.query == "" {
		p.shown = append(p.shown, p.all...)
		return
	}
	for rank := range 3 {
		for _, it := range p.all {
			if matchRank(it, p.query) == rank {
				p.shown = append(p.shown, it)
			}
		}
	}
}

// matchRank is how well an item matches q: 0 best, 2 loosest, -1 not at
// all.
func matchRank(it paletteItem, q string) int {
	lname, lq := strings.ToLower(it.name), strings.ToLower(q)
	switch {
	case it.key == q || strings.HasPrefix(lname, lq) || strings.Contains(lname, " "+lq):
		return 0
	case strings.Contains(lname, lq):
		return 1
	case fuzzyMatch(lname, lq):
		return 2
	}
	return -1
}

type paletteAction int

const (
	paletteNone paletteAction = iota
	paletteRun
	paletteClose
)

func (p *palette) update(k tea.KeyPressMsg, keys keyMap) paletteAction {
	switch {
	case k.Code == tea.KeyUp:
		p.sel = max(p.sel-1, 0)
	case k.Code == tea.KeyDown:
		p.sel = min(p.sel+1, max(len(p.shown)-1, 0))
	case key.Matches(k, keys.Choose):
		if len(p.shown) > 0 {
			return paletteRun
		}
	case key.Matches(k, keys.Back), k.Keystroke() == "ctrl+c":
		return paletteClose
	default:
		if editQuery(&p.query, k) {
			p.narrow()
		}
	}
	return paletteNone
}

func (p *palette) chosen() paletteItem { return p.shown[p.sel] }

// overlay draws the palette over the main screen's body, so the panes a
// person is deciding about stay in view around it.
func (p *palette) overlay(m *Model, lines []string, w int, body rect) {
	bw := min(w-4, 100)
	if bw < 20 || body.h < 7 {
		return
	}
	// The box shrinks with the list, so narrowing it uncovers the panes.
	c := p.content(m, bw-2, body.h-3)
	bh := len(c) + 2
	x, y := (w-bw)/2, body.y+1
	box := m.box("Commands", c, bw, bh)
	for i, row := range box {
		under := lines[y+i]
		lines[y+i] = ansi.Truncate(under, x, "") + row + ansi.TruncateLeft(under, x+bw, "")
	}
}

// content is the query line, the items that fit around the selection, the
// selected item's reason in full when it is disabled, and how to answer.
func (p *palette) content(m *Model, w, h int) []string {
	s := m.st
	head := []string{" " + s.accent.Render(":") + " " + p.query + s.accent.Render("_"), ""}
	foot := []string{""}
	if len(p.shown) > 0 {
		if why := m.paletteDisabled(p.chosen()); why != "" {
			foot = append(wrapLines([]string{" " + s.warn.Render(p.chosen().name+" is disabled:") + " " + why}, w), "")
			foot = append([]string{""}, foot...)
		}
	}
	foot = append(foot, " "+s.accent.Render("↑/↓")+" move   "+s.accent.Render("enter")+" run   "+s.accent.Render("esc")+" close")
	room := max(h-len(head)-len(foot), 1)
	first := 0
	if p.sel >= room {
		first = p.sel - room + 1
	}
	out := head
	if len(p.shown) == 0 {
		out = append(out, s.muted.Render(fmt.Sprintf(" no command matches %q", p.query)))
	}
	for i := first; i < len(p.shown) && i < first+room; i++ {
		it := p.shown[i]
		mark := "  "
		if i == p.sel {
			mark = s.accent.Render("▸ ")
		}
		line := " " + mark
		if why := m.paletteDisabled(it); why != "" {
			line += pad(s.dim.Render(it.name), 19) + " " + pad(s.dim.Render(it.key), 8) + " " + s.muted.Render(why)
		} else {
			line += pad(s.text.Render(it.name), 19) + " " + s.accent.Render(pad(it.key, 8))
		}
		out = append(out, line)
	}
	return append(out, foot...)
}

// paletteDisabled is why an item cannot run now, "" when it can.
func (m *Model) paletteDisabled(it paletteItem) string {
	if it.kind == "" {
		return ""
	}
	return m.disabled(it.kind)
}
