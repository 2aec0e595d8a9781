// Package convert converts between core's domain types and the plugin
// protocol's messages, for the host's side of the protocol. (The SDK has
// its own types and converts them itself.)
package convert

import (
	"time"

	"github.com/ripcordhq/ripcord/core"
	pb "github.com/ripcordhq/ripcord/plugins/internal/pluginpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Time converts a time; the zero time becomes nil so "unknown" survives.
func Time(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// FromTime converts back; nil becomes the zero time.
func FromTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func Ref(r core.Ref) *pb.Ref { return &pb.Ref{Service: r.Service, Env: r.Env} }

func FromRef(r *pb.Ref) core.Ref {
	return core.Ref{Service: r.GetService(), Env: r.GetEnv()}
}

func Actor(a core.Actor) *pb.Actor {
	return &pb.Actor{Name: a.Name, Host: a.Host, KeyFingerprint: a.KeyFingerprint, Automation: a.Automation, Via: a.Via}
}

func FromActor(a *pb.Actor) core.Actor {
	return core.Actor{Name: a.GetName(), Host: a.GetHost(), KeyFingerprint: a.GetKeyFingerprint(), Automation: a.GetAutomation(), Via: a.GetVia()}
}

func Operation(op core.OpRequest) *pb.Operation {
	return &pb.Operation{Id: op.ID, Ref: Ref(op.Ref), Actor: Actor(op.Actor)}
}

func FromOperation(op *pb.Operation) core.OpRequest {
	return core.OpRequest{ID: op.GetId(), Ref: FromRef(op.GetRef()), Actor: FromActor(op.GetActor())}
}

func TargetStatus(s core.TargetStatus) *pb.TargetStatus {
	out := &pb.TargetStatus{
		Ref: Ref(s.Ref), Current: s.Current, Candidate: s.Candidate, Weight: int32(s.Weight),
		Healthy: s.Healthy, Kept: s.Kept, Problems: s.Problems,
	}
	for _, h := range s.Hosts {
		out.Hosts = append(out.Hosts, &pb.HostStatus{Name: h.Name, Address: h.Address, Release: h.Release, State: h.State, Message: h.Message})
	}
	return out
}

func FromTargetStatus(s *pb.TargetStatus) core.TargetStatus {
	out := core.TargetStatus{
		Ref: FromRef(s.GetRef()), Current: s.GetCurrent(), Candidate: s.GetCandidate(), Weight: int(s.GetWeight()),
		Healthy: s.GetHealthy(), Kept: s.GetKept(), Problems: s.GetProblems(),
	}
	for _, h := range s.GetHosts() {
		out.Hosts = append(out.Hosts, core.HostStatus{Name: h.GetName(), Address: h.GetAddress(), Release: h.GetRelease(), State: h.GetState(), Message: h.GetMessage()})
	}
	return out
}

func Release(r core.Release) *pb.Release {
	out := &pb.Release{
		Service: r.Service, Version: r.Version, Commit: r.Commit, Branch: r.Branch,
		ArtifactDigest: r.ArtifactDigest, BuiltAt: Time(r.BuiltAt),
		Migrations: Migrations(r.Migrations), MigrationsUnknown: r.MigrationsUnknown,
	}
	return out
}

func Migrations(ms []core.Migration) []*pb.Migration {
	var out []*pb.Migration
	for _, m := range ms {
		pm := &pb.Migration{Id: m.ID, Kind: string(m.Kind), File: m.File, Layout: m.Layout, Reason: m.Reason}
		for _, c := range m.Changes {
			pm.Changes = append(pm.Changes, &pb.SchemaChange{Kind: string(c.Kind), Action: c.Action, Table: c.Table, Column: c.Column, Line: int32(c.Line)})
		}
		out = append(out, pm)
	}
	return out
}

func FromMigrations(ms []*pb.Migration) []core.Migration {
	var out []core.Migration
	for _, m := range ms {
		cm := core.Migration{ID: m.GetId(), Kind: core.MigrationKind(m.GetKind()), File: m.GetFile(), Layout: m.GetLayout(), Reason: m.GetReason()}
		for _, c := range m.GetChanges() {
			cm.Changes = append(cm.Changes, core.SchemaChange{Kind: core.MigrationKind(c.GetKind()), Action: c.GetAction(), Table: c.GetTable(), Column: c.GetColumn(), Line: int(c.GetLine())})
		}
		out = append(out, cm)
	}
	return out
}

func FromRelease(r *pb.Release) core.Release {
	out := core.Release{
		Service: r.GetService(), Version: r.GetVersion(), Commit: r.GetCommit(), Branch: r.GetBranch(),
		ArtifactDigest: r.GetArtifactDigest(), BuiltAt: FromTime(r.GetBuiltAt()),
		Migrations: FromMigrations(r.GetMigrations()), MigrationsUnknown: r.GetMigrationsUnknown(),
	}
	return out
}

var runStates = map[core.RunState]pb.RunState{
	core.RunQueued:    pb.RunState_RUN_STATE_QUEUED,
	core.RunRunning:   pb.RunState_RUN_STATE_RUNNING,
	core.RunSucceeded: pb.RunState_RUN_STATE_SUCCEEDED,
	core.RunFailed:    pb.RunState_RUN_STATE_FAILED,
	core.RunCanceled:  pb.RunState_RUN_STATE_CANCELED,
	core.RunSkipped:   pb.RunState_RUN_STATE_SKIPPED,
	core.RunWaiting:   pb.RunState_RUN_STATE_WAITING,
}

func RunState(s core.RunState) pb.RunState { return runStates[s] }

func FromRunState(s pb.RunState) core.RunState {
	for k, v := range runStates {
		if v == s {
			return k
		}
	}
	return ""
}

func PipelineRun(r core.PipelineRun) *pb.PipelineRun {
	out := &pb.PipelineRun{
		Id: r.ID, Service: r.Service, Version: r.Version, Commit: r.Commit, Branch: r.Branch,
		State: RunState(r.State), ArtifactDigest: r.ArtifactDigest,
		StartedAt: Time(r.StartedAt), FinishedAt: Time(r.FinishedAt),
		Migrations: Migrations(r.Migrations), MigrationsUnknown: r.MigrationsUnknown,
	}
	for _, st := range r.Stages {
		ps := &pb.Stage{Name: st.Name, State: RunState(st.State)}
		for _, s := range st.Steps {
			ps.Steps = append(ps.Steps, &pb.Step{
				Name: s.Name, State: RunState(s.State), ExitCode: int32(s.ExitCode), Progress: s.Progress,
				StartedAt: Time(s.StartedAt), FinishedAt: Time(s.FinishedAt),
			})
		}
		out.Stages = append(out.Stages, ps)
	}
	return out
}

func FromPipelineRun(r *pb.PipelineRun) core.PipelineRun {
	out := core.PipelineRun{
		ID: r.GetId(), Service: r.GetService(), Version: r.GetVersion(), Commit: r.GetCommit(), Branch: r.GetBranch(),
		State: FromRunState(r.GetState()), ArtifactDigest: r.GetArtifactDigest(),
		StartedAt: FromTime(r.GetStartedAt()), FinishedAt: FromTime(r.GetFinishedAt()),
		Migrations: FromMigrations(r.GetMigrations()), MigrationsUnknown: r.GetMigrationsUnknown(),
	}
	for _, ps := range r.GetStages() {
		st := core.Stage{Name: ps.GetName(), State: FromRunState(ps.GetState())}
		for _, s := range ps.GetSteps() {
			st.Steps = append(st.Steps, core.Step{
				Name: s.GetName(), State: FromRunState(s.GetState()), ExitCode: int(s.GetExitCode()), Progress: s.GetProgress(),
				StartedAt: FromTime(s.GetStartedAt()), FinishedAt: FromTime(s.GetFinishedAt()),
			})
		}
		out.Stages = append(out.Stages, st)
	}
	return out
}

func LogLine(l core.LogLine) *pb.LogLine {
	return &pb.LogLine{Time: Time(l.Time), Source: l.Source, Stream: l.Stream, Text: l.Text}
}

func FromLogLine(l *pb.LogLine) core.LogLine {
	return core.LogLine{Time: FromTime(l.GetTime()), Source: l.GetSource(), Stream: l.GetStream(), Text: l.GetText()}
}

func ErrorIssue(i core.ErrorIssue) *pb.ErrorIssue {
	return &pb.ErrorIssue{Fingerprint: i.Fingerprint, Title: i.Title, Count: i.Count, FirstSeen: Time(i.FirstSeen), FirstRelease: i.FirstRelease}
}

func FromErrorIssue(i *pb.ErrorIssue) core.ErrorIssue {
	return core.ErrorIssue{Fingerprint: i.GetFingerprint(), Title: i.GetTitle(), Count: i.GetCount(), FirstSeen: FromTime(i.GetFirstSeen()), FirstRelease: i.GetFirstRelease()}
}

func ErrorWindow(w core.ErrorWindow) *pb.ErrorWindow {
	out := &pb.ErrorWindow{Ref: Ref(w.Ref), Release: w.Release, Unavailable: w.Unavailable, Warning: w.Warning}
	for _, b := range w.Buckets {
		out.Buckets = append(out.Buckets, &pb.ErrorBucket{Start: Time(b.Start), Count: b.Count})
	}
	for _, i := range w.Issues {
		out.Issues = append(out.Issues, ErrorIssue(i))
	}
	return out
}

func FromErrorWindow(w *pb.ErrorWindow) core.ErrorWindow {
	out := core.ErrorWindow{Ref: FromRef(w.GetRef()), Release: w.GetRelease(), Unavailable: w.GetUnavailable(), Warning: w.GetWarning()}
	for _, b := range w.GetBuckets() {
		out.Buckets = append(out.Buckets, core.ErrorBucket{Start: FromTime(b.GetStart()), Count: b.GetCount()})
	}
	for _, i := range w.GetIssues() {
		out.Issues = append(out.Issues, FromErrorIssue(i))
	}
	return out
}

func BackupFacts(f core.BackupFacts) *pb.BackupFacts {
	return &pb.BackupFacts{
		Set: f.Set, Tool: f.Tool, LastStart: Time(f.LastStart), LastEnd: Time(f.LastEnd), LastType: f.LastType,
		LastSize: f.LastSize, LastFull: Time(f.LastFull), Attempted: Time(f.Attempted), AttemptOk: f.AttemptOK,
		Running: f.Running, VerifiedAt: Time(f.VerifiedAt), VerifyOk: f.VerifyOK, Unreadable: f.Unreadable,
		ReportedAt: Time(f.ReportedAt), CanRunNow: f.CanRunNow, Status: f.Status, VerifyMessage: f.VerifyMessage,
	}
}

func FromBackupFacts(f *pb.BackupFacts) core.BackupFacts {
	return core.BackupFacts{
		Set: f.GetSet(), Tool: f.GetTool(), LastStart: FromTime(f.GetLastStart()), LastEnd: FromTime(f.GetLastEnd()),
		LastType: f.GetLastType(), LastSize: f.GetLastSize(), LastFull: FromTime(f.GetLastFull()),
		Attempted: FromTime(f.GetAttempted()), AttemptOK: f.GetAttemptOk(), Running: f.GetRunning(),
		VerifiedAt: FromTime(f.GetVerifiedAt()), VerifyOK: f.GetVerifyOk(), Unreadable: f.GetUnreadable(),
		ReportedAt: FromTime(f.GetReportedAt()), CanRunNow: f.GetCanRunNow(), Status: f.GetStatus(), VerifyMessage: f.GetVerifyMessage(),
	}
}

// OpEvent converts a protocol event to core's; Done is set for completed,
// with Err for any outcome but success.
func OpEvent(ev *pb.OperationEvent) core.OpEvent {
	out := core.OpEvent{Seq: ev.GetSeq(), Time: FromTime(ev.GetTime()), ExternalRef: ev.GetExternalRef()}
	switch e := ev.GetEvent().(type) {
	case *pb.OperationEvent_Progress:
		out.Progress, out.Message = e.Progress.GetFraction(), e.Progress.GetMessage()
	case *pb.OperationEvent_Log:
		out.Log = e.Log.GetText()
	case *pb.OperationEvent_Completed:
		out.Done = true
		switch e.Completed.GetOutcome() {
		case pb.Outcome_OUTCOME_SUCCEEDED:
		case pb.Outcome_OUTCOME_CANCELLED:
			out.Err = "cancelled"
			if m := e.Completed.GetError(); m != "" {
				out.Err = "cancelled: " + m
			}
		default:
			out.Err = e.Completed.GetError()
			if out.Err == "" {
				out.Err = "failed (" + e.Completed.GetOutcome().String() + ")"
			}
		}
	}
	return out
}
