package core

import (
	"fmt"
	"strings"
	"unicode"
)

// Printable returns s with every control character shown escaped — "\x1b",
// "\n", "\u202e" — so text that came from outside (a person's name or
// reason, a provider's message, an error's title, a release name) can
// never move the cursor, recolour the screen, forge a line or reorder what
// a terminal shows. Printable text, backslashes included, is unchanged, so
// applying it twice changes nothing more.
func Printable(s string) string {
	if !needsEscape(s, false) {
		return s
	}
	return escape(s, false)
}

// PrintableLines is Printable keeping line breaks: for messages that are
// several lines by design (a list of config errors).
func PrintableLines(s string) string {
	if !needsEscape(s, true) {
		return s
	}
	return escape(s, true)
}

func needsEscape(s string, keepNewlines bool) bool {
	for _, r := range s {
		if isControl(r) && !(keepNewlines && r == '\n') {
			return true
		}
	}
	return false
}

func escape(s string, keepNewlines bool) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		switch {
		case keepNewlines && r == '\n':
			b.WriteRune(r)
		case !isControl(r):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == unicode.ReplacementChar:
			b.WriteString(`\ufffd`)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

// isControl reports the characters a terminal may act on rather than
// show: C0 and C1 controls, DEL, and the bidirectional overrides and
// isolates that reorder text on screen; invalid UTF-8 too.
func isControl(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	case r == unicode.ReplacementChar:
		return true // invalid UTF-8 decodes to it
	}
	return false
}

// PrintableActor is a with each field Printable.
func PrintableActor(a Actor) Actor {
	a.Name, a.Host, a.KeyFingerprint = Printable(a.Name), Printable(a.Host), Printable(a.KeyFingerprint)
	return a
}
