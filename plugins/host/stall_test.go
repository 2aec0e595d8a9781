package host

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// A plugin process that stops answering (here: stopped with SIGSTOP)
// while a watch stream is open is found within the stall time plus the
// health deadline: its health says it is not answering, and the stream
// ends with that reason, so the observer reconnects and the screen says
// why instead of freezing on the last value.
func TestAStalledStreamIsFoundAndShown(t *testing.T) {
	self, _ := os.Executable()
	rec := &recorder{}
	h, err := New(Options{Self: self, Builtins: []string{"builtin0"}, Workdir: t.TempDir(), SocketDir: filepath.Join(t.TempDir(), "s"),
		Health: rec.onHealth, Log: rec.onLog, LockFile: filepath.Join(t.TempDir(), "none.lock"),
		Deadlines: core.Deadlines{Stall: 300 * time.Millisecond, Health: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := testCtx(t)
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := h.Backup("builtin0")
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{}, 1)
	ended := make(chan error, 1)
	go func() {
		ended <- b.WatchFreshness(ctx, func(core.BackupFacts) {
			select {
			case first <- struct{}{}:
			default:
			}
		})
	}()
	<-first
	// Quiet is normal: a healthy plugin that sends nothing keeps its stream.
	select {
	case err := <-ended:
		t.Fatalf("a quiet but healthy stream ended: %v", err)
	case <-time.After(time.Second):
	}
	list, _ := h.List(ctx)
	pid := list[0].PID
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	select {
	case err := <-ended:
		if err == nil || !strings.Contains(err.Error(), "WatchFreshness has been silent for") || !strings.Contains(err.Error(), "CheckHealth did not answer within 300ms") {
			t.Fatalf("the stalled stream ended with %v; want the stall named", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stream of a stopped plugin was never found stalled")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	last := rec.health[len(rec.health)-1]
	if last.State != StateDegraded || !strings.HasPrefix(last.Message, "not answering: WatchFreshness has been silent") {
		t.Fatalf("health = %+v; want it shown as not answering", last)
	}
}
