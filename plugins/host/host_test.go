package host

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ripcordhq/ripcord/core"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkOpEvents asserts core's stream contract: seq strictly increasing,
// exactly one Done, last.
func checkOpEvents(t *testing.T, evs []core.OpEvent) {
	t.Helper()
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	for i, ev := range evs {
		if i > 0 && ev.Seq <= evs[i-1].Seq {
			t.Fatalf("seq not increasing at %d: %d after %d", i, ev.Seq, evs[i-1].Seq)
		}
		if ev.Done != (i == len(evs)-1) {
			t.Fatalf("Done at index %d of %d", i, len(evs))
		}
	}
}

type opLog struct {
	mu  sync.Mutex
	evs []core.OpEvent
}

func (l *opLog) add(ev core.OpEvent) { l.mu.Lock(); l.evs = append(l.evs, ev); l.mu.Unlock() }
func (l *opLog) snapshot() []core.OpEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]core.OpEvent(nil), l.evs...)
}

// The external-plugin story end to end: a binary dropped into
// .ripcord/plugins is discovered, locked, verified, started and used
// through the core interfaces.
func TestExternalPluginDiscoveredLockedAndUsed(t *testing.T) {
	wd := t.TempDir()
	pluginDir := filepath.Join(wd, ".ripcord", "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Built by the test itself, as its own binary.
	bin := filepath.Join(pluginDir, "ripcord-provider-example")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ripcordhq/ripcord/plugins/sdk/internal/exampleplugin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Setenv("XDG_DATA_HOME", filepath.Join(wd, "xdg")) // keep the user's plugins out

	found := Discover(SearchDirs(wd))
	if len(found) != 1 || found[0].Name != "example" || found[0].Path != bin {
		t.Fatalf("Discover = %+v", found)
	}
	lock := filepath.Join(wd, LockFileName)
	if err := WriteLock(lock, found); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(lock)
	sum, _ := FileSHA256(bin)
	if !strings.Contains(string(data), sum) || !strings.Contains(string(data), `".ripcord/plugins/ripcord-provider-example"`) {
		t.Fatalf("lock file lacks the relative path or digest:\n%s", data)
	}
	if _, err := VerifyLock(lock, found); err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	h, err := New(Options{Plugins: []PluginSpec{{Name: "example"}}, Workdir: wd, SocketDir: filepath.Join(wd, "sock"), Health: rec.onHealth, Log: rec.onLog})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := testCtx(t)
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !rec.sawHealth("example", StateHealthy) {
		t.Fatalf("no healthy report: %+v", rec.health)
	}
	infos, err := h.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := infos[0]; i.Version != "0.1.0" || i.SHA256 != sum || len(i.Kinds) != 4 || i.Path != bin || i.PID == 0 {
		t.Fatalf("List = %+v", i)
	}

	// Configure: a bad nested setting comes back with its dotted path.
	err = h.Configure(ctx, "example", map[string]any{"limits": map[string]any{"max_weight": 500}}, nil)
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Errors) != 1 || ce.Errors[0].Path != "limits.max_weight" {
		t.Fatalf("Configure(bad) = %v", err)
	}
	if err := h.Configure(ctx, "example", map[string]any{"step_delay": "1ms", "steps": 3}, map[string]string{"token": "s3cret"}); err != nil {
		t.Fatal(err)
	}

	target, err := h.Target("example")
	if err != nil {
		t.Fatal(err)
	}
	ref := core.Ref{Service: "api", Env: "staging"}
	var log opLog
	op := core.OpRequest{ID: "op-deploy-1", Ref: ref, Actor: core.Actor{Name: "alice"}}
	if err := target.Deploy(ctx, op, core.Release{Service: "api", Version: "v1.43.0"}, 100, log.add); err != nil {
		t.Fatal(err)
	}
	evs := log.snapshot()
	checkOpEvents(t, evs)
	if evs[len(evs)-1].Err != "" || evs[len(evs)-1].ExternalRef == "" {
		t.Fatalf("completion = %+v", evs[len(evs)-1])
	}
	st, err := target.Status(ctx, ref)
	if err != nil || st.Current != "v1.43.0" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	// A weight the provider refuses fails the operation with its reason.
	err = target.SetWeight(ctx, core.OpRequest{ID: "op-w", Ref: ref}, 101, nil)
	var of *OpFailedError
	if !errors.As(err, &of) || !strings.Contains(err.Error(), "outside 0..100") || !strings.Contains(err.Error(), `"example"`) {
		t.Fatalf("SetWeight(101) = %v", err)
	}

	backup, err := h.Backup("example")
	if err != nil {
		t.Fatal(err)
	}
	facts, err := backup.Verify(ctx, "db")
	if err != nil || facts.Set != "db" || !facts.VerifyOK {
		t.Fatalf("Verify = %+v, %v", facts, err)
	}
	if _, err := backup.Verify(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "unknown backup set") {
		t.Fatalf("Verify(nope) = %v", err)
	}
	pipe, err := h.Pipeline("example")
	if err != nil {
		t.Fatal(err)
	}
	var lines []core.LogLine
	if err := pipe.Logs(ctx, "lines-50", "build", false, func(l core.LogLine) { lines = append(lines, l) }); err != nil || len(lines) != 50 {
		t.Fatalf("Logs = %d lines, %v", len(lines), err)
	}
	errs, err := h.Errors("example")
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	var window core.ErrorWindow
	err = errs.WatchCounts(wctx, ref, func(w core.ErrorWindow) { window = w; wcancel() })
	if !errors.Is(err, context.Canceled) || window.Total() != 3 {
		t.Fatalf("WatchCounts = %+v, %v", window, err)
	}
}

