package tui

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/tui/prompt"
)

// fit truncates or pads a (possibly styled) line to exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if s == "" {
		return blank(w)
	}
	n := width(s)
	if n > w {
		s = ansi.Truncate(s, w, "…")
		n = width(s)
	}
	if n < w {
		s += blank(w - n)
	}
	return s
}

// blanks holds runs of spaces, so padding allocates only the result.
var blanks = strings.Repeat(" ", 512)

func blank(n int) string {
	if n <= len(blanks) {
		return blanks[:max(n, 0)]
	}
	return strings.Repeat(" ", n)
}

func pad(s string, n int) string {
	if w := width(s); w < n {
		return s + blank(n-w)
	}
	return s
}

// box draws a titled pane exactly w wide and h tall around its content
// rows. above and below count rows scrolled out of view; the borders say
// so ("↑ 2", "↓ 3 more"), so nothing is hidden without a mark.
func (st styles) box(title string, content []string, w, h, above, below int) []string {
	if h <= 0 || w < 2 {
		return nil
	}
	inner := w - 2
	b := st.border
	mark := ""
	if above > 0 {
		mark = fmt.Sprintf(" ↑ %d ", above)
	}
	t := ansi.Truncate(" "+title+" ", max(inner-1-width(mark)-1, 0), "…")
	fill := max(inner-1-width(t)-width(mark), 0)
	top := b.Render("┌─") + st.accent.Render(t) + b.Render(strings.Repeat("─", fill))
	if mark != "" {
		top += st.warn.Render(mark)
	}
	top += b.Render("┐")
	out := make([]string, 0, h)
	out = append(out, top)
	for i := 0; i < h-2; i++ {
		line := ""
		if i < len(content) {
			line = content[i]
		}
		out = append(out, b.Render("│")+fit(line, inner)+b.Render("│"))
	}
	if h >= 2 {
		bottom := b.Render("└" + strings.Repeat("─", inner) + "┘")
		if below > 0 {
			m := fmt.Sprintf(" ↓ %d more ", below)
			if width(m)+2 <= inner {
				bottom = b.Render("└"+strings.Repeat("─", inner-width(m)-1)) + st.warn.Render(m) + b.Render("─┘")
			}
		}
		out = append(out, bottom)
	}
	return out
}

// wrapLines wraps each line to w cells, indenting continuations under the
// line's own indent: what a person must read is wrapped, never cut.
func wrapLines(lines []string, w int) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, wrapLine(l, w)...)
	}
	return out
}

func wrapLine(l string, w int) []string {
	if w <= 0 || width(l) <= w {
		return []string{l}
	}
	plain := ansi.Strip(l)
	indent := min(len(plain)-len(strings.TrimLeft(plain, " "))+2, w/2)
	first, rest, _ := strings.Cut(ansi.Wrap(l, w, ""), "\n")
	out := []string{first}
	// The rest is wrapped again at the width left after the indent, so no
	// continuation line is longer than the first.
	rest = strings.Join(strings.Fields(strings.ReplaceAll(rest, "\n", " ")), " ")
	for _, q := range strings.Split(ansi.Wrap(rest, max(w-indent, 1), ""), "\n") {
		out = append(out, blank(indent)+q)
	}
	return out
}

// paintLine renders a prompt line in the screen's colours.
func (st styles) paintLine(l prompt.Line) string {
	var b strings.Builder
	b.WriteString(blank(l.Indent))
	for _, sp := range l.Spans {
		b.WriteString(st.tone(sp.Tone).Render(sp.Text))
	}
	return b.String()
}

func (st styles) tone(t prompt.Tone) paint {
	switch t {
	case prompt.Muted:
		return st.muted
	case prompt.Accent:
		return st.accent
	case prompt.OK:
		return st.ok
	case prompt.Warn:
		return st.warn
	case prompt.Danger:
		return st.danger
	}
	return st.text
}

// severityPaint is how a message of severity reads.
func (st styles) severityPaint(s core.Severity) paint {
	switch s {
	case core.SeverityCritical:
		return st.danger
	case core.SeverityWarn:
		return st.warn
	}
	return st.text
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last n buckets, scaled to the window's maximum.
func sparkline(bs []core.ErrorBucket, n int) string {
	if len(bs) > n {
		bs = bs[len(bs)-n:]
	}
	var top int64
	for _, b := range bs {
		top = max(top, b.Count)
	}
	var sb strings.Builder
	for range n - len(bs) {
		sb.WriteRune(' ')
	}
	for _, b := range bs {
		// Zero alone draws the lowest bar; any error at all draws at least
		// the second, so a quiet release and a nearly quiet one differ.
		i := 0
		if top > 0 && b.Count > 0 {
			i = max(1, int(math.Ceil(float64(b.Count)*float64(len(sparks))/float64(top)-1e-9))-1)
		}
		sb.WriteRune(sparks[min(max(i, 0), len(sparks)-1)])
	}
	return sb.String()
}

// rate is the release's errors in the last minute of its window: what is
// happening now, not diluted by the quiet half hour before a canary.
// A window shorter than a minute is scaled to one.
func rate(w core.ErrorWindow) string {
	if len(w.Buckets) < 2 {
		return fmt.Sprintf("%d", w.Total())
	}
	last := w.Buckets[len(w.Buckets)-1].Start
	step := (last.Sub(w.Buckets[0].Start)) / time.Duration(len(w.Buckets)-1)
	if step <= 0 {
		return fmt.Sprintf("%d", w.Total())
	}
	var n int64
	covered := time.Duration(0)
	for i := len(w.Buckets) - 1; i >= 0 && covered < time.Minute; i-- {
		n += w.Buckets[i].Count
		covered += step
	}
	return fmt.Sprintf("%.0f/min", float64(n)/covered.Minutes())
}

func bar(frac float64, n int) string {
	k := int(math.Round(min(max(frac, 0), 1) * float64(n)))
	return strings.Repeat("█", k) + strings.Repeat("░", n-k)
}

// clockDur is a running time as a stopwatch shows it: 1:12.
func clockDur(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// pval prints a p-value with two significant digits: 3e-09, 0.034.
func pval(p float64) string { return fmt.Sprintf("%.2g", p) }

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// shortDigest keeps the algorithm and 12 hex digits: enough to tell
// artifacts apart at a glance.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		return short(d, 12) + "…"
	}
	if len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12] + "…"
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// truncateCells keeps the first n cells of a styled line.
func truncateCells(s string, n int) string { return ansi.Truncate(s, n, "") }

// cutCells drops the first n cells of a styled line.
func cutCells(s string, n int) string { return ansi.TruncateLeft(s, n, "") }
