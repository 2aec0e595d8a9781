package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// status shows each environment's errors per release and the current
// verdict with its bound, as the process running the error sources last
// shared them, and any warning about errors kept apart.
func TestStatusShowsErrorsAndTheVerdictWithItsBound(t *testing.T) {
	cfg, db := stateConfig(t)
	if code, _, errs := ripcord(t, "status", "-c", cfg); code != exitOK { // creates the store
		t.Fatalf("status: exit %d: %s", code, errs)
	}
	st, err := sqlitestore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	ref := core.Ref{Service: "api", Env: "production"}
	now := time.Now().Truncate(10 * time.Second)
	window := func(rel string, per int64, warning string) core.ErrorWindow {
		w := core.ErrorWindow{Ref: ref, Release: rel, Warning: warning}
		for i := range 12 {
			w.Buckets = append(w.Buckets, core.ErrorBucket{Start: now.Add(time.Duration(i-11) * 10 * time.Second), Count: per})
		}
		return w
	}
	verdict := core.SpikeVerdict{Ref: ref, Candidate: "v2", Baseline: "v1", Kind: core.VerdictSpike, Evidence: core.Evidence{
		CandidateCount: 36, BaselineCount: 12, Share: 0.25, RateRatio: 9, RateRatioLow: 2.4, RateRatioHigh: 40, Threshold: 100, Tolerance: 1.5}}
	var facts []core.SharedFact
	for i, ev := range []core.Event{
		{Kind: core.EvErrors, Ref: ref, Errors: ptr(window("v2", 3, ""))},
		{Kind: core.EvErrors, Ref: ref, Errors: ptr(window("v1", 1, ""))},
		{Kind: core.EvErrors, Ref: ref, Errors: ptr(window(`(environment "prod")`, 2, `24 errors in the last 30m came from environment "prod"`))},
		{Kind: core.EvVerdict, Ref: ref, Verdict: &verdict},
	} {
		b, _ := json.Marshal(ev)
		facts = append(facts, core.SharedFact{Key: string(rune('a' + i)), Event: b, At: now})
	}
	if err := st.PutShared(context.Background(), facts); err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, errs := ripcord(t, "status", "--json", "-c", cfg)
	var got struct {
		Envs []struct {
			Errors []struct {
				Release    string `json:"release"`
				Errors     int64  `json:"errors"`
				LastMinute int64  `json:"last_minute"`
				Warning    string `json:"warning"`
			} `json:"errors"`
			Verdict *core.SpikeVerdict `json:"verdict"`
		} `json:"environments"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || len(got.Envs) != 1 {
		t.Fatalf("status --json: exit %d, %s %s", code, out, errs)
	}
	e := got.Envs[0]
	if len(e.Errors) != 3 || e.Errors[2].Release != "v2" || e.Errors[2].Errors != 36 || e.Errors[2].LastMinute != 18 ||
		e.Errors[0].Warning == "" || e.Verdict == nil || e.Verdict.Kind != core.VerdictSpike || e.Verdict.Evidence.RateRatioLow != 2.4 {
		t.Fatalf("status --json environment = %+v", e)
	}
	code, out, _ = ripcord(t, "status", "-c", cfg)
	for _, want := range []string{
		"errors api/production: v1 12 (6 last minute) · v2 36 (18 last minute)",
		`! errors api/production (environment "prod"): 24 errors in the last 30m came from environment "prod"`,
		"verdict api/production SPIKE: v2 vs v1 · 36 vs 12 errors at 25% share · at least 2.4× the baseline's error rate (99% confidence)",
	} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Fatalf("status: exit %d, want %q in:\n%s", code, want, out)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// watch prints each environment's per-release errors at most once a
// minute, and each warning once.
func TestWatchPrintsErrorsOnceAMinuteAndWarningsOnce(t *testing.T) {
	l := newErrorLines()
	ref := core.Ref{Service: "api", Env: "production"}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ev := func(at time.Duration, rel string, n int64, warning string) core.Event {
		return core.Event{Kind: core.EvErrors, Time: t0.Add(at), Errors: &core.ErrorWindow{Ref: ref, Release: rel, Warning: warning,
			Buckets: []core.ErrorBucket{{Start: t0, Count: n}}}}
	}
	var lines []string
	for _, e := range []core.Event{
		ev(0, "v1", 2, ""),
		ev(time.Second, "v2", 5, ""),
		ev(2*time.Second, "(no environment)", 3, "3 errors named no environment"),
		ev(3*time.Second, "(no environment)", 4, "4 errors named no environment"),
		ev(61*time.Second, "v2", 7, ""),
	} {
		if s := l.line(e); s != "" {
			lines = append(lines, s[strings.Index(s, " ")+1:])
		}
	}
	want := []string{
		"errors api/production: v1 2 (2 last minute)",
		"errors api/production ! (no environment): 3 errors named no environment",
		"errors api/production: v1 2 (2 last minute) · v2 7 (7 last minute)",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// With a server running, status asks it: each environment's errors are
// what the server's own error sources counted (here a real sentry-go
// client sending to the built-in ingest the server runs), not what the
// store last held.
func TestStatusThroughTheServerShowsItsErrors(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := writeConfig(t, dir, `    errors: { provider: sentry-ingest, listen: "`+addr+`", keys: {"42": "${RIPCORD_TEST_DSN_KEY:-publickey}"} }
`)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "serve.out")
	logs, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	srv := exec.Command(self, "serve", "-c", cfg)
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		if code, out, errs := ripcord(t, "server", "stop", "-c", cfg); code != exitOK {
			t.Errorf("server stop: exit %d\n%s%s", code, out, errs)
			_ = srv.Process.Kill()
		}
		<-exited
	})
	waitServer(t, cfg)

	c, err := sentry.NewClient(sentry.ClientOptions{Dsn: "http://publickey@" + addr + "/42", Environment: "production",
		Release: "v7", DisableTelemetryBuffer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The ingest listens once the server's providers have started.
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, logs, _ := ripcord(t, "server", "logs", "-c", cfg)
		if code == exitOK && strings.Contains(logs, "providers, observers and rollouts started") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server logs: exit %d\n%s", code, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 3 {
		c.CaptureException(errors.New("checkout failed"), nil, nil)
	}
	if !c.Flush(10 * time.Second) {
		t.Fatal("sentry-go could not deliver the events to the ingest")
	}
	for {
		code, out, errs := ripcord(t, "status", "--json", "-c", cfg)
		var got struct {
			Envs []struct {
				Errors []struct {
					Release string `json:"release"`
					Errors  int64  `json:"errors"`
				} `json:"errors"`
			} `json:"environments"`
			Server     *struct{ Pid int } `json:"server"`
			ErrorsAsOf time.Time          `json:"errors_as_of"`
		}
		if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || len(got.Envs) != 1 {
			t.Fatalf("status --json: exit %d, %s %s", code, out, errs)
		}
		if got.Server == nil || got.Server.Pid != srv.Process.Pid {
			t.Fatalf("status was not answered by the server (pid %d):\n%s", srv.Process.Pid, out)
		}
		if es := got.Envs[0].Errors; len(es) > 0 && es[0].Release == "v7" && es[0].Errors > 0 && !got.ErrorsAsOf.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("status through the server never showed the errors sent:\n%s\nserver output:\n%s", out, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out, _ := ripcord(t, "status", "-c", cfg)
	if code != exitOK || !regexp.MustCompile(`errors api/production: v7 \d+ \(\d+ last minute\)`).MatchString(out) || !strings.Contains(out, "server: pid ") {
		t.Fatalf("status through the server: exit %d\n%s", code, out)
	}
}

// validate refuses what the sentry provider would refuse at start-up,
// each at its file:line:col, and accepts a project ID written as a number.
func TestValidateChecksTheSentryBlock(t *testing.T) {
	t.Setenv("SENTRY_AUTH_TOKEN", "sntrys_example")
	dir := t.TempDir()
	write := func(errorsBlock string) string {
		cfg := filepath.Join(dir, "ripcord.yaml")
		body := `project: shop
services:
  - name: api
environments:
  - name: production
    target: { provider: local, root: envs/production, run: "./api", health: "tcp://127.0.0.1:1" }
    errors: ` + errorsBlock + "\n"
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := write(`{ provider: sentry, organization: shop, project: pump, token: "${SENTRY_AUTH_TOKEN}", poll: 2s, url: sentry.example.com }`)
	code, out, errs := ripcord(t, "validate", "-c", cfg)
	if code != exitFailed {
		t.Fatalf("validate: exit %d, want %d\n%s%s", code, exitFailed, out, errs)
	}
	for _, want := range []string{
		cfg + `:7:62: provider sentry: project: expected a Sentry project ID, a number`,
		cfg + `:7:105: provider sentry: poll: expected a duration of at least 10s`,
		cfg + `:7:114: provider sentry: url: expected Sentry's address such as https://sentry.example.com`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("validate does not report %q:\n%s", want, errs)
		}
	}
	cfg = write(`{ provider: sentry, organization: shop, project: 4505321234567890, token: "${SENTRY_AUTH_TOKEN}", poll: 1m }`)
	if code, out, errs := ripcord(t, "validate", "-c", cfg); code != exitOK {
		t.Fatalf("validate of a good sentry block: exit %d\n%s%s", code, out, errs)
	}
	cfg = write(`{ provider: sentry, organization: shop, project: 1, token: sntrys_inline }`)
	if code, _, errs := ripcord(t, "validate", "-c", cfg); code != exitFailed || !strings.Contains(errs, "errors.token: a secret written inline") || strings.Contains(errs, "sntrys_inline") {
		t.Fatalf("validate of an inline token: exit %d\n%s", code, errs)
	}
}

// A log that said a provider was degraded says when it is healthy again,
// says a repeated state once, and says nothing of a provider that only
// started and stayed healthy.
func TestProviderLinesSayTheRecovery(t *testing.T) {
	l := newProviderLines()
	ev := func(name, state, msg string) core.Event {
		return core.Event{Kind: core.EvProvider, Time: time.Date(2026, 12, 5, 9, 0, 0, 0, time.Local), Provider: &core.ProviderHealth{Name: name, State: state, Message: msg}}
	}
	var got []string
	for _, e := range []core.Event{
		ev("restic@production", "starting", ""),
		ev("restic@production", "healthy", ""),
		ev("local@production", "starting", ""),
		ev("local@production", "degraded", "waiting for its settings"),
		ev("local@production", "degraded", "waiting for its settings"),
		ev("local@production", "failed", "exited"),
		ev("local@production", "healthy", ""),
		ev("local@production", "healthy", ""),
	} {
		if line := l.line(e); line != "" {
			got = append(got, line)
		}
	}
	want := []string{
		"09:00:00 provider local@production degraded waiting for its settings",
		"09:00:00 provider local@production failed exited",
		"09:00:00 provider local@production healthy again",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("provider lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
