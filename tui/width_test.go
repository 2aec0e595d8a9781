package tui

import (
	"strings"
	"testing"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/ripcordhq/ripcord/themes"
)

// The quick width must agree with lipgloss on everything the screen
// draws, styled or not, and fall back correctly on what it does not know.
func TestWidthAgreesWithLipgloss(t *testing.T) {
	th, _ := themes.Get("dark")
	st := newStyles(th, false)
	for _, s := range []string{
		"", "plain", "┌─ Pipeline ─┐", "│ ✓ build 0:42 │", "▸ v1.43.0 25%", "██████░░░░", "▁▂▃▄▅▆▇█",
		"p=3e-09 · 112 vs 18 events · 6.2× (CI 3.1–12.4)", "→ ◐ … ✗",
		st.danger.Render("SPIKE") + " " + st.muted.Render("· 5m"),
		"日本語のタイトル", "emoji ✅ done", "tab\there", "\x1b]9;osc\a",
	} {
		if got, want := width(s), lipgloss.Width(s); got != want {
			t.Errorf("width(%q) = %d, lipgloss says %d", s, got, want)
		}
	}
}

// A long line wraps into lines no wider than the pane, continuations
// indented under the first, and no word lost or split off alone.
func TestWrapLinesKeepsEveryLineInside(t *testing.T) {
	note := " spike called 0s into the canary when the evidence ratio reached 3852 (threshold 100); it stays spike for this canary even if errors settle"
	for _, w := range []int{30, 57, 80} {
		got := wrapLines([]string{"\x1b[2m" + note + "\x1b[0m"}, w)
		var words []string
		for i, l := range got {
			if width(l) > w {
				t.Fatalf("width %d: line %d is %d wide: %q", w, i, width(l), l)
			}
			if i > 0 && !strings.HasPrefix(ansi.Strip(l), "   ") {
				t.Fatalf("width %d: continuation %q is not indented", w, l)
			}
			words = append(words, strings.Fields(ansi.Strip(l))...)
		}
		if strings.Join(words, " ") != strings.TrimSpace(note) {
			t.Fatalf("width %d: words changed:\n%q\nwant\n%q", w, strings.Join(words, " "), strings.TrimSpace(note))
		}
	}
}
