package tui

import (
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
)

// width is the number of cells s takes on screen. The screen's own text
// (ASCII, box drawing, blocks, arrows, the glyphs it uses) and its colour
// sequences are measured by a quick scan; anything else falls back to
// ansi.StringWidth, which segments graphemes and is many times slower.
func width(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c == 0x1b {
			// CSI: ESC [ parameters final-byte.
			if i+1 >= len(s) || s[i+1] != '[' {
				return ansi.StringWidth(s)
			}
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j + 1
			continue
		}
		if c < 0x80 {
			if c < 0x20 || c == 0x7f {
				return ansi.StringWidth(s)
			}
			n++
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !narrow(r) {
			return ansi.StringWidth(s)
		}
		n++
		i += size
	}
	return n
}

// narrow reports runes known to take one cell in every terminal.
func narrow(r rune) bool {
	switch {
	case r >= 0xa0 && r <= 0x2ff: // Latin-1 and extended Latin: · × é
		return true
	case r >= 0x2010 && r <= 0x2027: // dashes, quotes, …
		return true
	case r >= 0x2190 && r <= 0x21ff: // arrows
		return true
	case r >= 0x2500 && r <= 0x25fc: // box drawing, blocks, ▸ ◐
		return true
	case r == 0x2713 || r == 0x2717: // ✓ ✗
		return true
	}
	return false
}
