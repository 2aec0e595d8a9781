package core

import (
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
		{"errors inconclusive", "errors", func(in *GateInput) {
			in.Verdict = &SpikeVerdict{Ref: prod, Kind: VerdictInconclusive, Evidence: Evidence{CandidateCount: 2, BaselineCount: 1}}
		}, GatePass, "no spike verdict in production: 3 errors so far, too few to judge"},
		{"backups fresh", "backups", nil, GatePass, "db backed up 1h ago"},
		{"backups stale", "backups", func(in *GateInput) {
			in.Backups = []Freshness{{Facts: BackupFacts{Set: "uploads"}, State: FreshCritical, Reason: "uploads backup is 2d old, expected every 24h"}}
		}, GateFail, "uploads backup is 2d old, expected every 24h"},
		{"expand only", "migrations", func(in *GateInput) { in.Release.Migrations = []Migration{{ID: "0042_add_col", Kind: MigrationExpand}} },
			GatePass, "v1.43.0 carries expand-only migrations: rollback is free"},
		{"contract with fresh backup", "migrations", func(in *GateInput) {
			in.Release.Migrations = []Migration{{ID: "0043_drop_col", Kind: MigrationContract}}
		},
			GatePass, "v1.43.0 carries contract migration 0043_drop_col; a backup newer than its build exists"},
		{"contract with old backup", "migrations", func(in *GateInput) {
			in.Release.Migrations = []Migration{{ID: "0043_drop_col", Kind: MigrationContract}}
			in.Backups = []Freshness{{Facts: BackupFacts{Set: "db", LastEnd: built.Add(-time.Hour)}, State: FreshOK}}
		}, GateFail, "v1.43.0 (0043_drop_col): needs a backup newer than its build at 19:14 UTC; db newest is from 18:14 UTC"},
		{"branch main", "branch", nil, GatePass, "built from main"},
		{"branch feature", "branch", func(in *GateInput) { in.Release.Branch = "feature/x" }, GateFail, "v1.43.0 was built from feature/x; only main may be promoted"},
		{"branch allowed list", "branch", func(in *GateInput) {
			in.Release.Branch = "release/1.43"
			in.Branches = []string{"main", "release/1.43"}
		}, GatePass, "built from release/1.43"},
		{"branch unknown", "branch", func(in *GateInput) { in.Release.Branch = "" }, GateUnknown, "v1.43.0 records no branch; allowed: main"},
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
