package tui

import (
	"strings"

	"github.com/ripcordhq/ripcord/core"
)

// message is what the console last said: a command's result, a notice
// from the engine, a refusal with its reason.
type message struct {
	text string
	sev  core.Severity
}

// maxMessageRows is how many rows a long message may wrap into: enough
// that a refusal's advice is read, not cut ("act from there").
func maxMessageRows(h int) int {
	if h >= 24 {
		return 4
	}
	return 2
}

// messageLines is the message area: what a dialog is typing, else the
// message wrapped to the width. A message longer than the area ends by
// saying where it is in full: every message is also in the log viewer.
func (m *Model) messageLines(w int) []string {
	if d, ok := m.dialogs.top().(statusLiner); ok {
		if l := d.statusLine(&m.s); l != "" {
			return []string{l}
		}
	}
	if m.msg.text == "" {
		return []string{""}
	}
	key := m.msg.text + "\x00" + string(m.msg.sev)
	if m.msgKey == key && m.msgW == w && m.msgH == m.h {
		return m.msgLines
	}
	p := m.s.st.severityPaint(m.msg.sev)
	lines := wrapLine(" "+m.msg.text, w)
	if room := maxMessageRows(m.h); len(lines) > room {
		lines = lines[:room]
		more := " … l shows it all"
		lines[room-1] = fit(lines[room-1], max(w-width(more), 0))
		lines[room-1] = strings.TrimRight(lines[room-1], " ") + more
	}
	for i, l := range lines {
		lines[i] = p.Render(l)
	}
	m.msgKey, m.msgW, m.msgH, m.msgLines = key, w, m.h, lines
	return lines
}

func (m *Model) messageRows(w int) int { return len(m.messageLines(w)) }

// footer lists the keys that work now. On the main screen the actions the
// engine would refuse stay in their place, dimmed (help and the palette
// say why); when the hints do not fit, the least needed give way — never
// an action, ? or q.
func footer(s *screen, w int, d dialog) string {
	st := s.st
	if d != nil {
		parts := make([]string, 0, 4)
		for _, b := range d.hints(s) {
			parts = append(parts, st.accent.Render(b.Help().Key)+" "+st.muted.Render(b.Help().Desc))
		}
		return " " + strings.Join(parts, st.muted.Render(" · "))
	}
	build := func(skip map[string]bool, sep string, terse bool) string {
		var parts []string
		if s.opts.ReadOnly {
			parts = append(parts, st.warn.Render("read-only"))
		}
		for _, b := range s.keys.ShortHelp() {
			hp := b.Help()
			desc := hp.Desc
			if b.Help().Key == s.keys.Pause.Help().Key {
				desc = string(s.pauseKind())
			}
			switch kind := actionKind(s, b); {
			case skip[hp.Key]:
			case kind != "" && !s.possible(kind).Allowed:
				if terse {
					parts = append(parts, st.dim.Render(hp.Key))
				} else {
					parts = append(parts, st.dim.Render(hp.Key+" "+desc))
				}
			default:
				parts = append(parts, st.accent.Render(hp.Key)+" "+st.muted.Render(desc))
			}
		}
		return " " + strings.Join(parts, st.muted.Render(sep))
	}
	skip := map[string]bool{}
	out := build(skip, " · ", false)
	for _, b := range s.keys.footerDropOrder() {
		if width(out) <= w {
			return out
		}
		skip[b.Help().Key] = true
		out = build(skip, " · ", false)
	}
	if width(out) > w {
		out = build(skip, "  ", false)
	}
	if width(out) > w {
		out = build(skip, "  ", true)
	}
	return out
}
