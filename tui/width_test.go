package tui

import (
	"testing"

	"charm.land/lipgloss/v2"

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
