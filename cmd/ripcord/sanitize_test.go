package main

import (
	"strings"
	"testing"
)

// A person's name or reason with terminal escapes and line breaks in it
// is shown escaped in status and the audit log: it neither paints the
// terminal nor forges a line.
func TestEscapesInNamesAndReasonsAreShownNotInterpreted(t *testing.T) {
	cfg, _ := stateConfig(t)
	as(t, "ana\x1b[41mROOT\x1b[0m")
	if code, _, errs := ripcord(t, "lock", "api", "--env", "production", "--reason", "db work\nforged: production healthy", "-c", cfg); code != exitOK {
		t.Fatalf("lock: exit %d: %s", code, errs)
	}
	as(t, "bo")
	code, _, errs := ripcord(t, "lock", "api", "--env", "production", "-c", cfg)
	if code != exitLocked || strings.ContainsAny(errs, "\x1b") || !strings.Contains(errs, `ana\x1b[41mROOT\x1b[0m`) {
		t.Fatalf("refusal: exit %d, %q; want the holder's name escaped", code, errs)
	}
	for _, args := range [][]string{{"status"}, {"audit"}} {
		code, out, errs := ripcord(t, append(args, "-c", cfg)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		if strings.Contains(out, "\x1b") || strings.Contains(out, "\nforged") {
			t.Fatalf("%v printed the escape or the forged line raw:\n%s", args, out)
		}
		if !strings.Contains(out, `ana\x1b[41mROOT\x1b[0m`) {
			t.Fatalf("%v does not show the name escaped:\n%s", args, out)
		}
	}
	code, out, _ := ripcord(t, "audit", "-c", cfg)
	if code != exitOK || strings.Contains(out, "\nforged") {
		t.Fatalf("audit shows the reason's forged line: %s", out)
	}
}
