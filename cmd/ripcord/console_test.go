package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/tui"
)

// --theme takes a built-in name or a theme file; anything else is a usage
// error that says what would work, before anything starts.
func TestConsoleThemeFlag(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	f, err := config.Load(cfg, config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	o, err := consoleOptions(f, consoleFlags{theme: "okabe-ito"})
	if err != nil || o.ThemeName != "okabe-ito" {
		t.Fatalf("built-in theme: %+v, %v", o.ThemeName, err)
	}

	mine := filepath.Join(dir, "mine.json")
	body := `{"text":"#ffffff","muted":"#bbbbbb","accent":"#56b4e9","surface":"#000000",
"border":"#999999","ok":"#009e73","warn":"#f0e442","danger":"#d55e00","production":"#cc79a7"}`
	if err := os.WriteFile(mine, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err = consoleOptions(f, consoleFlags{theme: mine})
	if err != nil || o.Theme.Name != "mine" || o.Theme.Danger != "#d55e00" {
		t.Fatalf("theme file: %+v, %v", o.Theme, err)
	}

	code, _, errs := ripcord(t, "console", "-c", cfg, "--theme", "solarized")
	if code != exitUsage || !strings.Contains(errs, `--theme "solarized" is neither a built-in theme (dark, high-contrast, light, monochrome, okabe-ito)`) {
		t.Fatalf("unknown theme: exit %d, stderr %q", code, errs)
	}
	broken := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(broken, []byte("{\n  \"text\": \"#ffffff\"\n  \"ok\": \"#00ff00\"\n}"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = ripcord(t, "console", "-c", cfg, "--theme", broken)
	if code != exitUsage || !strings.Contains(errs, broken+":3:3:") {
		t.Fatalf("broken theme file: exit %d, stderr %q", code, errs)
	}
}

// The console draws its first frame while the provider processes are
// still starting, and their health arrives on the screen's stream after.
// Here every provider waits for a file the test creates only once the
// first frame is out, so the order is certain.
func TestConsoleDrawsBeforeProvidersAreUp(t *testing.T) {
	dir := t.TempDir()
	f, err := config.Load(writeConfig(t, dir, ""), config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	gate := filepath.Join(dir, "providers-may-start")
	slow := filepath.Join(dir, "slow-ripcord")
	script := fmt.Sprintf("#!/bin/sh\nwhile [ ! -e %q ]; do sleep 0.05; done\nexec %q \"$@\"\n", gate, self)
	if err := os.WriteFile(slow, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, sub := consoleWorld(t, ctx, f, worldOptions{Observe: true, Self: slow})
	out := &firstWrite{seen: make(chan struct{})}
	in, hold := io.Pipe()
	defer hold.Close()
	ran := make(chan error, 1)
	go func() {
		ran <- tui.Run(ctx, w.eng, tui.Options{Actor: currentActor(), Output: out, Input: in, Width: 120, Height: 40, NoColor: true})
	}()
	select {
	case <-out.seen:
	case <-time.After(30 * time.Second):
		t.Fatal("no first frame while the providers wait")
	}
	select {
	case <-w.startDone:
		t.Fatal("the providers were up before the first frame, though they could not start")
	default:
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	for {
		ev, err := sub.Next(wctx)
		if err != nil {
			t.Fatalf("the local target never reported healthy after the gate opened: %v", err)
		}
		if ev.Kind == core.EvProvider && ev.Provider.Name == "local@production" && ev.Provider.State == "healthy" {
			break
		}
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
}

// When the providers cannot start here (another process holds the local
// target's port), the console keeps showing the store and an action says
// why it cannot run, instead of "not available".
func TestConsoleWithoutProvidersSaysWhyActionsCannotRun(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	body := fmt.Sprintf(`project: shop
services:
  - name: api
environments:
  - name: production
    target: { provider: local, root: envs/production, run: "./api", health: "tcp://127.0.0.1:1", port: %d }
`, port)
	cfg := filepath.Join(dir, "ripcord.yaml")
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	stopWorldAtEnd(t, cfg)
	f, err := config.Load(cfg, config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, sub := consoleWorld(t, ctx, f, worldOptions{Observe: true})
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("no notice that the providers did not start: %v", err)
		}
		if ev.Kind == core.EvNotice && strings.HasPrefix(ev.Notice, "providers not started: ") {
			break
		}
	}
	_, err = w.eng.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: core.Ref{Service: "api", Env: "production"}, Actor: core.Actor{Name: "bo"}})
	if err == nil || !strings.Contains(err.Error(), "providers not started: ") || !strings.Contains(err.Error(), "listen on the public port") ||
		!strings.Contains(err.Error(), "another process on this machine holds the port") {
		t.Fatalf("rollback without providers = %v; want the reason the providers did not start", err)
	}
}

// consoleWorld opens the world as the console does (engine first,
// providers behind it) and a subscription taken before they start; both
// end with the test.
func consoleWorld(t *testing.T, ctx context.Context, f *config.File, wo worldOptions) (*world, *core.Subscription) {
	t.Helper()
	wo.CreateState = true // as the console does
	w, err := openEngine(ctx, f, wo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	_, sub := w.eng.Subscribe()
	t.Cleanup(sub.Close)
	w.startInBackground(ctx, wo)
	return w, sub
}
