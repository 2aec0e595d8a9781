package tui

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

var t0 = time.Date(2026, 3, 14, 21, 14, 5, 0, time.UTC)

func fixedClock() time.Time { return t0 }

var (
	staging    = core.Ref{Service: "api", Env: "staging"}
	production = core.Ref{Service: "api", Env: "production"}
)

// idleSnapshot: everything released and healthy, nothing in flight.
func idleSnapshot() core.Snapshot {
	s := core.NewSnapshot("shop", []string{"api", "web"}, []string{"staging", "production"})
	s.Targets[staging] = core.TargetStatus{Ref: staging, Current: "v1.42.0", Healthy: true}
	s.Targets[production] = core.TargetStatus{Ref: production, Current: "v1.42.0", Healthy: true}
	s.Pipelines["api"] = pipeline("v1.42.0", core.RunSucceeded, 0)
	s.Backups[production] = map[string]core.Freshness{
		"postgres": verified(fresh("postgres", "pgbackrest", core.FreshOK, 3*time.Hour, 24*time.Hour, ""), 26*time.Hour),
	}
	s.Audit = []core.AuditEntry{
		{Seq: 1, At: t0.Add(-2 * time.Hour), Actor: core.Actor{Name: "alice"}, Action: "promote", Ref: production, From: "v1.41.2", To: "v1.42.0", Outcome: "healthy"},
	}
	return s
}

// canarySnapshot: a canary at 25% with an error spike, a stale backup and
// an operation left unfinished.
func canarySnapshot() core.Snapshot {
	s := idleSnapshot()
	s.Targets[staging] = core.TargetStatus{Ref: staging, Current: "v1.43.0", Healthy: true}
	s.Targets[production] = core.TargetStatus{Ref: production, Current: "v1.42.0", Candidate: "v1.43.0", Weight: 25}
	s.Deployments[production] = core.Deployment{ID: 7, Ref: production, Version: "v1.43.0", From: "v1.42.0",
		State: core.DeployJudgment, Weight: 25, Step: 1, StartedAt: t0.Add(-2 * time.Minute), Actor: core.Actor{Name: "alice"}}
	s.Pipelines["api"] = pipeline("v1.43.0", core.RunRunning, 0.6)
	s.Watchers = []core.Watcher{{ID: "w-carol", Actor: core.Actor{Name: "carol", Host: "bastion-2"}, Since: t0.Add(-12 * time.Minute), SeenAt: t0}}
	s.Errors[production] = map[string]core.ErrorWindow{
		"v1.43.0": window(production, "v1.43.0", []int64{2, 3, 5, 8, 12, 20, 30, 38, 40, 41, 44, 46}),
		"v1.42.0": window(production, "v1.42.0", []int64{6, 6, 5, 7, 6, 6, 5, 6, 7, 6, 6, 6}),
	}
	s.Verdicts[production] = core.SpikeVerdict{Ref: production, Candidate: "v1.43.0", Baseline: "v1.42.0", Kind: core.VerdictSpike, At: t0,
		Evidence: core.Evidence{CandidateCount: 112, BaselineCount: 18, Share: 0.25, RateRatio: 6.2, RateRatioLow: 3.1, RateRatioHigh: 12.4,
			PValue: 3e-9, Elapsed: 5 * time.Minute, NewIssues: []core.ErrorIssue{{Fingerprint: "f1", Title: "TypeError: cart is undefined", Count: 97}}}}
	s.Backups[production]["uploads"] = fresh("uploads", "restic", core.FreshCritical, 26*time.Hour, 24*time.Hour, "")
	s.Backups[production]["media"] = fresh("media", "borg", core.FreshUnknown, 0, 24*time.Hour, "borg: repository locked")
	s.Locks[production] = core.Lock{Ref: production, Holder: core.Actor{Name: "alice", Host: "ops1"}, Since: t0.Add(-3 * time.Minute), ExpiresAt: t0.Add(time.Minute)}
	s.Operations["op1"] = core.Operation{ID: "op1", Ref: staging, Kind: "rollback", State: core.OpAttention, StartedAt: t0.Add(-time.Hour)}
	return s
}

// fullSnapshot fills every pane past what fits on screen.
func fullSnapshot() core.Snapshot {
	s := canarySnapshot()
	for i := range 40 {
		s.Audit = append(s.Audit, core.AuditEntry{Seq: int64(i + 2), At: t0.Add(time.Duration(i-40) * time.Minute),
			Actor: core.Actor{Name: fmt.Sprintf("user%d", i%5)}, Action: "promote", Ref: production, From: "v1.42.0", To: "v1.43.0", Outcome: "step 1"})
	}
	for i := range 12 {
		set := fmt.Sprintf("set%02d", i)
		s.Backups[production][set] = fresh(set, "restic", core.FreshOK, time.Duration(i)*time.Hour, 24*time.Hour, "")
	}
	return s
}

