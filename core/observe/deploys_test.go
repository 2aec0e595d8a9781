package observe

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ripcordhq/ripcord/core"
)

// markRecorder is an error tracker that records the deploy markers it is
// asked for, failing with err when set.
type markRecorder struct {
	fakeErrors
	mu    sync.Mutex
	marks []string
	err   error
}

func (m *markRecorder) MarkDeploy(_ context.Context, ref core.Ref, release string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.marks = append(m.marks, ref.Env+" "+release)
	return m.err
}

// The tracker hears of each release that started serving, whoever did it,
// and of nothing that failed or did not deploy.
func TestDeployMarkersFollowTheAuditLog(t *testing.T) {
	eng := newEngine(t, nil, "staging", "production")
	prod := core.Ref{Service: "api", Env: "production"}
	stg := core.Ref{Service: "api", Env: "staging"}
	rec := &markRecorder{}
	marks := MarkDeploys(eng, map[core.Ref]core.ErrorSource{prod: rec}, nil)
	alice := core.Actor{Name: "alice"}
	ctx := context.Background()
	for _, e := range []core.AuditEntry{
		{Action: "promote", Ref: stg, To: "v2", Outcome: "deployed at 100%"}, // no tracker for staging
		{Action: "promote", Ref: prod, To: "v2", Outcome: "blocked"},
		{Action: "promote", Ref: prod, From: "v1", To: "v2", Outcome: "deployed at 25%"},
		{Action: "promote", Ref: prod, From: "v1", To: "v2", Outcome: "deployed at 50%"}, // the same release, further
		{Action: "lock", Ref: prod, Outcome: "locked"},
		{Action: "rollback", Ref: prod, From: "v2", To: "v1", Outcome: "failed: target unreachable"},
		{Action: "rollback", Ref: prod, From: "v2", To: "v1", Outcome: "rolled back to v1"},
		{Action: "full-promote", Ref: prod, From: "v1", To: "v3", Outcome: "deployed at 100%"},
		{Action: "abort", Ref: prod, From: "v3", To: "v1", Outcome: "traffic back on v1; v3 kept for inspection"},
	} {
		e.Actor = alice
		if _, err := eng.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	marks.Close()
	want := []string{"production v2", "production v1", "production v3", "production v1"}
	if !slices.Equal(rec.marks, want) {
		t.Fatalf("deploy markers %q, want %q", rec.marks, want)
	}
}

// A tracker that refuses the marker is reported in the log, and the
// rollback it followed is not affected.
func TestRefusedDeployMarkerIsLogged(t *testing.T) {
	eng := newEngine(t, nil, "production")
	prod := core.Ref{Service: "api", Env: "production"}
	rec := &markRecorder{err: errors.New("sentry answered 403 to token s3cr3t")}
	_, sub := eng.Subscribe()
	defer sub.Close()
	marks := MarkDeploys(eng, map[core.Ref]core.ErrorSource{prod: rec}, func(s string) string { return strings.ReplaceAll(s, "s3cr3t", "***") })
	if _, err := eng.Audit(context.Background(), core.AuditEntry{Actor: core.Actor{Name: "bob"}, Action: "rollback", Ref: prod, From: "v2", To: "v1", Outcome: "rolled back to v1"}); err != nil {
		t.Fatal(err)
	}
	marks.Close()
	ev := waitFor(t, sub, "the marker's log line", func(ev core.Event) bool { return ev.Kind == core.EvLog && ev.Log.Source == "errors" })
	if !strings.Contains(ev.Log.Text, "v1 in production not recorded: sentry answered 403 to token ***") {
		t.Fatalf("log line %q does not say the marker failed and why", ev.Log.Text)
	}
}
