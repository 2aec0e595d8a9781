package builtin

import (
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// The built-in providers are written against core's types; the SDK speaks
// its own. These convert between the two at the adapters.

func coreRef(r sdk.Ref) core.Ref { return core.Ref{Service: r.Service, Env: r.Env} }

func coreActor(a sdk.Actor) core.Actor {
	return core.Actor{Name: a.Name, Host: a.Host, KeyFingerprint: a.KeyFingerprint, Automation: a.Automation}
}

func coreOp(op *sdk.Op) core.OpRequest {
	return core.OpRequest{ID: op.ID, Ref: coreRef(op.Ref), Actor: coreActor(op.Actor)}
}

func coreRelease(r sdk.Release) core.Release {
	out := core.Release{Service: r.Service, Version: r.Version, Commit: r.Commit, Branch: r.Branch,
		ArtifactDigest: r.ArtifactDigest, BuiltAt: r.BuiltAt, MigrationsUnknown: r.MigrationsUnknown}
	for _, m := range r.Migrations {
		cm := core.Migration{ID: m.ID, Kind: core.MigrationKind(m.Kind), File: m.File, Layout: m.Layout, Reason: m.Reason}
		for _, c := range m.Changes {
			cm.Changes = append(cm.Changes, core.SchemaChange{Kind: core.MigrationKind(c.Kind), Action: c.Action, Table: c.Table, Column: c.Column, Line: c.Line})
		}
		out.Migrations = append(out.Migrations, cm)
	}
	return out
}

func sdkMigrations(ms []core.Migration) []sdk.Migration {
	var out []sdk.Migration
	for _, m := range ms {
		x := sdk.Migration{ID: m.ID, Kind: string(m.Kind), File: m.File, Layout: m.Layout, Reason: m.Reason}
		for _, c := range m.Changes {
			x.Changes = append(x.Changes, sdk.SchemaChange{Kind: string(c.Kind), Action: c.Action, Table: c.Table, Column: c.Column, Line: c.Line})
		}
		out = append(out, x)
	}
	return out
}

func sdkTargetStatus(s core.TargetStatus) sdk.TargetStatus {
	out := sdk.TargetStatus{Current: s.Current, Candidate: s.Candidate, Weight: s.Weight, Healthy: s.Healthy, Kept: s.Kept, Problems: s.Problems}
	for _, h := range s.Hosts {
		out.Hosts = append(out.Hosts, sdk.HostStatus{Name: h.Name, Address: h.Address, Release: h.Release, State: h.State, Message: h.Message})
	}
	return out
}

func sdkRun(r core.PipelineRun) sdk.PipelineRun {
	out := sdk.PipelineRun{ID: r.ID, Service: r.Service, Version: r.Version, Commit: r.Commit, Branch: r.Branch,
		State: sdk.RunState(r.State), ArtifactDigest: r.ArtifactDigest, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		Migrations: sdkMigrations(r.Migrations), MigrationsUnknown: r.MigrationsUnknown}
	for _, st := range r.Stages {
		s := sdk.Stage{Name: st.Name, State: sdk.RunState(st.State)}
		for _, x := range st.Steps {
			s.Steps = append(s.Steps, sdk.Step{Name: x.Name, State: sdk.RunState(x.State), ExitCode: x.ExitCode,
				Progress: x.Progress, StartedAt: x.StartedAt, FinishedAt: x.FinishedAt})
		}
		out.Stages = append(out.Stages, s)
	}
	return out
}

func sdkIssues(issues []core.ErrorIssue) []sdk.ErrorIssue {
	var out []sdk.ErrorIssue
	for _, i := range issues {
		out = append(out, sdk.ErrorIssue{Fingerprint: i.Fingerprint, Title: i.Title, Count: i.Count, FirstSeen: i.FirstSeen, FirstRelease: i.FirstRelease})
	}
	return out
}

func sdkWindow(w core.ErrorWindow) sdk.ErrorWindow {
	out := sdk.ErrorWindow{Release: w.Release, Unavailable: w.Unavailable, Warning: w.Warning, Issues: sdkIssues(w.Issues)}
	for _, b := range w.Buckets {
		out.Buckets = append(out.Buckets, sdk.ErrorBucket{Start: b.Start, Count: b.Count})
	}
	return out
}

func sdkFacts(f core.BackupFacts) sdk.BackupFacts {
	return sdk.BackupFacts{Set: f.Set, Tool: f.Tool, LastStart: f.LastStart, LastEnd: f.LastEnd, LastType: f.LastType,
		LastSize: f.LastSize, LastFull: f.LastFull, Attempted: f.Attempted, AttemptOK: f.AttemptOK, Running: f.Running,
		VerifiedAt: f.VerifiedAt, VerifyOK: f.VerifyOK, VerifyMessage: f.VerifyMessage, Unreadable: f.Unreadable,
		ReportedAt: f.ReportedAt, CanRunNow: f.CanRunNow, Status: f.Status}
}
