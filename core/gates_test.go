package core

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGates(t *testing.T) {
	now := time.Date(2026, 11, 25, 21, 14, 0, 0, time.UTC)
	built := now.Add(-2 * time.Hour)
	prod := Ref{Service: "api", Env: "production"}
	rel := Release{Service: "api", Version: "v1.43.0", Branch: "main", ArtifactDigest: "sha256:9f3c1a2b3c4d", BuiltAt: built}
	green := &PipelineRun{Version: "v1.43.0", State: RunSucceeded, Stages: []Stage{{Name: "build", State: RunSucceeded}, {Name: "lint", State: RunSkipped}}}
	soaked := &Predecessor{Env: "staging", Version: "v1.43.0", Digest: rel.ArtifactDigest, Since: now.Add(-10 * time.Minute), Healthy: true}
	fresh := []Freshness{{Ref: prod, Facts: BackupFacts{Set: "db", LastEnd: now.Add(-time.Hour)}, State: FreshOK, Reason: "db backed up 1h ago"}}
	stable := Release{Service: "api", Version: "v1.42.0", Migrations: []Migration{
		{ID: "0041_create_orders", Kind: MigrationExpand, Changes: []SchemaChange{{Kind: MigrationExpand, Action: "create table", Table: "orders"}}},
	}}
	addNote := Migration{ID: "0042_add_note", Kind: MigrationExpand, Changes: []SchemaChange{{Kind: MigrationExpand, Action: "add column", Table: "orders", Column: "note"}}}
	addEmail := Migration{ID: "0012_add_email", Kind: MigrationExpand, Changes: []SchemaChange{{Kind: MigrationExpand, Action: "add column", Table: "orders", Column: "email"}}}
	dropComment := Migration{ID: "0043_drop_comment", Kind: MigrationContract, Changes: []SchemaChange{{Kind: MigrationContract, Action: "drop column", Table: "orders", Column: "comment"}}}
	base := GateInput{Ref: prod, Release: rel, Pipeline: green, Prev: soaked, Backups: fresh, Actor: Actor{Name: "ana"}, Now: now}

	cases := []struct {
		name   string
		gate   string
		mutate func(*GateInput)
		status GateStatus
		reason string
	}{
		{"pipeline green", "pipeline", nil, GatePass, "pipeline for v1.43.0 is green"},
		{"pipeline missing", "pipeline", func(in *GateInput) { in.Pipeline = nil }, GateUnknown, "no pipeline run found for v1.43.0"},
		{"pipeline failed step", "pipeline", func(in *GateInput) {
			in.Pipeline = &PipelineRun{State: RunFailed, Stages: []Stage{{Name: "lint", State: RunFailed, Steps: []Step{{Name: "vet", State: RunFailed, ExitCode: 2}}}}}
		}, GateFail, "pipeline for v1.43.0 failed at lint › vet (exit 2)"},
		{"pipeline running", "pipeline", func(in *GateInput) {
			in.Pipeline = &PipelineRun{State: RunRunning, Stages: []Stage{{Name: "build", State: RunSucceeded}, {Name: "test", State: RunRunning, Steps: []Step{{Name: "unit", State: RunRunning}}}}}
		}, GateFail, "pipeline for v1.43.0 is still running (test › unit)"},
		{"soak done", "soak 5m", nil, GatePass, "v1.43.0 ran sha256:9f3c1a2b… in staging for 10m (soak 5m)"},
		{"soak short", "soak 15m", nil, GateFail, "v1.43.0 has soaked in staging for 10m of 15m"},
		{"soak other digest", "soak 5m", func(in *GateInput) { p := *soaked; p.Digest = "sha256:deadbeefcafe"; in.Prev = &p },
			GateFail, "staging runs sha256:deadbeef… but v1.43.0 is sha256:9f3c1a2b…: build once, deploy everywhere"},
		{"soak other version", "soak 5m", func(in *GateInput) { p := *soaked; p.Version = "v1.42.0"; in.Prev = &p },
			GateFail, "staging runs v1.42.0, not v1.43.0: promote it there first"},
		{"soak no digest", "soak 5m", func(in *GateInput) { in.Release.ArtifactDigest = "" }, GateUnknown, "cannot prove staging runs the same artifact as v1.43.0: digest not recorded"},
		{"soak first env", "soak 5m", func(in *GateInput) { in.Prev = nil }, GatePass, "first environment: nothing to soak in"},
		{"errors spike", "errors", func(in *GateInput) {
			in.Verdict = &SpikeVerdict{Ref: prod, Kind: VerdictSpike, Evidence: Evidence{CandidateCount: 112, BaselineCount: 18, Share: 0.25, RateRatio: 6.2, PValue: 3e-9}}
		}, GateFail, "error spike in production: 112 vs 18 errors at 25% share, 6.2× baseline, p=3e-09"},
		{"errors staging spike", "errors", func(in *GateInput) {
			p := *soaked
			p.Verdict = &SpikeVerdict{Ref: Ref{"api", "staging"}, Kind: VerdictSpike, Evidence: Evidence{CandidateCount: 40, BaselineCount: 4, Share: 0.5, RateRatio: 10, PValue: 1e-8}}
			in.Prev = &p
		}, GateFail, "error spike in staging"},
		{"errors healthy", "errors", func(in *GateInput) {
			in.Verdict = &SpikeVerdict{Ref: prod, Kind: VerdictHealthy, Evidence: Evidence{CandidateCount: 300, BaselineCount: 880, Tolerance: 1.5, RateRatioHigh: 1.36, Threshold: 100}}
		}, GatePass, "no worse than 1.5× the baseline's error rate in production with 99% confidence (at most 1.4×; 300 vs 880 errors)"},
		{"errors inconclusive waits by default", "errors", func(in *GateInput) {
			in.Verdict = &SpikeVerdict{Ref: prod, Kind: VerdictInconclusive, Evidence: Evidence{CandidateCount: 2, BaselineCount: 1, Tolerance: 1.5, NeedsMore: 12 * time.Minute}}
		}, GateUnknown, "error verdict in production is inconclusive: 2 vs 1 errors, not yet bounded below 1.5× (needs ~12m more at this error rate); waiting for HEALTHY (on_inconclusive: wait)"},
		{"errors inconclusive pass", "errors", func(in *GateInput) {
			in.Verdict = &SpikeVerdict{Ref: prod, Kind: VerdictInconclusive, Evidence: Evidence{CandidateCount: 2, BaselineCount: 1, Tolerance: 1.5}}
			in.OnInconclusive = InconclusivePass
		}, GatePass, "passing (on_inconclusive: pass)"},
		{"errors inconclusive fail", "errors", func(in *GateInput) {
			in.Verdict = &SpikeVerdict{Ref: prod, Kind: VerdictInconclusive, Evidence: Evidence{CandidateCount: 0, BaselineCount: 0, Tolerance: 1.5}}
			in.OnInconclusive = InconclusiveFail
		}, GateFail, "0 vs 0 errors, not yet bounded below 1.5× (on_inconclusive: fail)"},
		{"errors no verdict in staging", "errors", nil, GateUnknown, "no error verdict on v1.43.0 in staging; waiting for HEALTHY"},
		{"errors first environment", "errors", func(in *GateInput) { in.Prev = nil }, GatePass, "first environment: v1.43.0 has not run anywhere yet"},
		{"backups fresh", "backups", nil, GatePass, "db backed up 1h ago"},
		{"backups stale", "backups", func(in *GateInput) {
			in.Backups = []Freshness{{Facts: BackupFacts{Set: "uploads"}, State: FreshCritical, Reason: "uploads backup is 2d old, expected every 24h"}}
		}, GateFail, "uploads backup is 2d old, expected every 24h"},
		{"no migrations", "migrations", func(in *GateInput) { in.StableVersion, in.Stable = "v1.42.0", &stable }, GatePass, "v1.43.0 adds no migrations over v1.42.0"},
		{"migrations nobody reads", "migrations", func(in *GateInput) {
			in.StableVersion, in.Stable, in.MigrationsUnread = "v1.42.0", &stable, "api's pipeline, github-actions, does not read a release's migrations"
		}, GatePass, "not checked: api's pipeline, github-actions, does not read a release's migrations"},
		{"migrations sent by a source the config does not name", "migrations", func(in *GateInput) {
			in.StableVersion, in.Stable, in.MigrationsUnread = "v1.42.0", &stable, "api sets no migrations.dir"
			in.Release.Migrations = append(append([]Migration(nil), stable.Migrations...), addNote)
		}, GatePass, "v1.43.0 adds expand-only migrations over v1.42.0 (0042_add_note): v1.42.0 keeps working on the new schema; rollback is free"},
		{"expand only", "migrations", func(in *GateInput) {
			in.StableVersion, in.Stable = "v1.42.0", &stable
			in.Release.Migrations = append(slices.Clone(stable.Migrations), addNote)
		}, GatePass, "v1.43.0 adds expand-only migrations over v1.42.0 (0042_add_note): v1.42.0 keeps working on the new schema; rollback is free"},
		{"contract after its expand", "migrations", func(in *GateInput) {
			prev := stable
			prev.Migrations = append(slices.Clone(stable.Migrations), addNote)
			in.StableVersion, in.Stable = "v1.42.0", &prev
			in.Release.Migrations = append(slices.Clone(prev.Migrations), dropComment)
		}, GatePass, "v1.43.0 contracts (0043_drop_comment: drop column orders.comment) one release after v1.42.0 expanded the same tables; a backup newer than its build exists"},
		{"contract without an expand", "migrations", func(in *GateInput) {
			in.StableVersion, in.Stable = "v1.42.0", &stable
			in.Release.Migrations = append(slices.Clone(stable.Migrations), dropComment)
		}, GateFail, "0043_drop_comment (drop column orders.comment), but v1.42.0 shipped no expand step on orders (a new column written alongside the old): ship the expand one release before the contract"},
		{"contract in the release of its expand", "migrations", func(in *GateInput) {
			in.StableVersion, in.Stable = "v1.42.0", &stable
			in.Release.Migrations = append(slices.Clone(stable.Migrations), addNote, dropComment)
		}, GateFail, "0043_drop_comment (drop column orders.comment) ships in the same release as its expand step 0042_add_note: ship the expand one release earlier (expand → migrate → contract)"},
		{"contract beside an expand of its table, the stable release having expanded it long ago", "migrations", func(in *GateInput) {
			prev := stable
			prev.Migrations = append(slices.Clone(stable.Migrations), addEmail)
			in.StableVersion, in.Stable = "v1.42.0", &prev
			in.Release.Migrations = append(slices.Clone(prev.Migrations), addNote, dropComment)
		}, GateFail, "0043_drop_comment (drop column orders.comment) ships in the same release as 0042_add_note, which also expands orders: if that is the expand it finishes, ship it one release earlier (expand → migrate → contract); if it finishes an expand v1.42.0 already runs, override with that reason"},
		{"contract with old backup", "migrations", func(in *GateInput) {
			prev := stable
			prev.Migrations = append(slices.Clone(stable.Migrations), addNote)
			in.StableVersion, in.Stable = "v1.42.0", &prev
			in.Release.Migrations = append(slices.Clone(prev.Migrations), dropComment)
			in.Backups = []Freshness{{Facts: BackupFacts{Set: "db", LastEnd: built.Add(-time.Hour)}, State: FreshOK}}
		}, GateFail, "v1.43.0 (0043_drop_comment): needs a backup newer than its build at 19:14 UTC; db newest is from 18:14 UTC"},
		{"contract unparseable", "migrations", func(in *GateInput) {
			in.StableVersion, in.Stable = "v1.42.0", &stable
			in.Release.Migrations = []Migration{{ID: "0044_typo", Kind: MigrationContract, Reason: "line 2 cannot be parsed as PostgreSQL (syntax error at or near \"text\"): counted as contract",
				Changes: []SchemaChange{{Kind: MigrationContract, Action: "unparseable statement", Line: 2}}}}
		}, GateFail, `0044_typo is a contract (line 2 cannot be parsed as PostgreSQL (syntax error at or near "text"): counted as contract) and names no table to match an expand step against`},
		{"first deploy", "migrations", func(in *GateInput) { in.Release.Migrations = []Migration{dropComment} }, GatePass, "nothing runs in production yet"},
		{"stable not recorded", "migrations", func(in *GateInput) { in.StableVersion = "v1.41.0" }, GateUnknown, "v1.41.0, which runs in production, is not in the release store: cannot tell which migrations v1.43.0 adds"},
		{"migrations unread", "migrations", func(in *GateInput) { in.Release.MigrationsUnknown = "db/migrations is outside the git repository /src" }, GateUnknown, "v1.43.0: its migrations could not be read: db/migrations is outside the git repository /src"},
		{"branch main", "branch", nil, GatePass, "built from main"},
		{"branch feature", "branch", func(in *GateInput) { in.Release.Branch = "feature/x" }, GateFail, "v1.43.0 was built from feature/x; only main may be promoted"},
		{"branch allowed list", "branch", func(in *GateInput) {
			in.Release.Branch = "release/1.43"
			in.Branches = []string{"main", "release/1.43"}
		}, GatePass, "built from release/1.43"},
		{"branch unknown", "branch", func(in *GateInput) { in.Release.Branch, in.Release.Commit = "", "1a2b3c4d5e6f7a8b" },
			GateFail, "v1.43.0 was built from an unknown branch (commit 1a2b3c4d…): its pipeline could not tell which branch it is on; only main may be promoted"},
		{"lock free", "lock", nil, GatePass, "lock free"},
		{"lock mine", "lock", func(in *GateInput) { in.Lock = &Lock{Holder: Actor{Name: "ana"}, ExpiresAt: now.Add(time.Minute)} }, GatePass, "locked by you"},
		{"lock other", "lock", func(in *GateInput) {
			in.Lock = &Lock{Holder: Actor{Name: "bo", Host: "bastion-2"}, Reason: "db maintenance", Since: now.Add(-3 * time.Minute), ExpiresAt: now.Add(time.Minute)}
		}, GateFail, "locked by bo@bastion-2 since 21:11 UTC (3m ago): db maintenance"},
		{"lock expired", "lock", func(in *GateInput) { in.Lock = &Lock{Holder: Actor{Name: "bo"}, ExpiresAt: now.Add(-time.Second)} }, GatePass, "lock free"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base
			if c.mutate != nil {
				c.mutate(&in)
			}
			spec := GateSpec{Name: c.gate}
			if name, d, ok := strings.Cut(c.gate, " "); ok {
				soak, err := time.ParseDuration(d)
				if err != nil {
					t.Fatal(err)
				}
				spec = GateSpec{Name: name, Soak: soak}
			}
			got := EvaluateGates([]GateSpec{spec}, in, nil)[0]
			if got.Status != c.status || !strings.Contains(got.Reason, c.reason) {
				t.Fatalf("%s gate = %s %q\nwant %s containing %q", c.gate, got.Status, got.Reason, c.status, c.reason)
			}
			if got.Gate != spec.Name {
				t.Fatalf("result names gate %q, want %q", got.Gate, spec.Name)
			}
		})
	}
}

func TestOverridesUnblockOnlyWhatTheyName(t *testing.T) {
	now := time.Now()
	in := GateInput{
		Release: Release{Version: "v2", Branch: "hotfix"},
		Backups: []Freshness{{Facts: BackupFacts{Set: "db"}, State: FreshUnknown, Reason: "unknown: restic: wrong password"}},
		Now:     now,
	}
	specs := []GateSpec{{Name: GateBackups}, {Name: GateBranch}, {Name: GatePipeline}}
	res := EvaluateGates(specs, in, []string{"backups"})
	blocking := Blocking(res)
	var names []string
	for _, b := range blocking {
		names = append(names, b.Gate)
	}
	if strings.Join(names, ",") != "branch,pipeline" {
		t.Fatalf("blocking = %v, want branch and pipeline (backups overridden)", names)
	}
	if !res[0].Overridden || res[0].Status != GateFail {
		t.Fatalf("overridden gate keeps its status and reason: %+v", res[0])
	}
}