func TestStdoutBeforeHandshakeIsReportedWithName(t *testing.T) {
	_, rec, err := startExample(t, "stdout-before-handshake", nil)
	if err == nil || !strings.Contains(err.Error(), `plugin "example"`) {
		t.Fatalf("Start = %v", err)
	}
	if !rec.sawHealth("example", StateFailed) {
		t.Fatal("no failed health report")
	}
}

// A plugin that gives up before its handshake is reported as ended — not
// waited on until the start timeout — quoting what it wrote to stderr,
// which is where a plugin says why it cannot start.
func TestExitDuringHandshakeIsReportedWithName(t *testing.T) {
	_, _, err := startExample(t, "exit-in-handshake", func(o *Options) { o.StartTimeout = time.Hour })
	var se *StartError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), `plugin "example"`) {
		t.Fatalf("Start = %v; want a StartError naming the plugin", err)
	}
	if strings.Contains(se.Cause, "no handshake within") {
		t.Fatalf("a plugin that exited was waited on until the start timeout: %v", err)
	}
	if !strings.Contains(err.Error(), "it wrote: example: giving up before the handshake") {
		t.Fatalf("Start = %v; want the plugin's own stderr line quoted", err)
	}
}

func TestHangInHandshakeTimesOut(t *testing.T) {
	start := time.Now()
	h, _, err := startExample(t, "hang-in-handshake", func(o *Options) { o.StartTimeout = 300 * time.Millisecond })
	if err == nil || !strings.Contains(err.Error(), `plugin "example"`) || !strings.Contains(err.Error(), "no handshake within 300ms") {
		t.Fatalf("Start = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("start took %v with a 300ms StartTimeout", d)
	}
	if pidOf(t, h, "example") != 0 {
		t.Fatal("a hung plugin is listed as running")
	}
}

func TestLockMismatchIsRefusedNamingBothDigests(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "ripcord-provider-example")
	data, err := os.ReadFile(exampleBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, LockFileName)
	spec := PluginSpec{Name: "example", Path: bin}
	if err := WriteLock(lock, []PluginSpec{spec}); err != nil {
		t.Fatal(err)
	}
	locked, _ := FileSHA256(bin)
	// The binary changes after it was locked.
	if err := os.WriteFile(bin, append(data, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	actual, _ := FileSHA256(bin)
	if _, err := VerifyLock(lock, []PluginSpec{spec}); err == nil {
		t.Fatal("VerifyLock accepted a changed binary")
	}
	rec := &recorder{}
	h, err := New(Options{Plugins: []PluginSpec{spec}, LockFile: lock, Workdir: dir, SocketDir: filepath.Join(dir, "sock"), Health: rec.onHealth})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	err = h.Start(testCtx(t))
	var ce *ChecksumError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `"example"`) || !strings.Contains(err.Error(), locked) || !strings.Contains(err.Error(), actual) {
		t.Fatalf("Start = %v", err)
	}
	if pidOf(t, h, "example") != 0 || !rec.sawHealth("example", StateFailed) {
		t.Fatal("a refused plugin was started")
	}
	if _, err := h.Target("example"); err == nil {
		t.Fatal("a refused plugin is usable")
	}
}

func TestHostSecretsDoNotReachPlugins(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
	t.Setenv("EXAMPLE_PASSED", "yes")
	h, _, err := startExample(t, "", func(o *Options) { o.Plugins[0].Env = []string{"EXAMPLE_PASSED", "EXAMPLE_SET=1"} })
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pidOf(t, h, "example")) + "/environ")
	if err != nil {
		t.Skip("cannot read /proc/PID/environ:", err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(raw), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if _, ok := env["AWS_SECRET_ACCESS_KEY"]; ok {
		t.Fatal("the plugin sees AWS_SECRET_ACCESS_KEY")
	}
	if env["EXAMPLE_PASSED"] != "yes" || env["EXAMPLE_SET"] != "1" || env["PATH"] == "" || env["PLUGIN_UNIX_SOCKET_DIR"] == "" {
		t.Fatalf("allowlisted variables missing: %v", env)
	}
}

func TestCrashMidStreamRestartsAndReattaches(t *testing.T) {
	h, rec, err := startExample(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := h.Configure(ctx, "example", map[string]any{"step_delay": "200ms", "steps": 50}, nil); err != nil {
		t.Fatal(err)
	}
	target, _ := h.Target("example")
	oldPID := pidOf(t, h, "example")
	ref := core.Ref{Service: "api", Env: "prod"}
	var log opLog
	first := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- target.Deploy(ctx, core.OpRequest{ID: "op-crash", Ref: ref}, core.Release{Service: "api", Version: "v2"}, 10, func(ev core.OpEvent) {
			log.add(ev)
			once.Do(func() { close(first) })
		})
	}()
	<-first
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Deploy after a crash: %v", err)
	}
	evs := log.snapshot()
	checkOpEvents(t, evs)
	var reattached bool
	for _, ev := range evs {
		reattached = reattached || strings.HasPrefix(ev.Message, "re-attached to deploy-"+strconv.Itoa(oldPID))
	}
	if !reattached {
		t.Fatalf("the operation was not re-attached by its external ref: %+v", evs)
	}
	if !rec.sawHealth("example", StateDegraded) {
		t.Fatal("the crash was not reported as degraded")
	}
	var named bool
	rec.mu.Lock()
	for _, hh := range rec.health {
		named = named || hh.State == StateDegraded && strings.Contains(hh.Message, `plugin "example"`)
	}
	rec.mu.Unlock()
	if !named {
		t.Fatal("the degraded report does not name the plugin")
	}
	// The next call goes to a new process, configured as before.
	if _, err := target.Status(ctx, ref); err != nil {
		t.Fatal(err)
	}
	newPID := pidOf(t, h, "example")
	if newPID == 0 || newPID == oldPID {
		t.Fatalf("pid after restart = %d (before %d)", newPID, oldPID)
	}
	waitFor(t, "the killed plugin to be reaped", 5*time.Second, func() bool { return processGone(oldPID) })
	if err := h.Configure(ctx, "example", map[string]any{"steps": 1}, nil); err != nil {
		t.Fatal(err)
	}
}

