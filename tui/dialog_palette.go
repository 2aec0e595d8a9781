package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

// paletteItem is one action the palette offers. Choosing it presses its
// key on the main screen, so the palette can never do more, or less, than
// the key: a destructive action still opens its confirmation, a refused
// one still says why.
type paletteItem struct {
	name  string
	key   string // what the person would press, as help shows it
	press tea.KeyPressMsg
	kind  core.CommandKind // the command it leads to, for the engine's word on it
}

// paletteDialog is the command palette: every action of the keymap,
// narrowed by what the person types, drawn over the panes.
type paletteDialog struct {
	query string
	all   []paletteItem
	shown []paletteItem
	sel   int
	off   int
}

func (*paletteDialog) overlay() bool { return true }

// paletteItems lists the actions in the order the help lists them.
func paletteItems(s *screen) []paletteItem {
	k := s.keys
	item := func(b key.Binding, name string, kind core.CommandKind) paletteItem {
		return paletteItem{name: name, key: b.Help().Key, press: keyPress(b.Keys()[0]), kind: kind}
	}
	pause := s.pauseKind()
	items := []paletteItem{
		item(k.Promote, "promote", core.CmdPromote),
		item(k.FullPromote, "full promote", core.CmdFullPromote),
		item(k.Rollback, "rollback", core.CmdRollback),
		item(k.Abort, "abort", core.CmdAbort),
		item(k.Pause, string(pause), pause),
		item(k.Backup, "back up now", core.CmdBackupNow),
		item(k.Logs, "logs", ""),
		item(k.Filter, "filter", ""),
		item(k.Env, "next environment", ""),
		item(k.Focus, "next pane", ""),
	}
	for i, svc := range s.snap.Services {
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

func newPalette(s *screen) *paletteDialog {
	p := &paletteDialog{all: paletteItems(s)}
	p.narrow()
	return p
}

// narrow keeps the items that match the query, best first: a name or one
// of its words starting with it, or the item's key itself; then a name
// merely containing it; then its letters in order ("fp" for full
// promote). Within each rank the keymap's order holds.
func (p *paletteDialog) narrow() {
	p.shown = p.shown[:0]
	p.sel, p.off = 0, 0
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

func (p *paletteDialog) handle(s *screen, msg tea.Msg) action {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	switch {
	case k.Code == tea.KeyUp:
		p.sel = max(p.sel-1, 0)
	case k.Code == tea.KeyDown:
		p.sel = min(p.sel+1, max(len(p.shown)-1, 0))
	case key.Matches(k, s.keys.Choose):
		if len(p.shown) > 0 {
			return pressKey{k: p.shown[p.sel].press}
		}
	case key.Matches(k, s.keys.Back), key.Matches(k, s.keys.Interrupt):
		return closeDialog{}
	default:
		if editQuery(&p.query, k) {
			p.narrow()
		}
	}
	return nil
}

// view is the palette's box, sized to its list: it shrinks as the list
// narrows and uncovers the panes.
func (p *paletteDialog) view(s *screen, w, h int) []string {
	bw := min(w-4, 100)
	c := p.content(s, bw-2, h-3)
	return s.st.box("Commands", c, bw, len(c)+2, 0, 0)
}

// content is the query line, the items that fit around the selection
// (with marks for those above and below), the selected item's reason in
// full when it is disabled, and how to answer.
func (p *paletteDialog) content(s *screen, w, h int) []string {
	st := s.st
	head := []string{" " + st.accent.Render(":") + " " + p.query + st.accent.Render("_"), ""}
	foot := []string{""}
	if len(p.shown) > 0 {
		if why := p.disabled(s, p.shown[p.sel]); why != "" {
			foot = append(append([]string{""}, wrapLines([]string{" " + st.warn.Render(p.shown[p.sel].name+" is disabled:") + " " + why}, w)...), "")
		}
	}
	foot = append(foot, " "+st.accent.Render("↑/↓")+" move   "+st.accent.Render("enter")+" run   "+st.accent.Render("esc")+" close")
	out := head
	if len(p.shown) == 0 {
		return append(append(out, st.muted.Render(fmt.Sprintf(" no command matches %q", p.query))), foot...)
	}
	room := max(h-len(head)-len(foot), 3)
	items := make([]string, 0, len(p.shown))
	for i, it := range p.shown {
		mark := "  "
		if i == p.sel {
			mark = st.accent.Render("▸ ")
		}
		line := " " + mark
		if why := p.disabled(s, it); why != "" {
			line += pad(st.dim.Render(it.name), 19) + " " + pad(st.dim.Render(it.key), 8) + " " + st.muted.Render(why)
		} else {
			line += pad(st.text.Render(it.name), 19) + " " + st.accent.Render(pad(it.key, 8))
		}
		items = append(items, line)
	}
	if len(items) <= room {
		p.off = 0
		return append(append(out, items...), foot...)
	}
	span := room - 2
	if p.sel < p.off {
		p.off = p.sel
	}
	if p.sel >= p.off+span {
		p.off = p.sel - span + 1
	}
	p.off = min(max(p.off, 0), len(items)-span)
	end := p.off + span
	mark := func(n int, dir string) string {
		if n == 0 {
			return ""
		}
		return st.warn.Render(fmt.Sprintf("   %s %d more", dir, n))
	}
	out = append(out, mark(p.off, "↑"))
	out = append(out, items[p.off:end]...)
	out = append(out, mark(len(items)-end, "↓"))
	return append(out, foot...)
}

// disabled is why an item cannot run now, "" when it can.
func (p *paletteDialog) disabled(s *screen, it paletteItem) string {
	if it.kind == "" {
		return ""
	}
	if pos := s.possible(it.kind); !pos.Allowed {
		return pos.Why
	}
	return ""
}

func (p *paletteDialog) hints(*screen) []key.Binding {
	return []key.Binding{hint("type", "narrow"), hint("↑/↓", "move"), hint("enter", "run"), hint("esc", "close")}
}
