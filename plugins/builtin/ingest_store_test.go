package builtin

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// The ingest runs as its own process. Its counts go to the state file, so
// a console restart (a new plugin process) still has the baseline a spike
// verdict compares against, and the new counts add to it.
func TestSentryIngestCountsSurviveAPluginRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	settings := map[string]any{"service": "api", "env": "production", "listen": addr,
		"keys": map[string]string{"42": "publickey"}, "store": path}
	ref := core.Ref{Service: "api", Env: "production"}

	report := func(n int) {
		t.Helper()
		c, err := sentry.NewClient(sentry.ClientOptions{
			Dsn: "http://publickey@" + addr + "/42", Environment: "production", Release: "v1.4.2",
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range n {
			c.CaptureException(errors.New("checkout failed "+strconv.Itoa(i%2)), nil, nil)
		}
		if !c.Flush(10 * time.Second) {
			t.Fatal("sentry-go Flush timed out")
		}
	}
	stored := func() int64 {
		t.Helper()
		rows, err := st.ErrorCounts(ctx, ref, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range rows {
			if r.Release == "v1.4.2" {
				n += r.Count
			}
		}
		return n
	}

	h := startBuiltin(t, "sentry-ingest")
	if err := h.Configure(ctx, "sentry-ingest", settings, nil); err != nil {
		t.Fatal(err)
	}
	report(7)
	// Stopping the plugin flushes what it counted since its last write.
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := stored(); got != 7 {
		t.Fatalf("after the plugin stopped the store has %d errors for v1.4.2, want 7", got)
	}

	h = startBuiltin(t, "sentry-ingest")
	if err := h.Configure(ctx, "sentry-ingest", settings, nil); err != nil {
		t.Fatal(err)
	}
	src, err := h.Errors("sentry-ingest")
	if err != nil {
		t.Fatal(err)
	}
	report(3)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	seen := make(chan int64, 64)
	go func() {
		_ = src.WatchCounts(wctx, ref, func(w core.ErrorWindow) {
			if w.Release == "v1.4.2" {
				select {
				case seen <- w.Total():
				default:
				}
			}
		})
	}()
	for n := range seen {
		if n > 10 {
			t.Fatalf("the restarted ingest counts %d errors for v1.4.2, more than the 10 reported", n)
		}
		if n == 10 {
			break
		}
	}
	stop()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := stored(); got != 10 {
		t.Fatalf("after the second run the store has %d errors for v1.4.2, want 10 (7 before the restart + 3)", got)
	}
}
