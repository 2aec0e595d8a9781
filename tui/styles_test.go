package tui

import (
	"strings"
	"testing"

	"charm.land/lipgloss/v2"

	"github.com/ripcordhq/ripcord/themes"
)

// Colour on must really colour, and still measure the same width as the
// plain text; colour off must emit no escape sequences at all.
func TestStylesColourAndPlain(t *testing.T) {
	th, _ := themes.Get("dark")
	on := newStyles(th, false).danger.Render("SPIKE")
	if !strings.Contains(on, "\x1b[") || lipgloss.Width(on) != 5 {
		t.Fatalf("coloured SPIKE = %q (width %d)", on, lipgloss.Width(on))
	}
	if off := newStyles(th, true).danger.Render("SPIKE"); off != "SPIKE" {
		t.Fatalf("plain SPIKE = %q", off)
	}
}
