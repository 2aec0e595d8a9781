package tui

import (
	"fmt"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

// helpDialog lists every key, grouped, with why a disabled action is
// disabled now (the engine's reason). Typing narrows it to the bindings
// whose key, description or reason holds the query. It flows into as
// many columns as fit and pages when even those do not: at any size every
// binding can be read in full.
type helpDialog struct {
	query string
	page  int
}

func (d *helpDialog) handle(s *screen, msg tea.Msg) action {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	switch {
	case key.Matches(k, s.keys.Help), key.Matches(k, s.keys.Back), key.Matches(k, s.keys.Interrupt):
		return closeDialog{}
	case key.Matches(k, s.keys.PageDown), k.Code == tea.KeyDown, k.Code == tea.KeyRight:
		d.page++
	case key.Matches(k, s.keys.PageUp), k.Code == tea.KeyUp, k.Code == tea.KeyLeft:
		d.page = max(d.page-1, 0)
	default:
		if editQuery(&d.query, k) {
			d.page = 0
		}
	}
	return nil
}

// helpGroups are the keymap's groups with their headings.
func helpGroups(k keyMap) ([]string, [][]key.Binding) {
	return []string{"act", "look around", "the console", "in dialogs"}, k.FullHelp()
}

func (d *helpDialog) view(s *screen, w, h int) []string {
	st := s.st
	inner := w - 2
	titles, groups := helpGroups(s.keys)
	keyW := 0
	for _, g := range groups {
		for _, b := range g {
			keyW = max(keyW, width(b.Help().Key))
		}
	}
	// As many columns as keep a description readable.
	const gap, minCol = 2, 40
	cols := max(min((inner-1+gap)/(minCol+gap), len(groups)), 1)
	colW := (inner - 1 - (cols-1)*gap) / cols
	// Each group is a heading and its entries; an entry is a binding
	// and, when the engine would refuse its action, the reason under it.
	type entry []string
	var groupsOut [][]entry
	for i, g := range groups {
		var es []entry
		for _, b := range g {
			hp := b.Help()
			why := ""
			if kind := actionKind(s, b); kind != "" {
				if p := s.possible(kind); !p.Allowed {
					why = p.Why
				}
			}
			if d.query != "" && !containsFold(hp.Key, d.query) && !containsFold(hp.Desc, d.query) && !containsFold(why, d.query) {
				continue
			}
			desc := st.text.Render(hp.Desc)
			if why != "" {
				desc = st.dim.Render(hp.Desc)
			}
			e := entry{st.accent.Render(pad(hp.Key, keyW)) + " " + desc}
			if why != "" {
				for _, q := range wrapLine("disabled: "+why, max(colW-keyW-1, 8)) {
					e = append(e, blank(keyW+1)+st.muted.Render(q))
				}
			}
			es = append(es, e)
		}
		if len(es) > 0 {
			es[0] = append(entry{st.muted.Render(titles[i])}, es[0]...)
			groupsOut = append(groupsOut, es)
		}
	}
	head := []string{""}
	if d.query != "" {
		head = []string{" " + st.accent.Render("search:") + " " + d.query + st.accent.Render("_"), ""}
	}
	if len(groupsOut) == 0 {
		return st.box("Help", append(head, st.muted.Render(fmt.Sprintf(" no key, description or reason holds %q", d.query))), w, h, 0, 0)
	}
	colH := max(h-2-len(head)-1, 1)
	// Balance the columns: fill each to about an even share of the lines,
	// never past the page, and never split an entry.
	total := 0
	for _, g := range groupsOut {
		for _, e := range g {
			total += len(e)
		}
		total++ // the blank line between groups
	}
	target := min(max((total+cols-1)/cols, 1), colH)
	var columns [][]string
	var cur []string
	for gi, g := range groupsOut {
		for ei, e := range g {
			gap := 0
			if ei == 0 && gi > 0 && len(cur) > 0 {
				gap = 1
			}
			if len(cur) > 0 && (len(cur)+gap+len(e) > colH || (len(cur) >= target && ei == 0)) {
				columns = append(columns, cur)
				cur, gap = nil, 0
			}
			if gap > 0 {
				cur = append(cur, "")
			}
			for _, l := range e {
				if len(cur) == colH { // an entry taller than a page
					columns = append(columns, cur)
					cur = nil
				}
				cur = append(cur, l)
			}
		}
	}
	columns = append(columns, cur)
	pages := (len(columns) + cols - 1) / cols
	d.page = min(d.page, pages-1)
	lines := append([]string{}, head...)
	for y := 0; y < colH; y++ {
		line := " "
		for c := 0; c < cols; c++ {
			i := d.page*cols + c
			cell := ""
			if i < len(columns) && y < len(columns[i]) {
				cell = columns[i][y]
			}
			if c > 0 {
				line += blank(gap)
			}
			line += fit(cell, colW)
		}
		lines = append(lines, line)
	}
	title := "Help"
	if pages > 1 {
		title += fmt.Sprintf(" · page %d of %d", d.page+1, pages)
		lines = append(lines, st.warn.Render(fmt.Sprintf(" page %d of %d: pgdn/pgup (or ↓/↑) turn the page", d.page+1, pages)))
	}
	return st.box(title, lines, w, h, 0, 0)
}

// actionKind is the command an action binding asks for, "" for the rest.
func actionKind(s *screen, b key.Binding) core.CommandKind {
	k := s.keys
	switch b.Help().Key {
	case k.Promote.Help().Key:
		return core.CmdPromote
	case k.FullPromote.Help().Key:
		return core.CmdFullPromote
	case k.Rollback.Help().Key:
		return core.CmdRollback
	case k.Abort.Help().Key:
		return core.CmdAbort
	case k.Pause.Help().Key:
		return s.pauseKind()
	case k.Backup.Help().Key:
		return core.CmdBackupNow
	}
	return ""
}

func (d *helpDialog) hints(*screen) []key.Binding {
	return []key.Binding{hint("type", "search"), hint("pgdn/pgup", "page"), hint("?/esc", "close help")}
}
