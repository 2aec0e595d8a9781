package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// The front door, played without a terminal: the pipeline builds, v1.5.0
// reaches staging, a person promotes it, the canary's errors call SPIKE
// with evidence, the person rolls back — every step real — and the demo
// leaves nothing running.
func TestHeadlessDemoStoryAndCleanExit(t *testing.T) {
	t.Setenv("RIPCORD_ACTOR", "ana")
	dir := t.TempDir()
	code, out, errs := ripcord(t, "demo", "--headless", "--dir", dir, "--script", "promote,wait-spike,rollback", "--timeout", "3m")
	if code != exitOK {
		t.Fatalf("demo exit %d\n%s\n%s", code, out, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	auditAt := -1
	for i, l := range lines {
		if l == "audit log:" {
			auditAt = i
		}
	}
	if auditAt < 1 {
		t.Fatalf("no audit log printed:\n%s", out)
	}
	if last := lines[auditAt-1]; !strings.HasSuffix(last, "rolled back to v1.4.2") {
		t.Fatalf("the story's last event line is %q, want it to say rolled back to v1.4.2\n%s", last, out)
	}
	if !regexp.MustCompile(`verdict SPIKE: v1\.5\.0 in production against v1\.4\.2 · \d+ vs \d+ errors at 25% share · (?:[0-9.]+|∞)× · at least [0-9.]+× the baseline's error rate \(99% confidence\)`).MatchString(out) {
		t.Fatalf("no SPIKE verdict with its evidence:\n%s", out)
	}
	// Each release records the commit and branch of the workspace's git
	// repository and the migrations there: v1.5.0 adds one expand step, so
	// promoting it and rolling it back are both free.
	head := strings.TrimSpace(gitOut(t, dir, "rev-parse", "HEAD"))
	if !strings.Contains(out, "pipeline api v1.5.0: succeeded · artifact sha256:") || !strings.Contains(out, "· main@"+head[:12]+" · 2 migration(s), 0 contract") {
		t.Fatalf("the v1.5.0 build does not say it was built from main@%s with its migrations:\n%s", head[:12], out)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, ".ripcord", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := st.Release(context.Background(), "api", "v1.5.0")
	st.Close()
	if err != nil || rel.Commit != head || rel.Branch != "main" || len(rel.Migrations) != 2 || rel.Migrations[1].ID != "0002_add_orders_gift_note" ||
		rel.Migrations[1].Kind != core.MigrationExpand || rel.Migrations[1].Affects() != "add column orders.gift_note" {
		t.Fatalf("release v1.5.0 = %+v (%v); want commit %s on main with the gift-note expand", rel, err, head)
	}
	// The event lines say what the migrations gate found at each step.
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`audit: promote api/production v1\.4\.2 → v1\.5\.0 by ana( via \S+)?@\S*: deployed at 25% · migrations: v1\.5\.0 adds expand-only migrations over v1\.4\.2 \(0002_add_orders_gift_note\)`),
		regexp.MustCompile(`audit: rollback api/production v1\.5\.0 → v1\.4\.2 by ana( via \S+)?@\S*: rolled back to v1\.4\.2 · migrations: v1\.5\.0's migrations over v1\.4\.2 are expand-only`),
	} {
		if !want.MatchString(out) {
			t.Fatalf("the story lacks %s:\n%s", want, out)
		}
	}
	audit := strings.Join(lines[auditAt:], "\n")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`promote api/production v1\.4\.2 → v1\.5\.0 by ana( via \S+)?@\S*: deployed at 25%`),
		regexp.MustCompile(`rollback api/production v1\.5\.0 → v1\.4\.2 by ana( via \S+)?@\S*: rolled back to v1\.4\.2`),
		// The second service runs in production too, set up on its own.
		regexp.MustCompile(`full-promote web/production - → v2\.0\.0 by \S+: deployed at 100%`),
	} {
		if !want.MatchString(audit) {
			t.Fatalf("audit log lacks %s:\n%s", want, audit)
		}
	}

	// Nothing it started is left: no process works in the workspace and
	// no port of its world still listens.
	if procs := processesIn(t, dir); len(procs) > 0 {
		t.Fatalf("processes left running in the demo workspace: %v", procs)
	}
	f, err := config.Load(filepath.Join(dir, "ripcord.yaml"), config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	var blocks []*config.Provider
	for _, e := range f.Environments {
		for _, pl := range e.Services {
			blocks = append(blocks, pl.Target, pl.Errors)
		}
	}
	if len(blocks) != 8 {
		t.Fatalf("the demo places %d targets and ingests, want 8 (2 services in 2 environments)", len(blocks))
	}
	for _, p := range blocks {
		addr := ""
		if port := toString(p.Settings["port"]); port != "" {
			addr = "127.0.0.1:" + port
		}
		if l, ok := p.Settings["listen"].(string); ok {
			addr = l
		}
		if addr == "" {
			continue
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s (%s at %s) still listens after the demo exited", addr, p.Name, p.Pos)
		}
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v in %s: %v", args, dir, err)
	}
	return string(out)
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.Itoa(int(x))
	case uint64:
		return strconv.Itoa(int(x))
	case float64:
		return strconv.Itoa(int(x))
	}
	return ""
}

// processesIn lists the processes whose working directory is under dir.
func processesIn(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || !strings.HasPrefix(cwd, dir) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return out
}
