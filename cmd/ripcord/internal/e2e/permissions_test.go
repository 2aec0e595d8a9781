package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// asRoot skips a test that creates OS users unless it runs as root (CI
// does: it then fails instead of skipping when it cannot).
func asRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
			t.Fatal("this test creates an OS user: run it as root")
		}
		t.Skip("creates an OS user with useradd: needs root")
	}
	for _, tool := range []struct{ bin, pkg string }{{"useradd", "passwd"}, {"groupadd", "passwd"}, {"usermod", "passwd"}, {"runuser", "util-linux"}} {
		need(t, tool.bin, tool.pkg)
	}
}

// sh runs a system command that must succeed.
func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// A person who is not in the socket's group cannot use the server and is
// told why; once in the group they can, and they act as themselves: the
// server takes their name from the kernel.
func TestOnlyTheSocketsGroupMayConnect(t *testing.T) {
	asRoot(t)
	suffix := fmt.Sprint(os.Getpid() % 100000)
	group, person := "rcsock"+suffix, "rcuser"+suffix
	sh(t, "groupadd", group)
	t.Cleanup(func() { _ = exec.Command("groupdel", group).Run() })
	sh(t, "useradd", "--no-create-home", "--shell", "/bin/sh", person)
	t.Cleanup(func() { _ = exec.Command("userdel", person).Run() })

	p := newProject(t, "")
	srv := p.command("", "serve", "--group", group)
	log, err := os.Create(filepath.Join(p.dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	p.waitReady()
	sock := filepath.Join(p.dir, ".ripcord", "state.db.sock")
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %s: %v, mode %v; want 0660 for group %s", sock, err, fi.Mode(), group)
	}
	// The way to the project is open to everyone (a temp dir is not).
	if err := os.Chmod(filepath.Dir(p.dir), 0o755); err != nil {
		t.Fatal(err)
	}

	as := func(args ...string) (int, string) {
		cmd := exec.Command("runuser", append([]string{"-u", person, "--", bin}, append(args, "-c", p.cfg)...)...)
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		if err != nil && cmd.ProcessState == nil {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	code, out := as("lock", "api", "--env", "production", "--reason", "mine")
	want := fmt.Sprintf("permission denied: the socket is mode 0660, owner root, group %s, and %s is not in group %s", group, person, group)
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("%s outside the group: exit %d\n%s\nwant 1 and %q", person, code, out, want)
	}
	if code, out := as("status"); code != 1 || !strings.Contains(out, want) {
		t.Fatalf("status outside the group: exit %d\n%s", code, out)
	}

	sh(t, "usermod", "-aG", group, person)
	if code, out := as("lock", "api", "--env", "production", "--reason", "mine"); code != 0 {
		t.Fatalf("%s in the group: exit %d\n%s", person, code, out)
	}
	entries := p.audit()
	last := entries[len(entries)-1]
	if last.Action != "lock" || last.Actor.Name != person || last.Actor.Via != "" {
		t.Fatalf("the lock is recorded as %+v; want %s, as the kernel names them", last.Actor, person)
	}

	// The state file is the server's (mode 0600): they read through the
	// server, and what needs the file itself says why it cannot be read.
	for _, args := range [][]string{{"audit"}, {"status"}, {"history", "api", "--env", "production"}} {
		if code, out := as(args...); code != 0 || (args[0] != "history" && !strings.Contains(out, person)) {
			t.Fatalf("%s in the group: %v: exit %d\n%s", person, args, code, out)
		}
	}
	for _, args := range [][]string{{"audit", "verify"}, {"state", "check"}} {
		code, out := as(args...)
		if code != 1 || !strings.Contains(out, "cannot be opened by "+person+" (permission denied)") || strings.Contains(out, "damaged") {
			t.Fatalf("%s: %v: exit %d\n%s\nwant 1 saying the file cannot be opened by them, not that it is damaged", person, args, code, out)
		}
	}
}
