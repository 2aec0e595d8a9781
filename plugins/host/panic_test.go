package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// panickyBackup panics in a plain call on its first Verify.
type panickyBackup struct{ builtinBackup }

var panicked bool

func (panickyBackup) Sets(context.Context) ([]sdk.BackupSet, error) {
	if !panicked {
		panicked = true
		var m map[string]int
		m["db"]++ // assignment to entry in nil map
	}
	return []sdk.BackupSet{{Name: "db", Tool: "builtin"}}, nil
}

func init() {
	builtinRegistry["panicky"] = func() sdk.ServeConfig {
		return sdk.ServeConfig{Info: sdk.Info{Name: "panicky", Version: "1.0.0"}, Backup: panickyBackup{}}
	}
}

// A panic in a provider's call comes back as that call's error, with the
// panic's text, and the plugin process lives on to answer the next call.
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
	b, err := h.Backup("panicky")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.(*BackupAdapter).Sets(ctx)
	if err == nil || !strings.Contains(err.Error(), "panicked") || !strings.Contains(err.Error(), "assignment to entry in nil map") {
		t.Fatalf("Sets = %v; want the panic's text", err)
	}
	sets, err := b.(*BackupAdapter).Sets(ctx)
	if err != nil || len(sets) != 1 || pidOf(t, h, "panicky") != pid {
		t.Fatalf("the next call = %+v, %v (pid %d, was %d); want an answer from the same process", sets, err, pidOf(t, h, "panicky"), pid)
	}
}
