package tui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

// logDialog is the full-screen log reader over the console's ring of log
// lines: one environment's, or one pipeline step's. / filters the lines;
// esc clears a filter before it closes the reader.
type logDialog struct {
	lv     *logView
	typing bool // the person is typing the text filter
	// fetch, when set, is the step-log command that reads the steps' log
	// from the pipeline source; the root sends it as the dialog opens.
	fetch *core.Command
}

func newLogDialog(f logFilter) *logDialog { return &logDialog{lv: newLogView(f)} }

// logTailMsg is the answer to a log dialog's fetch.
type logTailMsg struct {
	d   *logDialog
	res core.Result
	err error
}

func (d *logDialog) handle(s *screen, msg tea.Msg) action {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		d.lv.update(msg) // the mouse wheel scrolls
		return nil
	}
	if d.typing {
		q := d.lv.filter.text
		switch {
		case key.Matches(k, s.keys.Choose):
			d.typing = false
		case key.Matches(k, s.keys.Back), key.Matches(k, s.keys.Interrupt):
			d.typing, q = false, ""
		default:
			editQuery(&q, k)
		}
		d.lv.setText(q)
		return nil
	}
	switch {
	case key.Matches(k, s.keys.Filter):
		d.typing = true
		return nil
	case key.Matches(k, s.keys.Back) && d.lv.filter.text != "":
		d.lv.setText("")
		return nil
	case key.Matches(k, s.keys.Back), key.Matches(k, s.keys.Quit), key.Matches(k, s.keys.Logs):
		return closeDialog{}
	}
	d.lv.update(msg)
	return nil
}

func (d *logDialog) view(s *screen, w, h int) []string {
	lv := d.lv
	lv.refresh(s.logs, max(w-2, 1), max(h-2, 1))
	c := strings.Split(lv.vp.View(), "\n")
	if lv.count == 0 {
		switch {
		case lv.fetching != "":
			c = []string{s.st.muted.Render(" fetching the log of " + lv.fetching + "…")}
		case lv.fetchErr != "":
			c = []string{s.st.danger.Render(" " + lv.fetchErr)}
		case lv.filter.text != "":
			c = []string{s.st.muted.Render(" no log line matches /" + lv.filter.text)}
		case lv.hasTail:
			c = []string{s.st.muted.Render(" the pipeline source has no log lines for this yet")}
		case lv.filter.finished:
			c = []string{s.st.muted.Render(" this finished before the console started or wrote nothing: no lines are kept for it")}
		default:
			c = []string{s.st.muted.Render(" no log lines yet")}
		}
	}
	title := lv.filter.title
	if lv.filter.text != "" || d.typing {
		title += " /" + lv.filter.text
	}
	title += fmt.Sprintf(" · %d lines", lv.count)
	if lv.count > 0 && lv.fetching != "" {
		title += " · fetching…"
	}
	if lv.count > 0 && lv.fetchErr != "" {
		title += " · " + lv.fetchErr
	}
	if !lv.follow {
		title += " · scrolled"
	}
	return s.st.box(title, c, w, h, 0, 0)
}

func (d *logDialog) hints(s *screen) []key.Binding {
	switch {
	case d.typing:
		return []key.Binding{hint("enter", "keep filter"), hint("esc", "clear filter")}
	case d.lv.filter.text != "":
		return []key.Binding{hint("↑/↓ pgup/pgdn", "scroll"), s.keys.Filter, hint("esc", "clear filter")}
	}
	return []key.Binding{hint("↑/↓ pgup/pgdn", "scroll"), s.keys.Filter, s.keys.Back}
}

func (d *logDialog) statusLine(s *screen) string {
	if !d.typing {
		return ""
	}
	return " " + s.st.accent.Render("filter log:") + " " + d.lv.filter.text + s.st.accent.Render("_")
}
