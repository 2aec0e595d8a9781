package host

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// restartMessages are the "restarting in …" health messages so far.
func (r *recorder) restartMessages(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, h := range r.health {
		if h.Name == name && strings.Contains(h.Message, "restarting in ") {
			out = append(out, h.Message[strings.Index(h.Message, "restarting in ")+len("restarting in "):])
		}
	}
	return out
}

// killAndWaitRestart kills the plugin's process and waits for a new one.
func killAndWaitRestart(t *testing.T, h *Host, name string) int {
	t.Helper()
	old := pidOf(t, h, name)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var pid int
	waitFor(t, "a restarted process", 20*time.Second, func() bool {
		pid = pidOf(t, h, name)
		return pid != 0 && pid != old
	})
	return pid
}

// A plugin that crashes again and again is restarted ever more slowly;
// once it has run healthy for HealthyReset, the next crash restarts it at
// once again.
func TestRestartBackoffResetsAfterAHealthyPeriod(t *testing.T) {
	h, rec, err := startExample(t, "", func(o *Options) {
		o.MinBackoff, o.MaxBackoff, o.HealthyReset = 20*time.Millisecond, 5*time.Second, 600*time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		killAndWaitRestart(t, h, "example")
	}
	if got := rec.restartMessages("example"); strings.Join(got, ",") != "20ms,40ms,80ms,160ms" {
		t.Fatalf("backoff while crashing = %v", got)
	}
	// Healthy for longer than HealthyReset.
	waitFor(t, "a healthy period", 5*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		last := rec.health[len(rec.health)-1]
		return last.State == StateHealthy && time.Since(last.Since) > 700*time.Millisecond
	})
	killAndWaitRestart(t, h, "example")
	if got := rec.restartMessages("example"); got[len(got)-1] != "20ms" {
		t.Fatalf("backoff after a healthy period = %v; want it back at 20ms", got)
	}
}

// A restart the lock refuses (the binary was replaced) is tried again
// with backoff, saying so each time, and succeeds once the pinned binary
// is back.
func TestALockRefusedRestartIsRetried(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "ripcord-provider-example")
	orig, err := os.ReadFile(exampleBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, orig, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := PluginSpec{Name: "example", Path: bin}
	lock := filepath.Join(dir, LockFileName)
	if err := WriteLock(lock, []PluginSpec{spec}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	h, err := New(Options{Plugins: []PluginSpec{spec}, LockFile: lock, Workdir: dir, SocketDir: filepath.Join(dir, "sock"),
		Log: rec.onLog, Health: rec.onHealth, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	first := pidOf(t, h, "example")
	replace := func(content []byte) {
		tmp := bin + ".new"
		if err := os.WriteFile(tmp, content, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, bin); err != nil {
			t.Fatal(err)
		}
	}
	replace(append(append([]byte{}, orig...), "tampered"...))
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two refused restarts", 10*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		n := 0
		for _, hh := range rec.health {
			if hh.State == StateFailed && strings.Contains(hh.Message, "does not match the lock file") && strings.Contains(hh.Message, "checking again in") {
				n++
			}
		}
		return n >= 2
	})
	if pid := pidOf(t, h, "example"); pid != 0 {
		t.Fatalf("the replaced binary was started (pid %d)", pid)
	}
	replace(orig)
	waitFor(t, "the pinned binary started again", 10*time.Second, func() bool {
		pid := pidOf(t, h, "example")
		return pid != 0 && pid != first
	})
}

// A built-in is the ripcord binary re-executed: when that file is
// replaced under a running ripcord, a restart does not start the new one.
func TestABuiltinIsNotRestartedFromAReplacedBinary(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "ripcord")
	exe, _ := os.Executable()
	orig, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(self, orig, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	h, err := New(Options{Self: self, Builtins: []string{"builtin0"}, Workdir: dir, SocketDir: filepath.Join(dir, "sock"), LockFile: filepath.Join(dir, "none.lock"),
		Log: rec.onLog, Health: rec.onHealth, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	first := pidOf(t, h, "builtin0")
	tmp := self + ".new"
	if err := os.WriteFile(tmp, append(append([]byte{}, orig...), "another build"...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, self); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restart refused", 10*time.Second, func() bool {
		return rec.sawHealthWith("builtin0", StateFailed, "changed since this ripcord started")
	})
	if pid := pidOf(t, h, "builtin0"); pid != 0 {
		t.Fatalf("a built-in was started from the replaced binary (pid %d)", pid)
	}
}

func (r *recorder) sawHealthWith(name, state, text string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.health {
		if h.Name == name && h.State == state && strings.Contains(h.Message, text) {
			return true
		}
	}
	return false
}

// When the ripcord path is the running binary itself, nothing is hashed
// at start; a file put in its place later is compared with the original
// content, still readable where the running binary is (a hard link here
// stands in for /proc/self/exe).
func TestTheRunningBinaryIsComparedOnlyOnceReplaced(t *testing.T) {
	dir := t.TempDir()
	path, kept := filepath.Join(dir, "ripcord"), filepath.Join(dir, "running")
	if err := os.WriteFile(path, []byte("build 1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, kept); err != nil {
		t.Fatal(err)
	}
	facts, err := factsOf(path)
	if err != nil {
		t.Fatal(err)
	}
	b := &binaryID{path: path, stat: facts, original: kept}
	if err := b.check("local"); err != nil || b.sha256 != "" {
		t.Fatalf("check of the untouched binary = %v (digest %q); want nil, nothing hashed", err, b.sha256)
	}
	if err := os.WriteFile(path+".new", []byte("build 2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	var ce *ChecksumError
	if err := b.check("local"); !errors.As(err, &ce) || !ce.Builtin {
		t.Fatalf("check of a replaced binary = %v; want a ChecksumError", err)
	}
}
