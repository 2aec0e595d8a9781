package toolrun

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestChildGetsOnlyItsEnvironment(t *testing.T) {
	t.Setenv("RESTIC_PASSWORD", "console-users-own-secret")
	res, err := Run(t.Context(), Spec{Tool: "env", Env: []string{"BORG_PASSPHRASE=given"}})
	if err != nil {
		t.Fatal(err)
	}
	env := string(res.Stdout)
	if strings.Contains(env, "console-users-own-secret") || strings.Contains(env, "HOME=") {
		t.Errorf("child inherited the console's environment:\n%s", env)
	}
	for _, want := range []string{"BORG_PASSPHRASE=given", "TZ=UTC", "LC_ALL=C", "PATH="} {
		if !strings.Contains(env, want) {
			t.Errorf("child environment lacks %s:\n%s", want, env)
		}
	}
}

func TestNoStdinNoTerminal(t *testing.T) {
	// A tool reading stdin sees end of file at once, not the console's
	// keyboard; and it leads its own session, so it has no controlling
	// terminal to open /dev/tty on and prompt for a passphrase.
	res, err := Run(t.Context(), Spec{Tool: "sh", Args: []string{"-c", `cat; echo read-done; echo $$; cut -d' ' -f6 /proc/$$/stat`}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(res.Stdout))
	if len(lines) != 3 || lines[0] != "read-done" {
		t.Fatalf("stdout = %q", res.Stdout)
	}
	if lines[1] != lines[2] {
		t.Errorf("child pid %s is not its session leader (session %s)", lines[1], lines[2])
	}
}

func TestExitCodeIsNotAnError(t *testing.T) {
	res, err := Run(t.Context(), Spec{Tool: "sh", Args: []string{"-c", "echo 'Fatal: wrong password or no key found' >&2; exit 12"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 12 || Message(res.Stderr, "Fatal: ") != "wrong password or no key found" {
		t.Errorf("exit %d, message %q", res.ExitCode, Message(res.Stderr, "Fatal: "))
	}
}

func TestOutputCaps(t *testing.T) {
	res, err := Run(t.Context(), Spec{Tool: "sh", MaxOutput: 1000,
		Args: []string{"-c", "head -c 5000 /dev/zero; i=0; while [ $i -lt 300 ]; do echo line $i >&2; i=$((i+1)); done; echo 'Fatal: the end' >&2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) != 1000 || !res.StdoutTruncated {
		t.Errorf("stdout %d bytes, truncated %v", len(res.Stdout), res.StdoutTruncated)
	}
	if len(res.Stderr) > 1000 || !bytes.HasSuffix(res.Stderr, []byte("Fatal: the end\n")) {
		t.Errorf("stderr kept %d bytes ending %q: want the last 1000", len(res.Stderr), res.Stderr[max(0, len(res.Stderr)-20):])
	}
}

func TestSecretsRedacted(t *testing.T) {
	res, err := Run(t.Context(), Spec{Tool: "sh", Secrets: []string{"hunter2"},
		Args: []string{"-c", "echo key hunter2 >&2; echo out hunter2"}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(res.Stdout, []byte("hunter2")) || bytes.Contains(res.Stderr, []byte("hunter2")) {
		t.Errorf("secret echoed back: %q %q", res.Stdout, res.Stderr)
	}
}

func TestNotFound(t *testing.T) {
	_, err := Run(t.Context(), Spec{Tool: "restic", Binary: "restic-not-installed-here", Package: "restic"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if got := (Spec{Tool: "restic", Package: "restic", Binary: "/opt/restic"}).NotFoundMessage(); got != "restic: binary not found at /opt/restic (Debian package restic)" {
		t.Errorf("message = %q", got)
	}
}

// Cancelling ends the tool and whatever it spawned.
func TestCancelKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Spec{Tool: "sh", Args: []string{"-c", "sleep 300 & echo $! > " + pidFile + ".tmp && mv " + pidFile + ".tmp " + pidFile + "; wait"}})
		done <- err
	}()
	grandchild := waitFor(t, func() (int, bool) {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return 0, false
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid, err == nil
	})
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// The orphaned sleep is reparented and reaped by init once killed.
	waitFor(t, func() (int, bool) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(grandchild) + "/stat")
		gone := err != nil || strings.Contains(string(stat), ") Z ")
		return 0, gone
	})
}

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(t *testing.T, cond func() (int, bool)) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if v, ok := cond(); ok {
			return v
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 10s")
	return 0
}
