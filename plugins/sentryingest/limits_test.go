package sentryingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// post sends one legacy store body (one event) and returns the status.
func post(t *testing.T, ing *Ingest, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/api/1/store/?sentry_key=publickey", strings.NewReader(body))
	rec := httptest.NewRecorder()
	ing.ServeHTTP(rec, req)
	return rec
}

func event(env, release string) string {
	e, _ := json.Marshal(env)
	r, _ := json.Marshal(release)
	return fmt.Sprintf(`{"level":"error","environment":%s,"release":%s,"message":"boom"}`, e, r)
}

// windowsOf collects one push of ref's windows.
func windowsOf(t *testing.T, ing *Ingest, ref core.Ref) []core.ErrorWindow {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var ws []core.ErrorWindow
	var once sync.Once
	done := make(chan struct{})
	go func() {
		_ = ing.WatchCounts(ctx, ref, func(w core.ErrorWindow) {
			ws = append(ws, w)
			// The first push is synchronous and complete once the source
			// returns to waiting; stop after it.
			once.Do(func() { time.AfterFunc(50*time.Millisecond, cancel) })
		})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no push")
	}
	cancel()
	return ws
}

// Release and environment names Sentry refuses are refused with 400 and
// nothing of the request counts: a NUL or a newline used to cut a name.
func TestBadNamesAreRefused(t *testing.T) {
	for name, body := range map[string]string{
		"newline in release":    event("production", "shop@1.0\nshop@2.0"),
		"NUL in release":        event("production", "shop@1.0\u0000x"),
		"tab in environment":    event("prod\tuction", "shop@1.0"),
		"release of 201 bytes":  event("production", strings.Repeat("r", 201)),
		"environment over 64":   event(strings.Repeat("e", 65), "shop@1.0"),
		"DEL in release":        event("production", "shop\u007f"),
		"C1 control in release": event("production", "shop\u0085"),
	} {
		t.Run(name, func(t *testing.T) {
			ing := newIngest(t, Config{})
			rec := post(t, ing, body)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "name") {
				t.Fatalf("answered %d %s, want 400 naming the bad name", rec.Code, rec.Body)
			}
			if refs := ing.counts.refsOf("shop"); len(refs) != 0 {
				t.Fatalf("something was counted: %v", refs)
			}
		})
	}
	ing := newIngest(t, Config{})
	if rec := post(t, ing, event("production", strings.Repeat("r", 200))); rec.Code != http.StatusOK {
		t.Fatalf("a 200-byte release answered %d", rec.Code)
	}
}

// A key reporting more releases than the cap in a window gets the rest
// counted together under "(other releases)", said once; a release Ripcord
// deployed always counts on its own; room comes back as the window moves.
func TestReleasesBeyondTheCapAreCountedTogether(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var logs []string
	ing := newIngest(t, Config{MaxReleases: 3, Window: 10 * time.Minute, Environments: []string{"production"},
		Now:  func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		Logf: func(f string, a ...any) { mu.Lock(); logs = append(logs, fmt.Sprintf(f, a...)); mu.Unlock() }})
	prod := core.Ref{Service: "shop", Env: "production"}
	if err := ing.MarkDeploy(context.Background(), prod, "shop@9"); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if rec := post(t, ing, event("production", fmt.Sprintf("shop@%d", i))); rec.Code != http.StatusOK {
			t.Fatalf("event %d answered %d", i, rec.Code)
		}
	}
	post(t, ing, event("production", "shop@9"))
	ws := windowsOf(t, ing, prod)
	got := map[string]int64{}
	for _, w := range ws {
		got[w.Release] = w.Total()
		if w.Release == OtherReleases && !strings.Contains(w.Warning, "beyond the 3 distinct ones") {
			t.Errorf("(other releases) window without its warning: %q", w.Warning)
		}
	}
	if got["shop@0"] != 1 || got["shop@2"] != 1 || got[OtherReleases] != 3 || got["shop@9"] != 1 || got["shop@3"] != 0 {
		t.Fatalf("counted %v, want shop@0..2 alone, 3 together, the deployed shop@9 alone", got)
	}
	mu.Lock()
	if n := strings.Count(strings.Join(logs, "\n"), "more than 3 releases"); n != 1 {
		t.Errorf("said %d times: %q", n, logs)
	}
	now = now.Add(11 * time.Minute)
	mu.Unlock()
	post(t, ing, event("production", "shop@7"))
	if got := total(windowsOf(t, ing, prod), "shop@7"); got != 1 {
		t.Fatalf("after the window moved, a new release counted %d on its own, want 1", got)
	}
}

// Events for an environment the ingest does not count for, or with none,
// are counted apart, never stored as its baseline, and every window pushed
// for the served environment carries a warning naming them.
func TestStrayEnvironmentsAreShownNotMixedIn(t *testing.T) {
	store := newMemStore()
	ing := newIngest(t, Config{Environments: []string{"production"}, Store: store, Envs: map[string]string{"prd": "production"}})
	for _, env := range []string{"production", "prd", "prod", "prod", "", "qa"} {
		if rec := post(t, ing, event(env, "shop@1")); rec.Code != http.StatusOK {
			t.Fatalf("%q answered %d", env, rec.Code)
		}
	}
	prod := core.Ref{Service: "shop", Env: "production"}
	ws := windowsOf(t, ing, prod)
	got := map[string]core.ErrorWindow{}
	for _, w := range ws {
		got[w.Release] = w
	}
	if got["shop@1"].Total() != 2 || got["shop@1"].Warning != "" {
		t.Fatalf("production's own window %+v, want its 2 events (one mapped from prd) and no warning", got["shop@1"])
	}
	for release, n := range map[string]int64{`(environment "prod")`: 2, NoEnvironment: 1, `(environment "qa")`: 1} {
		w := got[release]
		if w.Total() != n || w.Warning == "" || w.Ref != prod {
			t.Errorf("%s: %+v, want %d events with a warning on production's push", release, w, n)
		}
	}
	if !strings.Contains(got[NoEnvironment].Warning, "SENTRY_ENVIRONMENT") {
		t.Errorf("no-environment warning does not say what to fix: %q", got[NoEnvironment].Warning)
	}
	if err := ing.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := store.total(prod, "shop@1"); n != 2 {
		t.Errorf("stored %d for production, want 2", n)
	}
	for _, env := range []string{"prod", NoEnvironment, "qa"} {
		if rows, _ := store.ErrorCounts(context.Background(), core.Ref{Service: "shop", Env: env}, time.Time{}); len(rows) != 0 {
			t.Errorf("stray environment %q was stored: %+v", env, rows)
		}
	}
}

// A key reporting more environments than the cap gets the rest counted
// under "(other environments)".
func TestEnvironmentsBeyondTheCapAreCountedTogether(t *testing.T) {
	ing := newIngest(t, Config{MaxEnvironments: 2, Environments: []string{"production"}})
	for _, env := range []string{"a", "b", "c", "d", "production"} {
		post(t, ing, event(env, "shop@1"))
	}
	got := map[string]int64{}
	for _, w := range windowsOf(t, ing, core.Ref{Service: "shop", Env: "production"}) {
		got[w.Release] = w.Total()
	}
	if got[`(environment "a")`] != 1 || got[`(environment "b")`] != 1 || got[OtherEnvironments] != 2 || got["shop@1"] != 1 {
		t.Fatalf("windows %v", got)
	}
}