func pipeline(version string, state core.RunState, progress float64) core.PipelineRun {
	done := func(name string, start, secs int) core.Step {
		return core.Step{Name: name, State: core.RunSucceeded, StartedAt: t0.Add(time.Duration(start) * time.Second),
			FinishedAt: t0.Add(time.Duration(start+secs) * time.Second)}
	}
	run := core.PipelineRun{ID: "run-88", Service: "api", Version: version, Commit: "9f3c1a2b7d", Branch: "main", State: state,
		ArtifactDigest: "sha256:9f3c1a2b7d4e5f60718293a4b5c6d7e8f9", StartedAt: t0.Add(-20 * time.Minute)}
	run.Stages = []core.Stage{
		{Name: "build", State: core.RunSucceeded, Steps: []core.Step{done("compile", -1200, 42)}},
		{Name: "test", State: core.RunSucceeded, Steps: []core.Step{done("unit", -1150, 130), done("lint", -1150, 48)}},
		{Name: "deploy staging", State: core.RunSucceeded, Steps: []core.Step{done("deploy", -1000, 20), done("verify", -980, 300)}},
	}
	if state == core.RunRunning {
		run.Stages = append(run.Stages,
			core.Stage{Name: "canary", State: core.RunRunning, Steps: []core.Step{
				{Name: "canary 25%", State: core.RunRunning, Progress: progress, StartedAt: t0.Add(-72 * time.Second)},
				{Name: "analysis", State: core.RunQueued},
			}},
			core.Stage{Name: "rollout", State: core.RunQueued, Steps: []core.Step{{Name: "50%", State: core.RunQueued}, {Name: "100%", State: core.RunQueued}}})
	}
	return run
}

func window(ref core.Ref, rel string, counts []int64) core.ErrorWindow {
	w := core.ErrorWindow{Ref: ref, Release: rel}
	for i, c := range counts {
		w.Buckets = append(w.Buckets, core.ErrorBucket{Start: t0.Add(time.Duration(i-len(counts)) * 30 * time.Second), Count: c})
	}
	return w
}

func fresh(set, tool string, st core.FreshnessState, age, expected time.Duration, reason string) core.Freshness {
	return core.Freshness{Ref: production, State: st, Age: age, Expected: expected, Reason: reason,
		Facts: core.BackupFacts{Set: set, Tool: tool, LastEnd: t0.Add(-age), ReportedAt: t0, Unreadable: reason}}
}

// verified marks f's repository checked, and found sound, ago.
func verified(f core.Freshness, ago time.Duration) core.Freshness {
	f.Facts.VerifiedAt, f.Facts.VerifyOK = t0.Add(-ago), true
	return f
}

// engineWith returns an engine whose state is snap, as a console started
// now would find it.
func engineWith(snap core.Snapshot) *core.Engine {
	eng := core.NewEngine(core.EngineOptions{Project: snap.Project, Services: snap.Services, Envs: snap.Envs, Clock: fixedClock})
	eng.Publish(core.Event{Kind: core.EvResync, Snapshot: &snap})
	return eng
}

func testOptions() Options {
	return Options{Service: "api", Actor: core.Actor{Name: "bob", Host: "laptop"}, Clock: fixedClock, Location: time.UTC, NoColor: true}
}

// history is what the store holds for production in the fixtures, oldest
// first: two healthy releases, then the canary of v1.43.0.
func history() []core.Deployment {
	alice := core.Actor{Name: "alice"}
	return []core.Deployment{
		{Ref: production, Version: "v1.41.2", From: "v1.41.0", State: core.DeployHealthy, Weight: 100, StartedAt: t0.Add(-50 * time.Hour), FinishedAt: t0.Add(-49 * time.Hour), Actor: alice},
		{Ref: production, Version: "v1.42.0", From: "v1.41.2", State: core.DeployHealthy, Weight: 100, StartedAt: t0.Add(-3 * time.Hour), FinishedAt: t0.Add(-2 * time.Hour), Actor: alice},
		{Ref: production, Version: "v1.43.0", From: "v1.42.0", State: core.DeployJudgment, Weight: 25, StartedAt: t0.Add(-2 * time.Minute), Actor: alice},
	}
}

var addCartIndex = core.Migration{ID: "0041_add_cart_index", Kind: core.MigrationExpand, Changes: []core.SchemaChange{{Kind: core.MigrationExpand, Action: "create index", Table: "carts"}}}

// releases carry the migrations the rollback confirmation reports: each
// every migration at its commit.
func releases() []core.Release {
	return []core.Release{
		{Service: "api", Version: "v1.41.2"},
		{Service: "api", Version: "v1.42.0", Migrations: []core.Migration{addCartIndex}},
		{Service: "api", Version: "v1.43.0", Migrations: []core.Migration{addCartIndex,
			{ID: "0042_add_cart_owner", Kind: core.MigrationExpand, Changes: []core.SchemaChange{{Kind: core.MigrationExpand, Action: "add column", Table: "carts", Column: "owner_id"}}},
			{ID: "0043_drop_legacy_cart", Kind: core.MigrationContract, Changes: []core.SchemaChange{{Kind: core.MigrationContract, Action: "drop table", Table: "legacy_cart"}}}}},
	}
}

// storeEngine is engineWith over a real SQLite store in a temp dir,
// holding deps and rels.
func storeEngine(t testing.TB, snap core.Snapshot, deps []core.Deployment, rels []core.Release) *core.Engine {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "state.db"), sqlitestore.WithClock(fixedClock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, d := range deps {
		if _, err := st.AddDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rels {
		if err := st.PutRelease(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	eng := core.NewEngine(core.EngineOptions{Project: snap.Project, Services: snap.Services, Envs: snap.Envs, Store: st, Clock: fixedClock})
	eng.Publish(core.Event{Kind: core.EvResync, Snapshot: &snap})
	return eng
}
