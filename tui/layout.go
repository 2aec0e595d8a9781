package tui

import "github.com/ripcordhq/ripcord/core"

// Layout thresholds. Below twoColumnMin the panes stack; from it they sit
// in two columns; from threeColumnMin the three panes whose content is
// bounded (Pipeline, Errors, Backups) share a row sized to what they hold
// and Activity, whose history only grows, takes the rest at full width.
const (
	twoColumnMin   = 120
	threeColumnMin = 180
)

// headerRows is the header and the needs-you strip above the panes;
// footerRows is the status line and the key hints below them.
const (
	headerRows = 2
	footerRows = 2
)

// rect is a region of the screen in cells, (0,0) being the top left, as
// mouse coordinates are.
type rect struct{ x, y, w, h int }

func (r rect) contains(x, y int) bool {
	return x >= r.x && x < r.x+r.w && y >= r.y && y < r.y+r.h
}

// screenLayout is where each pane of the main screen goes. The view draws
// from it and mouse clicks are hit-tested against it, so what a person
// clicks on is the pane drawn there.
type screenLayout struct {
	panes [paneCount]rect
	body  rect // the area the panes tile
}

// screenSize is the size the screen draws at: the terminal's, with a
// floor below which nothing sensible fits anyway.
func (m *Model) screenSize() (w, h int) { return max(m.w, 20), max(m.h, 6) }

// layout places the panes for the current size and content. It depends on
// the data (how many backup sets, how long the pipeline is), never on
// filters, so panes do not jump while a person types one.
func (m *Model) layout() screenLayout {
	w, h := m.screenSize()
	body := rect{0, headerRows, w, h - headerRows - footerRows}
	l := screenLayout{body: body}
	y0, bh := body.y, body.h
	switch {
	case w >= threeColumnMin:
		cw := w / 3
		// The row holds what its panes have, within bounds: never so
		// short a spike's evidence is cut, never so tall the history
		// loses its share.
		lo := min(12, bh/2)
		hi := max(bh-max(bh/3, 6), lo)
		top := min(max(m.topRowNeed(), lo), hi)
		l.panes[panePipeline] = rect{0, y0, cw, top}
		l.panes[paneErrors] = rect{cw, y0, cw, top}
		l.panes[paneBackups] = rect{2 * cw, y0, w - 2*cw, top}
		l.panes[paneActivity] = rect{0, y0 + top, w, bh - top}
	case w >= twoColumnMin:
		lw := w / 2
		ptop := bh / 2
		etop := bh - max(min(bh/2, m.backupCount()+2), 3)
		l.panes[panePipeline] = rect{0, y0, lw, ptop}
		l.panes[paneActivity] = rect{0, y0 + ptop, lw, bh - ptop}
		l.panes[paneErrors] = rect{lw, y0, w - lw, etop}
		l.panes[paneBackups] = rect{lw, y0 + etop, w - lw, bh - etop}
	default:
		// Stacked: each pane gets a share, the ones with the most to say a
		// little more.
		hs := split(bh, []int{3, 3, 2, 2})
		y := y0
		for i, p := range []pane{panePipeline, paneErrors, paneBackups, paneActivity} {
			l.panes[p] = rect{0, y, w, hs[i]}
			y += hs[i]
		}
	}
	return l
}

// paneAt is the pane drawn at cell (x, y), if any.
func (l screenLayout) paneAt(x, y int) (pane, bool) {
	for p, r := range l.panes {
		if r.contains(x, y) {
			return pane(p), true
		}
	}
	return 0, false
}

// topRowNeed is the height the tallest of Pipeline, Errors and Backups
// needs to show everything it has, borders included. Counted from the
// snapshot without rendering, since it runs on every frame.
func (m *Model) topRowNeed() int {
	pipe := 1
	if run, ok := m.snap.Pipelines[m.service]; ok {
		pipe++ // the run's state line
		for _, st := range run.Stages {
			pipe++
			if st.State != core.RunSucceeded && st.State != core.RunSkipped {
				pipe += len(st.Steps)
			}
		}
	}
	ref := m.focusRef()
	errs := len(m.snap.Errors[ref])
	if v, ok := m.snap.Verdicts[ref]; ok {
		// The evidence line wraps once at a third of a wide screen.
		errs += 2 + min(len(v.Evidence.NewIssues), 4)
		if v.Evidence.Note != "" {
			errs++
		}
	}
	return 2 + max(pipe, errs, m.backupCount(), 1)
}

// backupCount is how many backup sets the watched service has, counted
// without sorting them as backups does.
func (m *Model) backupCount() int {
	n := 0
	for r, sets := range m.snap.Backups {
		if r.Service == m.service {
			n += len(sets)
		}
	}
	return n
}
