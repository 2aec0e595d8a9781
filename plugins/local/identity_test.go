package local

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core/procid"
)

// unrelated starts a process that has nothing to do with any release: its
// own session and process group (setsid), like a daemon that happened to
// get a pid a release once had.
func unrelated(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("setsid", "sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Skipf("setsid (Debian package util-linux): %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for procid.Group(cmd.Process.Pid) != cmd.Process.Pid {
		if time.Now().After(deadline) {
			t.Fatal("setsid never made its own group")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cmd
}

// A stale pidfile whose pid now belongs to an unrelated process — one that
// leads its own process group, so a pid and a group check alone would take
// it for the release — is neither adopted nor signalled: the target
// checks the start time it recorded (and, for a pidfile from before start
// times were recorded, the executable's working directory).
func TestAStalePidfileNeverGetsAnUnrelatedProcessStopped(t *testing.T) {
	e := newEnv(t, 5)
	if err := e.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	recorded := readPidfile(t, e.root, "v1")
	if recorded.Process.Start == 0 || recorded.Exe == "" {
		t.Fatalf("the pidfile records no identity: %+v", recorded)
	}
	e.tgt.Close() // the provider stops, and with it v1

	// Since then the kernel handed v1's pid... to someone else: two
	// unrelated processes, behind a current pidfile and an old one.
	a, b := unrelated(t), unrelated(t)
	stale := recorded
	stale.Pid, stale.Process.PID = a.Process.Pid, a.Process.Pid
	if err := writeJSONAtomic(filepath.Join(e.root, "run", "v1.json"), stale); err != nil {
		t.Fatal(err)
	}
	if err := writeJSONAtomic(filepath.Join(e.root, "run", "v2.json"), pidfile{Version: "v2", Pid: b.Process.Pid, Port: 1}); err != nil {
		t.Fatal(err)
	}

	tgt, err := New(testConfig(e.root, e.store, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	for _, c := range []*exec.Cmd{a, b} {
		if err := syscall.Kill(c.Process.Pid, 0); err != nil {
			t.Fatalf("the unrelated process %d was signalled: %v", c.Process.Pid, err)
		}
		if st := procState(c.Process.Pid); st == "Z" {
			t.Fatalf("the unrelated process %d was killed", c.Process.Pid)
		}
	}
	st, _ := tgt.Status(t.Context(), ref)
	problems := strings.Join(st.Problems, "\n")
	for _, want := range []string{
		"release v1 (pid " + itoa(a.Process.Pid) + ") now belongs to another process (it started later than the release did): left alone",
		"release v2 (pid " + itoa(b.Process.Pid) + ") now belongs to another process (working in",
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
	// The release itself is running again, started afresh.
	if got := readPidfile(t, e.root, "v1"); got.Pid == a.Process.Pid || !alive(got.Pid) {
		t.Fatalf("v1 after reconcile: %+v", got)
	}
	tgt.Close()
	if err := syscall.Kill(a.Process.Pid, 0); err != nil {
		t.Fatalf("closing the target signalled the unrelated process: %v", err)
	}
}

func procState(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "stat"))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

func itoa(n int) string { return strconv.Itoa(n) }

// A release process gets the environment its config gives it and nothing
// of the provider's own: no plugin handshake variables, no secrets the
// provider process was handed for itself.
func TestAReleaseGetsOnlyTheEnvironmentItsConfigGives(t *testing.T) {
	t.Setenv("PLUGIN_MIN_PORT", "10000")
	t.Setenv("RIPCORD_PLUGIN", "9d1c4f0b7a2e6358")
	t.Setenv("PLUGIN_UNIX_SOCKET_DIR", "/run/ripcord/plugins-1")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "provider-only")
	e := newEnv(t, 5)
	e.tgt.cfg.Env = map[string]string{"DATABASE_URL": "postgres://shop"}
	if err := e.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	pid := readPidfile(t, e.root, "v1").Pid
	raw, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "environ"))
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PLUGIN_") || name == "RIPCORD_PLUGIN" || name == "AWS_SECRET_ACCESS_KEY" {
			t.Errorf("the release inherited %s", kv)
		}
	}
	for _, want := range []string{"DATABASE_URL=postgres://shop", "RIPCORD_RELEASE=v1"} {
		found := false
		for _, kv := range env {
			found = found || kv == want
		}
		if !found {
			t.Errorf("the release lacks %s: %v", want, env)
		}
	}
}

