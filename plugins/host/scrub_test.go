package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// noisyErrors is an error source reporting an error whose title carries
// a terminal escape, a forged line and a configured secret.
type noisyErrors struct{}

const noisyTitle = "TypeError: \x1b[41mROOT\x1b[0m\nforged line, db password hunter2-secret"

func (noisyErrors) WatchCounts(ctx context.Context, _ sdk.WatchCountsRequest, send func(sdk.ErrorWindow) error) error {
	if err := send(sdk.ErrorWindow{Release: "v1", Issues: []sdk.ErrorIssue{{Fingerprint: "fp", Title: noisyTitle, Count: 3}}, Warning: noisyTitle}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func init() {
	builtinRegistry["noisy"] = func() sdk.ServeConfig {
		return sdk.ServeConfig{Info: sdk.Info{Name: "noisy", Version: "1.0.0"}, Errors: noisyErrors{}}
	}
}

// What a provider reports reaches the engine with configured secrets
// redacted and control characters escaped: an error title, or a window's
// warning (which names releases and environments an SDK sent), cannot
// paint the console or forge a line, and does not show the password it
// carried.
func TestProviderTextIsRedactedAndEscaped(t *testing.T) {
	self, _ := os.Executable()
	h, err := New(Options{Self: self, Builtins: []string{"noisy"}, Workdir: t.TempDir(), SocketDir: filepath.Join(t.TempDir(), "s"),
		LockFile: filepath.Join(t.TempDir(), "none.lock"),
		Redact:   func(s string) string { return strings.ReplaceAll(s, "hunter2-secret", "[redacted]") }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := testCtx(t)
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	src, err := h.Errors("noisy")
	if err != nil {
		t.Fatal(err)
	}
	const want = `TypeError: \x1b[41mROOT\x1b[0m\nforged line, db password [redacted]`
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got := make(chan core.ErrorWindow, 1)
	go func() {
		_ = src.WatchCounts(wctx, core.Ref{Service: "api", Env: "production"}, func(w core.ErrorWindow) {
			select {
			case got <- w:
			default:
			}
			cancel()
		})
	}()
	select {
	case w := <-got:
		if title := w.Issues[0].Title; title != want {
			t.Fatalf("streamed title %q, want %q", title, want)
		}
		if w.Warning != want {
			t.Fatalf("streamed warning %q, want %q", w.Warning, want)
		}
	case <-wctx.Done():
		t.Fatal("no error window arrived")
	}
}

// A log line's tabs become the spaces a terminal shows (go test aligns
// its summary with them), not an escaped \t.
func TestLogLineTabsAreExpanded(t *testing.T) {
	h := &Host{}
	got := h.scrubLine(core.LogLine{Text: "ok  \tshop/worker\t0.412s"}).Text
	if want := "ok      shop/worker     0.412s"; got != want {
		t.Fatalf("scrubbed line %q, want %q", got, want)
	}
}
