package tui

import (
	"strings"

	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

// logCap is how many log lines the console keeps, across all sources:
// older lines are overwritten, so memory stays flat however long a step
// talks.
const logCap = 10_000

// logEntry is one line of output and where it came from.
type logEntry struct {
	ref    core.Ref
	source string
	text   string
	gen    uint64 // the ring's generation when it was added
}

// ring is a fixed-size ring of log lines; it never grows past its cap.
type ring struct {
	buf  []logEntry
	next int  // where the next line goes
	full bool // buf has wrapped at least once
	gen  uint64
}

func newRing(n int) *ring { return &ring{buf: make([]logEntry, n)} }

func (r *ring) add(e logEntry) {
	e.gen = r.gen + 1
	r.buf[r.next] = e
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
	r.gen++
}

func (r *ring) len() int {
	if r.full {
		return len(r.buf)
	}
	return r.next
}

// each visits the kept lines oldest first.
func (r *ring) each(fn func(logEntry)) {
	if r.full {
		for _, e := range r.buf[r.next:] {
			fn(e)
		}
	}
	for _, e := range r.buf[:r.next] {
		fn(e)
	}
}

// logFilter selects the lines one log view shows.
type logFilter struct {
	title string
	// ref, when set, keeps lines published for that environment.
	ref core.Ref
	// steps, when set, keeps lines of those stages or steps ("stage" or
	// "stage/step"), whatever run prefix the source carries.
	steps []string
	// text, when set, keeps lines holding it, ignoring case: what the
	// person typed after /.
	text string
	// finished says the steps shown have ended: no more lines will come.
	finished bool
}

func (f logFilter) keep(e logEntry) bool {
	if f.text != "" && !containsFold(e.text, f.text) {
		return false
	}
	if len(f.steps) > 0 {
		for _, st := range f.steps {
			if e.source == st || strings.HasSuffix(e.source, "/"+st) ||
				strings.HasPrefix(e.source, st+"/") || strings.Contains(e.source, "/"+st+"/") {
				return true
			}
		}
		return false
	}
	return e.ref == f.ref || e.source == f.ref.String() || (strings.HasPrefix(e.source, "plugin/") && providerCovers(e.ref, f.ref))
}

// providerCovers says a provider process's line published for line belongs
// in view's logs too: a pipeline source's (its service alone) in every
// environment of the service, a backup set shared by an environment's
// services (the environment alone) in each of them. A run's step output
// carries its service alone as well, but is read in its step's log.
func providerCovers(line, view core.Ref) bool {
	switch {
	case line.Service == "" && line.Env == "":
		return false
	case line.Service == "":
		return line.Env == view.Env
	case line.Env == "":
		return line.Service == view.Service
	}
	return false
}

// logView is the full-screen log reader: a viewport over the ring's lines
// that match its filter, refreshed on the flush tick (never per line).
type logView struct {
	filter logFilter
	vp     viewport.Model
	seen   uint64 // ring generation last rendered
	follow bool   // stick to the newest line
	count  int

	// A step's log read from the pipeline source when the person opened
	// it: fetching while the read is under way, then the lines it
	// returned (tail) or why it failed (fetchErr). Once the tail is in,
	// the ring's lines for the step count only from tailGen on, so a line
	// both streamed and read is shown once.
	fetching string
	fetchErr string
	tail     []logEntry
	tailGen  uint64
	hasTail  bool
}

func newLogView(f logFilter) *logView {
	vp := viewport.New()
	vp.MouseWheelEnabled = true
	// Long lines wrap: a message cut in the message area is read here
	// in full.
	vp.SoftWrap = true
	return &logView{filter: f, vp: vp, follow: true, seen: ^uint64(0)}
}

// refresh re-reads the ring when it changed since the last refresh.
func (l *logView) refresh(r *ring, w, h int) {
	if l.vp.Width() != w || l.vp.Height() != h {
		l.vp.SetWidth(w)
		l.vp.SetHeight(h)
		l.seen = ^uint64(0)
	}
	if r.gen == l.seen {
		return
	}
	l.seen = r.gen
	lines := make([]string, 0, 256)
	for _, e := range l.tail {
		if l.filter.text == "" || containsFold(e.text, l.filter.text) {
			lines = append(lines, e.text)
		}
	}
	r.each(func(e logEntry) {
		if l.filter.keep(e) && (!l.hasTail || e.gen > l.tailGen) {
			lines = append(lines, e.text)
		}
	})
	l.count = len(lines)
	// Only the last screenfuls are handed to the viewport: it measures
	// every line it is given.
	if keep := max(h*20, 1000); len(lines) > keep {
		lines = lines[len(lines)-keep:]
	}
	l.vp.SetContentLines(lines)
	if l.follow {
		l.vp.GotoBottom()
	}
}

// setTail takes the answer of the step-log read: its lines, or its
// error, after the ring's generation gen.
func (l *logView) setTail(res core.Result, err error, gen uint64) {
	l.fetching, l.seen = "", ^uint64(0)
	if err != nil {
		l.fetchErr = core.Printable(err.Error())
		return
	}
	l.hasTail, l.tailGen, l.tail = true, gen, make([]logEntry, 0, len(res.Log))
	for _, line := range res.Log {
		l.tail = append(l.tail, logEntry{source: line.Source, text: core.Printable(line.Text)})
	}
}

// setText changes the text filter; the next refresh re-reads the ring
// through it. The underlying lines are untouched: clearing the filter
// brings every one back.
func (l *logView) setText(q string) {
	if q != l.filter.text {
		l.filter.text = q
		l.seen = ^uint64(0)
		l.follow = true
	}
}

func (l *logView) update(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	l.vp, cmd = l.vp.Update(msg)
	l.follow = l.vp.AtBottom()
	return cmd
}