// A SIGKILLed host leaves no plugin behind (Pdeathsig).
func TestKilledHostLeavesNoPlugins(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self, "-test.run=^$")
	child.Env = append(os.Environ(), "RIPCORD_TEST_HOST_CHILD="+dir, "RIPCORD_TEST_EXAMPLE_BIN="+exampleBin)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pids := readChildPIDs(t, bufio.NewScanner(out))
	if len(pids) != 2 || pids[0] == 0 || pids[1] == 0 {
		t.Fatalf("child host reported pids %v", pids)
	}
	for _, pid := range pids {
		if processGone(pid) {
			t.Fatalf("plugin %d not running before the host is killed", pid)
		}
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	waitFor(t, "plugins of the killed host to exit", 5*time.Second, func() bool {
		return processGone(pids[0]) && processGone(pids[1])
	})
}

// 20 crash-restarts in a row leak no processes, sockets or descriptors.
func TestRepeatedRestartsLeakNothing(t *testing.T) {
	before := countFDs(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	h, _, err := startExample(t, "", func(o *Options) {
		o.SocketDir = sock
		o.MinBackoff, o.MaxBackoff = time.Millisecond, 5*time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	target, _ := h.Target("example")
	var pids []int
	for i := range 20 {
		pid := pidOf(t, h, "example")
		pids = append(pids, pid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "restart "+strconv.Itoa(i), 10*time.Second, func() bool {
			p := pidOf(t, h, "example")
			return p != 0 && p != pid
		})
		if _, err := target.Status(ctx, core.Ref{Service: "api", Env: "x"}); err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
	}
	for _, pid := range pids {
		waitFor(t, "killed plugin "+strconv.Itoa(pid)+" reaped", 5*time.Second, func() bool { return processGone(pid) })
	}
	entries, _ := os.ReadDir(sock)
	if len(entries) != 1 { // only the live plugin's socket
		t.Fatalf("socket dir holds %d entries with one plugin running", len(entries))
	}
	last := pidOf(t, h, "example")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "last plugin exit", 5*time.Second, func() bool { return processGone(last) })
	entries, _ = os.ReadDir(sock)
	if len(entries) != 0 {
		t.Fatalf("socket dir not empty after Close: %v", entries)
	}
	// gRPC and go-plugin close their descriptors asynchronously; allow
	// them a moment, but no growth.
	waitFor(t, "descriptors back to the start count", 5*time.Second, func() bool { return countFDs(t) <= before })
}

func TestStaleSocketsAreRemovedAtStart(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	if err := os.MkdirAll(sock, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(sock, "plugin123456")
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := startExample(t, "", func(o *Options) { o.SocketDir = sock }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("stale socket survived Start")
	}
	st, _ := os.Stat(sock)
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir mode %v, want 0700", st.Mode().Perm())
	}
}

func TestBuiltinsStartByReexec(t *testing.T) {
	self, _ := os.Executable()
	rec := &recorder{}
	h, err := New(Options{Self: self, Builtins: []string{"builtin0", "builtin1"}, Workdir: t.TempDir(), SocketDir: filepath.Join(t.TempDir(), "s"), Health: rec.onHealth, LockFile: filepath.Join(t.TempDir(), "none.lock")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	b, err := h.Backup("builtin1")
	if err != nil {
		t.Fatal(err)
	}
	facts, err := b.Verify(testCtx(t), "db")
	if err != nil || facts.Tool != "builtin" {
		t.Fatalf("Verify = %+v, %v", facts, err)
	}
	if _, err := h.Target("builtin1"); err == nil {
		t.Fatal("a backup-only provider was returned as a target")
	}
	if !rec.sawHealth("builtin0", StateHealthy) || !rec.sawHealth("builtin1", StateHealthy) {
		t.Fatal("built-ins not reported healthy")
	}
}

func TestNoLogLineReachesTheTerminal(t *testing.T) {
	// fd 2 is the terminal under the screen: swap it for a pipe while a
	// plugin fails noisily, then check nothing was written to it.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup2(int(w.Fd()), 2); err != nil {
		t.Fatal(err)
	}
	_, rec, startErr := startExample(t, "stdout-before-handshake", nil)
	_, _, startErr2 := startExample(t, "exit-in-handshake", nil)
	_ = unix.Dup2(saved, 2)
	_ = syscall.Close(saved)
	_ = w.Close()
	var leaked strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		leaked.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if startErr == nil || startErr2 == nil {
		t.Fatal("expected start failures")
	}
	if leaked.Len() != 0 {
		t.Fatalf("written to the terminal: %q", leaked.String())
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.logs) == 0 {
		t.Fatal("go-plugin's log lines did not reach the Log callback")
	}
}

// Two environments may use one built-in provider with different settings:
// each instance is its own process.
func TestBuiltinInstancesAreSeparateProcesses(t *testing.T) {
	self, _ := os.Executable()
	h, err := New(Options{Self: self, Builtins: []string{"builtin0@staging", "builtin0@production"}, Workdir: t.TempDir(), SocketDir: filepath.Join(t.TempDir(), "s"), LockFile: filepath.Join(t.TempDir(), "none.lock")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	infos, err := h.List(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Name != "builtin0@staging" || infos[1].Name != "builtin0@production" {
		t.Fatalf("instances = %+v", infos)
	}
	if infos[0].PID == 0 || infos[0].PID == infos[1].PID {
		t.Fatalf("instances share a process: pids %d and %d", infos[0].PID, infos[1].PID)
	}
	for _, name := range []string{"builtin0@staging", "builtin0@production"} {
		b, err := h.Backup(name)
		if err != nil {
			t.Fatal(err)
		}
		if f, err := b.Verify(testCtx(t), "db"); err != nil || !f.VerifyOK {
			t.Fatalf("%s: Verify = %+v, %v", name, f, err)
		}
	}
}
