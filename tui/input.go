package tui

import (
	"strings"
	"unicode"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
)

// maxQuery bounds what a person can type into a filter, the palette or
// the help search: longer text matches nothing useful and would only
// widen titles.
const maxQuery = 64

// editQuery applies one keypress to a line of typed text: printable text
// is appended and backspace removes the last character. It reports
// whether the key was text editing at all, so callers can route the rest
// (enter, esc, arrows) themselves.
func editQuery(q *string, k tea.KeyPressMsg) bool {
	if k.Code == tea.KeyBackspace {
		if r := []rune(*q); len(r) > 0 {
			*q = string(r[:len(r)-1])
		}
		return true
	}
	if k.Mod&(tea.ModCtrl|tea.ModAlt) != 0 || k.Text == "" {
		return false
	}
	for _, r := range k.Text {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	if utf8.RuneCountInString(*q)+utf8.RuneCountInString(k.Text) <= maxQuery {
		*q += k.Text
	}
	return true
}

// containsFold reports whether sub occurs in s, ignoring case. Log
// filters run it over thousands of lines per refresh, so ASCII is
// compared in place without lowering a copy of every line.
func containsFold(s, sub string) bool {
	if sub == "" {
		return true
	}
	if !isASCII(s) || !isASCII(sub) {
		return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
	}
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for j < n && lowerASCII(s[i+j]) == lowerASCII(sub[j]) {
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}

// fuzzyMatch reports whether every character of sub appears in s in
// order, ignoring case: "fp" finds "full promote".
func fuzzyMatch(s, sub string) bool {
	s, sub = strings.ToLower(s), strings.ToLower(sub)
	for _, r := range sub {
		i := strings.IndexRune(s, r)
		if i < 0 {
			return false
		}
		s = s[i+utf8.RuneLen(r):]
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
