package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
	"github.com/ripcordhq/ripcord/tui/prompt"
)

// serveTestService is the release the CLI tests deploy: a small HTTP
// service naming its version. RIPCORD_TEST_SLOW_START delays its health
// when the release starts again (a rollback to it), so a rollback stays in
// flight long enough for another process to meet it, while promotes stay
// quick.
func serveTestService(version string) int {
	delay, _ := time.ParseDuration(os.Getenv("RIPCORD_TEST_SLOW_START"))
	marker := filepath.Join(os.Getenv("RIPCORD_SHARED"), "started-"+version)
	if _, err := os.Stat(marker); err != nil {
		delay = 0 // the first start of this release
		_ = os.WriteFile(marker, nil, 0o600)
	}
	ready := time.Now().Add(delay)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if time.Now().Before(ready) {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "api", version) })
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// cliWorld is a project on this machine with three releases built: v1,
// v2 and v3 of api, whose artifacts are scripts starting the test service.
type cliWorld struct {
	dir, cfg string
}

func newCLIWorld(t *testing.T, production string) *cliWorld {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "ripcord.yaml")
	body := `project: shop
services:
  - name: api
environments:
  - name: staging
    target: { provider: local, root: envs/staging, run: "./artifact", health: "http://127.0.0.1:{{.Port}}/healthz" }
  - name: production
    from: staging
    target:
      provider: local
      root: envs/production
      run: "./artifact"
      health: "http://127.0.0.1:{{.Port}}/healthz"
      env: { RIPCORD_TEST_SLOW_START: "${RIPCORD_TEST_SLOW_START:-0s}" }
` + production
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, ".ripcord", "pipelines", "api", "artifacts")
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, ".ripcord", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, v := range []string{"v1", "v2", "v3"} {
		script := fmt.Sprintf("#!/bin/sh\nRIPCORD_TEST_SERVICE=%s exec %s \"$@\"\n", v, self)
		sum := sha256.Sum256([]byte(script))
		digest := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(store, digest), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := st.PutRelease(ctx, core.Release{Service: "api", Version: v, Branch: "main", ArtifactDigest: "sha256:" + digest, BuiltAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	w := &cliWorld{dir: dir, cfg: cfg}
	// Releases outlive the console by design; the test ends them itself,
	// after the server a command started.
	stopWorldAtEnd(t, cfg)
	return w
}

func (w *cliWorld) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return ripcord(t, append(args, "-c", w.cfg)...)
}

// current is the release production's current link points at.
func (w *cliWorld) current(t *testing.T, env string) string {
	t.Helper()
	link, err := os.Readlink(filepath.Join(w.dir, "envs", env, "current"))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(link)
}

func (w *cliWorld) audit(t *testing.T) []core.AuditEntry {
	t.Helper()
	code, out, errs := w.run(t, "audit", "--json")
	if code != exitOK {
		t.Fatalf("audit: exit %d: %s", code, errs)
	}
	var export struct {
		Entries []auditJSON `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &export); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, out)
	}
	entries := make([]core.AuditEntry, 0, len(export.Entries))
	for _, a := range export.Entries {
		entries = append(entries, a.entry())
	}
	return entries
}

func TestCLIPromotesThroughCanaryAndRollsBack(t *testing.T) {
	t.Setenv("RIPCORD_ACTOR", "ana")
	w := newCLIWorld(t, `    gates: [lock]
    rollout: [ {weight: 50}, {pause: judgment}, {weight: 100} ]
`)
	if code, out, errs := w.run(t, "promote", "api", "--to", "production", "--version", "v1", "--full", "--yes"); code != exitOK {
		t.Fatalf("first promote: exit %d\n%s%s", code, out, errs)
	}
	if got := w.current(t, "production"); got != "v1" {
		t.Fatalf("production current = %s, want v1", got)
	}
	code, out, errs := w.run(t, "promote", "api", "--to", "production", "--version", "v2", "--yes")
	if code != exitOK || !strings.Contains(out, "50%") {
		t.Fatalf("canary promote: exit %d\n%s%s", code, out, errs)
	}
	// The next command continues the rollout where the last one left it:
	// at the pause, and a promote then takes it to 100%.
	code, out, errs = w.run(t, "promote", "api", "--to", "production", "--yes", "--wait")
	if code != exitOK || !strings.Contains(out, "healthy at 100%") {
		t.Fatalf("promote --wait: exit %d\n%s%s", code, out, errs)
	}
	if got := w.current(t, "production"); got != "v2" {
		t.Fatalf("production current = %s, want v2", got)
	}

	code, out, errs = w.run(t, "rollback", "api", "--env", "production", "--yes", "--reason", "checkout errors")
	if code != exitOK {
		t.Fatalf("rollback: exit %d\n%s%s", code, out, errs)
	}
	if got := w.current(t, "production"); got != "v1" {
		t.Fatalf("after rollback production current = %s, want v1 (the last good release)", got)
	}
	entries := w.audit(t)
	if _, err := core.VerifyAudit(core.GenesisHash, entries); err != nil {
		t.Fatal(err)
	}
	last := entries[len(entries)-1]
	if last.Action != "rollback" || last.Actor.Name != "ana" || last.From != "v2" || last.To != "v1" || last.Reason != "checkout errors" {
		t.Fatalf("last audit entry = %+v; want ana's rollback v2 → v1 with her reason", last)
	}
}

func TestCLIRefusesDestructiveCommandsWithoutATerminalOrYes(t *testing.T) {
	w := newCLIWorld(t, "")
	code, _, errs := w.run(t, "rollback", "api", "--env", "production")
	if code != exitUsage || !strings.Contains(errs, "--yes") {
		t.Fatalf("rollback without --yes: exit %d, stderr %q; want %d naming --yes", code, errs, exitUsage)
	}
	if entries := w.audit(t); len(entries) != 0 {
		t.Fatalf("a refused command left audit entries: %+v", entries)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "envs", "production", "current")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused command touched the target")
	}
}

func TestCLIGateAndLockExitCodes(t *testing.T) {
	w := newCLIWorld(t, "    gates: [pipeline, lock]\n")
	code, out, errs := w.run(t, "promote", "api", "--to", "production", "--version", "v1", "--yes")
	if code != exitBlocked || !strings.Contains(out, "pipeline") {
		t.Fatalf("promote without a green pipeline: exit %d\n%s%s; want %d and the pipeline gate's reason", code, out, errs, exitBlocked)
	}
	code, _, errs = w.run(t, "promote", "api", "--to", "production", "--version", "v1", "--yes", "--override", "pipeline")
	if code != exitUsage || !strings.Contains(errs, "--reason") {
		t.Fatalf("override without a reason: exit %d, %q", code, errs)
	}
	if code, out, errs := w.run(t, "promote", "api", "--to", "production", "--version", "v1", "--yes", "--override", "pipeline", "--reason", "hotfix built by hand"); code != exitOK {
		t.Fatalf("overridden promote: exit %d\n%s%s", code, out, errs)
	}

	t.Setenv("RIPCORD_ACTOR", "bo")
	if code, _, errs := w.run(t, "lock", "api", "--env", "production", "--reason", "incident 7"); code != exitOK {
		t.Fatalf("lock: %d %s", code, errs)
	}
	t.Setenv("RIPCORD_ACTOR", "ana")
	code, _, errs = w.run(t, "rollback", "api", "--env", "production", "--to", "v1", "--yes")
	if code != exitLocked || !strings.Contains(errs, "bo") || !strings.Contains(errs, "incident 7") {
		t.Fatalf("rollback under bo's lock: exit %d, stderr %q; want %d naming bo and the reason", code, errs, exitLocked)
	}
}

// cliProcess runs the CLI in a process of its own, as a second person at
// another terminal would.
func cliProcess(t *testing.T, w *cliWorld, actor string, args ...string) *exec.Cmd {
	t.Helper()
	self, _ := os.Executable()
	cmd := exec.Command(self, append(args, "-c", w.cfg)...)
	cmd.Env = append(os.Environ(), "RIPCORD_TEST_CLI=1", "RIPCORD_ACTOR="+actor, "RIPCORD_TEST_SLOW_START=3s")
	return cmd
}

// Two people press rollback at once from two machines' worth of
// processes on one store: exactly one proceeds, the other is told who.
func TestTwoProcessesRaceRollbackExactlyOneProceeds(t *testing.T) {
	// The server the first command starts runs the releases: each takes
	// 3 s to become healthy, so the first rollback is still under way
	// when the second arrives.
	t.Setenv("RIPCORD_TEST_SLOW_START", "3s")
	w := newCLIWorld(t, "")
	if code, out, errs := w.run(t, "promote", "api", "--to", "production", "--version", "v1", "--yes"); code != exitOK {
		t.Fatalf("promote v1: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := w.run(t, "promote", "api", "--to", "production", "--version", "v2", "--yes"); code != exitOK {
		t.Fatalf("promote v2: %d\n%s%s", code, out, errs)
	}
	var outs [2]bytes.Buffer
	cmds := [2]*exec.Cmd{
		cliProcess(t, w, "ana", "rollback", "api", "--env", "production", "--yes"),
		cliProcess(t, w, "bo", "rollback", "api", "--env", "production", "--yes"),
	}
	for i, c := range cmds {
		c.Stdout, c.Stderr = &outs[i], &outs[i]
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	codes := [2]int{}
	for i, c := range cmds {
		_ = c.Wait()
		codes[i] = c.ProcessState.ExitCode()
	}
	winners, locked := 0, 0
	for i, code := range codes {
		switch code {
		case exitOK:
			winners++
		case exitLocked:
			locked++
			other := map[int]string{0: "bo", 1: "ana"}[i]
			if !strings.Contains(outs[i].String(), other) {
				t.Errorf("the refused rollback does not name %s:\n%s", other, outs[i].String())
			}
		}
	}
	if winners != 1 || locked != 1 {
		t.Fatalf("exit codes %v; want one 0 and one %d\nana: %s\nbo: %s", codes, exitLocked, outs[0].String(), outs[1].String())
	}
	if got := w.current(t, "production"); got != "v1" {
		t.Fatalf("production current = %s, want v1", got)
	}
}

// kill -9 of the command that asked for a rollback: the server owns the
// operation, so it completes anyway, the lock is released and the audit
// names the person who asked.
func TestKilledCLIDoesNotStopItsRollback(t *testing.T) {
	t.Setenv("RIPCORD_ACTOR", "ana")
	t.Setenv("RIPCORD_TEST_SLOW_START", "3s")
	w := newCLIWorld(t, "")
	if code, out, errs := w.run(t, "promote", "api", "--to", "production", "--version", "v1", "--yes"); code != exitOK {
		t.Fatalf("promote v1: %d\n%s%s", code, out, errs)
	}
	if code, out, errs := w.run(t, "promote", "api", "--to", "production", "--version", "v2", "--yes"); code != exitOK {
		t.Fatalf("promote v2: %d\n%s%s", code, out, errs)
	}
	var out bytes.Buffer
	victim := cliProcess(t, w, "ana", "rollback", "api", "--env", "production", "--yes")
	victim.Stdout, victim.Stderr = &out, &out
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once the server has journaled the rollback and called the
	// provider (the release it starts takes 3 s to become healthy).
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(w.dir, ".ripcord", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ops, err := st.Unfinished(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ops) > 0 && ops[0].Kind == "rollback" && ops[0].State == core.OpRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollback never started: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = victim.Process.Kill()
	_ = victim.Wait()

	// The server finishes it: nothing unfinished, no lock left.
	for {
		ops, err := st.Unfinished(ctx)
		if err != nil {
			t.Fatal(err)
		}
		locks, err := st.Locks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ops) == 0 && len(locks) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollback did not finish after its command was killed: unfinished %+v, locks %+v", ops, locks)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := w.current(t, "production"); got != "v1" {
		t.Fatalf("production current = %s, want v1", got)
	}
	var rollbacks []core.AuditEntry
	for _, e := range w.audit(t) {
		if e.Action == "rollback" {
			rollbacks = append(rollbacks, e)
		}
	}
	if len(rollbacks) != 1 || rollbacks[0].Actor.Name != "ana" || rollbacks[0].To != "v1" || !strings.HasPrefix(rollbacks[0].Outcome, "rolled back") {
		t.Fatalf("rollback audit entries = %+v; want ana's one rollback to v1", rollbacks)
	}
}

// "Back up now" runs the real restic backup of a set, audited; the
// repository password reaches restic and nothing else.
func TestCLIBackupNowWithRealRestic(t *testing.T) {
	restic, err := exec.LookPath("restic")
	if err != nil {
		if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
			t.Fatal("restic is required (Debian package restic)")
		}
		t.Skip("restic not installed (Debian package restic)")
	}
	const password = "correct-horse-battery-9f2"
	t.Setenv("TEST_RESTIC_PASSWORD", password)
	t.Setenv("RIPCORD_ACTOR", "ana")
	dir := t.TempDir()
	repo, data := filepath.Join(dir, "repo"), filepath.Join(dir, "uploads")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "a.jpg"), []byte("picture"), 0o600); err != nil {
		t.Fatal(err)
	}
	initCmd := exec.Command(restic, "init", "--repo", repo)
	initCmd.Env = append(os.Environ(), "RESTIC_PASSWORD="+password)
	if out, err := initCmd.CombinedOutput(); err != nil {
		t.Fatalf("restic init: %v\n%s", err, out)
	}
	cfg := writeConfig(t, dir, `    backups:
      - name: uploads
        provider: restic
        repository: `+repo+`
        password: ${TEST_RESTIC_PASSWORD}
        backup: [`+data+`]
`)
	code, out, errs := ripcord(t, "backup", "api", "--env", "production", "--set", "uploads", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "backed up uploads") {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
	}
	snaps := exec.Command(restic, "snapshots", "--json", "--repo", repo)
	snaps.Env = append(os.Environ(), "RESTIC_PASSWORD="+password)
	js, err := snaps.Output()
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		Paths []string `json:"paths"`
	}
	if err := json.Unmarshal(js, &list); err != nil || len(list) != 1 || list[0].Paths[0] != data {
		t.Fatalf("snapshots after back up now = %s (%v)", js, err)
	}
	code, audit, _ := ripcord(t, "audit", "-c", cfg)
	if code != exitOK || !strings.Contains(audit, "backup-now") || strings.Contains(audit+out+errs, password) {
		t.Fatalf("audit after back up now (must name it, never the password):\n%s", audit)
	}
}

// The CLI asks with the server's word: the statement of a rollback, an
// abort or a pause comes from the server's situation and releases, read
// over the client API as the console reads them (from → to, the schema
// the rollback crosses, the release it holds), and a command the server
// would refuse is stated as refused, so it is not asked about.
func TestCLIStatementIsTheServersSituation(t *testing.T) {
	t.Setenv("RIPCORD_ACTOR", "ana")
	w := newCLIWorld(t, `    rollout: [ {weight: 50}, {pause: judgment}, {weight: 100} ]
`)
	if code, out, errs := w.run(t, "promote", "api", "--to", "production", "--version", "v1", "--full", "--yes"); code != exitOK {
		t.Fatalf("first promote: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := w.run(t, "promote", "api", "--to", "production", "--version", "v2", "--yes"); code != exitOK {
		t.Fatalf("canary promote: exit %d\n%s%s", code, out, errs)
	}
	cfg, err := config.Load(w.cfg, config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := connect(ctx, cfg, neverStart)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prod := core.Ref{Service: "api", Env: "production"}
	say := func(k core.CommandKind) prompt.Statement {
		t.Helper()
		stmt, err := statement(ctx, c, core.Command{Kind: k, Ref: prod, Actor: currentActor()})
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return stmt
	}
	// The server publishes its situation once the canary waits for
	// judgment and the promote has let go of the lock; the command that
	// started it may have returned before.
	for {
		snap, sub := c.Subscribe()
		sub.Close()
		sit := snap.Situations[prod]
		if sit.Phase == core.PhaseJudgment && sit.Command(core.CmdRollback).Allowed {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the server's situation never came to judgment with rollback allowed: %+v", sit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a := say(core.CmdAbort); a.Title != "abort api in production: v2 → v1" || a.Refused != "" {
		t.Errorf("abort: %q, refused %q", a.Title, a.Refused)
	}
	rb := say(core.CmdRollback)
	text := rb.Plain()
	for _, want := range []string{"rollback api in production: v2 → v1\n", "migrations: not checked: api has no pipeline, so nothing reads its releases' migrations", "v2 will be held", "as ana"} {
		if !strings.Contains(text, want) {
			t.Errorf("the rollback's statement lacks %q:\n%s", want, text)
		}
	}
	if rb.Refused != "" {
		t.Errorf("rollback stated as refused: %s", rb.Refused)
	}
	if p := say(core.CmdPause); p.Refused != "" || p.Title != "pause api in production: the rollout of v2 at 50%" {
		t.Errorf("pause: %q, refused %q", p.Title, p.Refused)
	}
	if r := say(core.CmdResume); !strings.Contains(r.Refused, "not paused") {
		t.Errorf("resume of a running rollout is not stated as the server's refusal: %+v", r)
	}
}