// releaseProcess finds the process started for a release of root by what
// only the target gives it: the release's name and the root's shared
// directory.
func releaseProcess(root, version string) (int, bool) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		vars := strings.Split(string(env), "\x00")
		if slices.Contains(vars, "RIPCORD_RELEASE="+version) && slices.Contains(vars, "RIPCORD_SHARED="+filepath.Join(root, "shared")) {
			return pid, true
		}
	}
	return 0, false
}

// kill -9 of the provider after it started a release's process and
// before its pidfile recorded it — the moment a server killed mid-deploy
// takes its providers down with it — leaves nothing running: the release
// was never let through its start gate, so no process serves that no
// pidfile names and no later target or cleanup could find.
func TestAReleaseNeverRunsUnrecorded(t *testing.T) {
	base := t.TempDir()
	root, store := filepath.Join(base, "root"), filepath.Join(base, "artifacts")
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "RIPCORD_LOCAL_CRASH_CHILD=1", "RIPCORD_LOCAL_CRASH_AT=release.started",
		"RIPCORD_LOCAL_ROOT="+root, "RIPCORD_LOCAL_STORE="+store, "RIPCORD_LOCAL_PORT="+strconv.Itoa(port),
		"RIPCORD_LOCAL_DIGEST_v1="+putArtifact(t, store, "v1"), "RIPCORD_LOCAL_DIGEST_v2="+putArtifact(t, store, "v2"))
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { StopReleases([]string{root}, time.Second); _ = StopProxy(root) })
	said := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			said <- sc.Text()
		}
		close(said)
	}()
	select {
	case l := <-said:
		if l != "HOOK release.started" {
			t.Fatalf("child said %q", l)
		}
	case <-time.After(60 * time.Second):
		_ = child.Process.Kill()
		t.Fatal("the provider never reached the start of v2")
	}
	gate, ok := releaseProcess(root, "v2")
	if !ok {
		_ = child.Process.Kill()
		t.Fatal("no process was started for v2")
	}
	gateID, _ := procid.Of(gate)
	t.Cleanup(func() {
		if gateID.Check() == procid.Running { // the test failed: nothing of it stays
			_ = syscall.Kill(-gate, syscall.SIGKILL)
		}
	})
	if cmdline, _ := os.ReadFile(filepath.Join("/proc", itoa(gate), "cmdline")); !strings.Contains(string(cmdline), gateScript) {
		_ = child.Process.Kill()
		t.Fatalf("v2's process runs %q before its pidfile is written; want it waiting at the gate", cmdline)
	}
	if _, err := os.Stat(filepath.Join(root, "run", "v2.json")); !os.IsNotExist(err) {
		t.Fatalf("v2 has a pidfile before the crash point: %v", err)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	deadline := time.Now().Add(10 * time.Second)
	for alive(gate) {
		if time.Now().After(deadline) {
			exe := procid.Exe(gate)
			t.Fatalf("v2's process %d (%s) outlived the provider that never recorded it", gate, exe)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "run", "v2.stdout")); len(b) > 0 {
		t.Fatalf("v2 ran before it was recorded: %s", b)
	}
	// v1, recorded, still serves; the next target adopts it.
	tgt, err := New(testConfig(root, store, port), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	if st, _ := tgt.Status(t.Context(), ref); st.Current != "v1" || !st.Healthy {
		t.Fatalf("after the crash the target is %+v; want v1 serving", st)
	}
}
