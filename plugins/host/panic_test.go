package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// panickyTarget panics in a plain call, its first Status.
type panickyTarget struct{ calls *atomic.Int32 }

func (p panickyTarget) Status(_ context.Context, req sdk.StatusRequest) (sdk.TargetStatus, error) {
	if p.calls.Add(1) == 1 {
		var m map[string]int
		m["v1"]++ // assignment to entry in nil map
	}
	return sdk.TargetStatus{Current: "v1", Healthy: true}, nil
}
func (panickyTarget) WatchStatus(ctx context.Context, _ sdk.WatchStatusRequest, send func(sdk.TargetStatus) error) error {
	if err := send(sdk.TargetStatus{Current: "v1"}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
func (panickyTarget) Deploy(context.Context, *sdk.Op, sdk.DeployRequest) error       { return nil }
func (panickyTarget) SetWeight(context.Context, *sdk.Op, sdk.SetWeightRequest) error { return nil }
func (panickyTarget) Rollback(context.Context, *sdk.Op, sdk.RollbackRequest) error   { return nil }

func init() {
	builtinRegistry["panicky"] = func() sdk.ServeConfig {
		return sdk.ServeConfig{Info: sdk.Info{Name: "panicky", Version: "1.0.0"}, Target: panickyTarget{calls: new(atomic.Int32)}}
	}
}

// A panic in a provider's plain call comes back as that call's error,
// with the panic's text, and the plugin process lives on to answer the
// next call.
func TestAPanicInACallIsReturnedWithItsText(t *testing.T) {
	self, _ := os.Executable()
	h, err := New(Options{Self: self, Builtins: []string{"panicky"}, Workdir: t.TempDir(), SocketDir: filepath.Join(t.TempDir(), "s"), LockFile: filepath.Join(t.TempDir(), "none.lock")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := testCtx(t)
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, h, "panicky")
	tg, err := h.Target("panicky")
	if err != nil {
		t.Fatal(err)
	}
	ref := core.Ref{Service: "api", Env: "production"}
	_, err = tg.Status(ctx, ref)
	if err == nil || !strings.Contains(err.Error(), "panicked") || !strings.Contains(err.Error(), "assignment to entry in nil map") {
		t.Fatalf("Status = %v; want the panic's text", err)
	}
	st, err := tg.Status(ctx, ref)
	if err != nil || st.Current != "v1" || pidOf(t, h, "panicky") != pid {
		t.Fatalf("the next call = %+v, %v (pid %d, was %d); want an answer from the same process", st, err, pidOf(t, h, "panicky"), pid)
	}
}
