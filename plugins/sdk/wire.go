package sdk

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/ripcordhq/ripcord/plugins/internal/pluginpb"
)

// Conversion between the SDK's types and the protocol's messages. A test
// sets every field of every type and checks it survives the round trip,
// so a field added here and forgotten on the wire fails at once.

func toTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func fromTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func toRef(r Ref) *pb.Ref { return &pb.Ref{Service: r.Service, Env: r.Env} }

func fromRef(r *pb.Ref) Ref { return Ref{Service: r.GetService(), Env: r.GetEnv()} }

func fromActor(a *pb.Actor) Actor {
	return Actor{Name: a.GetName(), Host: a.GetHost(), KeyFingerprint: a.GetKeyFingerprint(), Automation: a.GetAutomation(), Via: a.GetVia()}
}

func toTargetStatus(ref Ref, s TargetStatus) *pb.TargetStatus {
	out := &pb.TargetStatus{
		Ref: toRef(ref), Current: s.Current, Candidate: s.Candidate, Weight: int32(s.Weight),
		Healthy: s.Healthy, Kept: s.Kept, Problems: s.Problems,
	}
	for _, h := range s.Hosts {
		out.Hosts = append(out.Hosts, &pb.HostStatus{Name: h.Name, Address: h.Address, Release: h.Release, State: h.State, Message: h.Message})
	}
	return out
}

func fromTargetStatus(s *pb.TargetStatus) TargetStatus {
	out := TargetStatus{
		Current: s.GetCurrent(), Candidate: s.GetCandidate(), Weight: int(s.GetWeight()),
		Healthy: s.GetHealthy(), Kept: s.GetKept(), Problems: s.GetProblems(),
	}
	for _, h := range s.GetHosts() {
		out.Hosts = append(out.Hosts, HostStatus{Name: h.GetName(), Address: h.GetAddress(), Release: h.GetRelease(), State: h.GetState(), Message: h.GetMessage()})
	}
	return out
}

func toRelease(r Release) *pb.Release {
	return &pb.Release{
		Service: r.Service, Version: r.Version, Commit: r.Commit, Branch: r.Branch,
		ArtifactDigest: r.ArtifactDigest, BuiltAt: toTime(r.BuiltAt),
		Migrations: toMigrations(r.Migrations), MigrationsUnknown: r.MigrationsUnknown,
	}
}

func fromRelease(r *pb.Release) Release {
	return Release{
		Service: r.GetService(), Version: r.GetVersion(), Commit: r.GetCommit(), Branch: r.GetBranch(),
		ArtifactDigest: r.GetArtifactDigest(), BuiltAt: fromTime(r.GetBuiltAt()),
		Migrations: fromMigrations(r.GetMigrations()), MigrationsUnknown: r.GetMigrationsUnknown(),
	}
}

func toMigrations(ms []Migration) []*pb.Migration {
	var out []*pb.Migration
	for _, m := range ms {
		pm := &pb.Migration{Id: m.ID, Kind: m.Kind, File: m.File, Layout: m.Layout, Reason: m.Reason}
		for _, c := range m.Changes {
			pm.Changes = append(pm.Changes, &pb.SchemaChange{Kind: c.Kind, Action: c.Action, Table: c.Table, Column: c.Column, Line: int32(c.Line)})
		}
		out = append(out, pm)
	}
	return out
}

func fromMigrations(ms []*pb.Migration) []Migration {
	var out []Migration
	for _, m := range ms {
		x := Migration{ID: m.GetId(), Kind: m.GetKind(), File: m.GetFile(), Layout: m.GetLayout(), Reason: m.GetReason()}
		for _, c := range m.GetChanges() {
			x.Changes = append(x.Changes, SchemaChange{Kind: c.GetKind(), Action: c.GetAction(), Table: c.GetTable(), Column: c.GetColumn(), Line: int(c.GetLine())})
		}
		out = append(out, x)
	}
	return out
}

var runStates = map[RunState]pb.RunState{
	RunQueued:    pb.RunState_RUN_STATE_QUEUED,
	RunRunning:   pb.RunState_RUN_STATE_RUNNING,
	RunSucceeded: pb.RunState_RUN_STATE_SUCCEEDED,
	RunFailed:    pb.RunState_RUN_STATE_FAILED,
	RunCanceled:  pb.RunState_RUN_STATE_CANCELED,
	RunSkipped:   pb.RunState_RUN_STATE_SKIPPED,
	RunWaiting:   pb.RunState_RUN_STATE_WAITING,
}

func fromRunState(s pb.RunState) RunState {
	for k, v := range runStates {
		if v == s {
			return k
		}
	}
	return ""
}

