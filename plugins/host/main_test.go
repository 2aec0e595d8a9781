package host

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// exampleBin is the example plugin, built once from
// plugins/sdk/internal/exampleplugin (which uses only plugins/sdk).
var exampleBin string

func TestMain(m *testing.M) {
	// The test binary doubles as the ripcord binary for built-ins...
	if len(os.Args) == 4 && os.Args[1] == "plugin" && os.Args[2] == "serve" {
		if err := ServeBuiltin(os.Args[3], builtinRegistry); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// ...and as a host process the host-death test SIGKILLs.
	if dir := os.Getenv("RIPCORD_TEST_HOST_CHILD"); dir != "" {
		os.Exit(runChildHost(dir))
	}
	tmp, err := os.MkdirTemp("", "ripcord-host-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exampleBin = filepath.Join(tmp, "ripcord-provider-example")
	build := exec.Command("go", "build", "-o", exampleBin, "github.com/ripcordhq/ripcord/plugins/sdk/internal/exampleplugin")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the example plugin:", err)
		os.Exit(1)
	}
	code := m.Run()
	Cleanup()
	_ = os.RemoveAll(tmp)
	os.Exit(code)
}

// builtinRegistry is what `ripcord plugin serve` would have: here one
// small backup source compiled into the test binary.
var builtinRegistry = map[string]func() sdk.ServeConfig{}

func init() {
	for i := range 8 {
		name := "builtin" + strconv.Itoa(i)
		builtinRegistry[name] = func() sdk.ServeConfig {
			return sdk.ServeConfig{Info: sdk.Info{Name: name, Version: "1.0.0"}, Backup: builtinBackup{}}
		}
	}
}

type builtinBackup struct{}

func (builtinBackup) WatchFreshness(ctx context.Context, _ sdk.WatchFreshnessRequest, send func(sdk.BackupFacts) error) error {
	if err := send(sdk.BackupFacts{Set: "db", Tool: "builtin", ReportedAt: time.Now()}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (builtinBackup) Verify(_ context.Context, op *sdk.Op, req sdk.VerifyRequest) (sdk.BackupFacts, error) {
	return sdk.BackupFacts{Set: req.Set, Tool: "builtin", VerifyOK: true}, op.Progress(1, "verified")
}

func (builtinBackup) RunBackup(context.Context, *sdk.Op, sdk.RunBackupRequest) error { return nil }

// runChildHost starts the example plugin twice, prints their PIDs and
// waits to be killed.
func runChildHost(dir string) int {
	bin := os.Getenv("RIPCORD_TEST_EXAMPLE_BIN")
	specs := []PluginSpec{{Name: "a", Path: bin}, {Name: "b", Path: bin}}
	lock := filepath.Join(dir, LockFileName)
	if err := WriteLock(lock, specs); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	h, err := New(Options{Plugins: specs, LockFile: lock, Workdir: dir, SocketDir: filepath.Join(dir, "sock")})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	if err := h.Start(context.Background()); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	infos, _ := h.List(context.Background())
	for _, i := range infos {
		fmt.Println("PID", i.PID)
	}
	fmt.Println("READY")
	time.Sleep(time.Hour)
	return 0
}

// recorder collects health changes and log lines.
type recorder struct {
	mu     sync.Mutex
	health []core.ProviderHealth
	logs   []core.LogLine
}

func (r *recorder) onHealth(h core.ProviderHealth) {
	r.mu.Lock()
	r.health = append(r.health, h)
	r.mu.Unlock()
}

func (r *recorder) onLog(l core.LogLine) {
	r.mu.Lock()
	r.logs = append(r.logs, l)
	r.mu.Unlock()
}

func (r *recorder) sawHealth(name, state string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.health {
		if h.Name == name && h.State == state {
			return true
		}
	}
	return false
}

// startExample starts a host with the example plugin in mode (may be "").
func startExample(t testing.TB, mode string, tweak func(*Options)) (*Host, *recorder, error) {
	t.Helper()
	dir := t.TempDir()
	spec := PluginSpec{Name: "example", Path: exampleBin}
	if mode != "" {
		spec.Env = []string{"EXAMPLE_MODE=" + mode}
	}
	lock := filepath.Join(dir, LockFileName)
	if err := WriteLock(lock, []PluginSpec{spec}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	opts := Options{Plugins: []PluginSpec{spec}, LockFile: lock, Workdir: dir, SocketDir: filepath.Join(dir, "sock"),
		Log: rec.onLog, Health: rec.onHealth, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if tweak != nil {
		tweak(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return h, rec, h.Start(ctx)
}

func pidOf(t testing.TB, h *Host, name string) int {
	t.Helper()
	infos, err := h.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		if i.Name == name {
			return i.PID
		}
	}
	t.Fatalf("plugin %s not listed", name)
	return 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// processGone reports whether pid no longer runs (absent or a zombie).
func processGone(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd on this system")
	}
	return len(entries)
}

func readChildPIDs(t *testing.T, out *bufio.Scanner) []int {
	t.Helper()
	var pids []int
	for out.Scan() {
		line := out.Text()
		switch {
		case strings.HasPrefix(line, "PID "):
			pid, _ := strconv.Atoi(strings.TrimPrefix(line, "PID "))
			pids = append(pids, pid)
		case line == "READY":
			return pids
		case strings.HasPrefix(line, "ERROR"):
			t.Fatal("child host:", line)
		}
	}
	t.Fatal("child host ended before READY")
	return nil
}
