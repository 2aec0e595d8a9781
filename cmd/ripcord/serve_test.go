package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/lease"
)

// waitServer waits until `server status` answers for cfg and returns the
// server's pid.
func waitServer(t *testing.T, cfg string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, _ := ripcord(t, "server", "status", "-c", cfg)
		if code == exitOK {
			m := regexp.MustCompile(`pid (\d+) on`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("server status names no pid:\n%s", out)
			}
			pid, _ := strconv.Atoi(m[1])
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server answered for %s within 30s", cfg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// One server per state store: a second `ripcord serve` refuses at once,
// naming the running one; `server status|logs|stop` manage it.
func TestSecondServeRefusesNamingTheFirst(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	first := exec.Command(self, "serve", "-c", cfg)
	first.Stdout, first.Stderr = &out, &out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	t.Cleanup(func() {
		_ = first.Process.Kill()
		<-exited
	})
	pid := waitServer(t, cfg)
	if pid != first.Process.Pid {
		t.Fatalf("server status names pid %d, the server is %d", pid, first.Process.Pid)
	}

	code, _, errs := ripcord(t, "serve", "-c", cfg)
	host, _ := os.Hostname()
	if code != exitLocked || !strings.Contains(errs, "a ripcord server already runs for "+filepath.Join(dir, ".ripcord", "state.db")) ||
		!strings.Contains(errs, "pid "+strconv.Itoa(pid)+" on "+host+" since ") {
		t.Fatalf("second serve: exit %d, stderr %q; want %d naming pid %d on %s", code, errs, exitLocked, pid, host)
	}

	code, status, _ := ripcord(t, "server", "status", "-c", cfg)
	if code != exitOK || !strings.Contains(status, "socket  "+filepath.Join(dir, ".ripcord", "state.db.sock")) || !strings.Contains(status, "started by hand or by systemd") {
		t.Fatalf("server status: exit %d\n%s", code, status)
	}
	fi, err := os.Stat(filepath.Join(dir, ".ripcord", "state.db.sock"))
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, mode %v; want a socket only its owner may use (0600)", err, fi.Mode())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, logs, _ := ripcord(t, "server", "logs", "-c", cfg)
		if code == exitOK && strings.Contains(logs, "serving "+cfg) && strings.Contains(logs, "providers, observers and rollouts started") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server logs: exit %d\n%s", code, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if code, out, errs := ripcord(t, "server", "stop", "-c", cfg); code != exitOK || !strings.Contains(out, "stopped the ripcord server (pid "+strconv.Itoa(pid)+")") {
		t.Fatalf("server stop: exit %d\n%s%s", code, out, errs)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("the stopped server exited with %v:\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not exit after server stop")
	}
	for _, gone := range []string{".ripcord/state.db.sock", ".ripcord/state.db.server.json"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after a clean stop: %v", gone, err)
		}
	}
}

// A command that acts starts the server when none runs: detached in a
// session of its own, logging beside the state, still running after the
// command; read-only commands then read through it, and after `server
// stop` read the store.
func TestActingCommandStartsADetachedServer(t *testing.T) {
	t.Setenv("RIPCORD_ACTOR", "ana")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	if code, _, errs := ripcord(t, "lock", "api", "--env", "production", "--reason", "freeze", "-c", cfg); code != exitOK {
		t.Fatalf("lock: exit %d: %s", code, errs)
	}
	pid := waitServer(t, cfg)
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Fatalf("server pid %d has session %d (%v); want a session of its own", pid, sid, err)
	}
	if sid, _ := unix.Getsid(0); sid == pid {
		t.Fatal("the server shares the test's session")
	}
	p := lease.For(filepath.Join(dir, ".ripcord", "state.db"))
	rec, err := lease.ReadRecord(p)
	if err != nil || !rec.Autostarted || rec.Pid != pid || rec.Log != p.Log {
		t.Fatalf("record %+v (%v); want an autostarted server %d logging to %s", rec, err, pid, p.Log)
	}
	if b, err := os.ReadFile(p.Log); err != nil || !strings.Contains(string(b), "serving "+cfg) {
		t.Fatalf("server log %s: %v\n%s", p.Log, err, b)
	}
	code, out, _ := ripcord(t, "status", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "ana via ") || !strings.Contains(out, "server: pid "+strconv.Itoa(pid)) {
		t.Fatalf("status through the server: exit %d\n%s", code, out)
	}
	if code, out, errs := ripcord(t, "server", "stop", "-c", cfg); code != exitOK {
		t.Fatalf("server stop: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = ripcord(t, "status", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "server: not running (read from the store)") {
		t.Fatalf("status without a server: exit %d\n%s", code, out)
	}
	if code, _, errs := ripcord(t, "server", "status", "-c", cfg); code != exitFailed || !strings.Contains(errs, "no ripcord server runs for "+cfg) {
		t.Fatalf("server status without a server: exit %d, %q", code, errs)
	}
}
