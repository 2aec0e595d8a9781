package tui

import "sort"

// The screen from top to bottom: the header, the strip of what needs a
// person, the panes (or a dialog in their place), the message area and
// the key hints.
const (
	// minWidth and minHeight are the smallest terminal the console draws
	// in; below it says so instead of drawing broken boxes.
	minWidth, minHeight = 60, 16
	// From twoColumnMin the panes sit in two columns; from threeColumnMin
	// the three panes whose content is bounded (Pipeline, Errors, Backups)
	// share a row sized to what they hold and Activity, whose history only
	// grows, takes the rest at full width.
	twoColumnMin   = 120
	threeColumnMin = 180
	// headerRows is the header and the strip above the panes.
	headerRows = 2
)

// rect is a region of the screen in cells, (0,0) being the top left, as
// mouse coordinates are.
type rect struct{ x, y, w, h int }

func (r rect) contains(x, y int) bool {
	return x >= r.x && x < r.x+r.w && y >= r.y && y < r.y+r.h
}

// screenLayout is where each part of the main screen goes. The view draws
// from it and mouse clicks are hit-tested against it, so what a person
// clicks on is the pane drawn there.
type screenLayout struct {
	body    rect // the panes' region, or a dialog's
	panes   [paneCount]rect
	message rect // the message area under the panes
}

// paneAt is the pane drawn at cell (x, y), if any.
func (l screenLayout) paneAt(x, y int) (paneID, bool) {
	for p, r := range l.panes {
		if r.contains(x, y) {
			return paneID(p), true
		}
	}
	return 0, false
}

// tooSmall reports whether the terminal is below the console's minimum.
func tooSmall(w, h int) bool { return w < minWidth || h < minHeight }

// layout places the panes for the current size and content: each pane
// gets what its content needs where there is room, the space left goes to
// the panes that grow (Errors and Activity), and where there is not
// enough every pane keeps at least one line and scrolls the rest, marked.
func (m *Model) layout() screenLayout {
	w, h := m.w, m.h
	msg := m.messageRows(w)
	body := rect{0, headerRows, w, max(h-headerRows-msg-1, 0)}
	l := screenLayout{body: body, message: rect{0, body.y + body.h, w, msg}}
	need := func(p paneID, width int) int { return m.panes[p].need(&m.s, width) }
	y0, bh := body.y, body.h
	switch {
	case w >= threeColumnMin:
		cw := w / 3
		top := max(need(panePipeline, cw), need(paneErrors, cw), need(paneBackups, w-2*cw))
		// Activity keeps at least a few entries in view.
		top = min(max(top, 3), max(bh-6, 3))
		l.panes[panePipeline] = rect{0, y0, cw, top}
		l.panes[paneErrors] = rect{cw, y0, cw, top}
		l.panes[paneBackups] = rect{2 * cw, y0, w - 2*cw, top}
		l.panes[paneActivity] = rect{0, y0 + top, w, bh - top}
	case w >= twoColumnMin:
		lw := w / 2
		left := share(bh, []int{need(panePipeline, lw), need(paneActivity, lw)}, []int{0, 1}, m.fillOrder(panePipeline, paneActivity))
		right := share(bh, []int{need(paneErrors, w-lw), need(paneBackups, w-lw)}, []int{1, 0}, m.fillOrder(paneErrors, paneBackups))
		l.panes[panePipeline] = rect{0, y0, lw, left[0]}
		l.panes[paneActivity] = rect{0, y0 + left[0], lw, left[1]}
		l.panes[paneErrors] = rect{lw, y0, w - lw, right[0]}
		l.panes[paneBackups] = rect{lw, y0 + right[0], w - lw, right[1]}
	default:
		order := []paneID{panePipeline, paneErrors, paneBackups, paneActivity}
		needs := make([]int, len(order))
		for i, p := range order {
			needs[i] = need(p, w)
		}
		hs := share(bh, needs, []int{0, 1, 0, 1}, m.fillOrder(order...))
		y := y0
		for i, p := range order {
			l.panes[p] = rect{0, y, w, hs[i]}
			y += hs[i]
		}
	}
	return l
}

// fillOrder is the order panes stacked in a column get the rows they
// need when not all fit, as indexes into ps: the pane the person focused
// first, then by what an incident needs most — the errors and their
// evidence, the rollout, the backups, the history.
func (m *Model) fillOrder(ps ...paneID) []int {
	rank := [paneCount]int{paneErrors: 0, panePipeline: 1, paneBackups: 2, paneActivity: 3}
	if m.focusMoved {
		rank[m.focus] = -1
	}
	order := make([]int, len(ps))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rank[ps[order[a]]] < rank[ps[order[b]]] })
	return order
}

// minPane is the least height a pane keeps: its borders and one line.
const minPane = 3

// share divides avail rows among panes stacked in a column. When all fit,
// each gets what it needs and the rest goes to those that grow (by
// weight). When not, each keeps minPane and the remaining rows go to the
// panes in fill order, each up to what it needs.
func share(avail int, need, grow []int, order []int) []int {
	n := len(need)
	out := make([]int, n)
	total := 0
	for i := range need {
		need[i] = max(need[i], minPane)
		total += need[i]
	}
	if total <= avail {
		copy(out, need)
		extra := avail - total
		weights := 0
		for _, g := range grow {
			weights += g
		}
		if weights == 0 {
			out[n-1] += extra
			return out
		}
		given := 0
		for i, g := range grow {
			out[i] += extra * g / weights
			given += extra * g / weights
		}
		for i := range grow {
			if given == extra {
				break
			}
			if grow[i] > 0 {
				out[i]++
				given++
			}
		}
		return out
	}
	left := avail
	for i := range out {
		out[i] = min(minPane, max(left, 0))
		left -= out[i]
	}
	for _, i := range order {
		give := min(need[i]-out[i], left)
		out[i] += give
		left -= give
	}
	return out
}
