package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A CLI promote against the running server judges the gates the console
// shows: the pipeline's green run, the staging errors, the watched
// backups (the demo's uploads set is 30 h old) — not an empty picture.
func TestCLIPromoteJudgesTheGatesTheConsoleShows(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ripcord.yaml")
	// The demo is the server of its world; its screen is ana's.
	demo := newTerminal(t, fmt.Sprintf("exec env RIPCORD_ACTOR=ana NO_COLOR=1 %s demo --dir %s 2>>%s", bin, dir, filepath.Join(dir, "demo.log")))
	t.Cleanup(func() {
		demo.keys("q")
		waitUntil(t, 90*time.Second, "the demo to stop everything on q", func() bool { return !demo.alive() })
	})
	demo.waitFor("ready to promote v1.5.0 to production", 120*time.Second)

	// bo's console: the promote dialog lists each gate with its reason.
	bo := newTerminal(t, fmt.Sprintf("exec env RIPCORD_ACTOR=bo NO_COLOR=1 %s console -c %s 2>>%s", bin, cfg, filepath.Join(dir, "bo.log")))
	bo.waitFor("production v1.4.2", 90*time.Second)
	bo.keys("p")
	dialog := bo.waitFor("promote api in production: v1.4.2 → v1.5.0", 90*time.Second)
	shown := map[string]string{} // gate → the line the console shows
	for _, line := range strings.Split(dialog, "\n") {
		if m := regexp.MustCompile(`([✓✗]) (pipeline|errors|backups|migrations|lock)\b(.*)`).FindStringSubmatch(line); m != nil {
			shown[m[2]] = m[1] + strings.TrimRight(strings.TrimRight(m[3], " │"), " ")
		}
	}
	for _, g := range []string{"pipeline", "backups", "lock"} {
		if !strings.HasPrefix(shown[g], "✓") {
			t.Fatalf("the console shows gate %s as %q; want it passing (dialog:\n%s)", g, shown[g], dialog)
		}
	}
	bo.keys("Escape")

	// cy promotes from the CLI: same gates, same answers.
	cmd := exec.Command(bin, "promote", "api", "--to", "production", "--yes", "-c", cfg)
	cmd.Env = append(os.Environ(), "RIPCORD_ACTOR=cy")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cy's promote: %v\n%s", err, out)
	}
	printed := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^gate (\S+)\s+(\S+)\s+(.*)$`).FindAllStringSubmatch(string(out), -1) {
		printed[m[1]] = m[2] + " " + m[3]
	}
	if !strings.Contains(printed["backups"], "uploads") {
		t.Fatalf("the CLI's backups gate says %q; want the watched uploads set named (output:\n%s)", printed["backups"], out)
	}
	// Every gate the console showed, the CLI judged the same way, on the
	// same facts (the two word them each their own way).
	facts := map[string][]string{"pipeline": {"v1.5.0"}, "backups": {"uploads backup", "30h old"}}
	for gate, line := range shown {
		said, ok := printed[gate]
		if !ok {
			t.Fatalf("the console shows gate %s (%s) but the CLI did not judge it:\n%s", gate, line, out)
		}
		status, reason, _ := strings.Cut(said, " ")
		if status != "pass" || !strings.HasPrefix(line, "✓") {
			t.Fatalf("gate %s: the CLI says %s (%s), the console showed %q", gate, status, reason, line)
		}
		for _, fact := range facts[gate] {
			if !strings.Contains(reason, fact) || !strings.Contains(line, fact) {
				t.Fatalf("gate %s: the CLI says %q, the console showed %q; want both to say %q", gate, reason, line, fact)
			}
		}
	}
	if !strings.Contains(string(out), "v1.5.0 is taking 25%") {
		t.Fatalf("cy's promote did not start the canary:\n%s", out)
	}
	demo.waitFor("cy via ", 90*time.Second)
}
