package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// hangingTarget is a deploy target whose Deploy never returns while the
// file "hang" exists in its directory: it notes that it started, notes
// when its context is cancelled (which only the protocol can tell it),
// and still never returns. Without the file, Deploy succeeds.
type hangingTarget struct{ dir string }

func serveHangingPlugin(dir string) {
	sdk.Serve(sdk.ServeConfig{Info: sdk.Info{Name: "hang", Version: "1.0.0"}, Target: hangingTarget{dir: dir}})
}

func (h hangingTarget) note(name string) { _ = os.WriteFile(filepath.Join(h.dir, name), nil, 0o600) }

func (h hangingTarget) Status(ctx context.Context, _ sdk.StatusRequest) (sdk.TargetStatus, error) {
	if _, err := os.Stat(filepath.Join(h.dir, "hang-status")); err == nil {
		<-ctx.Done()
		select {} // ignores its cancellation, as its Deploy does
	}
	cur, _ := os.ReadFile(filepath.Join(h.dir, "current"))
	return sdk.TargetStatus{Current: string(cur), Healthy: true}, nil
}
func (h hangingTarget) WatchStatus(ctx context.Context, req sdk.WatchStatusRequest, send func(sdk.TargetStatus) error) error {
	st, _ := h.Status(ctx, sdk.StatusRequest{Ref: req.Ref})
	if err := send(st); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
func (h hangingTarget) Deploy(ctx context.Context, _ *sdk.Op, req sdk.DeployRequest) error {
	rel := req.Release
	if _, err := os.Stat(filepath.Join(h.dir, "hang")); err == nil {
		h.note("started")
		<-ctx.Done()
		h.note("cancelled")
		select {} // a provider that ignores its cancellation too
	}
	return os.WriteFile(filepath.Join(h.dir, "current"), []byte(rel.Version), 0o600)
}
func (hangingTarget) SetWeight(context.Context, *sdk.Op, sdk.SetWeightRequest) error { return nil }
func (hangingTarget) Rollback(context.Context, *sdk.Op, sdk.RollbackRequest) error {
	return errors.New("not in this test")
}

// hangingProject is a project whose production target is the hanging
// plugin, with deadlines as given ("deploy: 2s"), its plugin locked; it
// returns the config and the plugin's state directory.
func hangingProject(t *testing.T, deadlines string) (cfg, state string) {
	t.Helper()
	dir := t.TempDir()
	self, _ := os.Executable()
	state = filepath.Join(dir, "plugin-state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RIPCORD_TEST_HANGING_PLUGIN", state)
	cfg = writeConfigFile(t, dir, `project: shop
services:
  - name: api
environments:
  - name: production
    target: { provider: hang }
plugins:
  - { name: hang, path: "`+self+`", env: [RIPCORD_TEST_HANGING_PLUGIN] }
deadlines: { `+deadlines+` }
`)
	if code, out, errs := ripcord(t, "plugins", "lock", "-c", cfg); code != exitOK {
		t.Fatalf("plugins lock: exit %d\n%s%s", code, out, errs)
	}
	return cfg, state
}

// A provider whose Deploy never returns does not hold the environment
// forever: past the configured deadline the deploy is cancelled through
// the protocol (the plugin sees its context end), the operation fails
// naming the deadline and the provider, the lock is released, and the
// person's retry runs.
func TestHangingDeployFailsAtItsDeadlineAndCanBeRetried(t *testing.T) {
	cfg, state := hangingProject(t, "deploy: 2s")
	t.Setenv("RIPCORD_ACTOR", "ana")
	st, err := sqlitestore.Open(context.Background(), filepath.Join(filepath.Dir(cfg), ".ripcord", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutRelease(context.Background(), core.Release{Service: "api", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	if err := os.WriteFile(filepath.Join(state, "hang"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, out, errs := ripcord(t, "promote", "api", "--to", "production", "--version", "v1", "--yes", "-c", cfg)
	if code != exitFailed || !strings.Contains(errs, "deploy did not finish within 2s (provider hang@production)") {
		t.Fatalf("promote with a hanging provider: exit %d after %s\n%s%s\nwant exit %d naming the deadline and the provider", code, time.Since(start), out, errs, exitFailed)
	}
	if _, err := os.Stat(filepath.Join(state, "cancelled")); err != nil {
		t.Fatalf("the plugin never saw its deploy cancelled: %v", err)
	}
	code, out, errs = ripcord(t, "status", "--json", "-c", cfg)
	var status struct {
		Envs []struct {
			Lock *core.Lock `json:"lock"`
		} `json:"environments"`
		Unfinished []core.Operation `json:"unfinished_operations"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &status) != nil {
		t.Fatalf("status: exit %d\n%s%s", code, out, errs)
	}
	if status.Envs[0].Lock != nil || len(status.Unfinished) != 0 {
		t.Fatalf("after the failed deploy: lock %+v, unfinished %+v; want neither", status.Envs[0].Lock, status.Unfinished)
	}

	// The provider is fixed; the person retries.
	if err := os.Remove(filepath.Join(state, "hang")); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := ripcord(t, "promote", "api", "--to", "production", "--version", "v1", "--yes", "-c", cfg); code != exitOK {
		t.Fatalf("the retry: exit %d\n%s%s", code, out, errs)
	}
	if cur, _ := os.ReadFile(filepath.Join(state, "current")); string(cur) != "v1" {
		t.Fatalf("after the retry the target runs %q, want v1", cur)
	}
}

// A provider whose Status never answers shows as degraded, naming the call,
// the deadline and the provider, while the server goes on answering
// everyone; once the provider answers again it is healthy again and its
// release shows.
func TestHangingStatusShowsTheProviderDegradedAndTheServerKeepsAnswering(t *testing.T) {
	cfg, state := hangingProject(t, "status: 1s")
	self, _ := os.Executable()
	for name, data := range map[string]string{"hang-status": "", "current": "v7"} {
		if err := os.WriteFile(filepath.Join(state, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	serve := exec.Command(self, "serve", "-c", cfg)
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = serve.Process.Signal(os.Interrupt); _ = serve.Wait() })
	waitServer(t, cfg)

	logsSay := func(what string, want ...string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, logs, errs := ripcord(t, "server", "logs", "-c", cfg)
			found := code == exitOK
			for _, w := range want {
				found = found && strings.Contains(logs, w)
			}
			if found {
				return logs
			}
			if time.Now().After(deadline) {
				t.Fatalf("the server never said %s within 30s: exit %d\n%s%s", what, code, logs, errs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	logsSay("the provider is degraded", "provider hang@production degraded", "did not answer within 1s")
	// Stuck on its provider, the server still answers: status, and a
	// person's lock.
	if code, out, errs := ripcord(t, "status", "--json", "-c", cfg); code != exitOK || !strings.Contains(out, `"project": "shop"`) {
		t.Fatalf("status while the provider hangs: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := ripcord(t, "lock", "api", "--env", "production", "--reason", "provider looked at", "-c", cfg); code != exitOK {
		t.Fatalf("lock while the provider hangs: exit %d\n%s%s", code, out, errs)
	}

	if err := os.Remove(filepath.Join(state, "hang-status")); err != nil {
		t.Fatal(err)
	}
	logsSay("the provider is healthy again", "provider hang@production healthy again")
}
