package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/lease"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
	"github.com/ripcordhq/ripcord/plugins/local"
)

// bin is the ripcord binary these tests run, built once in TestMain into a
// directory everyone may read (a second OS user runs it too).
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ripcord-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "ripcord")
	build := exec.Command("go", "build", "-o", bin, "github.com/ripcordhq/ripcord/cmd/ripcord")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ripcord:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips a test whose tool is missing, or fails it when
// RIPCORD_REQUIRE_TOOLS=1 (CI).
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (Debian package %s)", tool, pkg)
		}
		t.Skipf("%s not installed (Debian package %s)", tool, pkg)
	}
	return path
}

// project is a ripcord.yaml on this machine with releases v1, v2 and v3
// of api already built: each artifact runs `ripcord demo service` of its
// version. A release started again (a rollback to it) takes SLOW_RESTART
// seconds before it listens, so a rollback can be caught in flight.
type project struct {
	t    *testing.T
	dir  string
	cfg  string
	port int // production's public port
	// env is added to every command's and server's environment.
	env []string
}

func newProject(t *testing.T, production string) *project {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &project{t: t, dir: dir, cfg: filepath.Join(dir, "ripcord.yaml"), port: port}
	body := fmt.Sprintf(`project: shop
services:
  - name: api
environments:
  - name: production
    target:
      provider: local
      root: envs/production
      run: "./artifact"
      port: %d
      health: "http://127.0.0.1:{{.Port}}/healthz"
      health_timeout: 20s
      env: { SLOW_RESTART: "${SLOW_RESTART:-0}", DEMO_DATA: %q }
    confirm: y
%s`, port, filepath.Join(dir, "data"), production)
	if err := os.WriteFile(p.cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, ".ripcord", "pipelines", "api", "artifacts")
	for _, d := range []string{store, filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, ".ripcord", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, v := range []string{"v1", "v2", "v3"} {
		script := fmt.Sprintf(`#!/bin/sh
marker="$RIPCORD_SHARED/started-%[1]s"
if [ -e "$marker" ]; then sleep "${SLOW_RESTART:-0}"; fi
touch "$marker"
exec %[2]s demo service --version %[1]s "$@"
`, v, bin)
		sum := sha256.Sum256([]byte(script))
		digest := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(store, digest), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := st.PutRelease(ctx, core.Release{Service: "api", Version: v, Branch: "main", ArtifactDigest: "sha256:" + digest, BuiltAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	// The server, the proxy and the releases outlive every command by
	// design; the test ends them itself, after showing the servers' logs
	// of a failed run.
	t.Cleanup(func() {
		if t.Failed() {
			for _, log := range []string{"serve.log", ".ripcord/state.db.server.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, log)); err == nil {
					t.Logf("%s:\n%s", log, b)
				}
			}
		}
		_, _ = p.run("server", "stop")
		root := filepath.Join(dir, "envs", "production")
		if err := local.StopProxy(root); err != nil {
			t.Errorf("stopping the proxy: %v", err)
		}
		stopReleases(root)
	})
	return p
}

// stopReleases ends the release processes under root, by their pidfiles.
func stopReleases(root string) {
	files, _ := filepath.Glob(filepath.Join(root, "run", "*.json"))
	for _, f := range files {
		var pf struct {
			Pid int `json:"pid"`
		}
		if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &pf) == nil && pf.Pid > 1 {
			_ = syscall.Kill(-pf.Pid, syscall.SIGKILL)
		}
	}
}

// command is the binary with the project's config and environment.
func (p *project) command(actor string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, append(args, "-c", p.cfg)...)
	cmd.Env = append(append(os.Environ(), p.env...), "RIPCORD_ACTOR="+actor)
	cmd.Dir = p.dir
	return cmd
}

// run runs a command as ana and returns its exit code and output.
func (p *project) run(args ...string) (int, string) {
	return p.runAs("ana", args...)
}

func (p *project) runAs(actor string, args ...string) (int, string) {
	p.t.Helper()
	var out bytes.Buffer
	cmd := p.command(actor, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		p.t.Fatalf("running ripcord %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// mustRun runs a command that must succeed.
func (p *project) mustRun(args ...string) string {
	p.t.Helper()
	code, out := p.run(args...)
	if code != 0 {
		p.t.Fatalf("ripcord %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// serve starts `ripcord serve` for the project and waits until it answers.
func (p *project) serve() *server {
	p.t.Helper()
	log, err := os.OpenFile(filepath.Join(p.dir, "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer log.Close()
	cmd := p.command("", "serve")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	s := &server{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	p.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.exited
	})
	p.waitReady()
	return s
}

// server is a `ripcord serve` the test started.
type server struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// kill9 kills the server with SIGKILL and waits for it to be gone.
func (s *server) kill9(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the server survived kill -9")
	}
}

// waitReady waits until a server answers for the project and its
// providers have started.
func (p *project) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, out := p.run("server", "status")
		if code == 0 && strings.Contains(out, "state   ready") {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no ready server for %s within 60s:\n%s", p.cfg, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serverPid is the running server's pid, from its record.
func (p *project) serverPid() int {
	p.t.Helper()
	rec, err := lease.ReadRecord(lease.For(filepath.Join(p.dir, ".ripcord", "state.db")))
	if err != nil {
		p.t.Fatalf("no server record: %v", err)
	}
	return rec.Pid
}

// store opens the project's state as another process would.
func (p *project) store() *sqlitestore.Store {
	p.t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(p.dir, ".ripcord", "state.db"))
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { st.Close() })
	return st
}

// audit reads the audit log through the CLI.
func (p *project) audit() []core.AuditEntry {
	p.t.Helper()
	out := p.mustRun("audit", "--json")
	var export struct {
		Entries []struct {
			core.AuditEntry
			Seconds float64 `json:"duration"` // the export's durations are seconds
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &export); err != nil {
		p.t.Fatalf("audit --json: %v\n%s", err, out)
	}
	entries := make([]core.AuditEntry, 0, len(export.Entries))
	for _, e := range export.Entries {
		e.AuditEntry.Duration = time.Duration(math.Round(e.Seconds * float64(time.Second)))
		entries = append(entries, e.AuditEntry)
	}
	return entries
}

// waitUntil polls ok every 20 ms until it holds, failing after within.
func waitUntil(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tmuxSessions numbers the sessions of one test process.
var tmuxSessions atomic.Int64

// terminal is a real terminal under tmux running one command.
type terminal struct {
	t    *testing.T
	name string
}

func newTerminal(t *testing.T, command string) *terminal {
	t.Helper()
	need(t, "tmux", "tmux")
	s := &terminal{t: t, name: fmt.Sprintf("ripcord-srv-e2e-%d-%d", os.Getpid(), tmuxSessions.Add(1))}
	cmd := exec.Command("tmux", "-L", s.name, "new-session", "-d", "-s", s.name, "-x", "160", "-y", "48", command)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", s.name, "kill-server").Run() })
	return s
}

func (s *terminal) screen() string {
	out, _ := exec.Command("tmux", "-L", s.name, "capture-pane", "-p", "-t", s.name).Output()
	return string(out)
}

func (s *terminal) keys(keys ...string) {
	s.t.Helper()
	if out, err := exec.Command("tmux", append([]string{"-L", s.name, "send-keys", "-t", s.name}, keys...)...).CombinedOutput(); err != nil {
		s.t.Fatalf("send-keys %v: %v\n%s", keys, err, out)
	}
}

// waitFor polls the screen until it shows text.
func (s *terminal) waitFor(text string, within time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		scr := s.screen()
		if strings.Contains(scr, text) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the screen never showed %q within %v; it shows:\n%s", text, within, scr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pid is the process the terminal runs (the shell tmux started execs it).
func (s *terminal) pid() int {
	s.t.Helper()
	out, err := exec.Command("tmux", "-L", s.name, "display-message", "-p", "-t", s.name, "#{pane_pid}").Output()
	if err != nil {
		s.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		s.t.Fatal(err)
	}
	return pid
}

func (s *terminal) alive() bool {
	return exec.Command("tmux", "-L", s.name, "has-session", "-t", s.name).Run() == nil
}

// console opens `ripcord console` on the project in a terminal, as actor.
func (p *project) console(actor string) *terminal {
	p.t.Helper()
	env := strings.Join(p.env, " ")
	return newTerminal(p.t, fmt.Sprintf("exec env %s RIPCORD_ACTOR=%s NO_COLOR=1 %s console -c %s 2>>%s", env, actor, bin, p.cfg, filepath.Join(p.dir, actor+".console.log")))
}