func toPipelineRun(r PipelineRun) *pb.PipelineRun {
	out := &pb.PipelineRun{
		Id: r.ID, Service: r.Service, Version: r.Version, Commit: r.Commit, Branch: r.Branch,
		State: runStates[r.State], ArtifactDigest: r.ArtifactDigest,
		StartedAt: toTime(r.StartedAt), FinishedAt: toTime(r.FinishedAt),
		Migrations: toMigrations(r.Migrations), MigrationsUnknown: r.MigrationsUnknown,
	}
	for _, st := range r.Stages {
		ps := &pb.Stage{Name: st.Name, State: runStates[st.State]}
		for _, s := range st.Steps {
			ps.Steps = append(ps.Steps, &pb.Step{
				Name: s.Name, State: runStates[s.State], ExitCode: int32(s.ExitCode), Progress: s.Progress,
				StartedAt: toTime(s.StartedAt), FinishedAt: toTime(s.FinishedAt),
			})
		}
		out.Stages = append(out.Stages, ps)
	}
	return out
}

func fromPipelineRun(r *pb.PipelineRun) PipelineRun {
	out := PipelineRun{
		ID: r.GetId(), Service: r.GetService(), Version: r.GetVersion(), Commit: r.GetCommit(), Branch: r.GetBranch(),
		State: fromRunState(r.GetState()), ArtifactDigest: r.GetArtifactDigest(),
		StartedAt: fromTime(r.GetStartedAt()), FinishedAt: fromTime(r.GetFinishedAt()),
		Migrations: fromMigrations(r.GetMigrations()), MigrationsUnknown: r.GetMigrationsUnknown(),
	}
	for _, ps := range r.GetStages() {
		st := Stage{Name: ps.GetName(), State: fromRunState(ps.GetState())}
		for _, s := range ps.GetSteps() {
			st.Steps = append(st.Steps, Step{
				Name: s.GetName(), State: fromRunState(s.GetState()), ExitCode: int(s.GetExitCode()), Progress: s.GetProgress(),
				StartedAt: fromTime(s.GetStartedAt()), FinishedAt: fromTime(s.GetFinishedAt()),
			})
		}
		out.Stages = append(out.Stages, st)
	}
	return out
}

func toErrorWindow(ref Ref, w ErrorWindow) *pb.ErrorWindow {
	out := &pb.ErrorWindow{Ref: toRef(ref), Release: w.Release, Unavailable: w.Unavailable, Warning: w.Warning}
	for _, b := range w.Buckets {
		out.Buckets = append(out.Buckets, &pb.ErrorBucket{Start: toTime(b.Start), Count: b.Count})
	}
	for _, i := range w.Issues {
		out.Issues = append(out.Issues, &pb.ErrorIssue{Fingerprint: i.Fingerprint, Title: i.Title, Count: i.Count,
			FirstSeen: toTime(i.FirstSeen), FirstRelease: i.FirstRelease})
	}
	return out
}

func fromErrorWindow(w *pb.ErrorWindow) ErrorWindow {
	out := ErrorWindow{Release: w.GetRelease(), Unavailable: w.GetUnavailable(), Warning: w.GetWarning()}
	for _, b := range w.GetBuckets() {
		out.Buckets = append(out.Buckets, ErrorBucket{Start: fromTime(b.GetStart()), Count: b.GetCount()})
	}
	for _, i := range w.GetIssues() {
		out.Issues = append(out.Issues, ErrorIssue{Fingerprint: i.GetFingerprint(), Title: i.GetTitle(), Count: i.GetCount(),
			FirstSeen: fromTime(i.GetFirstSeen()), FirstRelease: i.GetFirstRelease()})
	}
	return out
}

func toBackupFacts(f BackupFacts) *pb.BackupFacts {
	return &pb.BackupFacts{
		Set: f.Set, Tool: f.Tool, LastStart: toTime(f.LastStart), LastEnd: toTime(f.LastEnd), LastType: f.LastType,
		LastSize: f.LastSize, LastFull: toTime(f.LastFull), Attempted: toTime(f.Attempted), AttemptOk: f.AttemptOK,
		Running: f.Running, VerifiedAt: toTime(f.VerifiedAt), VerifyOk: f.VerifyOK, VerifyMessage: f.VerifyMessage,
		Unreadable: f.Unreadable, ReportedAt: toTime(f.ReportedAt), CanRunNow: f.CanRunNow, Status: f.Status,
	}
}

func fromBackupFacts(f *pb.BackupFacts) BackupFacts {
	return BackupFacts{
		Set: f.GetSet(), Tool: f.GetTool(), LastStart: fromTime(f.GetLastStart()), LastEnd: fromTime(f.GetLastEnd()),
		LastType: f.GetLastType(), LastSize: f.GetLastSize(), LastFull: fromTime(f.GetLastFull()),
		Attempted: fromTime(f.GetAttempted()), AttemptOK: f.GetAttemptOk(), Running: f.GetRunning(),
		VerifiedAt: fromTime(f.GetVerifiedAt()), VerifyOK: f.GetVerifyOk(), VerifyMessage: f.GetVerifyMessage(),
		Unreadable: f.GetUnreadable(), ReportedAt: fromTime(f.GetReportedAt()), CanRunNow: f.GetCanRunNow(), Status: f.GetStatus(),
	}
}
