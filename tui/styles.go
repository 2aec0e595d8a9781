package tui

import (
	"strings"

	"charm.land/lipgloss/v2"

	"github.com/ripcordhq/ripcord/themes"
)

// paint wraps text in a style's escape sequences. The sequences come from
// lipgloss once per theme; rendering then only concatenates, because
// Style.Render per segment cost most of a full frame.
type paint struct{ pre, post string }

// Render styles one single-line segment.
func (p paint) Render(s string) string {
	if p.pre == "" || s == "" {
		return s
	}
	return p.pre + s + p.post
}

func paintOf(st lipgloss.Style) paint {
	out := st.Render("X")
	i := strings.Index(out, "X")
	if i < 0 {
		return paint{}
	}
	return paint{pre: out[:i], post: out[i+1:]}
}

// styles turns a theme's tokens into paints once, so rendering never
// parses colours.
type styles struct {
	text, muted, accent, border, ok, warn, danger, prod paint
	// dim marks a key whose action is not allowed now. Without colour it
	// is bracketed, so the difference survives NO_COLOR.
	dim paint
}

func newStyles(t themes.Theme, noColor bool) styles {
	if noColor {
		return styles{dim: paint{pre: "(", post: ")"}}
	}
	fg := func(hex string) lipgloss.Style { return lipgloss.NewStyle().Foreground(lipgloss.Color(hex)) }
	return styles{
		text:   paintOf(fg(t.Text)),
		muted:  paintOf(fg(t.Muted)),
		accent: paintOf(fg(t.Accent).Bold(true)),
		border: paintOf(fg(t.Border)),
		ok:     paintOf(fg(t.OK)),
		warn:   paintOf(fg(t.Warn)),
		danger: paintOf(fg(t.Danger).Bold(true)),
		prod:   paintOf(fg(t.Production).Bold(true)),
		dim:    paintOf(fg(t.Muted).Faint(true)),
	}
}
