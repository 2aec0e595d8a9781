package core

import "testing"

func TestPrintableEscapesWhatATerminalWouldAct(t *testing.T) {
	for in, want := range map[string]string{
		"ana":                       "ana",
		"ana\x1b[41mROOT\x1b[0m":    `ana\x1b[41mROOT\x1b[0m`,
		"line one\nforged line two": `line one\nforged line two`,
		"tab\there\r":               `tab\there\r`,
		"\u202eevil":                `\u202eevil`,
		"c1 \u009b31m":              `c1 \x9b31m`,
		"bad \xff byte":             `bad \ufffd byte`,
		`already \x1b escaped`:      `already \x1b escaped`,
		"ünïcödé ✓ 漢字":              "ünïcödé ✓ 漢字",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
		if twice := Printable(Printable(in)); twice != want {
			t.Errorf("Printable twice on %q = %q", in, twice)
		}
	}
	if got := PrintableLines("a\nb\x1b[2J"); got != "a\nb\\x1b[2J" {
		t.Errorf("PrintableLines = %q", got)
	}
}
