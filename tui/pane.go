package tui

import (
	"fmt"
	"slices"

	"github.com/ripcordhq/ripcord/core"
)

// paneID names the main screen's panes, in tab order.
type paneID int

const (
	panePipeline paneID = iota
	paneErrors
	paneBackups
	paneActivity
	paneCount
)

// row is one line of a pane's content. A row with open can be selected,
// and enter opens what it stands for (a step's log, an audit entry in
// full).
type row struct {
	text string
	id   string // keeps the selection on the same row across redraws
	open func(s *screen) dialog
}

// pane is one of the main screen's panes: a component with its own
// content and the event kinds that change it. The root model lays panes
// out and routes keys to the focused one; a pane draws only from the
// screen it is given.
type pane interface {
	// name is the pane as the status line and help say it.
	name() string
	// title is the box's title now ("Errors · production").
	title(s *screen) string
	// kinds are the events that change what the pane shows.
	kinds() []core.EventKind
	// ticks reports whether the content changes with the clock (a timer
	// is running).
	ticks(s *screen) bool
	// rows is the content at inner width w, narrowed by filter. room is
	// how many rows there are to show it in (0: as many as it needs), so
	// a pane may say more briefly what does not fit.
	rows(s *screen, w, room int, filter string) []row
	// none is what the pane says when it has nothing to show.
	none() string
}

// preferrer is a pane that knows which row to select first (the step in
// flight), rather than the first one.
type preferrer interface {
	prefer(s *screen, rows []row) int
}

// paneView holds a pane's state on screen: its filter, selection and
// scroll, and caches of what it drew, rebuilt only when an event of one of
// its kinds arrived (rev), the clock ticked a running timer, or the size,
// focus, filter or selection changed.
type paneView struct {
	pane
	rev    uint64
	filter string
	sel    string // the selected row's id
	off    int    // the first row shown

	fullKey string
	fullVal []row
	rowsKey string
	rowsVal []row
	boxKey  string
	boxVal  []string
	builds  int // how often the content was built, for tests
}

func (v *paneView) changed() { v.rev++ }

func (v *paneView) affectedBy(k core.EventKind) bool {
	return k == core.EvResync || slices.Contains(v.kinds(), k)
}

func (v *paneView) clockKey(s *screen) int64 {
	if v.ticks(s) {
		return s.now().Unix()
	}
	return 0
}

// content is the pane's rows at inner width w for room rows (0: as many
// as it needs), cached: the rows it needs, and, when they do not fit, the
// rows it says more briefly.
func (v *paneView) content(s *screen, w, room int) []row {
	key := fmt.Sprint(v.rev, w, v.filter, s.service, s.env, v.clockKey(s))
	if v.fullVal == nil || key != v.fullKey {
		v.fullKey, v.fullVal = key, v.rows(s, w, 0, v.filter)
		v.builds++
		if v.fullVal == nil {
			v.fullVal = []row{}
		}
	}
	if room <= 0 {
		return v.fullVal
	}
	if len(v.fullVal) <= room {
		v.rowsKey, v.rowsVal = key, v.fullVal
		return v.fullVal
	}
	key = fmt.Sprint(key, "/", room)
	if v.rowsVal == nil || key != v.rowsKey {
		v.rowsKey, v.rowsVal = key, v.rows(s, w, room, v.filter)
		v.builds++
		if v.rowsVal == nil {
			v.rowsVal = []row{}
		}
	}
	return v.rowsVal
}

// need is the height the pane wants at width w to show everything it
// has, borders included.
func (v *paneView) need(s *screen, w int) int {
	return max(len(v.content(s, w-2, 0)), 1) + 2
}

// selectable lists the indexes of rows that can be selected.
func selectable(rows []row) []int {
	var out []int
	for i, r := range rows {
		if r.open != nil {
			out = append(out, i)
		}
	}
	return out
}

// selected is the index of the selected row: the one chosen, else the
// pane's preference, else the first selectable; -1 when none can be.
func (v *paneView) selected(s *screen, rows []row) int {
	idx := selectable(rows)
	if len(idx) == 0 {
		return -1
	}
	if v.sel != "" {
		for _, i := range idx {
			if rows[i].id == v.sel {
				return i
			}
		}
	}
	if p, ok := v.pane.(preferrer); ok {
		if i := p.prefer(s, rows); i >= 0 {
			return i
		}
	}
	return idx[0]
}

// move moves the selection by delta selectable rows (a page when |delta|
// is large), within the rows drawn at w×h.
func (v *paneView) move(s *screen, delta, w, h int) {
	rows := v.content(s, w-2, h-2)
	idx := selectable(rows)
	if len(idx) == 0 {
		// Nothing to select: scroll instead.
		v.off = min(max(v.off+delta, 0), max(len(rows)-(h-2), 0))
		return
	}
	cur := slices.Index(idx, v.selected(s, rows))
	next := min(max(cur+delta, 0), len(idx)-1)
	v.sel = rows[idx[next]].id
}

// chosen is the selected row, if any, as drawn at w×h.
func (v *paneView) chosen(s *screen, w, h int) (row, bool) {
	rows := v.content(s, w-2, h-2)
	if i := v.selected(s, rows); i >= 0 {
		return rows[i], true
	}
	return row{}, false
}

// draw renders the pane in a w×h box. The focused pane marks its title
// and its selected row, and scrolls to keep the selection in view; rows
// above and below the view are counted in the borders.
func (v *paneView) draw(s *screen, w, h int, focused, typing bool) []string {
	rows := v.content(s, w-2, h-2)
	view := max(h-2, 0)
	sel := -1
	if focused {
		sel = v.selected(s, rows)
	}
	switch {
	case sel >= 0 && sel < v.off:
		v.off = sel
	case sel >= 0 && sel >= v.off+view:
		v.off = sel - view + 1
	}
	v.off = min(max(v.off, 0), max(len(rows)-view, 0))
	key := fmt.Sprint(v.rowsKey, w, h, focused, typing, sel, v.off)
	if v.boxVal != nil && key == v.boxKey {
		return v.boxVal
	}
	title := v.title(s)
	if v.filter != "" || typing {
		title += " /" + v.filter
	}
	if focused {
		title = "▸ " + title
	}
	var lines []string
	end := min(v.off+view, len(rows))
	for i := v.off; i < end; i++ {
		t := rows[i].text
		if i == sel {
			t = s.st.accent.Render("›") + dropFirstCell(t)
		}
		lines = append(lines, t)
	}
	if len(rows) == 0 {
		none := v.none()
		if v.filter != "" {
			none = " nothing matches /" + v.filter
		}
		lines = []string{s.st.muted.Render(none)}
	}
	v.boxKey, v.boxVal = key, s.st.box(title, lines, w, h, v.off, max(len(rows)-end, 0))
	return v.boxVal
}

// dropFirstCell removes a row's leading space, where the selection mark
// goes. Rows start with a space by convention; one that does not keeps
// its text and is shifted by the mark.
func dropFirstCell(s string) string {
	if len(s) > 0 && s[0] == ' ' {
		return s[1:]
	}
	return s
}
