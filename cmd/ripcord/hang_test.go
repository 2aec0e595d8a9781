package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
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

func (h hangingTarget) Status(_ context.Context, _ sdk.StatusRequest) (sdk.TargetStatus, error) {
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

// A provider whose Deploy never returns does not hold the environment
// forever: past the configured deadline the deploy is cancelled through
// the protocol (the plugin sees its context end), the operation fails
// naming the deadline and the provider, the lock is released, and the
// person's retry runs.
func TestHangingDeployFailsAtItsDeadlineAndCanBeRetried(t *testing.T) {
	dir := t.TempDir()
	self, _ := os.Executable()
	state := filepath.Join(dir, "plugin-state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RIPCORD_TEST_HANGING_PLUGIN", state)
	t.Setenv("RIPCORD_ACTOR", "ana")
	cfg := filepath.Join(dir, "ripcord.yaml")
	body := `project: shop
services:
  - name: api
environments:
  - name: production
    target: { provider: hang }
plugins:
  - { name: hang, path: "` + self + `", env: [RIPCORD_TEST_HANGING_PLUGIN] }
deadlines: { deploy: 2s }
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, ".ripcord", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutRelease(context.Background(), core.Release{Service: "api", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if code, out, errs := ripcord(t, "plugins", "lock", "-c", cfg); code != exitOK {
		t.Fatalf("plugins lock: exit %d\n%s%s", code, out, errs)
	}

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
