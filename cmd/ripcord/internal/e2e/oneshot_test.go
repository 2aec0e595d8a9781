package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A one-shot promote with no server running starts one, and is judged on
// the picture that server has once its observers have reported: a backup
// three hours old against a one-hour RPO fails the backups gate (exit 3,
// naming the set), instead of passing as "no backup sets are watched" on
// a server that has not looked yet.
func TestOneShotPromoteIsJudgedOnTheFirstReports(t *testing.T) {
	p := newProject(t, "    gates: [backups]\n    backups:\n      - name: db\n        provider: dir\n        path: backups/*.sqlite\n        every: 1h\n        criticality: orders\n")
	dir := filepath.Join(p.dir, "backups")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "db-1.sqlite")
	if err := os.WriteFile(file, []byte("backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	code, out := p.run("promote", "api", "--to", "production", "--version", "v1", "--yes")
	if code != 3 {
		t.Fatalf("promote with a 3 h old backup: exit %d, want 3 (a gate refused)\n%s", code, out)
	}
	gate := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "gate backups") {
			gate = line
		}
	}
	if !strings.Contains(gate, "fail") || !strings.Contains(gate, "db") {
		t.Fatalf("the backups gate: %q; want it failing on set db\n%s", gate, out)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "envs", "production", "current")); err == nil {
		t.Fatalf("production has a current release after a refused promote")
	}
}
